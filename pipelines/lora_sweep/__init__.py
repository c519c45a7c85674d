"""The lora-sweep pipeline."""

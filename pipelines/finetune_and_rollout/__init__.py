"""The finetune-and-rollout pipeline."""

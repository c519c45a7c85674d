"""The train_lora component: component.py (KFP definition) and core.py (logic)."""

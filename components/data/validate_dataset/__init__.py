"""The validate_dataset component: component.py (KFP definition) and core.py (logic)."""

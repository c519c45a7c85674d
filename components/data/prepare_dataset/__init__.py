"""The prepare_dataset component: component.py (KFP definition) and core.py (logic)."""

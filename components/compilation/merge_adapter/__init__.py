"""The merge_adapter component: component.py (KFP definition) and core.py (logic)."""

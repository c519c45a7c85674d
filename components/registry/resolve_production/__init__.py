"""The resolve_production component: component.py (KFP definition) and core.py (logic)."""

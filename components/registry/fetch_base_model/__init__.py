"""The fetch_base_model component: component.py (KFP definition) and core.py (logic)."""

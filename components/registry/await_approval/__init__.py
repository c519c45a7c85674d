"""The await_approval component: component.py (KFP definition) and core.py (logic)."""

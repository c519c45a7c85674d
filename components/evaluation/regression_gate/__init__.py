"""The regression_gate component: component.py (KFP definition) and core.py (logic)."""

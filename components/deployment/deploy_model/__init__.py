"""The deploy_model component: component.py (KFP definition) and core.py (logic)."""

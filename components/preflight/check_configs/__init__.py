"""The check_configs component: component.py (KFP definition); the logic is kfp_llmops.preflight."""

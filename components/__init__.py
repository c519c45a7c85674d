"""KFP components of kfp-llmops, one folder per component: component.py (thin KFP definition) and core.py (logic)."""

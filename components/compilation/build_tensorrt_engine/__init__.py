"""The build_tensorrt_engine component: component.py (KFP definition) and core.py (logic)."""

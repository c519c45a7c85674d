"""The export_onnx component: component.py (KFP definition) and core.py (logic)."""

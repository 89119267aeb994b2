"""Deployment: ONNX export of the backbone and of each task's model, and
running the exported files in onnxruntime."""

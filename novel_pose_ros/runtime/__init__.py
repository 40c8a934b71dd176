"""Inference back ends behind one interface (PyTorch, ONNX Runtime, TensorRT)."""

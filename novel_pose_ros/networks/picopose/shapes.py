"""Tensor shape checks whose errors state the expected and the actual shape."""
from __future__ import annotations

import torch


def check_tensor(name: str, tensor: torch.Tensor, shape: tuple[int | None, ...]) -> torch.Tensor:
    """Return `tensor` if its shape matches `shape` (None = any size), else raise ValueError.

    Skipped while tracing for ONNX export (shapes are symbolic there; the graph's
    declared input shapes take over).
    """
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return tensor
    ok = tensor.dim() == len(shape) and all(s is None or s == a for s, a in zip(shape, tensor.shape))
    if not ok:
        expected = "(" + ", ".join("B" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(tensor.shape)}")
    return tensor


def check_same_batch(**tensors: torch.Tensor) -> int:
    """Common batch size of the given tensors, or ValueError listing each one's batch size."""
    sizes = {name: int(t.shape[0]) for name, t in tensors.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"inputs must share one batch size, got {sizes}")
    return next(iter(sizes.values()))

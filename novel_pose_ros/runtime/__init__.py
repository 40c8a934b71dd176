"""Inference back ends behind one interface (runtime/base.py): PyTorch (reference) and ONNX Runtime.

`create_backend("auto" | "torch" | "onnxruntime", ...)` builds one from a PicoPose config
and checkpoint; the ONNX graphs are exported into the cache on first use.
"""
from __future__ import annotations

from pathlib import Path

from novel_pose_ros.runtime.base import GRAPHS, InferenceBackend, run_in_chunks

BACKENDS = ("auto", "torch", "onnxruntime")

__all__ = ["BACKENDS", "GRAPHS", "InferenceBackend", "create_backend", "run_in_chunks"]


def create_backend(
    backend: str,
    config_name: str,
    checkpoint: str | Path | None,
    device: str = "cpu",
    onnx_cache: str | Path | None = None,
    seed: int = 0,
) -> InferenceBackend:
    """A backend for PicoPose `config_name` with weights from `checkpoint` (None = the shipped weights of
    that network when there are some, else untrained, seeded).

    'auto' is ONNX Runtime (the fast CPU path).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got '{backend}'")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got '{device}'")
    from novel_pose_ros.runtime.weights import ensure_onnx, load_network, resolve_checkpoint

    checkpoint = resolve_checkpoint(config_name, checkpoint)
    net, weights_id = load_network(config_name, checkpoint, seed)
    if backend == "torch":
        from novel_pose_ros.runtime.torch_backend import TorchBackend

        return TorchBackend(net, weights_id, device)
    from novel_pose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend

    beside = checkpoint.parent if checkpoint is not None else None
    return OnnxRuntimeBackend(ensure_onnx(net, weights_id, onnx_cache, beside), device)

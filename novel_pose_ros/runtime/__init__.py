"""Inference back ends behind one interface (runtime/base.py): PyTorch (reference), ONNX Runtime
(CPU, or its CUDA provider when present) and TensorRT.

`create_backend("auto" | "torch" | "onnxruntime" | "tensorrt", ...)` builds one from a PicoPose config
and checkpoint; the ONNX graphs are exported into the cache on first use, TensorRT engines are built
from them into the engine cache (runtime/engine_cache.py). Which back end 'auto' picks is decided by
`choose_backend`, a pure function of what this machine has.
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path

from novel_pose_ros.runtime.base import GRAPHS, InferenceBackend, run_in_chunks
from novel_pose_ros.runtime.engine_cache import PRECISIONS

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
LOGGER = logging.getLogger(__name__)

__all__ = ["BACKENDS", "GRAPHS", "PRECISIONS", "InferenceBackend", "choose_backend", "create_backend", "machine_capabilities",
           "run_in_chunks", "sidecar_backend"]


def choose_backend(requested: str, device: str, cuda_available: bool, tensorrt_available: bool,
                   ort_providers: tuple[str, ...] | list[str]) -> tuple[str, str, str]:
    """(backend, device, reason) for `requested` on a machine with these capabilities.

    'auto': TensorRT on the GPU when PyTorch sees a CUDA GPU and tensorrt imports (whatever `device`
    says: to stay on the CPU ask for 'onnxruntime'); else ONNX Runtime with its CUDA provider when
    device is 'cuda' and the provider is there; else ONNX Runtime on the CPU. An explicit 'tensorrt'
    that cannot run raises ValueError saying what is missing; explicit 'torch' / 'onnxruntime' are kept.
    """
    if requested not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got '{requested}'")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got '{device}'")
    missing = [what for what, ok in (("a CUDA GPU visible to PyTorch", cuda_available),
                                     ("the tensorrt Python package (make venv-gpu)", tensorrt_available)) if not ok]
    if requested == "tensorrt":
        if missing:
            raise ValueError(f"backend 'tensorrt' cannot run here: missing {' and '.join(missing)}")
        return "tensorrt", "cuda", "requested" + (" (TensorRT runs on the GPU; device 'cpu' ignored)" if device == "cpu" else "")
    if requested != "auto":
        return requested, device, "requested"
    if not missing:
        return "tensorrt", "cuda", "auto: a CUDA GPU and TensorRT are present"
    ort_cuda = "CUDAExecutionProvider" in ort_providers
    if device == "cuda" and ort_cuda:
        return "onnxruntime", "cuda", f"auto: no TensorRT backend (missing {' and '.join(missing)}); ONNX Runtime has the CUDA provider"
    if device == "cuda":
        return "onnxruntime", "cpu", (f"auto: no TensorRT backend (missing {' and '.join(missing)}) and ONNX Runtime has no "
                                      "CUDA provider: running on the CPU")
    return "onnxruntime", "cpu", f"auto: no TensorRT backend (missing {' and '.join(missing)}): ONNX Runtime on the CPU"


def machine_capabilities() -> tuple[bool, bool, tuple[str, ...]]:
    """(CUDA GPU visible to torch, tensorrt imports, ONNX Runtime providers)."""
    import torch

    try:
        importlib.import_module("tensorrt")
        has_trt = True
    except (ImportError, OSError):  # not installed, or its CUDA libraries missing
        has_trt = False
    try:
        import onnxruntime

        providers = tuple(onnxruntime.get_available_providers())
    except ImportError:
        providers = ()
    return torch.cuda.is_available(), has_trt, providers


def create_backend(
    backend: str,
    config_name: str,
    checkpoint: str | Path | None,
    device: str = "cpu",
    onnx_cache: str | Path | None = None,
    seed: int = 0,
    precision: str = "fp16",
    max_batch: int = 32,
    engine_cache: str | Path | None = None,
    torch_autocast: str = "off",
) -> InferenceBackend:
    """A backend for PicoPose `config_name` with weights from `checkpoint` (None = the shipped weights of
    that network when there are some, else untrained, seeded).

    'auto' is decided by `choose_backend` (logged with its reason). precision ("fp16" | "fp32") and
    max_batch (largest profile batch) matter to TensorRT only; torch_autocast ("off" | "fp16" | "bf16") to
    the torch back end only. When TensorRT fails under 'auto' (GPU out
    of memory, build error), a warning says why and ONNX Runtime runs instead.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got '{precision}'")
    chosen, device, reason = choose_backend(backend, device, *machine_capabilities())
    if backend == "auto":
        LOGGER.info("backend auto -> %s on %s (%s)", chosen, device, reason)
    from novel_pose_ros.runtime.weights import ensure_onnx, load_network, resolve_checkpoint

    checkpoint = resolve_checkpoint(config_name, checkpoint)
    net, weights_id = load_network(config_name, checkpoint, seed)
    if chosen == "torch":
        from novel_pose_ros.runtime.torch_backend import TorchBackend

        return TorchBackend(net, weights_id, device, torch_autocast)
    return sidecar_backend(ensure_onnx(net, weights_id, onnx_cache), backend, chosen, device, precision,
                           max_batch, engine_cache)


def sidecar_backend(sidecar: Path, requested: str, chosen: str, device: str, precision: str = "fp16",
                    max_batch: int = 32, engine_cache: str | Path | None = None) -> InferenceBackend:
    """The `chosen` (choose_backend) ONNX-based back end for the graphs of an export sidecar (PicoPose or
    Co-op). Under `requested` 'auto', a failing TensorRT falls back to ONNX Runtime (CUDA provider when
    listed) and a failing CUDA provider to the CPU, each with a warning that says why."""
    from novel_pose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend

    if chosen == "tensorrt":
        from novel_pose_ros.runtime.tensorrt_backend import TensorRTBackend

        try:
            return TensorRTBackend(sidecar, precision, max_batch, engine_cache)
        except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is one
            if requested != "auto":
                raise
            _, _, providers = machine_capabilities()
            device = "cuda" if "CUDAExecutionProvider" in providers else "cpu"
            LOGGER.warning("TensorRT failed (%s): falling back to ONNX Runtime on %s", exc, device)
    if device == "cuda" and requested == "auto":
        try:
            return OnnxRuntimeBackend(sidecar, device)
        except RuntimeError as exc:  # the CUDA provider is listed but its libraries did not load
            LOGGER.warning("ONNX Runtime could not run on the GPU (%s): falling back to the CPU", exc)
            device = "cpu"
    return OnnxRuntimeBackend(sidecar, device)

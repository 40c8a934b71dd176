"""ONNX Runtime back end: the exported graphs on the CPU (CUDA provider when asked and present).

On the GPU this needs onnxruntime-gpu (`make venv-gpu`), whose CUDA provider loads the CUDA and cuDNN
libraries of the nvidia-* wheels that the CUDA torch brings. When those do not load, ONNX Runtime
quietly runs on the CPU instead; we check the providers each session really got and say so.
"""
from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path

import numpy as np

from novel_pose_ros.networks.picopose.export import load_sidecar

LOGGER = logging.getLogger(__name__)


class OnnxRuntimeBackend:
    """Sessions for the graphs listed in an export sidecar (PicoPose or Co-op; checked against their sha256)."""

    name = "onnxruntime"
    precision = "fp32"

    def __init__(self, sidecar_path: str | Path, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort

        sidecar_path = Path(sidecar_path)
        sidecar = load_sidecar(sidecar_path, network=None)
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeError("onnxruntime backend: device 'cuda' requested but this onnxruntime has no CUDA "
                                   "provider (the CPU package is installed: `make venv-gpu` installs onnxruntime-gpu)")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            _preload_cuda_libraries(ort)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        # Spinning threads burn the cores the renderer and PnP need between graph runs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.device = device
        self.weights_id = str(sidecar.get("weights_sha256"))
        self.config_name = sidecar["config"]
        self._sessions = {}
        self.input_names = {}
        for graph, info in sidecar["graphs"].items():
            session = ort.InferenceSession(str(sidecar_path.parent / info["file"]), options, providers=providers)
            if session.get_providers()[0] != providers[0]:
                raise RuntimeError(f"onnxruntime backend: graph {graph} got providers {session.get_providers()} instead of "
                                   f"{providers[0]} (its CUDA or cuDNN libraries did not load: see ONNX Runtime's "
                                   "warning above; the CUDA torch of `make venv-gpu` brings them)")
            self._sessions[graph] = session
            self.input_names[graph] = tuple(i["name"] for i in info["inputs"])
        LOGGER.info("onnxruntime: %s (%s), providers %s", sidecar_path.name, self.config_name, providers)

    def run(self, graph: str, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        feed = {n: np.ascontiguousarray(inputs[n], dtype=np.float32) for n in self.input_names[graph]}
        return tuple(self._sessions[graph].run(None, feed))


def _preload_cuda_libraries(ort) -> None:
    """Load the CUDA/cuDNN libraries of the nvidia-* wheels before the CUDA provider needs them: importing
    the CUDA torch loads them, and `onnxruntime.preload_dlls` (ONNX Runtime ≥ 1.21) finds any it left."""
    importlib.import_module("torch")  # importing the CUDA torch loads the CUDA libraries it was built with
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except (OSError, RuntimeError) as exc:  # the session check after it names what is missing
            LOGGER.warning("onnxruntime.preload_dlls failed: %s", exc)

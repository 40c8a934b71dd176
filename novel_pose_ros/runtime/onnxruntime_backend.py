"""ONNX Runtime back end: the exported graphs on the CPU (CUDA provider when asked and present)."""
from __future__ import annotations

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
                raise RuntimeError("onnxruntime backend: device 'cuda' requested but this onnxruntime has no CUDA provider")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
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
            self._sessions[graph] = ort.InferenceSession(str(sidecar_path.parent / info["file"]), options, providers=providers)
            self.input_names[graph] = tuple(i["name"] for i in info["inputs"])
        LOGGER.info("onnxruntime: %s (%s), providers %s", sidecar_path.name, self.config_name, providers)

    def run(self, graph: str, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        feed = {n: np.ascontiguousarray(inputs[n], dtype=np.float32) for n in self.input_names[graph]}
        return tuple(self._sessions[graph].run(None, feed))

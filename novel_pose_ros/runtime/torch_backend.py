"""PyTorch back end: the reference, running the same graph modules that are exported to ONNX.

`autocast` ("off" | "fp16" | "bf16") runs the graphs under torch.autocast on their device: the GPU speed-up
of mixed precision without TensorRT (the measurable GPU path on machines without TensorRT). Outputs are
returned as float32 either way.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from novel_pose_ros.networks.picopose.export import graph_modules, io_spec
from novel_pose_ros.networks.picopose.picopose_net import PicoPoseNet

AUTOCAST_DTYPES = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchBackend:
    """Runs the graphs eagerly on `device` ("cpu" or "cuda"), in float32 or under autocast."""

    name = "torch"

    def __init__(self, net: PicoPoseNet, weights_id: str, device: str = "cpu", autocast: str = "off") -> None:
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("torch backend: device 'cuda' requested but no CUDA device is available")
        if autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"torch autocast must be one of {tuple(AUTOCAST_DTYPES)}, got '{autocast}'")
        self.device = device
        self.weights_id = weights_id
        self.autocast = autocast
        self.precision = "fp32" if autocast == "off" else f"autocast-{autocast}"
        self.net = net.to(device).eval()
        self._graphs = graph_modules(self.net)
        spec = io_spec(self.net)
        self.input_names = {g: tuple(i["name"] for i in spec[g]["inputs"]) for g in self._graphs}

    def _precision_context(self):
        dtype = AUTOCAST_DTYPES[self.autocast]
        return contextlib.nullcontext() if dtype is None else torch.autocast(self.device, dtype=dtype)

    def run(self, graph: str, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n], dtype=np.float32)).to(self.device) for n in self.input_names[graph]]
        with torch.inference_mode(), self._precision_context():
            outputs = self._graphs[graph](*args)
        return tuple(o.float().cpu().numpy() for o in outputs)

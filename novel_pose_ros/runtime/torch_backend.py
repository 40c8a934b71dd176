"""PyTorch back end: the reference, running the same graph modules that are exported to ONNX."""
from __future__ import annotations

import numpy as np
import torch

from novel_pose_ros.networks.picopose.export import graph_modules, io_spec
from novel_pose_ros.networks.picopose.picopose_net import PicoPoseNet


class TorchBackend:
    """Runs the graphs eagerly on `device` ("cpu" or "cuda")."""

    name = "torch"
    precision = "fp32"

    def __init__(self, net: PicoPoseNet, weights_id: str, device: str = "cpu") -> None:
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("torch backend: device 'cuda' requested but no CUDA device is available")
        self.device = device
        self.weights_id = weights_id
        self.net = net.to(device).eval()
        self._graphs = graph_modules(self.net)
        spec = io_spec(self.net)
        self.input_names = {g: tuple(i["name"] for i in spec[g]["inputs"]) for g in self._graphs}

    def run(self, graph: str, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n], dtype=np.float32)).to(self.device) for n in self.input_names[graph]]
        with torch.inference_mode():
            outputs = self._graphs[graph](*args)
        return tuple(o.float().cpu().numpy() for o in outputs)

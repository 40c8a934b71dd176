"""ONNX export of the Co-op refiner as one graph "refiner", with the shared sidecar format.

    <config>_refiner.onnx        query [B,3,256,256], render [B,3,256,256], render_mask16 [B,16,16]
                                 → flow [B,2,64,64], log_b [B,1,64,64], certainty [B,1,64,64],
                                   sensitivity [B,1,64,64] (refiner_net.py for the conventions)

Rendering, the window and the LM-PnP stay outside the graph (estimation/refiner_stage.py).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from novel_pose_ros.networks.coop.refiner_net import OUTPUTS, REFINER_CROP, CoopRefinerNet
from novel_pose_ros.networks.picopose.export import DEFAULT_OPSET, sidecar_header, tensor_spec, write_onnx_graphs

GRAPH = "refiner"
OUTPUT_DESCRIPTIONS = {
    "flow": "target cell of render cell (h, w) = (w, h) + flow; crop pixel x <-> cell (x + 0.5) / 4",
    "log_b": "log of the Laplace scale b (cells)",
    "certainty": "logits: render point visible in the query",
    "sensitivity": "logits: weight learned through the pose loss",
}


class RefinerGraph(nn.Module):
    def __init__(self, net: CoopRefinerNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, query: torch.Tensor, render: torch.Tensor, render_mask16: torch.Tensor):
        out = self.net(query, render, render_mask16)
        return tuple(out[name] for name in OUTPUTS)



def refiner_io_spec() -> dict:
    crop = ["B", 3, REFINER_CROP, REFINER_CROP]
    return {GRAPH: {
        "inputs": [tensor_spec("query", crop, "query crop, BGR CLIP-normalised"),
                   tensor_spec("render", crop, "render at the current pose, same window, same normalisation"),
                   tensor_spec("render_mask16", ["B", 16, 16], "render mask on the 16x16 grid (patch_grid_mask)")],
        "outputs": [tensor_spec(name, ["B", 2 if name == "flow" else 1, 64, 64], OUTPUT_DESCRIPTIONS[name])
                    for name in OUTPUTS]}}


def refiner_example_inputs(batch: int, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    crop = (batch, 3, REFINER_CROP, REFINER_CROP)
    return {GRAPH: {"query": torch.randn(crop, generator=gen), "render": torch.randn(crop, generator=gen),
                    "render_mask16": (torch.rand(batch, 16, 16, generator=gen) > 0.4).float()}}


def export_refiner_onnx(net: CoopRefinerNet, out_dir: str | Path, weights_sha256: str | None,
                        opset: int = DEFAULT_OPSET) -> Path:
    """Write `<config>_refiner.onnx` and `<config>.json` into out_dir; return the sidecar path."""
    name = net.config.name
    sidecar = sidecar_header("coop_refiner", net.config, weights_sha256, opset, "detections")
    return write_onnx_graphs(net, {GRAPH: RefinerGraph(net).eval()}, refiner_io_spec(), refiner_example_inputs(2),
                             Path(out_dir), name, sidecar, opset)

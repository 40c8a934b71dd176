"""ONNX export of the Co-op selector as one graph "selector", with the shared sidecar format.

    <config>_selector.onnx       query [B,3,256,256], render [B,3,256,256], render_mask16 [B,16,16]
                                 → score [B] (logit; sigmoid = probability that the pose is good)

B is hypotheses × detections: the query crop of each hypothesis is taken through that hypothesis'
own refiner window, as its render. Rendering and the window stay outside the graph.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from novel_pose_ros.networks.coop.selector_net import SELECTOR_CROP, SELECTOR_GRID, CoopSelectorNet
from novel_pose_ros.networks.picopose.export import DEFAULT_OPSET, sidecar_header, tensor_spec, write_onnx_graphs

GRAPH = "selector"
INPUTS = ("query", "render", "render_mask16")


class SelectorGraph(nn.Module):
    def __init__(self, net: CoopSelectorNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, query: torch.Tensor, render: torch.Tensor, render_mask16: torch.Tensor) -> torch.Tensor:
        return self.net(query, render, render_mask16)



def selector_io_spec() -> dict:
    crop = ["B", 3, SELECTOR_CROP, SELECTOR_CROP]
    return {GRAPH: {
        "inputs": [tensor_spec("query", crop, "query crop through the hypothesis' refiner window, BGR CLIP-normalised"),
                   tensor_spec("render", crop, "render at the hypothesis pose, same window, same normalisation"),
                   tensor_spec("render_mask16", ["B", SELECTOR_GRID, SELECTOR_GRID],
                         "render mask on the 16x16 grid (patch_grid_mask), 1 = object")],
        "outputs": [tensor_spec("score", ["B"], "logit: the hypothesis is within 5 deg and (0.01, 0.01, 0.05) m "
                                          "of the truth; keep the highest")]}}


def selector_example_inputs(batch: int, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Random inputs of the graph's shapes (export tracing, parity tests)."""
    gen = torch.Generator().manual_seed(seed)
    crop = (batch, 3, SELECTOR_CROP, SELECTOR_CROP)
    return {GRAPH: {"query": torch.randn(crop, generator=gen), "render": torch.randn(crop, generator=gen),
                    "render_mask16": (torch.rand(batch, SELECTOR_GRID, SELECTOR_GRID, generator=gen) > 0.4).float()}}


def export_selector_onnx(net: CoopSelectorNet, out_dir: str | Path, weights_sha256: str | None,
                         opset: int = DEFAULT_OPSET) -> Path:
    """Write `<config>_selector.onnx` and `<config>.json` into out_dir; return the sidecar path."""
    name = net.config.name
    sidecar = sidecar_header("coop_selector", net.config, weights_sha256, opset, "detections x hypotheses")
    return write_onnx_graphs(net, {GRAPH: SelectorGraph(net).eval()}, selector_io_spec(),
                             selector_example_inputs(2), Path(out_dir), name, sidecar, opset)

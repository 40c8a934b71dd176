"""ONNX export of the Co-op coarse network as two graphs, plus a JSON sidecar (style of picopose/export.py, written by its write_onnx_graphs).

Files written to OUT (D = config.dim, B = dynamic batch; float32):

  <config>_encoder.onnx   graph "encoder": image [B,3,224,224] → tokens [B,256,D]
      BGR, CLIP-normalised crop (picopose preprocessing.to_network_input). Run once per query crop;
      the templates' tokens are computed at onboarding and cached per template.
  <config>_match.onnx     graph "match": query_tokens [B,256,D], template_tokens [B,256,D]
      → logits [B,256,257] (last class = no match), offsets [B,256,2] (patch units, [−0.5, 0.5]).
      B = detections × templates scored (repeat the query tokens per template).
  <config>.json           sidecar: network "coop_coarse", config values, weights sha256, graphs (file,
      sha256, inputs, outputs), normalisation and pixel conventions.

Template scoring (coarse_net.template_scores), match gathering (coarse_net.matches) and PnP stay in Python.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from novel_pose_ros.networks.coop.coarse_config import NUM_CLASSES, NUM_PATCHES
from novel_pose_ros.networks.coop.coarse_net import CoopCoarseNet
from novel_pose_ros.networks.picopose.config import IMAGE_SIZE
from novel_pose_ros.networks.picopose.export import (
    DEFAULT_OPSET,
        load_sidecar,
    sidecar_header,
    tensor_spec,
    write_onnx_graphs,
)

NETWORK = "coop_coarse"
CONVENTIONS = {
    "pixels": "integer-centred crop pixels (pixel (x, y) covers [x - 1/2, x + 1/2)); crops of 224 px, M_crop_img "
              "from geometry/crop.py",
    "patches": "16x16 patches of 14 px, index i*16 + j (row i, col j), centre at crop pixel (14j + 6.5, 14i + 6.5)",
    "classes": "logits[..., k]: k < 256 = template patch k, k = 256 = no match",
    "offsets": "(U_x, U_y) in [-0.5, 0.5] patch units: template crop px = ((k % 16) + 0.5 + U_x) * 14 - 0.5, "
               "((k // 16) + 0.5 + U_y) * 14 - 0.5",
    "template_score": "sum over query patches with argmax != 256 of the max softmax probability",
}


class EncoderGraph(nn.Module):
    def __init__(self, net: CoopCoarseNet) -> None:
        super().__init__()
        self.net = net
        for name, value in net.feature_extractor.export_constants().items():
            self.register_buffer(name, value)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net.encode(image, **{name: buf for name, buf in self.named_buffers(recurse=False)})


class MatchGraph(nn.Module):
    def __init__(self, net: CoopCoarseNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, query_tokens: torch.Tensor, template_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.match(query_tokens, template_tokens)



def io_spec(net: CoopCoarseNet) -> dict[str, dict[str, list[dict]]]:
    """Inputs and outputs of each graph (names, symbolic shapes, dtypes, meaning)."""
    D, N = net.config.dim, NUM_PATCHES
    return {
        "encoder": {
            "inputs": [tensor_spec("image", ["B", 3, IMAGE_SIZE, IMAGE_SIZE], "BGR CLIP-normalised crop (see normalisation)")],
            "outputs": [tensor_spec("tokens", ["B", N, D], "patch tokens, row-major; cache them per template")]},
        "match": {
            "inputs": [tensor_spec("query_tokens", ["B", N, D], "encoder tokens of the query crop"),
                       tensor_spec("template_tokens", ["B", N, D], "encoder tokens of the template crop")],
            "outputs": [tensor_spec("logits", ["B", N, NUM_CLASSES], "per query patch: 256 template patches + no match"),
                        tensor_spec("offsets", ["B", N, 2], "(U_x, U_y) inside the matched template patch")]},
    }


def example_inputs(net: CoopCoarseNet, batch: int, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Random inputs of the right shapes for both graphs (export tracing and parity tests)."""
    gen = torch.Generator().manual_seed(seed)
    return {graph: {item["name"]: torch.randn([batch if s == "B" else s for s in item["shape"]], generator=gen)
                    for item in spec["inputs"]}
            for graph, spec in io_spec(net).items()}


def graph_modules(net: CoopCoarseNet) -> dict[str, nn.Module]:
    """The two graph wrappers, in eval mode."""
    return {"encoder": EncoderGraph(net).eval(), "match": MatchGraph(net).eval()}


def export_coarse_onnx(net: CoopCoarseNet, out_dir: str | Path, weights_sha256: str | None,
                       opset: int = DEFAULT_OPSET) -> Path:
    """Write both graphs and `<config>.json` into out_dir; return the sidecar path."""
    name = net.config.name
    sidecar = sidecar_header(NETWORK, net.config, weights_sha256, opset,
                             "encoder: crops; match: detections x templates", conventions=CONVENTIONS)
    return write_onnx_graphs(net, graph_modules(net), io_spec(net), example_inputs(net, batch=2), Path(out_dir),
                             name, sidecar, opset)


def verify(net: CoopCoarseNet, sidecar_path: str | Path, batch: int = 2, seed: int = 1) -> dict[str, float]:
    """Max |ONNX Runtime − PyTorch| per graph on random inputs of batch `batch` (CPU)."""
    import onnxruntime as ort

    sidecar = load_sidecar(sidecar_path, NETWORK)
    inputs = example_inputs(net, batch, seed)
    was_training = net.training
    net.eval()
    result = {}
    try:
        for graph, module in graph_modules(net).items():
            names = [i["name"] for i in sidecar["graphs"][graph]["inputs"]]
            with torch.no_grad():
                expected = module(*(inputs[graph][n] for n in names))
            expected = expected if isinstance(expected, tuple) else (expected,)
            session = ort.InferenceSession(str(Path(sidecar_path).parent / sidecar["graphs"][graph]["file"]),
                                           providers=["CPUExecutionProvider"])
            got = session.run(None, {n: inputs[graph][n].numpy() for n in names})
            result[graph] = max(float((torch.from_numpy(g) - e).abs().max()) for g, e in zip(got, expected))
    finally:
        net.train(was_training)
    return result

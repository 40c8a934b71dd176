"""ONNX export of PicoPose as four graphs, plus a JSON sidecar describing them.

Files written to OUT (C = backbone width, F = DPT width, B = dynamic batch; all float32):

  picopose_<config>_backbone.onnx   image [B,3,224,224] → map0..map3 [B,C,16,16]
      BGR, CLIP-normalised input (preprocessing.to_network_input). map3 (the last
      layer) drives stages 1 and 2; all 4 feed the DPT head. Positional embedding baked
      for 224 input. Run once per query crop; once per template when building the cache.
  picopose_<config>_affine.onnx     (stage 2)
      query_map [B,C,16,16], template_map [B,C,16,16] (the map3 outputs),
      template_patch_mask [B,16,16] (1 = object; affine_regressor.template_patch_mask)
      → translation [B,2] (14-px patch units), scale [B,1] (ratio), cos_sin [B,2] (unit).
      The cosine-similarity volume is built inside the graph.
  picopose_<config>_dpt.onnx        (stage 3, features)
      map1..map3 [B,C,16,16] → feat16 [B,F,16,16], feat32 [B,F,32,32], feat64 [B,F,64,64]
      (map0 is unused by the official DPT forward, so it is no input; a template cache
      needs maps 1..3 only, or the dpt outputs.)
      Query: once per detection. Templates: cacheable per template (or run on the top-k).
  picopose_<config>_flow.onnx       (stage 3, decoder)
      template_feat16/32/64, query_feat16/32/64 (dpt outputs), init_flow [B,2,16,16],
      init_certainty [B,1,16,16] (flow_decoder.initial_flow from the stage-2 affine)
      → flow [B,2,64,64], certainty [B,1,64,64] (logits; > 0 ⇔ sigmoid > 0.5).
      Flow convention: flow_decoder module docstring (target cell = floor(grid + flow)).

Why stage 3 is two graphs: the DPT head sees template and query separately, so a frame
runs it once per query and reuses cached template outputs; only the decoder runs per
hypothesis. B in the affine and flow graphs is detections × hypotheses of a frame (repeat
the query tensors per hypothesis). Template scoring, correspondence gathering (nonzero,
gather) and PnP stay in Python.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from novel_pose_ros.hashing import file_sha256
from novel_pose_ros.networks.picopose.config import FLOW_SIZES, IMAGE_SIZE, PATCH_GRID
from novel_pose_ros.networks.picopose.picopose_net import PicoPoseNet
from novel_pose_ros.networks.picopose.preprocessing import NORMALISATION

DEFAULT_OPSET = 17
SIDECAR_FORMAT = 1
GRAPHS = ("backbone", "affine", "dpt", "flow")
# networks whose exports share this sidecar format (and so every runtime back end)
SIDECAR_NETWORKS = ("picopose", "coop_coarse", "coop_refiner", "coop_selector")
# Geometry shared by the graphs' users (pixel coordinates of the 224 crops, the official conventions).
CONVENTIONS = {
    "pixels": "crop pixels as the official code (trained that way): x_crop = s (x_img - x1) with M_crop = "
              "diag(s) [[1, 0, -x1], [0, 1, -y1]]; geometry/crop.py's M adds half-pixel terms (< 0.5 px apart)",
    "patch_grid": "16x16 cells of 14 px; cell (row i, col j) has its centre at crop pixel (14j + 7, 14i + 7)",
    "template_patch_mask": "mask[14i, 14j] of the 224x224 template mask (PyTorch nearest resize)",
    "affine": "M (2x3, template crop px -> query crop px) = [s R(theta) | c_q - s R(theta) c_t], "
              "c_q = c_t + 14 translation, c_t = the template's projected object centre in its crop",
    "init_flow": "16x16: flow = (M [14j + 7, 14i + 7, 1]) / 14 * mask - (j, i); init_certainty = template_patch_mask",
    "flow": "64x64: target cell = floor((j, i) + flow); query crop px of a correspondence = 3.5 * target + 1.75; "
            "keep cells with certainty > 0 (sigmoid > 0.5) and 0 < target < 63 on both axes",
}


class BackboneGraph(nn.Module):
    def __init__(self, net: PicoPoseNet) -> None:
        super().__init__()
        self.extractor = net.feature_extractor
        for name, value in self.extractor.export_constants().items():
            self.register_buffer(name, value)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        constants = {name: buf for name, buf in self.named_buffers(recurse=False)}
        return tuple(self.extractor(image, **constants))


class AffineGraph(nn.Module):
    def __init__(self, net: PicoPoseNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, query_map: torch.Tensor, template_map: torch.Tensor, template_patch_mask: torch.Tensor):
        return tuple(self.net.regress_affine(query_map, template_map, template_patch_mask))


class DPTGraph(nn.Module):
    def __init__(self, net: PicoPoseNet) -> None:
        super().__init__()
        self.dpt = net.offset_regressor.dpt_head

    def forward(self, map1, map2, map3):
        return tuple(self.dpt.fuse(map1, map2, map3))


class FlowGraph(nn.Module):
    def __init__(self, net: PicoPoseNet) -> None:
        super().__init__()
        self.decoder = net.offset_regressor.flow_decoder

    def forward(self, t16, t32, t64, q16, q32, q64, init_flow, init_certainty):
        flows, certainties = self.decoder([t16, t32, t64], [q16, q32, q64], init_flow, init_certainty)
        return flows[-1], certainties[-1]


def tensor_spec(name: str, shape: list, description: str) -> dict:
    """One float32 input or output of an exported graph, as the sidecars list them ("B" = dynamic batch)."""
    return {"name": name, "shape": shape, "dtype": "float32", "description": description}


def io_spec(net: PicoPoseNet) -> dict[str, dict[str, list[dict]]]:
    """Inputs and outputs of each graph (names, symbolic shapes, dtypes, meaning)."""
    C, F, g = net.config.backbone.out_dim, net.config.dpt.features, PATCH_GRID
    maps = [tensor_spec(f"map{i}", ["B", C, g, g], f"backbone map {i} (map3 = last layer)") for i in range(4)]
    feats = {n: ["B", F, n, n] for n in FLOW_SIZES}
    return {
        "backbone": {"inputs": [tensor_spec("image", ["B", 3, IMAGE_SIZE, IMAGE_SIZE],
                                      "BGR CLIP-normalised crop (see normalisation)")],
                     "outputs": maps},
        "affine": {"inputs": [tensor_spec("query_map", ["B", C, g, g], "query map3"),
                              tensor_spec("template_map", ["B", C, g, g], "template map3"),
                              tensor_spec("template_patch_mask", ["B", g, g],
                                    "template mask at patch (14i, 14j) pixels, 1 = object")],
                   "outputs": [tensor_spec("translation", ["B", 2], "query centre - template centre in 14-px units (x, y)"),
                               tensor_spec("scale", ["B", 1], "query / template size ratio"),
                               tensor_spec("cos_sin", ["B", 2], "in-plane rotation (cos, sin), unit norm")]},
        "dpt": {"inputs": maps[1:],
                "outputs": [tensor_spec(f"feat{n}", shape, f"DPT features at {n}x{n}") for n, shape in feats.items()]},
        "flow": {"inputs": [tensor_spec(f"template_feat{n}", s, "template dpt output") for n, s in feats.items()]
                 + [tensor_spec(f"query_feat{n}", s, "query dpt output") for n, s in feats.items()]
                 + [tensor_spec("init_flow", ["B", 2, 16, 16], "flow_decoder.initial_flow from the stage-2 affine"),
                    tensor_spec("init_certainty", ["B", 1, 16, 16], "template patch mask as logits")],
                 "outputs": [tensor_spec("flow", ["B", 2, 64, 64], "target cell = floor(grid + flow), cells of 3.5 px"),
                             tensor_spec("certainty", ["B", 1, 64, 64], "logits; keep cells with sigmoid > 0.5")]},
    }


def example_inputs(net: PicoPoseNet, batch: int, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Random inputs of the right shapes for every graph (export tracing and parity tests)."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for graph, spec in io_spec(net).items():
        tensors = {}
        for item in spec["inputs"]:
            shape = [batch if s == "B" else s for s in item["shape"]]
            if item["name"] in ("template_patch_mask", "init_certainty"):
                tensors[item["name"]] = (torch.rand(shape, generator=gen) > 0.3).float()
            elif item["name"] == "init_flow":
                tensors[item["name"]] = torch.randn(shape, generator=gen) * 2.0
            else:
                tensors[item["name"]] = torch.randn(shape, generator=gen)
        out[graph] = tensors
    return out


def graph_modules(net: PicoPoseNet) -> dict[str, nn.Module]:
    """The four graph wrappers, in eval mode (the exporter restores a wrapper's mode, and with it the net's)."""
    graphs = {"backbone": BackboneGraph(net), "affine": AffineGraph(net), "dpt": DPTGraph(net), "flow": FlowGraph(net)}
    return {name: module.eval() for name, module in graphs.items()}


def export_onnx(net: PicoPoseNet, out_dir: str | Path, weights_sha256: str | None, opset: int = DEFAULT_OPSET) -> Path:
    """Write the four graphs and `picopose_<config>.json` into out_dir; return the sidecar path."""
    name = net.config.name
    sidecar = sidecar_header("picopose", net.config, weights_sha256, opset, "detections x hypotheses",
                             conventions=CONVENTIONS)
    return write_onnx_graphs(net, graph_modules(net), io_spec(net), example_inputs(net, batch=2), Path(out_dir),
                             f"picopose_{name}", sidecar, opset)


def sidecar_header(network: str, config, weights_sha256: str | None, opset: int, batch: str, **extra) -> dict:
    """The sidecar fields every export shares (network in SIDECAR_NETWORKS, its config and values, the
    weights, opset, torch version, input normalisation, what the dynamic batch B counts) + `extra`."""
    return {"format": SIDECAR_FORMAT, "network": network, "config": config.name, "config_values": config.to_dict(),
            "weights_sha256": weights_sha256, "opset": opset, "torch": torch.__version__,
            "normalisation": NORMALISATION, "dynamic_axes": {"B": f"batch ({batch})"}, **extra}


def write_onnx_graphs(net: nn.Module, graphs: dict[str, nn.Module], spec: dict, inputs: dict[str, dict[str, torch.Tensor]],
                      out_dir: Path, prefix: str, sidecar: dict, opset: int = DEFAULT_OPSET) -> Path:
    """Export each graph (batch axis 0 dynamic) to `<prefix>_<graph>.onnx` and write `<prefix>.json`: `sidecar`
    plus, per graph, its file, sha256 and io spec. Every exporter of ours (PicoPose, Co-op) goes through here."""
    if opset < 17:
        raise ValueError(f"opset must be ≥ 17 (GridSample, LayerNormalization), got {opset}")
    out_dir.mkdir(parents=True, exist_ok=True)
    was_training = net.training
    net.eval()
    sidecar = {**sidecar, "graphs": {}}
    for graph, module in graphs.items():
        path = out_dir / f"{prefix}_{graph}.onnx"
        in_names = [i["name"] for i in spec[graph]["inputs"]]
        out_names = [o["name"] for o in spec[graph]["outputs"]]
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript-based exporter is the one that needs no extra package (onnxscript).
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*",
                                    category=DeprecationWarning)
            warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
            torch.onnx.export(module, tuple(inputs[graph][n] for n in in_names), str(path), dynamo=False,
                              opset_version=opset, input_names=in_names, output_names=out_names,
                              dynamic_axes={n: {0: "B"} for n in in_names + out_names}, do_constant_folding=True)
        sidecar["graphs"][graph] = {"file": path.name, "sha256": file_sha256(path), **spec[graph]}
    net.train(was_training)
    sidecar_path = out_dir / f"{prefix}.json"
    sidecar_path.write_text(json.dumps(sidecar, indent=1))
    return sidecar_path


def verify_onnx(net: PicoPoseNet, sidecar_path: str | Path, batch: int = 2, seed: int = 1) -> dict[str, float]:
    """Max |ONNX Runtime − PyTorch| per graph on random inputs of batch `batch` (CPU)."""
    import onnxruntime as ort

    sidecar = load_sidecar(sidecar_path)
    inputs = example_inputs(net, batch, seed)
    result = {}
    for graph, module in graph_modules(net).items():
        names = [i["name"] for i in sidecar["graphs"][graph]["inputs"]]
        with torch.no_grad():
            expected = module(*(inputs[graph][n] for n in names))
        session = ort.InferenceSession(str(Path(sidecar_path).parent / sidecar["graphs"][graph]["file"]),
                                       providers=["CPUExecutionProvider"])
        got = session.run(None, {n: inputs[graph][n].numpy() for n in names})
        result[graph] = max(float((torch.from_numpy(g) - e).abs().max()) for g, e in zip(got, expected))
    return result


def load_sidecar(path: str | Path, network: str | None = "picopose") -> dict:
    """Read a sidecar of `network` (None: any of SIDECAR_NETWORKS) and check that each graph file exists
    and matches its recorded sha256."""
    path = Path(path)
    sidecar = json.loads(path.read_text())
    wanted = SIDECAR_NETWORKS if network is None else (network,)
    if sidecar.get("format") != SIDECAR_FORMAT or sidecar.get("network") not in wanted:
        raise ValueError(f"{path}: not an ONNX sidecar of format {SIDECAR_FORMAT} for {' or '.join(wanted)} "
                         f"(network: {sidecar.get('network')!r})")
    for graph, info in sidecar["graphs"].items():
        onnx_path = path.parent / info["file"]
        if not onnx_path.is_file():
            raise FileNotFoundError(f"{path}: graph {graph!r} file {onnx_path} is missing")
        if file_sha256(onnx_path) != info["sha256"]:
            raise ValueError(f"{path}: {onnx_path.name} does not match its recorded sha256 (re-export)")
    return sidecar

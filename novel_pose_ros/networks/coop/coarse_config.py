"""Co-op coarse-network configurations: a frozen, validated dataclass and named instances.

Fixed by our adaptation (not configurable): 224×224 crops, a 16×16 grid of 14-px patches
(the PicoPose backbone's maps), hence K = 16·16 + 1 = 257 classes per query patch, the last
one being "no match". The paper's ViT-L/16 encoder (197 classes) is replaced by a PicoPose
backbone (`backbone` names a networks/picopose/config.py configuration) so that CPU inference
stays cheap; the decoder is a small CroCo-style transformer run on both token sets.

Token maps: the backbone gives 4 maps [B, C, 16, 16]; the tokens are the concatenation of the
maps listed in `token_maps` (channels), linearly projected to `dim`. Default (2, 3): for
small_cnn, map2 is the native stride-16 EfficientNet map (the grid's own resolution, so the
sharpest per-patch localisation, no average-pooling blur as in maps 0 and 1) and map3 adds the
stride-32 head features (large receptive field, the context needed to tell apart similar
parts seen from another viewpoint). Maps 0/1 are stride 4/8 features average-pooled to 16², mostly
texture, and cost 2×C input channels more for little matching signal.
"""
from __future__ import annotations

from dataclasses import dataclass

from novel_pose_ros.networks.coop.config_dict import DictConfig
from novel_pose_ros.networks.picopose.config import CONFIGS as PICOPOSE_CONFIGS
from novel_pose_ros.networks.picopose.config import PATCH_GRID

NUM_PATCHES = PATCH_GRID * PATCH_GRID  # 256 query tokens, 256 template tokens
NO_MATCH = NUM_PATCHES  # index of the "no match" class
NUM_CLASSES = NUM_PATCHES + 1  # 257


@dataclass(frozen=True)
class CoopCoarseConfig(DictConfig):
    """One coarse network.

    name: identifier (file names of exports); backbone: a PicoPose config name whose feature
    extractor is the encoder ("small_cnn": EfficientNet-Lite0, ImageNet weights available);
    token_maps: increasing backbone map indices (0..3) concatenated into the tokens;
    dim: token width of the decoder; depth: decoder blocks (each shared by both directions);
    heads: attention heads; mlp_ratio: MLP hidden width / dim.
    """

    name: str
    backbone: str = "small_cnn"
    token_maps: tuple[int, ...] = (2, 3)
    dim: int = 128
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"CoopCoarseConfig.name must be a non-empty identifier, got {self.name!r}")
        if self.backbone not in PICOPOSE_CONFIGS:
            raise ValueError(f"CoopCoarseConfig.backbone must be a PicoPose config name "
                             f"({', '.join(PICOPOSE_CONFIGS)}), got {self.backbone!r}")
        maps = tuple(int(m) for m in self.token_maps)
        object.__setattr__(self, "token_maps", maps)
        if not maps or list(maps) != sorted(set(maps)) or maps[0] < 0 or maps[-1] > 3:
            raise ValueError(f"CoopCoarseConfig.token_maps must be increasing indices in [0, 3], got {maps}")
        for key in ("dim", "depth", "heads", "mlp_ratio"):
            if not getattr(self, key) > 0:
                raise ValueError(f"CoopCoarseConfig.{key} must be positive, got {getattr(self, key)}")
        if self.dim % self.heads:
            raise ValueError(f"CoopCoarseConfig: dim {self.dim} is not divisible by heads {self.heads}")

    @property
    def backbone_dim(self) -> int:
        """Channels of one backbone map."""
        return PICOPOSE_CONFIGS[self.backbone].backbone.out_dim

    @property
    def token_in_dim(self) -> int:
        return self.backbone_dim * len(self.token_maps)

    @property
    def mlp_hidden(self) -> int:
        return int(round(self.dim * self.mlp_ratio))


# Sized for CPUs: every query is matched against all 42 templates, so the decoder runs 42 times per
# detection (~0.8 GFLOP per pair at dim 128, depth 2; dim 256, depth 4 would be ~4 GFLOP).
COOP_COARSE_SMALL = CoopCoarseConfig(name="coop_coarse_small")
# For tests only: the same encoder (its weights may stay random), a 2-block decoder of width 32.
COOP_COARSE_TINY = CoopCoarseConfig(name="coop_coarse_tiny", dim=32, depth=2, heads=2, mlp_ratio=2.0)

COARSE_CONFIGS: dict[str, CoopCoarseConfig] = {c.name: c for c in (COOP_COARSE_SMALL, COOP_COARSE_TINY)}


def get_coarse_config(name: str) -> CoopCoarseConfig:
    """Named configuration; ValueError listing the known names otherwise."""
    try:
        return COARSE_CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown Co-op coarse config {name!r}; known: {', '.join(COARSE_CONFIGS)}") from None

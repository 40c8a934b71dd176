"""PicoPose stage 3, part 1: the DPT head that turns 4 backbone maps into 3 feature maps.

Shared by template and query. Names follow the official `DPTHead` (projects,
resize_layers, scratch.layer{1..4}_rn, scratch.refinenet{1..4}, scratch.output_conv1/2).

The official forward returns [path_4, path_3, path_2] at 16², 32², 64² and never uses
refinenet1 or output_conv1/2 (built only when `with_unused`), nor the 64² branch
(projects[0], resize_layers[0], scratch.layer1_rn) except for its *shape*: we skip that
computation, which changes no output.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from novel_pose_ros.networks.picopose.config import FLOW_SIZES, PATCH_GRID, DPTConfig
from novel_pose_ros.networks.picopose.shapes import check_tensor


class ResidualConvUnit(nn.Module):
    """x + bn2(conv2(relu(bn1(conv1(relu(x)))))) on [B, F, H, W]."""

    def __init__(self, features: int, use_bn: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(features) if use_bn else nn.Identity()
        self.bn2 = nn.BatchNorm2d(features) if use_bn else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.conv1(torch.relu(x)))
        out = self.bn2(self.conv2(torch.relu(out)))
        return out + x


class FeatureFusionBlock(nn.Module):
    """(coarser path [+ residual-refined skip]) → residual unit → bilinear resize → 1×1 conv."""

    def __init__(self, features: int, use_bn: bool) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        self.resConfUnit1 = ResidualConvUnit(features, use_bn)
        self.resConfUnit2 = ResidualConvUnit(features, use_bn)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size: int) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    """4 maps [B, in_dim, 16, 16] → [B, F, 16, 16], [B, F, 32, 32], [B, F, 64, 64]."""

    def __init__(self, in_dim: int, config: DPTConfig) -> None:
        super().__init__()
        c = config.out_channels
        f = config.features
        self.in_dim = in_dim
        self.projects = nn.ModuleList(nn.Conv2d(in_dim, ch, kernel_size=1) for ch in c)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(c[0], c[0], kernel_size=4, stride=4),  # 16² → 64²
            nn.ConvTranspose2d(c[1], c[1], kernel_size=2, stride=2),  # 16² → 32²
            nn.Identity(),  # 16²
            nn.Conv2d(c[3], c[3], kernel_size=3, stride=2, padding=1),  # 16² → 8²
        ])
        self.scratch = nn.Module()
        for i, ch in enumerate(c, start=1):
            self.scratch.add_module(f"layer{i}_rn", nn.Conv2d(ch, f, kernel_size=3, padding=1, bias=False))
        first = 1 if config.with_unused else 2
        for i in range(first, 5):
            self.scratch.add_module(f"refinenet{i}", FeatureFusionBlock(f, config.use_bn))
        if config.with_unused:  # the official depth head, never run by PicoPose
            self.scratch.output_conv1 = nn.Conv2d(f, f // 2, kernel_size=3, padding=1)
            self.scratch.output_conv2 = nn.Sequential(
                nn.Conv2d(f // 2, 32, kernel_size=3, padding=1), nn.ReLU(True),
                nn.Conv2d(32, 1, kernel_size=1), nn.ReLU(True), nn.Identity(),
            )

    def forward(self, maps: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        """4 backbone maps → [16², 32², 64²] features; the first map is not used (see module docstring)."""
        if len(maps) != 4:
            raise ValueError(f"DPTHead: expected 4 backbone maps, got {len(maps)}")
        return self.fuse(maps[1], maps[2], maps[3])

    def fuse(self, map1: torch.Tensor, map2: torch.Tensor, map3: torch.Tensor) -> list[torch.Tensor]:
        """Backbone maps 1..3 [B, in_dim, 16, 16] → [B, F, 16, 16], [B, F, 32, 32], [B, F, 64, 64]."""
        for i, m in enumerate((map1, map2, map3), start=1):
            check_tensor(f"backbone map {i}", m, (None, self.in_dim, PATCH_GRID, PATCH_GRID))
        s = self.scratch
        layer2 = s.layer2_rn(self.resize_layers[1](self.projects[1](map1)))  # 32²
        layer3 = s.layer3_rn(self.projects[2](map2))  # 16²
        layer4 = s.layer4_rn(self.resize_layers[3](self.projects[3](map3)))  # 8²
        path4 = s.refinenet4(layer4, None, FLOW_SIZES[0])
        path3 = s.refinenet3(path4, layer3, FLOW_SIZES[1])
        path2 = s.refinenet2(path3, layer2, FLOW_SIZES[2])
        return [path4, path3, path2]

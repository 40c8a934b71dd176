"""DINOv2-style Vision Transformer returning 4 intermediate token maps (PicoPose stage 1).

Module and parameter names follow DINOv2's `DinoVisionTransformer` (as instantiated by
the official PicoPose code: block_chunks=0, LayerScale, no register tokens), so the
official `feature_extractor.dinov2.*` weights load with strict=True. Unused in our
forward but present for that load: `mask_token` and the final `norm`.

Attention is written out (q·kᵀ, softmax, ·v): it exports to plain ONNX ops.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from novel_pose_ros.networks.picopose.config import IMAGE_SIZE, PATCH_GRID, ViTConfig
from novel_pose_ros.networks.picopose.shapes import check_tensor

LN_EPS = 1e-6
# DINOv2 interpolates the positional grid with scale (target + offset) / source (bicubic, no antialias).
POS_INTERPOLATE_OFFSET = 0.1


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: image [B, 3, H, W] → tokens [B, (H/p)(W/p), D]."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention on tokens [B, N, D] → [B, N, D]."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each [B, heads, N, D/heads]
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, D))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale: x + γ₁·attn(LN(x)), then x + γ₂·mlp(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, layerscale_init: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim, layerscale_init)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layerscale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoVisionTransformer(nn.Module):
    """ViT with a class token and a learned positional grid of `pos_grid`² patches.

    forward(image [B, 3, 224, 224]) → 4 maps [B, embed_dim, 16, 16]: the raw outputs of
    `out_blocks` (no final norm, class token dropped), tokens laid out row-major.
    """

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.patch_size = config.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.pos_grid**2 + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # DINOv2 masked pre-training only
        self.patch_embed = PatchEmbed(config.patch_size, dim)
        self.blocks = nn.ModuleList(
            Block(dim, config.num_heads, config.mlp_ratio, config.layerscale_init) for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)  # DINOv2's final norm; PicoPose uses raw block outputs
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.pos_embed.is_meta:
            return
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def interpolated_pos_embed(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Positional embedding [1, 1 + grid_h·grid_w, D] for a grid_h × grid_w patch grid.

        As DINOv2: identity when the grid matches (square); else the learned grid is
        resized bicubic (no antialias) with scale factor (target + 0.1) / source. For the
        fixed 224 input this is a constant: export bakes it (see `forward`'s pos_embed).
        """
        n_source = self.pos_embed.shape[1] - 1
        source = int(math.isqrt(n_source))
        if grid_h * grid_w == n_source and grid_h == grid_w:
            return self.pos_embed
        pos = self.pos_embed.float()
        patch_pos = pos[:, 1:].reshape(1, source, source, -1).permute(0, 3, 1, 2)
        scale = ((grid_h + POS_INTERPOLATE_OFFSET) / source, (grid_w + POS_INTERPOLATE_OFFSET) / source)
        patch_pos = F.interpolate(patch_pos, scale_factor=scale, mode="bicubic", antialias=False)
        if tuple(patch_pos.shape[-2:]) != (grid_h, grid_w):
            raise RuntimeError(f"positional grid resized to {tuple(patch_pos.shape[-2:])}, expected {(grid_h, grid_w)}")
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat([pos[:, :1], patch_pos], dim=1).to(self.pos_embed.dtype)

    def forward(self, image: torch.Tensor, pos_embed: torch.Tensor | None = None) -> list[torch.Tensor]:
        """image [B, 3, 224, 224] (BGR, CLIP-normalised) → 4 × [B, D, 16, 16].

        pos_embed: optional precomputed [1, 257, D] (export passes the baked constant).
        """
        check_tensor("image", image, (None, 3, IMAGE_SIZE, IMAGE_SIZE))
        B = image.shape[0]
        grid = IMAGE_SIZE // self.patch_size
        tokens = self.patch_embed(image)
        tokens = torch.cat([self.cls_token.expand(B, -1, -1), tokens], dim=1)
        tokens = tokens + (self.interpolated_pos_embed(grid, grid) if pos_embed is None else pos_embed)
        maps = []
        for index, block in enumerate(self.blocks):
            tokens = block(tokens)
            if index in self.config.out_blocks:
                maps.append(tokens[:, 1:].transpose(1, 2).reshape(B, -1, PATCH_GRID, PATCH_GRID))
        return maps


class ViTFeatureExtractor(nn.Module):
    """Holds the ViT under the official child name `dinov2`; forward as DinoVisionTransformer."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.dinov2 = DinoVisionTransformer(config)

    def forward(self, image: torch.Tensor, pos_embed: torch.Tensor | None = None) -> list[torch.Tensor]:
        return self.dinov2(image, pos_embed)

    def export_constants(self) -> dict[str, torch.Tensor]:
        """Tensors to bake into an exported graph: the 224-input positional embedding."""
        with torch.no_grad():
            return {"pos_embed": self.dinov2.interpolated_pos_embed(PATCH_GRID, PATCH_GRID).detach().clone()}

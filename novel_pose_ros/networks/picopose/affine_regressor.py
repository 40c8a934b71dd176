"""PicoPose stage 2: regress the 2D affine (translation, scale, in-plane rotation) template → query.

Input is the query×template patch similarity volume built by `similarity_volume`
(256 channels = template patches, on the 16×16 query grid). Module names and shapes
follow the official `AffineRegressor` (features.{0,1,3,4}, fc1, fc2, three heads).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from novel_pose_ros.networks.picopose.config import PATCH_GRID, PATCH_PX, AffineConfig
from novel_pose_ros.networks.picopose.shapes import check_same_batch, check_tensor

N_PATCHES = PATCH_GRID * PATCH_GRID


class AffinePrediction(NamedTuple):
    """Stage-2 outputs for a batch of B (query, template) pairs.

    translation: [B, 2] query centre − template centre, in 14-px patch units (x, y).
    scale: [B, 1] query size / template size (a plain ratio, trained with an L2 loss on its log).
    cos_sin: [B, 2] in-plane rotation (cos θ, sin θ), unit norm.
    """

    translation: torch.Tensor
    scale: torch.Tensor
    cos_sin: torch.Tensor


def template_patch_mask(mask: torch.Tensor) -> torch.Tensor:
    """Template mask [B, 224, 224] → [B, 16, 16] float, as the official nearest resize.

    PyTorch 'nearest' from 224 to 16 reads pixel (14·i, 14·j): the top-left pixel of each
    patch, not its centre. The same mask is the stage-3 initial certainty.
    """
    check_tensor("template mask", mask, (None, PATCH_GRID * PATCH_PX, PATCH_GRID * PATCH_PX))
    return mask[:, ::PATCH_PX, ::PATCH_PX].float()


def similarity_volume(query_map: torch.Tensor, template_map: torch.Tensor,
                      template_mask16: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every query patch with every template patch → [B, 256, 16, 16].

    query_map, template_map: [B, C, 16, 16] last backbone maps; template_mask16: [B, 16, 16].
    Channel s = template patch s (row-major); similarities are multiplied by the template
    mask and clamped at 0. The spatial layout is TRANSPOSED: out[b, s, i, j] is the query
    patch at row j, column i. The official code reshapes the flattened query index as
    (w h); we reproduce it because the trained weights depend on it.
    """
    check_same_batch(query_map=query_map, template_map=template_map, template_mask=template_mask16)
    check_tensor("query map", query_map, (None, None, PATCH_GRID, PATCH_GRID))
    check_tensor("template map", template_map, (None, query_map.shape[1], PATCH_GRID, PATCH_GRID))
    check_tensor("template patch mask", template_mask16, (None, PATCH_GRID, PATCH_GRID))
    query = F.normalize(query_map.flatten(2), dim=1)  # [B, C, T] query patches
    template = F.normalize(template_map.flatten(2), dim=1)  # [B, C, S] template patches
    sim = query.transpose(1, 2) @ template  # [B, T, S]
    sim = torch.relu(sim * template_mask16.flatten(1).unsqueeze(1))
    # T = row·16 + col → [B, S, row, col] → transpose → [B, S, col, row]
    return sim.transpose(1, 2).reshape(-1, N_PATCHES, PATCH_GRID, PATCH_GRID).transpose(2, 3)


def _mlp_head(width: int, out: int, tanh: bool = False) -> nn.Sequential:
    layers = [nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, width), nn.ReLU(inplace=True),
              nn.Linear(width, out)]
    return nn.Sequential(*layers, nn.Tanh()) if tanh else nn.Sequential(*layers)


class AffineRegressor(nn.Module):
    """similarity volume [B, 256, 16, 16] → AffinePrediction.

    conv1×1 256→h + GN + ReLU, conv3×3 s2 (no bias) + GN + ReLU → [B, h, 8, 8];
    fc h·64 → fc_dim, LeakyReLU(0.1), fc fc_dim → h, LeakyReLU(0.1); heads h→h→h→k.
    """

    def __init__(self, config: AffineConfig) -> None:
        super().__init__()
        h = config.hidden_dim
        self.features = nn.ModuleList([
            nn.Conv2d(N_PATCHES, h, kernel_size=1),
            nn.GroupNorm(config.gn_groups, h),
            nn.ReLU(inplace=True),
            nn.Conv2d(h, h, kernel_size=3, stride=2, padding=1, bias=False),
            nn.GroupNorm(config.gn_groups, h),
            nn.ReLU(inplace=True),
        ])
        self.fc1 = nn.Linear(h * (PATCH_GRID // 2) ** 2, config.fc_dim)
        self.fc2 = nn.Linear(config.fc_dim, h)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        self.translation_predictor = _mlp_head(h, 2)
        self.scale_predictor = _mlp_head(h, 1)
        self.inplane_predictor = _mlp_head(h, 2, tanh=True)
        for p in self.parameters():
            if p.dim() > 1 and not p.is_meta:
                nn.init.xavier_uniform_(p)

    def forward(self, volume: torch.Tensor) -> AffinePrediction:
        x = check_tensor("similarity volume", volume, (None, N_PATCHES, PATCH_GRID, PATCH_GRID))
        for layer in self.features:
            x = layer(x)
        x = self.act(self.fc1(x.flatten(1)))
        x = self.act(self.fc2(x))
        cos_sin = F.normalize(self.inplane_predictor(x), dim=1)
        return AffinePrediction(self.translation_predictor(x), self.scale_predictor(x), cos_sin)


def affine_from_prediction(prediction: AffinePrediction, template_center: torch.Tensor) -> torch.Tensor:
    """2×3 affines [B, 2, 3] mapping template-crop pixels to query-crop pixels.

    template_center: [B, 2] the template's projected object centre c_t in its 224 crop.
    c_q = c_t + 14·translation; M[:, :2] = s·R(θ); M[:, 2] = c_q − s·R(θ)·c_t.
    Pixel convention of the official code: patch (i, j) has its centre at (14·j + 7, 14·i + 7).
    """
    translation, scale, cos_sin = prediction
    B = check_same_batch(translation=translation, scale=scale, cos_sin=cos_sin, template_center=template_center)
    check_tensor("template_center", template_center, (None, 2))
    cos, sin = cos_sin[:, 0], cos_sin[:, 1]
    linear = scale.reshape(B, 1, 1) * torch.stack([cos, -sin, sin, cos], dim=1).reshape(B, 2, 2)
    center_q = template_center + PATCH_PX * translation
    offset = center_q - (linear @ template_center.unsqueeze(-1)).squeeze(-1)
    return torch.cat([linear, offset.unsqueeze(-1)], dim=2)

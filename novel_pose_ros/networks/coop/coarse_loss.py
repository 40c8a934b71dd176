"""Co-op coarse loss: cross-entropy over the 257 classes + 2 × L1 on the in-patch offset (paper facts).

  ce         cross-entropy over every query patch, "no match" (class 256) included, averaged over
             patches. Query crops have many "no match" patches (background inside the square crop,
             occluded or template-invisible parts: often a third to a half of the 256), and that one
             class is easy. `no_match_weight` scales its patches' terms (torch's weighted mean: the sum
             of weighted terms / the sum of the weights, so the loss scale stays comparable); 1.0, the
             default, is the paper's plain cross-entropy. Lower it (e.g. 0.3–0.5) if training collapses
             to predicting "no match" everywhere; never 0: the template score needs a calibrated class.
  offset_l1  |U − Ū| summed over (x, y), averaged over the GT-matched patches only (0 when none), in
             patch units; weighted by offset_weight = 2.
  total      ce + offset_weight × offset_l1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from novel_pose_ros.networks.coop.coarse_config import NO_MATCH, NUM_CLASSES, NUM_PATCHES
from novel_pose_ros.networks.picopose.shapes import check_same_batch, check_tensor

OFFSET_WEIGHT = 2.0


def class_weights(no_match_weight: float, device: torch.device | str | None = None) -> torch.Tensor:
    """[257] cross-entropy class weights: 1 for template patches, no_match_weight for "no match"."""
    if not no_match_weight > 0:
        raise ValueError(f"no_match_weight must be positive, got {no_match_weight}")
    weights = torch.ones(NUM_CLASSES, device=device)
    weights[NO_MATCH] = float(no_match_weight)
    return weights


def coarse_loss(logits: torch.Tensor, offsets: torch.Tensor, target_class: torch.Tensor,
                target_offset: torch.Tensor, no_match_weight: float = 1.0,
                offset_weight: float = OFFSET_WEIGHT) -> dict[str, torch.Tensor]:
    """logits [B, 256, 257], offsets [B, 256, 2] (CoopCoarseNet.match); target_class [B, 256] int64
    (0..255 or 256 = no match), target_offset [B, 256, 2] (coarse_truth). Returns {"total", "ce", "offset_l1"}
    (scalars; module docstring)."""
    check_tensor("logits", logits, (None, NUM_PATCHES, NUM_CLASSES))
    check_tensor("offsets", offsets, (None, NUM_PATCHES, 2))
    check_tensor("target_class", target_class, (None, NUM_PATCHES))
    check_tensor("target_offset", target_offset, (None, NUM_PATCHES, 2))
    check_same_batch(logits=logits, offsets=offsets, target_class=target_class, target_offset=target_offset)
    if target_class.dtype != torch.int64:
        raise ValueError(f"target_class: expected dtype int64, got {target_class.dtype}")
    weight = None if no_match_weight == 1.0 else class_weights(no_match_weight, logits.device).to(logits.dtype)
    ce = F.cross_entropy(logits.reshape(-1, NUM_CLASSES), target_class.reshape(-1), weight=weight)
    matched = (target_class != NO_MATCH).unsqueeze(-1).to(offsets.dtype)
    offset_l1 = ((offsets - target_offset).abs() * matched).sum() / matched.sum().clamp(min=1.0)
    return {"total": ce + offset_weight * offset_l1, "ce": ce, "offset_l1": offset_l1}

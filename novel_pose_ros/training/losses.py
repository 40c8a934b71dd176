"""PicoPose's training losses (METHODS.md, "Losses"), one function per term.

  stage 1  InfoNCE (τ = 0.1) on the last backbone maps at GT corresponding patches: every positive
           (template patch, query patch) of the batch is a row; its logits are its cosine similarity
           with every positive's query patch / τ; cross entropy with the diagonal.
  stage 2  L1 on the translation (both in 14-px patch units), L2 on log scale (prediction clamped at
           5e-3 before the log), geodesic angle between predicted and GT (cos θ, sin θ).
  stage 3  per level: L1 on the flow where GT is valid and |GT flow| < max_flow (summed over x, y,
           averaged over valid cells) × 0.1; BCE of the certainty logits against validity × 1.
  total    the weighted sum, clamped at 100 (no gradient above).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from novel_pose_ros.networks.picopose.config import FLOW_SIZES
from novel_pose_ros.training.config import LossConfig

SCALE_FLOOR = 5e-3
ANGLE_EPS = 1e-6
LOSS_TERMS = ("infonce", "translation", "scale", "inplane", *(f"flow{n}" for n in FLOW_SIZES),
              *(f"cert{n}" for n in FLOW_SIZES))


def infonce_loss(query_map: torch.Tensor, template_map: torch.Tensor, template_index: torch.Tensor,
                 query_index: torch.Tensor, tau: float) -> torch.Tensor:
    """query_map, template_map [B, C, 16, 16]; template_index, query_index [B, P] patch indices (−1 = none)."""
    keep = template_index >= 0
    if not bool(keep.any()):
        return query_map.sum() * 0.0
    batch = torch.arange(len(keep), device=keep.device).view(-1, 1).expand_as(keep)[keep]
    template = F.normalize(template_map.flatten(2).transpose(1, 2)[batch, template_index[keep]], dim=1)
    query = F.normalize(query_map.flatten(2).transpose(1, 2)[batch, query_index[keep]], dim=1)
    logits = template @ query.t() / tau
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


def translation_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(pred, gt)


def scale_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(torch.log(pred.reshape(-1).clamp(min=SCALE_FLOOR)), torch.log(gt.reshape(-1)))


def inplane_loss(pred_cos_sin: torch.Tensor, gt_cos_sin: torch.Tensor) -> torch.Tensor:
    cos = (pred_cos_sin * gt_cos_sin).sum(dim=1).clamp(-1 + ANGLE_EPS, 1 - ANGLE_EPS)
    return torch.acos(cos).mean()


def flow_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, max_flow: float) -> torch.Tensor:
    """pred, gt [B, 2, n, n]; valid [B, n, n] bool."""
    use = (valid & (gt.norm(dim=1) < max_flow)).unsqueeze(1).to(pred.dtype)
    return ((pred - gt).abs() * use).sum() / (use.sum() + 1e-10)


def certainty_loss(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """logits [B, 1, n, n]; valid [B, n, n]."""
    return F.binary_cross_entropy_with_logits(logits[:, 0], valid.to(logits.dtype))


def total_loss(outputs: dict[str, torch.Tensor], batch, config: LossConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """outputs: the TrainingModel's (query_map, template_map, translation, scale, cos_sin, flow_n, certainty_n);
    batch: a TrainingBatch. Returns (clamped weighted total, unweighted terms)."""
    terms = {
        "infonce": infonce_loss(outputs["query_map"], outputs["template_map"], batch.infonce_template,
                                batch.infonce_query, config.infonce_tau),
        "translation": translation_loss(outputs["translation"], batch.translation),
        "scale": scale_loss(outputs["scale"], batch.scale),
        "inplane": inplane_loss(outputs["cos_sin"], batch.cos_sin),
    }
    for n in FLOW_SIZES:
        terms[f"flow{n}"] = flow_loss(outputs[f"flow_{n}"], batch.flow(n), batch.valid(n), config.max_flow)
        terms[f"cert{n}"] = certainty_loss(outputs[f"certainty_{n}"], batch.valid(n))
    weights = {"infonce": config.infonce_weight, "translation": config.translation_weight,
               "scale": config.scale_weight, "inplane": config.inplane_weight,
               **{f"flow{n}": config.flow_weight for n in FLOW_SIZES},
               **{f"cert{n}": config.certainty_weight for n in FLOW_SIZES}}
    total = sum(weights[k] * v for k, v in terms.items())
    return torch.clamp(total, max=config.total_clamp), terms

"""The Co-op refiner's training losses (METHODS.md, "Co-op"), one function per term.

Conventions: flows and Laplace scales in one unit (the refiner's 4-px cells of the 64×64 grid,
networks/coop/refiner_net.py, or pixels: the losses do not care); poses `T_cam_obj` [B,4,4] in
metres (OpenCV camera); model points in the object frame, metres.

  laplace_nll   flow μ [B,2,H,W] with a shared Laplace scale b [B,1,H,W] per pixel, i.e. two
                independent 1-D Laplace(μ_x, b), Laplace(μ_y, b):
                    −log p(μ̄ | μ, b) = ‖μ − μ̄‖₁ / b + 2 log b + 2 log 2,
                the paper's |μ − μ̄|/b + 2 log b (the L1 norm over both components; the constant
                dropped). Averaged over the valid pixels (render pixels visible in the query).
                For one pixel with L1 error e it is minimal at b = e/2 (value 2 + 2 log(e/2)).
  certainty_bce BCE of the certainty logits against "render pixel visible in the query",
                averaged over the pixels of `mask` (default: all pixels).
  disentangled_point_matching   CosyPose/MegaPose's disentangled point-matching loss applied to a
                predicted pose (definition in its docstring).
  refiner_loss  1 × laplace_nll + 5 × certainty_bce + 20 × pose loss, the paper's weights.

The sensitivity head has no loss of its own: it learns through the pose loss, whose gradient
reaches μ, b, certainty and sensitivity through the differentiable LM-PnP (geometry/lm_pnp.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LAPLACE_WEIGHT = 1.0
CERTAINTY_WEIGHT = 5.0
POSE_WEIGHT = 20.0
REFINER_LOSS_TERMS = ("laplace_nll", "certainty_bce", "pose_rotation", "pose_xy", "pose_z", "pose", "total")


def _check(name: str, tensor: torch.Tensor, shape: tuple[int | None, ...]) -> torch.Tensor:
    ok = tensor.dim() == len(shape) and all(s is None or s == a for s, a in zip(shape, tensor.shape))
    if not ok:
        expected = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(tensor.shape)}")
    return tensor


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of values [B,H,W] over mask [B,H,W]; 0 (with a gradient path) when the mask is empty."""
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp(min=1.0)


def laplace_nll(mu: torch.Tensor, log_b: torch.Tensor, flow_gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over valid pixels of ‖μ − μ̄‖₁ / b + 2 log b, with b = exp(log_b).

    mu, flow_gt [B,2,H,W]; log_b [B,1,H,W] (the network predicts log b: no division by a clamped
    b, and 2 log b is exact); valid [B,H,W] bool. flow_gt may hold anything (NaN) off `valid`.
    """
    B, _, H, W = _check("mu", mu, (None, 2, None, None)).shape
    _check("log_b", log_b, (B, 1, H, W))
    _check("flow_gt", flow_gt, (B, 2, H, W))
    _check("valid", valid, (B, H, W))
    valid = valid.bool()
    error = torch.where(valid.unsqueeze(1), mu - flow_gt, torch.zeros_like(mu)).abs().sum(dim=1)
    log_b = log_b[:, 0]
    return _masked_mean(error * torch.exp(-log_b) + 2.0 * log_b, valid)


def certainty_bce(logits: torch.Tensor, visible: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """BCE-with-logits of logits [B,1,H,W] against visible [B,H,W], mean over mask [B,H,W] (default all)."""
    B, _, H, W = _check("logits", logits, (None, 1, None, None)).shape
    _check("visible", visible, (B, H, W))
    per_pixel = F.binary_cross_entropy_with_logits(logits[:, 0], visible.to(logits.dtype), reduction="none")
    if mask is None:
        return per_pixel.mean()
    return _masked_mean(per_pixel, _check("mask", mask, (B, H, W)).bool())


def _apply(R: torch.Tensor, t: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """R [B,3,3], t [B,3], points [B,M,3] → R p + t [B,M,3]."""
    return points @ R.transpose(1, 2) + t[:, None, :]


def _mean_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """CosyPose's ADD-L1: mean over points and the 3 coordinates of |a − b|, then over the batch."""
    return (a - b).abs().mean()


def disentangled_point_matching(T_pred: torch.Tensor, T_gt: torch.Tensor,
                                points_obj: torch.Tensor) -> dict[str, torch.Tensor]:
    """Disentangled point-matching loss (CosyPose, MegaPose) of a predicted pose T_cam_obj.

    T_pred, T_gt [B,4,4]; points_obj [B,M,3] model points (metres). With T = [R | t],
    t = (x, y, z), and L(R, t) = mean_{i,k} |(R p_i + t)_k − (R_gt p_i + t_gt)_k| (mean over the M
    points and 3 coordinates, then over the batch; metres):
        rotation  L(R_pred, t_gt)
        xy        L(R_gt, z_gt · (x_pred/z_pred, y_pred/z_pred, 1))  predicted image-plane centre
                                                                      (x/z, y/z) at the GT depth
        z         L(R_gt, z_pred · (x_gt/z_gt, y_gt/z_gt, 1))        GT image-plane centre at the
                                                                      predicted depth
        pose      (rotation + xy + z) / 3  (CosyPose concatenates the three point sets and averages)
    (x/z, y/z) is the object centre's projection through any K (K⁻¹ times its pixel), so no K is
    needed. Each term is zero when its own component matches the GT, whatever the others are.
    Symmetries are not handled. Returns {"pose_rotation", "pose_xy", "pose_z", "pose"}.
    """
    B = _check("T_pred", T_pred, (None, 4, 4)).shape[0]
    _check("T_gt", T_gt, (B, 4, 4))
    _check("points_obj", points_obj, (B, None, 3))
    R_pred, t_pred = T_pred[:, :3, :3], T_pred[:, :3, 3]
    R_gt, t_gt = T_gt[:, :3, :3], T_gt[:, :3, 3]
    target = _apply(R_gt, t_gt, points_obj)
    z_pred, z_gt = t_pred[:, 2:], t_gt[:, 2:]
    ones = torch.ones_like(z_gt)
    t_xy = z_gt * torch.cat([t_pred[:, :2] / z_pred, ones], dim=1)
    t_z = z_pred * torch.cat([t_gt[:, :2] / z_gt, ones], dim=1)
    terms = {
        "pose_rotation": _mean_l1(_apply(R_pred, t_gt, points_obj), target),
        "pose_xy": _mean_l1(_apply(R_gt, t_xy, points_obj), target),
        "pose_z": _mean_l1(_apply(R_gt, t_z, points_obj), target),
    }
    terms["pose"] = (terms["pose_rotation"] + terms["pose_xy"] + terms["pose_z"]) / 3.0
    return terms


def refiner_loss(mu: torch.Tensor, log_b: torch.Tensor, certainty_logits: torch.Tensor,
                 flow_gt: torch.Tensor, visible: torch.Tensor, T_pred: torch.Tensor, T_gt: torch.Tensor,
                 points_obj: torch.Tensor, render_mask: torch.Tensor | None = None,
                 laplace_weight: float = LAPLACE_WEIGHT, certainty_weight: float = CERTAINTY_WEIGHT,
                 pose_weight: float = POSE_WEIGHT) -> dict[str, torch.Tensor]:
    """Co-op's refiner loss: laplace_weight · NLL + certainty_weight · BCE + pose_weight · pose.

    mu, flow_gt [B,2,H,W]; log_b, certainty_logits [B,1,H,W]; visible [B,H,W] (render pixel
    visible in the query: the NLL's valid set and the BCE's target); render_mask [B,H,W] where
    the BCE is averaged (default all pixels); T_pred [B,4,4] the LM-PnP output computed from
    mu, b, certainty and sensitivity (so the pose term trains all four heads); T_gt [B,4,4];
    points_obj [B,M,3]. Returns the unweighted terms of REFINER_LOSS_TERMS, "total" weighted.
    """
    terms = {"laplace_nll": laplace_nll(mu, log_b, flow_gt, visible),
             "certainty_bce": certainty_bce(certainty_logits, visible, render_mask),
             **disentangled_point_matching(T_pred, T_gt, points_obj)}
    terms["total"] = (laplace_weight * terms["laplace_nll"] + certainty_weight * terms["certainty_bce"]
                      + pose_weight * terms["pose"])
    return terms

"""Co-op selector training: which hypothesis poses count as good, how they are drawn, and the loss.

Paper facts (shared/design/METHODS.md, "Co-op"): BCE with, per query, 1 positive pose (within 5° of
rotation and (0.01, 0.01, 0.05) m of translation of the ground truth) and 5 negatives.

  is_positive            rotation: geodesic angle between R_hyp and R_gt ≤ rot_deg; translation: |t_hyp − t_gt|
                         per camera axis (x, y, z) ≤ trans_m, all three. Poses are T_cam_obj (metres).
                         Symmetric objects are out of scope: the test is against the one GT pose, so a
                         pose equivalent under a symmetry counts as negative (BOP's symmetries are not used).
  sample_selector_poses  1 positive (noise well inside the thresholds) then `negatives` negatives (the
                         refiner's training noise, shared/design/METHODS.md: translation std (0.01, 0.01,
                         0.05) m, rotation std 15° per axis, applied as training/refiner_pairs.perturb_pose
                         does; drawn again until outside the positive thresholds).
  selector_loss          total = bce (mean binary cross-entropy on the logits), accuracy (sign of the
                         logit vs the label; reported, not differentiable).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from novel_pose_ros.geometry.se3 import check_shape, rotation_angle_rad, rotation_from_axis_angle
from novel_pose_ros.networks.picopose.shapes import check_same_batch, check_tensor

POSITIVE_ROT_DEG = 5.0
POSITIVE_TRANS_M = (0.01, 0.01, 0.05)
NOISE_TRANSLATION_STD_M = (0.01, 0.01, 0.05)
NOISE_ROTATION_STD_DEG = 15.0
NOISE_MAX_ROTATION_DEG = 90.0  # as the refiner's PoseNoiseConfig.max_rotation_deg
POSITIVE_FRACTION = 0.5  # a positive's noise stays within this fraction of each threshold
MAX_DRAWS = 1000  # per negative; with the default noise a draw is a positive with probability < 1 %


def selector_loss(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """logits [B] (CoopSelectorNet), labels [B] (1 = positive, 0 = negative) → dict of scalars:
    total (= bce), bce (mean over the batch), accuracy (fraction with (logit > 0) == label, detached)."""
    check_tensor("logits", logits, (None,))
    check_tensor("labels", labels, (None,))
    check_same_batch(logits=logits, labels=labels)
    target = labels.to(logits.dtype)
    if not bool(((target == 0) | (target == 1)).all()):
        raise ValueError("labels: expected 0 or 1 only")
    bce = F.binary_cross_entropy_with_logits(logits, target)
    accuracy = ((logits.detach() > 0).to(target.dtype) == target).to(logits.dtype).mean()
    return {"total": bce, "bce": bce, "accuracy": accuracy}


def is_positive(T_hyp: np.ndarray, T_gt: np.ndarray, rot_deg: float = POSITIVE_ROT_DEG,
                trans_m: tuple[float, float, float] = POSITIVE_TRANS_M) -> bool:
    """True when T_hyp (4, 4) is within rot_deg (geodesic) and trans_m (per camera axis) of T_gt (4, 4)."""
    T_hyp = check_shape("T_hyp", T_hyp, (4, 4))
    T_gt = check_shape("T_gt", T_gt, (4, 4))
    angle_deg = np.degrees(rotation_angle_rad(T_hyp[:3, :3], T_gt[:3, :3]))
    offset = np.abs(T_hyp[:3, 3] - T_gt[:3, 3])
    return bool(angle_deg <= rot_deg and np.all(offset <= np.asarray(trans_m, dtype=np.float64)))


def _apply_noise(T_gt: np.ndarray, omega_rad: np.ndarray, dt_m: np.ndarray) -> np.ndarray:
    """T_gt with R ← exp(ω) R (rotation about the object origin, camera-frame axis) and t ← t + dt."""
    T = np.array(T_gt, dtype=np.float64)
    angle = float(np.linalg.norm(omega_rad))
    if angle > 1e-12:
        T[:3, :3] = rotation_from_axis_angle(omega_rad / angle, angle) @ T[:3, :3]
    T[:3, 3] += dt_m
    return T


def sample_selector_poses(T_gt: np.ndarray, rng: np.random.Generator, negatives: int = 5,
                          rot_deg: float = POSITIVE_ROT_DEG, trans_m: tuple[float, float, float] = POSITIVE_TRANS_M,
                          translation_std_m: tuple[float, float, float] = NOISE_TRANSLATION_STD_M,
                          rotation_std_deg: float = NOISE_ROTATION_STD_DEG) -> tuple[np.ndarray, np.ndarray]:
    """Hypothesis poses for one query of GT pose T_gt (4, 4) → poses (1 + negatives, 4, 4) T_cam_obj,
    labels (1 + negatives,) float32: index 0 is the positive (label 1), the rest negatives (label 0).

    Positive: a rotation of angle U(0, ½ rot_deg) about a uniform axis, a translation U(−½, ½) × trans_m
    per axis. Negatives: ω ~ N(0, rotation_std_deg) per axis (angle capped at 90°), dt ~ N(0,
    translation_std_m) per axis, drawn again while is_positive. Everything comes from `rng`; the caller
    checks that the poses keep the object in front of the camera (the renderer's window raises otherwise)."""
    T_gt = check_shape("T_gt", T_gt, (4, 4)).astype(np.float64)
    if negatives < 0:
        raise ValueError(f"negatives must be ≥ 0, got {negatives}")
    trans = np.asarray(trans_m, dtype=np.float64)
    axis = rng.normal(size=3)
    axis /= max(np.linalg.norm(axis), 1e-12)
    omega = axis * np.radians(rng.uniform(0.0, POSITIVE_FRACTION * rot_deg))
    poses = [_apply_noise(T_gt, omega, rng.uniform(-1.0, 1.0, size=3) * POSITIVE_FRACTION * trans)]
    std_t = np.asarray(translation_std_m, dtype=np.float64)
    for _ in range(negatives):
        for _ in range(MAX_DRAWS):
            omega = rng.normal(0.0, np.radians(rotation_std_deg), size=3)
            angle = float(np.linalg.norm(omega))
            if angle > np.radians(NOISE_MAX_ROTATION_DEG):
                omega *= np.radians(NOISE_MAX_ROTATION_DEG) / angle
            T = _apply_noise(T_gt, omega, rng.normal(size=3) * std_t)
            if not is_positive(T, T_gt, rot_deg, trans_m):
                break
        else:
            raise RuntimeError(f"no negative pose in {MAX_DRAWS} draws: the noise (translation std "
                               f"{translation_std_m} m, rotation std {rotation_std_deg}°) is too small "
                               f"for the thresholds ({rot_deg}°, {trans_m} m)")
        poses.append(T)
    labels = np.zeros(1 + negatives, dtype=np.float32)
    labels[0] = 1.0
    return np.stack(poses), labels

"""Rigid transforms from 3D–3D correspondences: weighted Kabsch (no scale) and a RANSAC around it.

cv2.estimateAffine3D fits a general affine (it may shear and scale) and cv2.estimateTranslation3D only a
translation, so the rigid fit is our own: Kabsch/Umeyama without the scale term (Umeyama, PAMI 1991,
eq. 39–41 with c = 1), the reflection case removed by the sign of det(U Vᵀ). The RANSAC draws minimal
samples of 3 pairs, solves all of them in one batched SVD, scores each by the truncated quadratic
(MSAC) cost, which ranks near-ties better than a plain inlier count, then polishes the best on its
inliers with the weighted fit (a few rounds of local optimisation, as LO-RANSAC does).

Units: metres. `T_dst_src` maps src points into the dst frame: dst ≈ R src + t.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from novel_pose_ros.geometry.se3 import check_shape, make_T

MIN_PAIRS = 3
MIN_SAMPLE_AREA_M2 = 1e-6  # a minimal sample spanning less (near-collinear points) leaves a rotation free
LOCAL_OPTIMISATION_ROUNDS = 3
SCORING_PAIRS = 512


@dataclass(frozen=True)
class RigidFit:
    """Outcome of one robust rigid fit.

    T_dst_src: 4×4 (metres) or None on failure; inliers: indices (M,) into the input pairs;
    inlier_ratio: M / N; rms_m: RMS residual over the inliers; reason: why it failed ("" on success).
    """

    T_dst_src: np.ndarray | None
    inliers: np.ndarray
    inlier_ratio: float
    rms_m: float = float("inf")
    reason: str = ""

    @property
    def success(self) -> bool:
        return self.T_dst_src is not None


def _failure(reason: str) -> RigidFit:
    return RigidFit(None, np.zeros(0, dtype=np.int64), 0.0, float("inf"), reason)


def _batched_kabsch(src: np.ndarray, dst: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R (B, 3, 3), t (B, 3) minimising Σ w ‖R src + t − dst‖² for src, dst (B, K, 3), weights (B, K) ≥ 0."""
    w = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-300)
    mu_src = np.einsum("bk,bkd->bd", w, src)
    mu_dst = np.einsum("bk,bkd->bd", w, dst)
    covariance = np.einsum("bk,bki,bkj->bij", w, dst - mu_dst[:, None], src - mu_src[:, None])
    U, _, Vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(U @ Vt))
    sign[sign == 0] = 1.0
    D = np.zeros_like(covariance)
    D[:, 0, 0] = D[:, 1, 1] = 1.0
    D[:, 2, 2] = sign
    R = U @ D @ Vt
    t = mu_dst - np.einsum("bij,bj->bi", R, mu_src)
    return R, t


def kabsch(points_src: np.ndarray, points_dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """T_dst_src (4×4) of the weighted least-squares rigid fit (no scale) of points_src (N, 3) onto points_dst (N, 3).

    Needs N ≥ 3 pairs with positive weight that are not collinear (otherwise a rotation about their line is free
    and the result is one of many)."""
    src = check_shape("points_src", points_src, (None, 3)).astype(np.float64)
    dst = check_shape("points_dst", points_dst, (len(src), 3)).astype(np.float64)
    w = np.ones(len(src)) if weights is None else check_shape("weights", weights, (len(src),)).astype(np.float64)
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights: expected finite values ≥ 0")
    if int((w > 0).sum()) < MIN_PAIRS:
        raise ValueError(f"kabsch: expected at least {MIN_PAIRS} pairs with positive weight, got {int((w > 0).sum())}")
    R, t = _batched_kabsch(src[None], dst[None], w[None])
    return make_T(R[0], t[0])


def _residuals(R: np.ndarray, t: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(B, N) distances ‖R_b src + t_b − dst‖ of every pair under each of B transforms."""
    moved = np.matmul(src[None], R.transpose(0, 2, 1)) + t[:, None, :]  # batched GEMM (einsum would not use BLAS)
    moved -= dst[None]
    return np.sqrt(np.einsum("bni,bni->bn", moved, moved))


def fit_rigid_ransac(
    points_src: np.ndarray,
    points_dst: np.ndarray,
    threshold_m: float,
    iterations: int = 200,
    weights: np.ndarray | None = None,
    seed: int = 0,
    min_inliers: int = MIN_PAIRS,
) -> RigidFit:
    """Robust T_dst_src from pairs (N, 3) ↔ (N, 3) of which an unknown share are outliers.

    threshold_m: a pair is an inlier when its residual is below this; iterations: minimal samples drawn
    (all at once, so the cost is one batched SVD); weights (N,) ≥ 0: how much each pair counts in the final
    least-squares fit (e.g. a matcher's certainty; the sampling is uniform); seed: reproducible sampling;
    min_inliers: fewer inliers is a failure. Non-finite pairs are ignored (they are never inliers).
    """
    src = check_shape("points_src", points_src, (None, 3)).astype(np.float64)
    dst = check_shape("points_dst", points_dst, (len(src), 3)).astype(np.float64)
    if not (np.isfinite(threshold_m) and threshold_m > 0):
        raise ValueError(f"threshold_m: expected a positive distance in metres, got {threshold_m}")
    if int(iterations) < 1:
        raise ValueError(f"iterations: expected ≥ 1, got {iterations}")
    w = np.ones(len(src)) if weights is None else check_shape("weights", weights, (len(src),)).astype(np.float64)
    usable = np.flatnonzero(np.isfinite(src).all(axis=1) & np.isfinite(dst).all(axis=1) & np.isfinite(w) & (w > 0))
    n = len(src)
    if len(usable) < max(MIN_PAIRS, int(min_inliers)):
        return _failure(f"{len(usable)} usable pairs, need at least {max(MIN_PAIRS, int(min_inliers))}")
    rng = np.random.default_rng(seed)
    picks = _distinct_triples(rng, usable, int(iterations))
    s, d = src[picks], dst[picks]
    area = 0.5 * np.linalg.norm(np.cross(s[:, 1] - s[:, 0], s[:, 2] - s[:, 0]), axis=1)
    good = area > MIN_SAMPLE_AREA_M2
    if not good.any():
        return _failure("every minimal sample is degenerate (the points are collinear or coincide)")
    R, t = _batched_kabsch(s[good], d[good], np.ones((int(good.sum()), MIN_PAIRS)))
    # the samples are scored on at most SCORING_PAIRS random pairs (the ranking of hypotheses by a few hundred
    # pairs is as good as by thousands), the winner's inliers on all of them
    scoring = usable if len(usable) <= SCORING_PAIRS else rng.choice(usable, SCORING_PAIRS, replace=False)
    residuals = _residuals(R, t, src[scoring], dst[scoring])
    cost = np.minimum(residuals, threshold_m) ** 2  # MSAC: inliers count by how well they fit, outliers alike
    best = int(np.argmin(cost.sum(axis=1)))
    inliers = usable[_residuals(R[best:best + 1], t[best:best + 1], src[usable], dst[usable])[0] < threshold_m]
    T = make_T(R[best], t[best])
    for _ in range(LOCAL_OPTIMISATION_ROUNDS):
        if len(inliers) < MIN_PAIRS:
            break
        R1, t1 = _batched_kabsch(src[inliers][None], dst[inliers][None], w[inliers][None])
        r = _residuals(R1, t1, src[usable], dst[usable])[0]
        refined = usable[r < threshold_m]
        if len(refined) < len(inliers):
            break
        T, inliers = make_T(R1[0], t1[0]), refined
    if len(inliers) < max(MIN_PAIRS, int(min_inliers)):
        return _failure(f"{len(inliers)} inliers within {threshold_m * 1000:.1f} mm, need {max(MIN_PAIRS, int(min_inliers))}")
    final = np.linalg.norm(src[inliers] @ T[:3, :3].T + T[:3, 3] - dst[inliers], axis=1)
    return RigidFit(T, inliers.astype(np.int64), len(inliers) / n, float(np.sqrt(np.mean(final ** 2))))


def _distinct_triples(rng: np.random.Generator, usable: np.ndarray, count: int) -> np.ndarray:
    """(count, 3) indices of `usable`, three distinct per row (redrawn where two coincide)."""
    picks = rng.integers(len(usable), size=(count, MIN_PAIRS))
    while True:
        clash = (picks[:, 0] == picks[:, 1]) | (picks[:, 0] == picks[:, 2]) | (picks[:, 1] == picks[:, 2])
        if not clash.any():
            return usable[picks]
        picks[clash] = rng.integers(len(usable), size=(int(clash.sum()), MIN_PAIRS))

"""PnP from 2D–3D correspondences: OpenCV's EPnP + RANSAC, optional LM refinement on inliers."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from novel_pose_ros.geometry.camera import validate_K
from novel_pose_ros.geometry.se3 import check_shape, make_T

MIN_CORRESPONDENCES = 6  # EPnP needs 4; RANSAC on fewer than 6 is unreliable.


@dataclass(frozen=True)
class PnPResult:
    """Outcome of one PnP solve.

    T_cam_obj: 4×4 pose (metres) or None when the solve failed.
    inliers: indices (M,) into the input correspondences.
    inlier_ratio: M / N (0 on failure).
    reason: why it failed ("" on success).
    method: what solved it: "pnp" (EPnP + RANSAC) or "rigid" (a 3D–3D fit on measured depth,
    estimation/depth_correspondences.py).
    """

    T_cam_obj: np.ndarray | None
    inliers: np.ndarray
    inlier_ratio: float
    reason: str = ""
    method: str = "pnp"

    @property
    def success(self) -> bool:
        return self.T_cam_obj is not None


def _failure(reason: str) -> PnPResult:
    return PnPResult(T_cam_obj=None, inliers=np.zeros(0, dtype=np.int64), inlier_ratio=0.0, reason=reason)


def solve_pnp_ransac(
    points_obj: np.ndarray,
    pixels: np.ndarray,
    K: np.ndarray,
    reprojection_error_px: float = 2.0,
    iterations: int = 150,
    refine_lm: bool = False,
    seed: int = 0,
) -> PnPResult:
    """Pose of the object in the camera from object points (N, 3) in metres and their pixels (N, 2).

    Defaults follow PicoPose: EPnP inside RANSAC, 2 px threshold, 150 iterations.
    `refine_lm` polishes the pose on the inliers with Levenberg–Marquardt.
    `seed` fixes OpenCV's RANSAC sampling so results are reproducible.
    """
    points_obj = check_shape("points_obj", points_obj, (None, 3))
    pixels = check_shape("pixels", pixels, (None, 2))
    K = validate_K(K)
    n = len(points_obj)
    if len(pixels) != n:
        raise ValueError(f"points_obj has {n} rows but pixels has {len(pixels)}")
    if n < MIN_CORRESPONDENCES:
        return _failure(f"{n} correspondences, need at least {MIN_CORRESPONDENCES}")
    finite = np.isfinite(points_obj).all(axis=1) & np.isfinite(pixels).all(axis=1)
    if not finite.all():
        raise ValueError(f"{int((~finite).sum())} correspondences contain non-finite values")

    cv2.setRNGSeed(seed)
    ok, rvec, tvec, inliers = cv2.solvePnPRansac(
        points_obj.astype(np.float64),
        pixels.astype(np.float64),
        K,
        None,
        iterationsCount=int(iterations),
        reprojectionError=float(reprojection_error_px),
        confidence=0.99,
        flags=cv2.SOLVEPNP_EPNP,
    )
    if not ok or inliers is None or len(inliers) < 4:
        return _failure("RANSAC found no consistent pose")
    inliers = inliers.reshape(-1).astype(np.int64)
    if refine_lm:
        rvec, tvec = cv2.solvePnPRefineLM(points_obj[inliers], pixels[inliers], K, None, rvec, tvec)
    R, _ = cv2.Rodrigues(rvec)
    t = tvec.reshape(3)
    if not (np.all(np.isfinite(R)) and np.all(np.isfinite(t))) or t[2] <= 0:
        return _failure(f"degenerate pose (t = {t.tolist()})")
    return PnPResult(T_cam_obj=make_T(R, t), inliers=inliers, inlier_ratio=len(inliers) / n)

"""Measured depth for the coarse stages: a cleaned depth image, 2D–3D correspondences lifted to 3D–3D, and the
rigid fit that replaces PnP where it has the support (Co-op's RGB-D variant: Kabsch on the semi-dense
correspondences).

Depth is float32 metres with 0 = invalid (types.Frame). Before it is trusted, NaN / inf / out-of-range values
become 0 and so do pixels on a depth discontinuity: a sensor mixes foreground and background there ("flying
pixels"), and a correspondence read at such a pixel is off by the whole step. A pixel is on a discontinuity when
its 3×3 neighbourhood spans more than EDGE_STEP_FRACTION of its depth (holes do not count: a pixel next to a
hole is as good as its valid neighbours say).

A query pixel with valid depth lifts to a camera point; its object point (template depth) and that camera
point form a 3D–3D pair, and the RANSAC + weighted Kabsch of geometry/rigid_fit.py gives T_cam_obj directly,
without PnP's depth ambiguity (a few per cent of the distance, docs/ACCURACY.md). The fit wins only with at
least `min_inliers` inliers and `MIN_INLIER_SHARE` of the lifted pairs; otherwise the PnP of all the 2D–3D
pairs stands, as it does for a frame without depth.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from novel_pose_ros.estimation.config import USE_DEPTH
from novel_pose_ros.estimation.correspondences import Correspondences, pose_from_correspondences
from novel_pose_ros.geometry.camera import backproject_pixels
from novel_pose_ros.geometry.pnp import PnPResult
from novel_pose_ros.geometry.rigid_fit import fit_rigid_ransac

MIN_DEPTH_M = 0.05  # nearer than any RGB-D sensor measures: a bogus value
MAX_DEPTH_M = 20.0
EDGE_STEP_FRACTION = 0.03  # a 3×3 depth span beyond 3 % of the depth is a discontinuity (≈ 3 cm at 1 m)
MIN_INLIER_SHARE = 0.3  # of the lifted pairs: fewer, and the fit is more likely a wrong template's than noise
RIGID_ITERATIONS = 200


@dataclass(frozen=True)
class DepthImage:
    """depth_m (H, W) float32 metres, 0 where invalid or on a discontinuity; valid (H, W) bool."""

    depth_m: np.ndarray
    valid: np.ndarray

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.mean()) if self.valid.size else 0.0


def uses_depth(use_depth: str, depth_m: np.ndarray | None) -> bool:
    """Whether the estimator reads the frame's depth: "auto" when there is some, "on" always (the caller
    turns missing depth into a failure), "off" never."""
    if use_depth not in USE_DEPTH:
        raise ValueError(f"use_depth: expected one of {USE_DEPTH}, got '{use_depth}'")
    return use_depth == "on" or (use_depth == "auto" and depth_m is not None)


def clean_depth(depth_m: np.ndarray, min_m: float = MIN_DEPTH_M, max_m: float = MAX_DEPTH_M,
                edge_step_fraction: float = EDGE_STEP_FRACTION) -> DepthImage:
    """The frame's depth with invalid values (0, NaN, inf, outside [min_m, max_m]) and discontinuity pixels set to 0."""
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth_m: expected (H, W) metres, got shape {depth.shape}")
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth >= min_m) & (depth <= max_m)
    kernel = np.ones((3, 3), np.uint8)
    highest = cv2.dilate(np.where(valid, depth, 0.0).astype(np.float32), kernel)
    lowest = cv2.erode(np.where(valid, depth, np.float32(np.inf)).astype(np.float32), kernel)
    valid &= (highest - lowest) <= edge_step_fraction * np.where(valid, depth, 0.0)
    return DepthImage(np.where(valid, depth, 0.0).astype(np.float32), valid)


def lift_pixels(depth: DepthImage, K: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera points (N, 3) of image pixels (N, 2) at their nearest pixel's depth, and which have valid depth (N,)."""
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    h, w = depth.depth_m.shape
    cols, rows = np.rint(pixels[:, 0]).astype(np.int64), np.rint(pixels[:, 1]).astype(np.int64)
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    z = np.zeros(len(pixels))
    z[inside] = depth.depth_m[rows[inside], cols[inside]]
    return backproject_pixels(K, pixels, z), z > 0


def pose_from_rgbd_correspondences(correspondences: Correspondences, K: np.ndarray, depth: DepthImage | None,
                                   reprojection_error_px: float, iterations: int, threshold_m: float,
                                   min_inliers: int) -> PnPResult:
    """The rigid 3D–3D fit of the correspondences with valid depth where it has the support, else EPnP + RANSAC
    on all of them (`pose_from_correspondences`, also what depth None gives). The result is a PnPResult
    (method "rigid" or "pnp") whose inliers index the given correspondences, so hypotheses rank alike."""
    if depth is not None and len(correspondences.pixels):
        points_cam, valid = lift_pixels(depth, K, correspondences.pixels)
        lifted = np.flatnonzero(valid)
        if len(lifted) >= min_inliers:
            fit = fit_rigid_ransac(correspondences.points_obj[lifted], points_cam[lifted], threshold_m,
                                   RIGID_ITERATIONS, min_inliers=min_inliers)
            if (fit.success and len(fit.inliers) >= MIN_INLIER_SHARE * len(lifted) and fit.T_dst_src[2, 3] > 0):
                inliers = lifted[fit.inliers]
                return PnPResult(fit.T_dst_src, inliers, len(inliers) / len(correspondences.pixels), method="rigid")
    return pose_from_correspondences(correspondences, K, reprojection_error_px, iterations)

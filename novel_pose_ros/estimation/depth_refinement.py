"""The final depth check of a pose: the object rendered at the pose against the measured depth on its visible mask.

Without depth, the distance is what an RGB method knows least (a few per cent of it at the median,
docs/ACCURACY.md); measured depth knows it to millimetres. In the detection's query crop (the crop camera of
estimation/verification.py, so one small render), the residual measured − rendered z is taken on the pixels that
are in the detection mask, on the rendered silhouette and have valid measured depth (estimation/
depth_correspondences.clean_depth has already dropped holes, out-of-range values and flying pixels on
discontinuities). Then:

1. translation along the viewing ray: the robust median of the residuals (iterated 3·MAD rejection, which drops
   what the mask gets wrong at the outline and occluders a mask still holds), applied by scaling t, which keeps
   the origin's projection where it is; repeated on a new render (the silhouette changes size) until it moves
   less than half the agreement band, at most RAY_PASSES times;
2. optionally a few point-to-plane ICP steps: rendered surface points (with normals from the rendered depth)
   moved onto the measured surface, associated by projection into the measured depth (no re-render per step),
   damped so that directions a partial surface leaves free (a plane's in-plane slide) stay put.

The checked pose is kept only when more of the measured pixels on the detection mask agree with it (|residual|
within the band) than with the pose it came from; `DepthCheck.agreement` is that share (0–1), a depth-based
confidence of the pose. `choose_by_depth` checks several hypotheses and keeps the one the depth explains best:
a flipped pose can match a silhouette as well as the right one, but not the depth inside it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from novel_pose_ros.estimation.crops import QueryCrop
from novel_pose_ros.estimation.depth_correspondences import DepthImage
from novel_pose_ros.estimation.verification import crop_camera, render_in_crop
from novel_pose_ros.geometry.camera import backproject_pixels, point_map, project_points, surface_normals
from novel_pose_ros.geometry.crop import warp_crop
from novel_pose_ros.geometry.se3 import make_T
from novel_pose_ros.render import Renderer
from novel_pose_ros.types import ObjectModel

MIN_PIXELS = 30  # fewer compared pixels say nothing reliable about the distance
MAX_SHIFT_FRACTION = 0.5  # one pass moves the object at most half its distance (a guard against nonsense)
RAY_PASSES = 4  # a pose metres off needs a few passes (the silhouette, hence the compared pixels, change)
BAND_MIN_M = 0.005  # agreement band: at least 5 mm (sensor noise at 1–2 m) ...
BAND_DIAMETER_FRACTION = 0.03  # ... and 3 % of the object's diameter (the shape detail a coarse pose misses)
MIN_NORMAL_COS = 0.3  # ICP ignores surface seen at grazing angles (> 72°): its normal and depth are poor
ICP_DAMPING = 1e-3  # relative Levenberg damping of the 6×6 normal equations
CHOICE_MARGIN = 0.05  # another hypothesis must explain 5 % more of the measured pixels to replace the current one


@dataclass(frozen=True)
class DepthCheck:
    """T_cam_obj: the checked pose (the input one when `failure` is set or nothing improved); shift_m: how far
    it moved along the viewing ray; pixels: compared pixels; agreement / agreement_before: share of the detection
    mask's measured pixels within the band of the checked / the input pose's depth; icp_steps: ICP steps applied."""

    T_cam_obj: np.ndarray
    shift_m: float = 0.0
    pixels: int = 0
    agreement: float = 0.0
    agreement_before: float = 0.0
    icp_steps: int = 0
    failure: str | None = None

    @property
    def improved(self) -> bool:
        return self.failure is None and self.agreement > self.agreement_before


def robust_median(residuals: np.ndarray, band_m: float, rounds: int = 3) -> tuple[float, np.ndarray]:
    """(median of the residuals after iterated rejection beyond max(3·MAD, band_m) of it, which were kept)."""
    r = np.asarray(residuals, dtype=np.float64)
    centre, keep = float(np.median(r)), np.ones(len(r), bool)
    for _ in range(rounds):
        spread = 1.4826 * float(np.median(np.abs(r - centre)))
        keep = np.abs(r - centre) <= max(3.0 * spread, band_m)
        if not keep.any():
            break
        centre = float(np.median(r[keep]))
    return centre, keep


def slide_along_ray(T_cam_obj: np.ndarray, dz_m: float) -> np.ndarray:
    """T moved along its origin's viewing ray so that its depth changes by dz_m (the origin projects where it did)."""
    T = np.array(T_cam_obj, dtype=np.float64)
    T[:3, 3] *= (T[2, 3] + dz_m) / T[2, 3]
    return T


@dataclass(frozen=True)
class _Comparison:
    """One render at a pose against the measured crop depth: rendered z, the compared pixels, and how many pixels
    the evidence has with measured depth (the detection mask's; the silhouette's for box-only detections)."""

    rendered: np.ndarray
    region: np.ndarray
    evidence_px: int

    def residuals(self, measured: np.ndarray) -> np.ndarray:
        return (measured - self.rendered)[self.region]

    def agreement(self, measured: np.ndarray, band: float) -> float:
        """Share of the evidence's measured pixels that the pose explains within the band: a pose that covers
        only part of the object cannot score high on the part it covers."""
        return float(np.count_nonzero(np.abs(self.residuals(measured)) <= band)) / max(self.evidence_px, 1)


def _compare(renderer, obj, T, K, crop, measured, evidence) -> _Comparison | None:
    render = render_in_crop(renderer, obj, T, K, crop)
    if render is None:
        return None
    evidence = evidence if evidence is not None else render.mask
    region = render.mask & (measured > 0) & evidence
    return _Comparison(render.depth_m.astype(np.float64), region, int(np.count_nonzero(evidence & (measured > 0))))


def check_pose_with_depth(renderer: Renderer, obj: ObjectModel, T_cam_obj: np.ndarray, K: np.ndarray,
                          crop: QueryCrop, depth: DepthImage, icp_iterations: int = 0) -> DepthCheck:
    """The pose checked and corrected against the measured depth (module docstring). The crop's detection mask
    (None for box-only detections: the rendered silhouette) says which measured pixels are the object's."""
    T = np.asarray(T_cam_obj, dtype=np.float64)
    size = crop.rgb.shape[0]
    measured = warp_crop(depth.depth_m, crop.M_crop_img, size, nearest=True).astype(np.float64)
    band = max(BAND_MIN_M, BAND_DIAMETER_FRACTION * obj.diameter_m)
    first = _compare(renderer, obj, T, K, crop, measured, crop.mask)
    if first is None or int(first.region.sum()) < MIN_PIXELS:
        pixels = 0 if first is None else int(first.region.sum())
        return DepthCheck(T, pixels=pixels, failure=f"{pixels} pixels with both rendered and measured depth, "
                                                    f"need {MIN_PIXELS}")
    before = first.agreement(measured, band)
    current, comparison, shift = T, first, 0.0
    for _ in range(RAY_PASSES):  # each pass on a new render: the silhouette changes size as the object moves
        dz, _ = robust_median(comparison.residuals(measured), band)
        dz = float(np.clip(dz, -MAX_SHIFT_FRACTION * current[2, 3], MAX_SHIFT_FRACTION * current[2, 3]))
        current, shift = slide_along_ray(current, dz), shift + dz
        comparison = _compare(renderer, obj, current, K, crop, measured, crop.mask)
        if comparison is None or int(comparison.region.sum()) < MIN_PIXELS:
            return DepthCheck(T, pixels=int(first.region.sum()), agreement_before=before,
                              failure="the corrected pose leaves too few compared pixels")
        if abs(dz) < 0.5 * band:  # converged: a further pass would move it by noise
            break
    steps = 0
    if icp_iterations > 0:
        current, steps = _icp(current, comparison, measured, crop_camera(K, crop.M_crop_img),
                              crop.mask, band, icp_iterations)
        if steps:
            after_icp = _compare(renderer, obj, current, K, crop, measured, crop.mask)
            if after_icp is not None and int(after_icp.region.sum()) >= MIN_PIXELS:
                comparison = after_icp
    agreement = comparison.agreement(measured, band)
    if agreement < before:
        return DepthCheck(T, shift, int(first.region.sum()), before, before, 0, "the correction agrees less")
    return DepthCheck(current, shift, int(comparison.region.sum()), agreement, before, steps)


def _normals(points: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals (H, W, 3) of a point map (H, W, 3) facing the camera, and where they are defined (neighbours valid)."""
    n, ok = surface_normals(points, valid)
    n[ok] /= np.linalg.norm(n[ok], axis=1)[:, None]
    flip = (n * points).sum(axis=2) > 0
    n[flip] *= -1.0
    return n, ok


def _icp(T: np.ndarray, comparison: _Comparison, measured: np.ndarray, K_crop: np.ndarray,
         evidence: np.ndarray | None, band: float, iterations: int) -> tuple[np.ndarray, int]:
    """Point-to-plane ICP of the rendered surface onto the measured one (projective association in the crop);
    (the pose, steps applied). Stops early when too few pairs remain."""
    size = measured.shape[0]
    points = point_map(K_crop, comparison.rendered)
    normals, ok = _normals(points, comparison.rendered > 0)
    source = ok & comparison.region
    P, n = points[source], normals[source]
    facing = -(n * P).sum(axis=1) / np.linalg.norm(P, axis=1) >= MIN_NORMAL_COS
    P, n = P[facing], n[facing]
    delta = np.eye(4)
    steps = 0
    for _ in range(iterations):
        Pt = P @ delta[:3, :3].T + delta[:3, 3]
        nt = n @ delta[:3, :3].T
        uv = np.rint(project_points(K_crop, Pt)).astype(np.int64)
        inside = np.all((uv >= 0) & (uv < size), axis=1)
        uv = np.clip(uv, 0, size - 1)
        z = np.where(inside, measured[uv[:, 1], uv[:, 0]], 0.0)
        pair = inside & (z > 0) & (evidence[uv[:, 1], uv[:, 0]] if evidence is not None else True)
        if int(pair.sum()) < MIN_PIXELS:
            break
        Q = backproject_pixels(K_crop, uv[pair].astype(np.float64), z[pair])
        Pp, npair = Pt[pair], nt[pair]
        e = ((Pp - Q) * npair).sum(axis=1)
        _, keep = robust_median(e, band)
        keep &= np.abs(e) <= 2.0 * band
        if int(keep.sum()) < MIN_PIXELS:
            break
        centre = Pp[keep].mean(axis=0)
        J = np.hstack([np.cross(Pp[keep] - centre, npair[keep]), npair[keep]])
        A = J.T @ J
        A += ICP_DAMPING * np.trace(A) / 6.0 * np.eye(6)
        x = np.linalg.solve(A, -J.T @ e[keep])
        R = Rotation.from_rotvec(x[:3]).as_matrix()
        step = make_T(R, centre + x[3:] - R @ centre)  # the rotation is about the pairs' centroid
        delta = step @ delta
        steps += 1
    return delta @ T, steps


def choose_by_depth(renderer: Renderer, obj: ObjectModel, poses: list[np.ndarray], K: np.ndarray, crop: QueryCrop,
                    depth: DepthImage, icp_iterations: int = 0, margin: float = CHOICE_MARGIN) -> tuple[int, DepthCheck]:
    """(index, check) of the pose among `poses` (the current choice first) that the depth explains best, and its
    full check. Each pose is screened with one render (its agreement once shifted by its own robust median
    residual); another pose replaces the first only with a screened agreement at least `margin` higher
    (near-ties keep the current choice, e.g. a cube's faces, which depth cannot tell apart)."""
    size = crop.rgb.shape[0]
    measured = warp_crop(depth.depth_m, crop.M_crop_img, size, nearest=True).astype(np.float64)
    band = max(BAND_MIN_M, BAND_DIAMETER_FRACTION * obj.diameter_m)
    screened = []
    for T in poses if len(poses) > 1 else ():  # a single pose needs no screening
        comparison = _compare(renderer, obj, np.asarray(T, dtype=np.float64), K, crop, measured, crop.mask)
        if comparison is None or int(comparison.region.sum()) < MIN_PIXELS:
            screened.append(0.0)
            continue
        residuals = comparison.residuals(measured)
        dz, _ = robust_median(residuals, band)
        screened.append(float(np.count_nonzero(np.abs(residuals - dz) <= band)) / max(comparison.evidence_px, 1))
    best = int(np.argmax(screened)) if screened else 0
    if screened and screened[best] < screened[0] + margin:
        best = 0
    return best, check_pose_with_depth(renderer, obj, poses[best], K, crop, depth, icp_iterations)

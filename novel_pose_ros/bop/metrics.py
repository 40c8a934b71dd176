"""BOP pose-error functions, reimplemented from their definitions (docs/CONVENTIONS.md units).

Everything here is in metres and pixels: poses `T_cam_obj` are (4, 4) with t in metres,
model points are (N, 3) metres in the object frame, depth images are (H, W) float32 metres
with 0 = invalid, K is (3, 3) pixels. Millimetres exist only in the BOP files.

Definitions (Hodan et al., "BOP challenge 2020", and the BOP toolkit's docs):
- MSSD: min over symmetries S of max over vertices x of ‖T_est x − T_gt S x‖.
- MSPD: the same on the 2D projections through K, × 640 / image width.
- VSD: a per-pixel step cost on distance images inside the visible surfaces (bop19 mode).
- ADD / ADI: mean vertex distance / mean distance to the closest GT vertex.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.spatial import ConvexHull, QhullError, cKDTree

from novel_pose_ros.geometry.camera import validate_K
from novel_pose_ros.geometry.se3 import check_shape, rotation_from_axis_angle
from novel_pose_ros.types import ObjectModel, Symmetries

MAX_SYMMETRY_STEP_RAD = 0.01  # BOP: a continuous symmetry is sampled in ceil(π / step) rotations
VSD_DELTA_M = 0.015  # visibility tolerance δ (5 mm for ITODD)
VSD_TAUS = tuple(round(0.05 * k, 2) for k in range(1, 11))  # × diameter
MSPD_REFERENCE_WIDTH_PX = 640.0
BOP_RENDER_PIXEL_OFFSET_PX = 0.5  # see render_depth_m
# Memory bound for the (symmetries × points) blocks: number of float64 point coordinates per block.
CHUNK_ELEMENTS = 2_000_000


def symmetry_transforms(symmetries: Symmetries, max_step_rad: float = MAX_SYMMETRY_STEP_RAD) -> np.ndarray:
    """All symmetry transforms of an object, (S, 4, 4), metres, identity first.

    Discrete set D = {identity} ∪ symmetries.discrete. Each continuous axis (unit a through
    point o) is sampled at n = ceil(π / max_step_rad) angles θ_i = 2π i / n, i = 0 … n−1
    (θ_0 = 0 keeps the identity), as x -> R_i (x − o) + o. Continuous samples compose with
    the discrete ones as C ∘ D: S = C @ D, so S = (|D|) × n per axis (n = 315 for 0.01 rad).
    """
    discrete = [np.eye(4)] + [np.asarray(S, dtype=np.float64) for S in symmetries.discrete]
    continuous = []
    if len(symmetries.continuous_axes):
        n = int(math.ceil(math.pi / max_step_rad))
        for axis, offset in zip(symmetries.continuous_axes, symmetries.continuous_offsets_m):
            for i in range(n):
                C = np.eye(4)
                C[:3, :3] = rotation_from_axis_angle(axis, 2.0 * math.pi * i / n)
                C[:3, 3] = offset - C[:3, :3] @ offset
                continuous.append(C)
    if not continuous:
        return np.stack(discrete)
    return np.stack([C @ D for D in discrete for C in continuous])


@dataclass(frozen=True)
class ObjectGeometry:
    """What the pose-error functions need of one object, computed once: the object (VSD renders it), its
    vertices (MSPD), their convex hull (enough for MSSD) and its symmetry transforms (S, 4, 4)."""

    obj: ObjectModel
    points_m: np.ndarray
    hull_m: np.ndarray
    symmetries: np.ndarray

    @classmethod
    def of(cls, obj: ObjectModel, max_symmetry_step_rad: float = MAX_SYMMETRY_STEP_RAD) -> "ObjectGeometry":
        points = np.asarray(obj.mesh.vertices, dtype=np.float64)
        return cls(obj, points, hull_points(points), symmetry_transforms(obj.symmetries, max_symmetry_step_rad))


def hull_points(points_m: np.ndarray) -> np.ndarray:
    """The points on the convex hull of (N, 3) points (all of them when there is no 3D hull).

    max_x ‖A x + b‖ over a point set is reached on its convex hull (the norm of an affine
    map is convex), so MSSD needs only these points.
    """
    points = check_shape("points_m", points_m, (None, 3))
    return points[_hull_indices(points)]


def _hull_indices(points: np.ndarray) -> np.ndarray:
    if len(points) <= 64:
        return np.arange(len(points))
    try:
        return ConvexHull(points).vertices
    except QhullError:
        return np.arange(len(points))


def _chunk(count: int, points: int) -> int:
    return max(1, min(count, CHUNK_ELEMENTS // max(3 * points, 1)))


def _poses(T_est: np.ndarray, T_gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return check_shape("T_est", T_est, (4, 4)), check_shape("T_gt", T_gt, (4, 4))


def mssd(T_est: np.ndarray, T_gt: np.ndarray, points_m: np.ndarray, sym_transforms: np.ndarray) -> float:
    """Maximum Symmetry-aware Surface Distance, metres.

    T_est, T_gt: (4, 4) T_cam_obj. points_m: (N, 3) model vertices (passing `hull_points`
    gives the same value faster). sym_transforms: (S, 4, 4) from `symmetry_transforms`.
    """
    T_est, T_gt = _poses(T_est, T_gt)
    points = check_shape("points_m", points_m, (None, 3))
    syms = check_shape("sym_transforms", sym_transforms, (None, 4, 4))
    # T_est x − T_gt S x = A_s x + b_s with A_s = R_est − (T_gt S)_R and b_s = t_est − (T_gt S)_t.
    T_gt_sym = T_gt @ syms  # (S, 4, 4)
    A = T_est[:3, :3] - T_gt_sym[:, :3, :3]
    b = T_est[:3, 3] - T_gt_sym[:, :3, 3]
    best = np.inf
    step = _chunk(len(syms), len(points))
    for s in range(0, len(syms), step):
        diff = np.einsum("sij,nj->sni", A[s:s + step], points) + b[s:s + step, None, :]  # (s, N, 3)
        best = min(best, float(np.sqrt(np.einsum("sni,sni->sn", diff, diff).max(axis=1)).min()))
    return best


def _project(K: np.ndarray, points_cam: np.ndarray) -> np.ndarray:
    """(..., N, 3) camera points -> (..., N, 2) pixels; NaN for points at or behind the camera."""
    z = points_cam[..., 2:3]
    z = np.where(z > 0, z, np.nan)
    x, y = points_cam[..., 0:1] / z, points_cam[..., 1:2] / z
    u = K[0, 0] * x + K[0, 1] * y + K[0, 2]
    v = K[1, 1] * y + K[1, 2]
    return np.concatenate([u, v], axis=-1)


def _max_projection_sq(T_gt_sym: np.ndarray, points: np.ndarray, uv_est: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(S,) max over points of the squared pixel distance, inf where a point is behind the camera."""
    out = np.empty(len(T_gt_sym))
    step = _chunk(len(T_gt_sym), len(points))
    for s in range(0, len(T_gt_sym), step):
        block = T_gt_sym[s:s + step]
        cam = np.einsum("sij,nj->sni", block[:, :3, :3], points) + block[:, None, :3, 3]
        diff = _project(K, cam) - uv_est  # (s, N, 2)
        out[s:s + step] = np.einsum("sni,sni->sn", diff, diff).max(axis=1)  # NaN: a point behind the camera
    return np.where(np.isnan(out), np.inf, out)


def mspd(
    T_est: np.ndarray,
    T_gt: np.ndarray,
    points_m: np.ndarray,
    sym_transforms: np.ndarray,
    K: np.ndarray,
    image_width_px: int,
) -> float:
    """Maximum Symmetry-aware Projection Distance, pixels × 640 / image_width_px.

    T_est, T_gt: (4, 4); points_m: (N, 3) model vertices; sym_transforms: (S, 4, 4); K: (3, 3).
    A vertex at or behind the camera makes the projection undefined: the error is then inf.
    Exact, but fast for many symmetries: the maximum over a subset of the points (hull and
    a stride) bounds each symmetry's value from below, and only symmetries whose bound is
    below the best full value so far are evaluated on all points.
    """
    T_est, T_gt = _poses(T_est, T_gt)
    points = check_shape("points_m", points_m, (None, 3))
    syms = check_shape("sym_transforms", sym_transforms, (None, 4, 4))
    K = validate_K(K)
    if image_width_px <= 0:
        raise ValueError(f"image_width_px must be positive, got {image_width_px}")
    uv_est = _project(K, points @ T_est[:3, :3].T + T_est[:3, 3])  # (N, 2)
    T_gt_sym = T_gt @ syms
    if len(syms) > 1 and len(points) > 4096:
        subset = np.unique(np.concatenate([_hull_indices(points), np.arange(0, len(points), len(points) // 2048)]))
        lower = _max_projection_sq(T_gt_sym, points[subset], uv_est[subset], K)
    else:
        lower = np.zeros(len(syms))
    best = np.inf
    for s in np.argsort(lower, kind="stable"):
        if lower[s] >= best:
            break  # this and every later symmetry cannot beat `best`
        best = min(best, float(_max_projection_sq(T_gt_sym[s:s + 1], points, uv_est, K)[0]))
    return math.sqrt(best) * MSPD_REFERENCE_WIDTH_PX / float(image_width_px)


def add(T_est: np.ndarray, T_gt: np.ndarray, points_m: np.ndarray) -> float:
    """Average Distance of model points (ADD), metres. points_m: (N, 3)."""
    T_est, T_gt = _poses(T_est, T_gt)
    points = check_shape("points_m", points_m, (None, 3))
    diff = points @ (T_est[:3, :3] - T_gt[:3, :3]).T + (T_est[:3, 3] - T_gt[:3, 3])
    return float(np.linalg.norm(diff, axis=1).mean())


def adi(T_est: np.ndarray, T_gt: np.ndarray, points_m: np.ndarray) -> float:
    """Average distance to the closest GT point (ADI / ADD-S), metres. points_m: (N, 3)."""
    T_est, T_gt = _poses(T_est, T_gt)
    points = check_shape("points_m", points_m, (None, 3))
    posed_est = points @ T_est[:3, :3].T + T_est[:3, 3]
    posed_gt = points @ T_gt[:3, :3].T + T_gt[:3, 3]
    distances, _ = cKDTree(posed_est).query(posed_gt, k=1)
    return float(np.mean(distances))


def rotation_error_deg(R_est: np.ndarray, R_gt: np.ndarray) -> float:
    """Angle of R_est R_gt⁻¹ in degrees, [0, 180]. R_est, R_gt: (3, 3).

    The inverse, not the transpose: real annotations are not exactly orthonormal (LM-O
    object 8: |RᵀR − I| = 2e-3), and BOP's re uses the inverse; with Rᵀ the error of a
    5° perturbation of that GT reads 4.7°.
    """
    R = check_shape("R_est", R_est, (3, 3)) @ np.linalg.inv(check_shape("R_gt", R_gt, (3, 3)))
    cos = np.clip(0.5 * (np.trace(R) - 1.0), -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)))


def translation_error_m(t_est: np.ndarray, t_gt: np.ndarray) -> float:
    """‖t_est − t_gt‖, metres. t_est, t_gt: (3,)."""
    return float(np.linalg.norm(check_shape("t_est", np.ravel(t_est), (3,)) - check_shape("t_gt", np.ravel(t_gt), (3,))))


def distance_image(depth_m: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(H, W) depth (camera z) -> (H, W) float32 distance from the camera centre, metres.

    Pixel (u, v) has its centre at integer coordinates (docs/CONVENTIONS.md); 0 stays 0.
    """
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth_m: expected (H, W), got {depth.shape}")
    K = validate_K(K)
    height, width = depth.shape
    y = (np.arange(height, dtype=np.float64) - K[1, 2]) / K[1, 1]  # (H,)
    x = (np.arange(width, dtype=np.float64)[None, :] - K[0, 2] - K[0, 1] * y[:, None]) / K[0, 0]  # (H, W)
    return (depth * np.sqrt(x * x + (y * y)[:, None] + 1.0)).astype(np.float32)


def render_depth_m(
    renderer,
    obj: ObjectModel,
    T_cam_obj: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    pixel_offset_px: float = BOP_RENDER_PIXEL_OFFSET_PX,
) -> np.ndarray:
    """(H, W) float32 depth of `obj` alone at T_cam_obj, rendered by one of our renderers.

    pixel_offset_px: image pixel (u, v) shows the ray through (u + offset, v + offset).
    Our renderers are integer-centred (offset 0, docs/CONVENTIONS.md); the BOP toolkit's
    renderers, which produced the published VSD numbers, sample each pixel at its
    corner-origin centre (offset 0.5). The default reproduces the BOP toolkit exactly
    on ../data/bop_metric_oracle (test/bop/test_metrics.py); with 0 VSD differs by up to
    0.024 there (small objects, silhouette pixels).
    """
    K_render = validate_K(K).copy()
    K_render[0, 2] -= pixel_offset_px
    K_render[1, 2] -= pixel_offset_px
    return renderer.render([(obj, np.asarray(T_cam_obj, dtype=np.float64))], K_render, width, height).depth_m


def vsd(
    depth_est_m: np.ndarray,
    depth_gt_m: np.ndarray,
    depth_test_m: np.ndarray,
    K: np.ndarray,
    diameter_m: float,
    taus: Sequence[float] = VSD_TAUS,
    delta_m: float = VSD_DELTA_M,
) -> list[float]:
    """Visible Surface Discrepancy for each τ (× diameter), step cost, bop19 visibility.

    depth_est_m / depth_gt_m: (H, W) depth of the model rendered alone at the estimated /
    GT pose (`render_depth_m`); depth_test_m: (H, W) sensor depth; all metres, 0 = none.
    All three become distance images (from the camera centre). Visible GT surface:
    d_gt > 0 and (d_gt − d_test ≤ δ or d_test = 0); visible estimated surface: the same test
    for d_est, plus the pixels of the visible GT surface that d_est covers. Inside the
    intersection a pixel costs 1 when |d_gt − d_est| / diameter ≥ τ; every pixel of the
    union outside the intersection costs 1; e = cost / |union| (1 when the union is empty).
    Returns one error per τ, in the order of `taus`.
    """
    shape = np.shape(depth_test_m)
    for name, depth in (("depth_est_m", depth_est_m), ("depth_gt_m", depth_gt_m)):
        if np.shape(depth) != shape:
            raise ValueError(f"{name}: expected shape {shape} (the test depth), got {np.shape(depth)}")
    if not diameter_m > 0:
        raise ValueError(f"diameter_m must be positive, got {diameter_m}")
    dist_test = distance_image(depth_test_m, K)
    dist_gt = distance_image(depth_gt_m, K)
    dist_est = distance_image(depth_est_m, K)
    delta = np.float32(delta_m)
    visible_gt = (dist_gt > 0) & ((dist_gt - dist_test <= delta) | (dist_test == 0))
    visible_est = (dist_est > 0) & ((dist_est - dist_test <= delta) | (dist_test == 0))
    visible_est |= visible_gt & (dist_est > 0)
    inter = visible_gt & visible_est
    union_count = int(np.count_nonzero(visible_gt | visible_est))
    if union_count == 0:
        return [1.0] * len(taus)
    outside_count = union_count - int(np.count_nonzero(inter))
    relative = np.abs(dist_gt[inter].astype(np.float64) - dist_est[inter].astype(np.float64)) / float(diameter_m)
    return [float((np.count_nonzero(relative >= tau) + outside_count) / union_count) for tau in taus]

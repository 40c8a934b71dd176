"""Ground truth of a (query, template) pair in exactly the networks' conventions.

Pixel conventions (networks/picopose/flow_decoder.py, estimation/correspondences.py): the networks
work in continuous crop coordinates with the origin at the top-left corner of pixel (0, 0);
our crop transforms are integer-centred; `crop_pixels_to_cells` / `cells_to_crop_pixels` are the
bridge. Inputs: the template view (TemplateCrop), the query pose T_cam_obj in the query camera
K_q, the query crop transform M_q (image → integer-centred crop pixels) and the query's rendered
depth and instance labels.

GT affine (stage 2), template crop → query crop, corner convention:
  c_t = template's projected object origin + ½, c_q = the query's (M_q · K_q t_q) + ½;
  translation = (c_q − c_t) / 14 (patch units);
  scale s = (f_q · m_q / |t_q|) / (f_t · m_t / |t_t|): apparent size of the object per unit length in
      each crop (f = mean focal length, m = crop scale, |t| = distance to the object origin);
  θ = the in-plane angle of R_rel = (R_ray(t_q)ᵀ R_q)(R_ray(t_t)ᵀ R_t)ᵀ, the relative rotation after
      undoing each view's turn towards its object ray (R_ray: the smallest rotation taking the optical
      axis to the ray); θ = atan2(R_rel[1,0] − R_rel[0,1], R_rel[0,0] + R_rel[1,1]) (closest z-rotation);
  A = [s·R(θ) | c_q − s·R(θ)·c_t] (as `affine_from_prediction` builds it from a prediction).
This is the inverse of `affine_fallback_pose`: for a query seen along a template's viewing direction
(up to in-plane rotation and distance) the fallback of A reproduces the query pose exactly.

GT flow (stage 3) at level n ∈ {16, 32, 64}: the object point under template cell (row h, col w)
(the template bank's lifting) is projected into the query → target cell coordinates (x, y);
flow = target − (w, h). Valid where the template cell is on the object, the point is in front
of the query camera, visible (the query pixel nearest its projection shows this instance and its
rendered depth agrees with the point's depth within `tolerance_m`) and the target lies inside the
crop (0 ≤ x, y < n).

InfoNCE positives (stage 1): the valid level-16 cells; template patch h·16 + w matches the query
patch containing its target, floor(y)·16 + floor(x); one template patch per query patch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from novel_pose_ros.estimation.correspondences import crop_pixels_to_cells
from novel_pose_ros.geometry.camera import inplane_angle_rad, project_points
from novel_pose_ros.geometry.crop import transform_pixels
from novel_pose_ros.geometry.se3 import transform_points
from novel_pose_ros.networks.picopose.config import FLOW_SIZES, IMAGE_SIZE, PATCH_GRID, PATCH_PX
from novel_pose_ros.training.template_views import TemplateCrop


@dataclass(frozen=True)
class AffineTruth:
    """translation (2,) patch units; scale > 0; angle_rad; affine (2, 3) template → query crop, corner convention."""

    translation: np.ndarray
    scale: float
    angle_rad: float
    affine: np.ndarray

    @property
    def cos_sin(self) -> np.ndarray:
        return np.array([np.cos(self.angle_rad), np.sin(self.angle_rad)])


@dataclass(frozen=True)
class FlowTruth:
    """flow (2, n, n) in cells of the level; valid (n, n) bool."""

    flow: np.ndarray
    valid: np.ndarray


def _mean_focal(K: np.ndarray) -> float:
    return float(np.mean(np.diag(np.asarray(K))[:2]))


def origin_in_crop(T_cam_obj: np.ndarray, K: np.ndarray, M_crop_img: np.ndarray) -> np.ndarray:
    """Projected object origin in integer-centred crop pixels (2,)."""
    return transform_pixels(M_crop_img, project_points(K, np.asarray(T_cam_obj)[:3, 3][None]))[0]


def affine_truth(template: TemplateCrop, T_q: np.ndarray, K_q: np.ndarray, M_q: np.ndarray) -> AffineTruth:
    """The GT stage-2 affine (module docstring)."""
    T_t = template.T_cam_obj
    c_t = template.centre_crop_px + 0.5
    c_q = origin_in_crop(T_q, K_q, M_q) + 0.5
    size_q = _mean_focal(K_q) * M_q[0, 0] / np.linalg.norm(T_q[:3, 3])
    size_t = _mean_focal(template.K) * template.M_crop_img[0, 0] / np.linalg.norm(T_t[:3, 3])
    scale = float(size_q / size_t)
    angle = inplane_angle_rad(T_q, T_t)
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    affine = np.hstack([linear, (c_q - linear @ c_t)[:, None]])
    return AffineTruth((c_q - c_t) / PATCH_PX, scale, angle, affine)


def flow_truth(template: TemplateCrop, grid: int, T_q: np.ndarray, K_q: np.ndarray, M_q: np.ndarray,
               depth_m: np.ndarray, labels: np.ndarray, label: int, tolerance_m: float) -> FlowTruth:
    """GT flow and validity at one level (module docstring). depth_m, labels: the query image's (H, W)."""
    points = template.points_obj[grid].reshape(-1, 3).astype(np.float64)
    cam = transform_points(T_q, points)
    z = cam[:, 2]
    in_front = z > 1e-6
    uv = project_points(K_q, np.where(in_front[:, None], cam, [[0.0, 0.0, 1.0]]))
    target = crop_pixels_to_cells(transform_pixels(M_q, uv), grid, IMAGE_SIZE)
    h, w = depth_m.shape
    px = np.rint(uv).astype(np.int64)
    in_image = in_front & (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    px = np.clip(px, 0, [w - 1, h - 1])
    seen = labels[px[:, 1], px[:, 0]] == label
    visible = in_image & seen & (np.abs(depth_m[px[:, 1], px[:, 0]] - z) < tolerance_m)
    inside = np.all((target >= 0) & (target < grid), axis=1)
    valid = template.points_valid[grid].reshape(-1) & visible & inside
    cells = np.arange(grid, dtype=np.float64)
    cols, rows = np.meshgrid(cells, cells)
    flow = target.reshape(grid, grid, 2) - np.stack([cols, rows], axis=-1)
    flow = np.where(valid.reshape(grid, grid, 1), flow, 0.0)
    return FlowTruth(np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32), valid.reshape(grid, grid))


def all_flow_truths(template: TemplateCrop, T_q: np.ndarray, K_q: np.ndarray, M_q: np.ndarray, depth_m: np.ndarray,
                    labels: np.ndarray, label: int, tolerance_m: float) -> dict[int, FlowTruth]:
    return {n: flow_truth(template, n, T_q, K_q, M_q, depth_m, labels, label, tolerance_m) for n in FLOW_SIZES}


def infonce_positives(truth16: FlowTruth, rng: np.random.Generator, max_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """(template patch indices, query patch indices), (max_pairs,) int64 each, −1 padded (module docstring)."""
    if truth16.valid.shape != (PATCH_GRID, PATCH_GRID):
        raise ValueError(f"InfoNCE positives come from the {PATCH_GRID}² level, got {truth16.valid.shape}")
    rows, cols = np.nonzero(truth16.valid)
    target_x = cols + truth16.flow[0, rows, cols]
    target_y = rows + truth16.flow[1, rows, cols]
    query = (np.clip(np.floor(target_y), 0, PATCH_GRID - 1) * PATCH_GRID
             + np.clip(np.floor(target_x), 0, PATCH_GRID - 1)).astype(np.int64)
    template = (rows * PATCH_GRID + cols).astype(np.int64)
    order = rng.permutation(len(query))
    _, first = np.unique(query[order], return_index=True)
    chosen = rng.permutation(order[first])[:max_pairs]
    out_t = np.full(max_pairs, -1, np.int64)
    out_q = np.full(max_pairs, -1, np.int64)
    out_t[: len(chosen)], out_q[: len(chosen)] = template[chosen], query[chosen]
    return out_t, out_q

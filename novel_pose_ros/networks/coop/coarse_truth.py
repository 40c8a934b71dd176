"""Ground truth of the Co-op coarse network for one (query crop, template view) pair, in NumPy.

Direction: query → template (training/ground_truth.py computes the opposite flow, template → query).
Pixel conventions as estimation/correspondences.py: crop transforms M (2×3, image → crop) and
crop pixels are integer-centred; the network's cells use a corner origin, cells = (px + ½) / 14.

For every query patch (row i, col j; index i·16 + j):
  1. its centre, crop pixel (14j + 6.5, 14i + 6.5) (template_bank.grid_cell_centres), is mapped to the
     query image by M_q⁻¹; the nearest image pixel must show the instance (labels == label) with a
     valid depth (> 0), else "no match";
  2. the exact (sub-pixel) centre is lifted with that depth through K_q, moved to the object frame
     (T_q⁻¹) and into the template camera (T_t), projected with K_t and mapped by M_t into the
     template crop → p (integer-centred crop pixels), cell coordinates c = (p + ½) / 14;
  3. it is a match when the point is in front of the template camera, c lies in [0, 16)², the nearest
     template-crop pixel is on the template mask and the template depth there agrees with the point's
     template-camera depth within tolerance_m (else the point is self-occluded in the template);
  4. class = floor(c_y)·16 + floor(c_x), offset = c − floor(c) − ½ ∈ [−0.5, 0.5)² (x, y; patch units);
     unmatched patches get class NO_MATCH (256) and offset 0.
The network's correspondence for class k and offset U is then template crop pixel
((k mod 16) + ½ + U_x)·14 − ½, (k div 16 + ½ + U_y)·14 − ½) = p exactly (coarse_net.matches).

Inputs come straight from training/pairs.py: the scene's rendered depth and instance labels at full
image resolution, K_q, the query crop's M_crop_img, T_cam_obj; for the template the depth cropped like
its RGB (geometry.crop.warp_crop(view.depth_m, M_t, 224, nearest=True)), its crop mask, K, M_crop_img
and T_cam_obj. Tolerance: DataConfig.visibility_tolerance(diameter) (default max(3 mm, 1 % of the
diameter)), the visibility rule of every training ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from novel_pose_ros.estimation.correspondences import crop_pixels_to_cells
from novel_pose_ros.estimation.template_bank import grid_cell_centres
from novel_pose_ros.geometry.camera import backproject_pixels, project_points
from novel_pose_ros.geometry.crop import invert_affine, transform_pixels
from novel_pose_ros.geometry.se3 import check_shape, invert_T, transform_points
from novel_pose_ros.networks.coop.coarse_config import NO_MATCH
from novel_pose_ros.networks.picopose.config import IMAGE_SIZE, PATCH_GRID

MIN_DEPTH_M = 1e-6


@dataclass(frozen=True)
class CoarseTruth:
    """target_class (256,) int64: template patch index 0..255, or NO_MATCH = 256;
    target_offset (256, 2) float32 in [−0.5, 0.5)², patch units (x, y), 0 where no match;
    query_on_object (256,) bool: the query patch centre lies on the visible instance;
    template_xy_px (256, 2) float64: integer-centred template-crop pixel of the lifted point (NaN where the
    patch is off the object or behind the template camera; may lie outside the crop)."""

    target_class: np.ndarray
    target_offset: np.ndarray
    query_on_object: np.ndarray
    template_xy_px: np.ndarray

    @property
    def matched(self) -> np.ndarray:
        return self.target_class != NO_MATCH


def _nearest_pixels(uv: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest integer pixels (N, 2) clipped into the image, and whether the unclipped one was inside."""
    px = np.rint(np.nan_to_num(uv, nan=-1.0, posinf=-1.0, neginf=-1.0)).astype(np.int64)
    inside = (px[:, 0] >= 0) & (px[:, 0] < width) & (px[:, 1] >= 0) & (px[:, 1] < height)
    return np.clip(px, 0, [width - 1, height - 1]), inside


def coarse_truth(query_depth_m: np.ndarray, query_labels: np.ndarray, label: int, K_q: np.ndarray,
                 M_q: np.ndarray, T_q: np.ndarray, template_depth_crop_m: np.ndarray, template_mask: np.ndarray,
                 K_t: np.ndarray, M_t: np.ndarray, T_t: np.ndarray, tolerance_m: float) -> CoarseTruth:
    """Per-query-patch class and offset targets (module docstring).

    query_depth_m, query_labels: (H, W) full query image, metres (0 = none) and instance labels;
    label: this instance's label; K_q (3, 3); M_q (2, 3) image → query crop; T_q (4, 4) T_cam_obj of the query;
    template_depth_crop_m, template_mask: (224, 224) template crop depth (metres, 0 = none) and mask;
    K_t (3, 3); M_t (2, 3) template image → template crop; T_t (4, 4) T_cam_obj of the template view.
    """
    query_depth_m = check_shape("query_depth_m", query_depth_m, (None, None))
    query_labels = np.asarray(query_labels)
    if query_labels.shape != query_depth_m.shape:
        raise ValueError(f"query_labels: expected shape {query_depth_m.shape} (as query_depth_m), "
                         f"got {query_labels.shape}")
    size = (IMAGE_SIZE, IMAGE_SIZE)
    template_depth = check_shape("template_depth_crop_m", template_depth_crop_m, size)
    template_mask = np.asarray(template_mask, dtype=bool)
    if template_mask.shape != size:
        raise ValueError(f"template_mask: expected shape {size}, got {template_mask.shape}")
    if not tolerance_m > 0:
        raise ValueError(f"tolerance_m must be positive, got {tolerance_m}")
    T_t_q = check_shape("T_t", T_t, (4, 4)) @ invert_T(check_shape("T_q", T_q, (4, 4)))

    # 1. query patch centres on the visible instance
    centres = grid_cell_centres(PATCH_GRID, IMAGE_SIZE).reshape(-1, 2)
    uv_q = transform_pixels(invert_affine(M_q), centres)
    h, w = query_depth_m.shape
    px_q, inside_q = _nearest_pixels(uv_q, w, h)
    depth_q = query_depth_m[px_q[:, 1], px_q[:, 0]]
    on_object = inside_q & (query_labels[px_q[:, 1], px_q[:, 0]] == label) & (depth_q > 0)

    # 2. lift (exact centre, nearest depth) → template camera → template crop
    cam_t = transform_points(T_t_q, backproject_pixels(K_q, uv_q, np.where(on_object, depth_q, 1.0)))
    in_front = on_object & (cam_t[:, 2] > MIN_DEPTH_M)
    safe = np.where(in_front[:, None], cam_t, [[0.0, 0.0, 1.0]])
    template_xy = transform_pixels(M_t, project_points(K_t, safe))
    template_xy[~in_front] = np.nan
    cells = crop_pixels_to_cells(template_xy, PATCH_GRID, IMAGE_SIZE)

    # 3. inside the crop, on the template mask, not self-occluded
    with np.errstate(invalid="ignore"):
        in_crop = in_front & np.all((cells >= 0) & (cells < PATCH_GRID), axis=1)
    px_t, _ = _nearest_pixels(template_xy, IMAGE_SIZE, IMAGE_SIZE)
    depth_t = template_depth[px_t[:, 1], px_t[:, 0]]
    seen = template_mask[px_t[:, 1], px_t[:, 0]] & (depth_t > 0) & (np.abs(depth_t - cam_t[:, 2]) < tolerance_m)
    matched = in_crop & seen

    # 4. class and in-patch offset (unmatched patches read c = (½, ½): offset 0)
    cells = np.where(matched[:, None], cells, 0.5)
    whole = np.floor(cells)
    target_class = np.where(matched, whole[:, 1] * PATCH_GRID + whole[:, 0], NO_MATCH).astype(np.int64)
    offset = (cells - whole - 0.5).astype(np.float32)
    return CoarseTruth(target_class, offset, on_object, template_xy)

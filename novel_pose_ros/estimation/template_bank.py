"""Per-object template arrays the estimator needs, computed once at onboarding.

For every template view: the network crop (RGB + mask), the mask on the patch grid,
the projected object origin in crop pixels, and — for the correspondence step — the
3D object point seen at the centre of each cell of the dense grid (lifted from the
template depth with the template K and pose). Correspondence lifting then becomes
a gather.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from novel_pose_ros.geometry.camera import backproject_pixels, project_points
from novel_pose_ros.geometry.crop import invert_affine, transform_pixels, warp_crop
from novel_pose_ros.estimation.official_picopose import official_crop_matrix
from novel_pose_ros.geometry.se3 import invert_T, transform_points
from novel_pose_ros.templates.store import TemplateSet


def grid_cell_centres(grid_size: int, crop_size_px: int) -> np.ndarray:
    """(G, G, 2) integer-centred crop-pixel coordinates (x, y) of the centres of a G×G grid over the crop.

    In the network's corner convention cell k spans [k·c, (k+1)·c) with c = crop/G, so its
    centre is at (k + ½)·c, i.e. at crop pixel (k + ½)·c − ½.
    """
    cell = crop_size_px / grid_size
    centres = (np.arange(grid_size) + 0.5) * cell - 0.5
    xs, ys = np.meshgrid(centres, centres)
    return np.stack([xs, ys], axis=-1)


def patch_grid_mask(mask: np.ndarray, grid_size: int) -> np.ndarray:
    """(..., S, S) bool mask -> (..., G, G) float32, PicoPose's nearest resize: cell (i, j) reads the
    mask at pixel (i·S/G, j·S/G), the top-left pixel of the cell (the trained networks expect this)."""
    size = mask.shape[-1]
    if mask.shape[-2] != size or size % grid_size:
        raise ValueError(f"mask: expected square with side divisible by {grid_size}, got {mask.shape}")
    step = size // grid_size
    return np.asarray(mask[..., ::step, ::step], dtype=np.float32)


@dataclass(frozen=True)
class TemplateBank:
    """Arrays of one object's N template views (crop size S, patch grid P, dense grid G).

    rgb: (N, S, S, 3) uint8 crops; mask: (N, S, S) bool; patch_mask: (N, P, P) float32 (`patch_grid_mask`);
    centre_crop_px: (N, 2) projected object origin in crop pixels;
    points_obj: (N, G, G, 3) object-frame point at each dense-grid cell centre (metres);
    points_valid: (N, G, G) bool (cell centre on the object); T_cam_obj: (N, 4, 4); K: (3, 3);
    M_crop_img: (N, 2, 3); key: the template set's cache key;
    official_points_obj: (N, G, G, 3) the official code's template point per cell (`official_point_grid`),
    for `picopose_mode: official`.
    """

    object_name: str
    key: str
    rgb: np.ndarray
    mask: np.ndarray
    patch_mask: np.ndarray
    centre_crop_px: np.ndarray
    points_obj: np.ndarray
    points_valid: np.ndarray
    T_cam_obj: np.ndarray
    K: np.ndarray
    M_crop_img: np.ndarray
    official_points_obj: np.ndarray | None = None  # None in training's one-view banks (never official mode)

    def __len__(self) -> int:
        return len(self.rgb)


def official_point_grid(depth_m: np.ndarray, K: np.ndarray, T_cam_obj: np.ndarray, M_crop_img: np.ndarray,
                        crop_size_px: int, grid: int) -> np.ndarray:
    """(G, G, 3) object-frame points as the official code makes them: the depth of the crop window
    resized to G×G by cv2's nearest rule (cell w reads window pixel floor(w·side/G)), back-projected at
    the integer pixel, with no validity test: a pixel without depth gives the camera centre."""
    M = official_crop_matrix(M_crop_img)  # x -> (x - x1)·s: the window's corner and side read off it
    s = M[0, 0]
    x1, y1 = int(round(-M[0, 2] / s)), int(round(-M[1, 2] / s))
    side = int(round(crop_size_px / s))
    offsets = np.floor(np.arange(grid) * side / grid).astype(np.int64)
    xs, ys = np.meshgrid(x1 + offsets, y1 + offsets)
    h, w = depth_m.shape
    inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    depth = np.where(inside, depth_m[np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)], 0.0)
    pixels = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float64)
    points_cam = backproject_pixels(K, pixels, depth.reshape(-1))
    return transform_points(invert_T(T_cam_obj), points_cam).reshape(grid, grid, 3)


def build_template_bank(templates: TemplateSet, patch_grid: int = 16, dense_grid: int = 64) -> TemplateBank:
    """Crop every view and lift the dense-grid cell centres to object points."""
    size = templates.crop_size_px
    centres = grid_cell_centres(dense_grid, size).reshape(-1, 2)
    rgb, mask, patch_mask, centre_px, points, valid, official = [], [], [], [], [], [], []
    for view in templates.views:
        rgb.append(warp_crop(view.rgb, view.M_crop_img, size))
        crop_mask = warp_crop(view.mask, view.M_crop_img, size, nearest=True)
        mask.append(crop_mask)
        patch_mask.append(patch_grid_mask(crop_mask, patch_grid))
        origin_img = project_points(templates.K, view.T_cam_obj[:3, 3][None])
        centre_px.append(transform_pixels(view.M_crop_img, origin_img)[0])
        # nearest template pixel under each cell centre: its depth lifts to a surface point
        pixels = np.rint(transform_pixels(invert_affine(view.M_crop_img), centres))
        h, w = view.depth_m.shape
        inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < w) & (pixels[:, 1] >= 0) & (pixels[:, 1] < h)
        px = np.clip(pixels.astype(np.int64), 0, [w - 1, h - 1])
        depth = np.where(inside, view.depth_m[px[:, 1], px[:, 0]], 0.0)
        cell_valid = depth > 0
        points_cam = backproject_pixels(templates.K, px.astype(np.float64), depth)
        points.append(transform_points(invert_T(view.T_cam_obj), points_cam).reshape(dense_grid, dense_grid, 3))
        valid.append(cell_valid.reshape(dense_grid, dense_grid))
        official.append(official_point_grid(view.depth_m, templates.K, view.T_cam_obj, view.M_crop_img, size, dense_grid))
    return TemplateBank(
        object_name=templates.object_name,
        key=templates.key,
        rgb=np.stack(rgb),
        mask=np.stack(mask),
        patch_mask=np.stack(patch_mask),
        centre_crop_px=np.stack(centre_px),
        points_obj=np.stack(points).astype(np.float32),
        points_valid=np.stack(valid),
        T_cam_obj=templates.T_cam_obj,
        K=templates.K,
        M_crop_img=np.stack([v.M_crop_img for v in templates.views]),
        official_points_obj=np.stack(official).astype(np.float32),
    )

"""Where the Co-op refiner looks, and how its 64×64 grid maps to crop pixels and object points.

Window: a square around the object's projected bounding box at the current pose, enlarged by
`margin` on each side (the pose may be off), not moved inside the image: a window past the
border reads zeros there. Query and render use the same window, so with the crop camera
K_crop = [M_crop_img; 0 0 1] · K (M a scale + shift) the pose T_cam_obj is unchanged: the render
is drawn straight into the crop and the LM-PnP runs with K_crop on crop pixels.

Grid: cell (row h, col w) of the 64×64 grid (4-px cells of the 256 crop) is represented by crop
pixel (4w + 2, 4h + 2), next to the cell centre 4w + 1.5, so the rendered depth is read at a
pixel instead of being interpolated across object edges. Cell units as in the flow decoder
(correspondences.crop_pixels_to_cells): crop pixel x (integer-centred) ↦ (x + ½) / 4, so that
pixel is cell coordinate w + 0.625.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from novel_pose_ros.estimation.correspondences import cells_to_crop_pixels, crop_pixels_to_cells
from novel_pose_ros.geometry.camera import backproject_pixels, project_points
from novel_pose_ros.geometry.crop import SquareBox, crop_transform, warp_crop
from novel_pose_ros.geometry.se3 import check_shape, invert_T, transform_points
from novel_pose_ros.networks.coop.refiner_net import CELL_PX, REFINER_CROP, REFINER_GRID
from novel_pose_ros.render import Renderer, RenderResult
from novel_pose_ros.templates import TemplateSettings
from novel_pose_ros.types import ObjectModel

MIN_WINDOW_PX = 16


def box_corners(extents_min: np.ndarray, extents_max: np.ndarray) -> np.ndarray:
    """(8, 3) corners of an axis-aligned box."""
    lo, hi = np.asarray(extents_min, float), np.asarray(extents_max, float)
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def refiner_window(T_cam_obj: np.ndarray, K: np.ndarray, corners_obj: np.ndarray, margin: float = 0.2) -> SquareBox:
    """The square window around the projected box corners (8, 3) at T_cam_obj, each side enlarged by
    `margin` × its size. Raises ValueError when the object is behind the camera."""
    corners_cam = transform_points(T_cam_obj, check_shape("corners_obj", corners_obj, (None, 3)))
    if np.any(corners_cam[:, 2] <= 1e-3):
        raise ValueError(f"pose puts the object behind or at the camera (z = {corners_cam[:, 2].min():.3f} m)")
    uv = project_points(K, corners_cam)
    if not np.all(np.isfinite(uv)):
        raise ValueError("pose projects the object to non-finite pixels")
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    side = max(float((hi - lo).max()) * (1.0 + 2.0 * margin), MIN_WINDOW_PX)
    centre = (lo + hi) / 2.0
    return SquareBox(x1=int(round(centre[0] - side / 2.0)), y1=int(round(centre[1] - side / 2.0)),
                     side=int(round(side)))


def window_transform(box: SquareBox) -> np.ndarray:
    """2×3 M_crop_img of the 256 refiner crop of `box` (geometry/crop.py's half-pixel rule)."""
    return crop_transform(box, REFINER_CROP)


def crop_camera(K: np.ndarray, M_crop_img: np.ndarray) -> np.ndarray:
    """Intrinsics of the crop: pixels of the crop = M · (pixels of K)."""
    M = check_shape("M_crop_img", M_crop_img, (2, 3))
    return np.vstack([M, [0.0, 0.0, 1.0]]) @ check_shape("K", K, (3, 3))


def grid_pixels() -> np.ndarray:
    """(64, 64, 2) crop pixel (x, y) representing each grid cell (module docstring)."""
    steps = np.arange(REFINER_GRID, dtype=np.float64) * CELL_PX + CELL_PX // 2
    xs, ys = np.meshgrid(steps, steps)
    return np.stack([xs, ys], axis=-1)


def identity_flow() -> np.ndarray:
    """(2, 64, 64) flow that keeps every grid pixel where it is."""
    cells = crop_pixels_to_cells(grid_pixels(), REFINER_GRID, REFINER_CROP)
    grid = np.stack(np.meshgrid(np.arange(REFINER_GRID), np.arange(REFINER_GRID)), axis=-1)
    return (cells - grid).transpose(2, 0, 1)


def flow_to_pixels(flow: torch.Tensor) -> torch.Tensor:
    """[B, 2, 64, 64] decoder flow → [B, 64, 64, 2] target crop pixels of the grid cells (differentiable;
    the run-time stage and training share it)."""
    if flow.dim() != 4 or tuple(flow.shape[1:]) != (2, REFINER_GRID, REFINER_GRID):
        raise ValueError(f"flow: expected shape (B, 2, {REFINER_GRID}, {REFINER_GRID}), got {tuple(flow.shape)}")
    cells = torch.arange(REFINER_GRID, dtype=flow.dtype, device=flow.device)
    grid = torch.stack(torch.meshgrid(cells, cells, indexing="xy"), dim=-1)  # [64, 64, 2] (w, h)
    return cells_to_crop_pixels(grid + flow.permute(0, 2, 3, 1), REFINER_GRID, REFINER_CROP)


def lift_grid(depth_crop: np.ndarray, K_crop: np.ndarray, T_cam_obj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object-frame points (64, 64, 3) of the grid pixels on the rendered depth (256, 256) and their
    validity (64, 64) (depth > 0)."""
    depth = check_shape("depth_crop", depth_crop, (REFINER_CROP, REFINER_CROP))
    pixels = grid_pixels().reshape(-1, 2)
    z = depth[pixels[:, 1].astype(int), pixels[:, 0].astype(int)].astype(np.float64)
    valid = z > 0
    points_cam = backproject_pixels(K_crop, pixels, z)
    points_obj = transform_points(invert_T(T_cam_obj), points_cam)
    points_obj[~valid] = 0.0
    return points_obj.reshape(REFINER_GRID, REFINER_GRID, 3), valid.reshape(REFINER_GRID, REFINER_GRID)


def render_for_refiner(renderer: Renderer, obj: ObjectModel, T_cam_obj: np.ndarray, K_crop: np.ndarray) -> RenderResult:
    """The object alone at T_cam_obj drawn straight into the 256 window (crop camera K_crop), lit as its
    templates are (ambient only; shaded for geometry-only meshes): one function for training and run time."""
    lighting = TemplateSettings().lighting_for(obj)
    return renderer.render([(obj, T_cam_obj)], K_crop, REFINER_CROP, REFINER_CROP, lighting)


@dataclass(frozen=True)
class WindowView:
    """Query and render through the window around the object at T_cam_obj: query (256, 256, 3) uint8, the
    render (RenderResult, 256²), the crop camera K_crop and the window's M_crop_img (2, 3)."""

    query: np.ndarray
    render: RenderResult
    K_crop: np.ndarray
    M_crop_img: np.ndarray
    T_cam_obj: np.ndarray


def window_view(renderer: Renderer, image: np.ndarray, K: np.ndarray, obj: ObjectModel, T_cam_obj: np.ndarray,
                margin: float = 0.2) -> WindowView:
    """The refiner's (and selector's) inputs at one pose: window (`refiner_window`, ValueError when the object is
    behind the camera), query crop of `image` through it, render of `obj` drawn straight into it."""
    box = refiner_window(T_cam_obj, K, box_corners(*obj.mesh.bounds), margin)
    M = window_transform(box)
    K_crop = crop_camera(K, M)
    render = render_for_refiner(renderer, obj, T_cam_obj, K_crop)
    return WindowView(warp_crop(image, M, REFINER_CROP), render, K_crop, M, np.asarray(T_cam_obj, dtype=np.float64))

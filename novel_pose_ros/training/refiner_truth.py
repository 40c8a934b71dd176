"""Ground truth of a Co-op refiner pair: the window at the noisy pose, the render, the GT flow.

Given a training image (training/pairs.py SceneImage), one of its instances (index) with its GT
pose T_gt and a noisy pose T_cur, everything is taken as the estimator takes it at run time
(estimation/refiner_stage.py): the window around the object's mesh AABB projected at T_cur
(`refiner_window`), its crop transform M and crop camera K_crop, the render of the object alone at
T_cur drawn straight into the crop (`render_for_refiner`), and the query crop of the scene through
the same window (rgb bilinear, depth and labels nearest).

GT on the 64×64 grid (conventions of estimation/refiner_geometry.py): the grid pixels are lifted
with the rendered depth at T_cur (`lift_grid`) to object points; each point is projected with
T_gt through K_crop → target crop pixel → target cell (`crop_pixels_to_cells`); flow_gt = target cell −
(w, h), the decoder's convention (target = (w, h) + flow). A cell is visible when its render point
exists, lies in front of the camera at T_gt, its target cell is inside the grid ([0, 64)²), and the
query crop pixel nearest to the target shows this instance with a scene depth within the tolerance
(`DataConfig.visibility_tolerance` of the object's diameter) of the point's depth at T_gt. flow_gt is 0 where
not visible. With T_cur == T_gt the flow is `identity_flow()` on every visible cell.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from novel_pose_ros.estimation.correspondences import crop_pixels_to_cells
from novel_pose_ros.estimation.refiner_geometry import (
    box_corners,
    crop_camera,
    lift_grid,
    refiner_window,
    render_for_refiner,
    window_transform,
)
from novel_pose_ros.geometry.camera import project_points
from novel_pose_ros.geometry.crop import SquareBox, warp_crop
from novel_pose_ros.geometry.se3 import check_shape, transform_points
from novel_pose_ros.networks.coop.refiner_net import REFINER_CROP, REFINER_GRID
from novel_pose_ros.render import Renderer
from novel_pose_ros.training.config import DataConfig
from novel_pose_ros.types import ObjectModel


@dataclass(frozen=True)
class RefinerTruth:
    """One refiner pair before augmentation (crop = the 256×256 window at T_cur).

    box: the window in the image; M_crop_img (2, 3) image → crop pixels; K_crop (3, 3);
    query_rgb (256, 256, 3) uint8, query_depth_m (256, 256) float32, query_labels (256, 256) int32
    (i + 1 = instance i): the scene through the window; render_rgb (256, 256, 3) uint8,
    render_depth_m (256, 256) float32: the object alone at T_cur;
    points_obj (64, 64, 3) float64 object frame (m), points_valid (64, 64) bool: the lifted grid;
    target_px (64, 64, 2) float64 crop pixels of the points at T_gt (0 where not in front);
    flow_gt (2, 64, 64) float32 cells, visible (64, 64) bool (module docstring).
    """

    box: SquareBox
    M_crop_img: np.ndarray
    K_crop: np.ndarray
    query_rgb: np.ndarray
    query_depth_m: np.ndarray
    query_labels: np.ndarray
    render_rgb: np.ndarray
    render_depth_m: np.ndarray
    points_obj: np.ndarray
    points_valid: np.ndarray
    target_px: np.ndarray
    flow_gt: np.ndarray
    visible: np.ndarray

    @property
    def render_mask(self) -> np.ndarray:
        return self.render_depth_m > 0


def refiner_truth(image, index: int, T_gt: np.ndarray, T_cur: np.ndarray, renderer: Renderer,
                  render_obj: ObjectModel | None = None, margin: float = 0.2,
                  tolerance_m: float | None = None) -> RefinerTruth:
    """The refiner GT of instance `index` of `image` (a SceneImage) at the noisy pose T_cur.

    render_obj: what is rendered (default: the instance as it was drawn in the scene; e.g. its grey
    geometry-only version to mimic a mesh without colours). tolerance_m: depth agreement for visibility
    (None: the default DataConfig's for this object's diameter). Raises ValueError when T_cur puts the
    object behind the camera (`refiner_window`)."""
    shown, base, _ = image.instances[index]
    T_gt = check_shape("T_gt", np.asarray(T_gt, dtype=np.float64), (4, 4))
    T_cur = check_shape("T_cur", np.asarray(T_cur, dtype=np.float64), (4, 4))
    box = refiner_window(T_cur, image.K, box_corners(*base.mesh.bounds), margin)
    M = window_transform(box)
    K_crop = crop_camera(image.K, M)
    render = render_for_refiner(renderer, render_obj if render_obj is not None else shown, T_cur, K_crop)
    query_rgb = warp_crop(image.rgb, M, REFINER_CROP)
    query_depth = warp_crop(np.asarray(image.depth_m, dtype=np.float32), M, REFINER_CROP, nearest=True)
    # labels are small integers: warp them as float32 (exact), nearest
    query_labels = np.rint(warp_crop(image.labels.astype(np.float32), M, REFINER_CROP, nearest=True)).astype(np.int32)
    points, points_valid = lift_grid(render.depth_m, K_crop, T_cur)

    cam = transform_points(T_gt, points.reshape(-1, 3))
    z = cam[:, 2]
    in_front = points_valid.reshape(-1) & (z > 1e-6)
    target_px = np.zeros((z.size, 2))
    target_px[in_front] = project_points(K_crop, cam[in_front])
    target_cells = crop_pixels_to_cells(target_px, REFINER_GRID, REFINER_CROP)
    inside = in_front & np.all((target_cells >= 0) & (target_cells < REFINER_GRID), axis=1)
    nearest = np.clip(np.rint(target_px).astype(np.int64), 0, REFINER_CROP - 1)
    seen_depth = query_depth[nearest[:, 1], nearest[:, 0]].astype(np.float64)
    seen_label = query_labels[nearest[:, 1], nearest[:, 0]]
    tolerance = DataConfig().visibility_tolerance(base.diameter_m) if tolerance_m is None else tolerance_m
    visible = inside & (seen_label == index + 1) & (np.abs(seen_depth - z) <= tolerance)

    grid = np.stack(np.meshgrid(np.arange(REFINER_GRID), np.arange(REFINER_GRID)), axis=-1).reshape(-1, 2)
    flow = np.where(visible[:, None], target_cells - grid, 0.0)
    shape = (REFINER_GRID, REFINER_GRID)
    return RefinerTruth(
        box=box, M_crop_img=M, K_crop=K_crop, query_rgb=query_rgb, query_depth_m=query_depth,
        query_labels=query_labels, render_rgb=render.rgb, render_depth_m=render.depth_m, points_obj=points,
        points_valid=points_valid, target_px=target_px.reshape(*shape, 2),
        flow_gt=np.ascontiguousarray(flow.reshape(*shape, 2).transpose(2, 0, 1), dtype=np.float32),
        visible=visible.reshape(shape))


"""From dense matches to poses: 2D–3D correspondences, PnP per hypothesis, and the affine fallback.

The network speaks PicoPose's pixel convention: continuous crop coordinates with the
origin at the top-left corner of pixel (0, 0), so pixel (x, y) has its centre at
(x + ½, y + ½), and a grid of side G has cells of c = 224 / G pixels with cell k spanning
[k, k + 1) in cell units. Our crop transforms are integer-centred (docs/CONVENTIONS.md):
the conversions below are the only place the ½ appears.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from novel_pose_ros.estimation.template_bank import TemplateBank
from novel_pose_ros.geometry.crop import invert_affine, transform_pixels
from novel_pose_ros.geometry.pnp import PnPResult, solve_pnp_ransac
from novel_pose_ros.geometry.se3 import check_shape, make_T


@dataclass(frozen=True)
class Correspondences:
    """points_obj: (M, 3) metres in the object frame; pixels: (M, 2) full-image query pixels."""

    points_obj: np.ndarray
    pixels: np.ndarray


def cells_to_crop_pixels(cells, grid_size: int, crop_size_px: int):
    """Integer-centred crop pixels of continuous cell coordinates (network convention). NumPy input gives
    float64; a torch tensor stays a tensor of its dtype (differentiable: the Co-op refiner's training)."""
    if not hasattr(cells, "requires_grad"):
        cells = np.asarray(cells, dtype=np.float64)
    return cells * (crop_size_px / grid_size) - 0.5


def crop_pixels_to_cells(crop_xy: np.ndarray, grid_size: int, crop_size_px: int) -> np.ndarray:
    """Inverse of `cells_to_crop_pixels`."""
    return (np.asarray(crop_xy, dtype=np.float64) + 0.5) / (crop_size_px / grid_size)


def targets_from_flow(flow: np.ndarray) -> np.ndarray:
    """(2, G, G) flow of the template cells -> (G, G, 2) matched query cell coordinates (x, y).

    The flow of template cell (row h, col w) is target − (w, h) (networks/picopose/flow_decoder.py).
    """
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[0] != 2 or flow.shape[1] != flow.shape[2]:
        raise ValueError(f"flow: expected shape (2, G, G), got {flow.shape}")
    cells = np.arange(flow.shape[1], dtype=np.float64)
    xs, ys = np.meshgrid(cells, cells)
    return np.stack([xs + flow[0], ys + flow[1]], axis=-1)


def dense_correspondences(
    target_cells: np.ndarray,
    certainty: np.ndarray,
    bank: TemplateBank,
    view_index: int,
    M_query_crop_img: np.ndarray,
    certainty_threshold: float = 0.5,
) -> Correspondences:
    """Keep template cells that are on the object, certain (> threshold) and whose target lies strictly
    inside the query grid, as PicoPose does; map targets to full-image pixels and take the template's
    3D points.

    target_cells: (G, G, 2) matched query cell coordinates (`targets_from_flow`); certainty: (G, G) in [0, 1].
    Targets are read with their sub-cell part (PicoPose rounds them to the cell centre), since the flow
    is regressed continuously.
    """
    grid = bank.points_obj.shape[1]
    target = check_shape("target_cells", target_cells, (grid, grid, 2))
    certainty = check_shape("certainty", certainty, (grid, grid))
    inside = np.all((target > 0) & (target < grid - 1), axis=-1)
    keep = (certainty > certainty_threshold) & bank.points_valid[view_index] & inside
    crop_px = cells_to_crop_pixels(target[keep], grid, bank.rgb.shape[1])
    pixels = transform_pixels(invert_affine(M_query_crop_img), crop_px)
    return Correspondences(points_obj=bank.points_obj[view_index][keep].astype(np.float64), pixels=pixels)


def affine_to_pixel_centres(A_corner: np.ndarray) -> np.ndarray:
    """A 2×3 affine between crops in the network's corner convention, re-expressed for integer-centred
    pixels: A'(x) = A(x + ½) − ½."""
    A = check_shape("A_corner", A_corner, (2, 3)).copy()
    A[:, 2] += A[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return A


def pose_from_correspondences(
    correspondences: Correspondences, K: np.ndarray, reprojection_error_px: float = 2.0, iterations: int = 150
) -> PnPResult:
    """EPnP + RANSAC with PicoPose's defaults (2 px, 150 iterations)."""
    return solve_pnp_ransac(correspondences.points_obj, correspondences.pixels, K, reprojection_error_px, iterations)


def affine_fallback_pose(
    A_query_template: np.ndarray,
    bank: TemplateBank,
    view_index: int,
    M_query_crop_img: np.ndarray,
    K_query: np.ndarray,
) -> np.ndarray:
    """T_cam_obj implied by a template view and a 2D similarity A between the crops (integer-centred
    pixels, `affine_to_pixel_centres`).

    The template sees the object origin on its optical axis at distance d. The similarity
    A (template crop -> query crop) composed with both crop transforms maps the template
    image to the query image: the origin's image moves to c_q, the apparent size changes by
    the similarity's scale s (so the distance becomes d · (f_q / f_t) / s) and the image rotates
    by θ (a rotation of the camera frame about its z axis). Finally the pose is turned so that
    the template's viewing direction follows the query ray through c_q, the object sitting on
    that ray at the new distance.
    """
    to_3x3 = lambda M: np.vstack([M, [0.0, 0.0, 1.0]])  # noqa: E731
    H = np.linalg.inv(to_3x3(M_query_crop_img)) @ to_3x3(A_query_template) @ to_3x3(bank.M_crop_img[view_index])
    linear = H[:2, :2]
    scale = float(np.sqrt(abs(np.linalg.det(linear))))
    theta = float(np.arctan2(linear[1, 0], linear[0, 0]))
    T_template = bank.T_cam_obj[view_index]
    origin_template_px = (bank.K @ T_template[:3, 3])[:2] / T_template[2, 3]
    origin_query_px = H[:2, :2] @ origin_template_px + H[:2, 2]
    focal_ratio = np.mean(np.diag(K_query)[:2]) / np.mean(np.diag(bank.K)[:2])
    distance = T_template[2, 3] * focal_ratio / scale
    ray = np.linalg.solve(K_query, np.append(origin_query_px, 1.0))
    ray /= np.linalg.norm(ray)
    R_inplane = Rotation.from_rotvec([0.0, 0.0, theta]).as_matrix()
    R_ray = _rotation_between(np.array([0.0, 0.0, 1.0]), ray)
    return make_T(R_ray @ R_inplane @ T_template[:3, :3], ray * distance)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking unit vector a to unit vector b."""
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis)
    cos = float(np.dot(a, b))
    if sin < 1e-12:
        return np.eye(3)
    return Rotation.from_rotvec(axis / sin * np.arctan2(sin, cos)).as_matrix()

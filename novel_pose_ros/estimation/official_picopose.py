"""`picopose_mode: official`: the official PicoPose code's rules where our estimator departs from them.

The official code (foollh/PicoPose @ 543f8fe; docs/OFFICIAL_PICOPOSE.md lists each departure and its
measured effect) differs from our default (`ours`) in five places, reproduced here:

1. stage 1 (`utils/matching.matching_templates`): every template patch competes (object or not) and
   a query patch counts only where neither it nor the same-index template patch has its best match at
   patch 0 (the official "sim = 0" filter, which pairs query patch j with template patch j);
2. template features in float32 (ours caches them as float16): estimation/template_features.py;
3. template centre `tem_M · K · t / t_z` with the official crop matrix (no half-pixel terms);
4. the stage-2 scale is used as predicted (ours clips it to [0.1, 10]);
5. 2D-3D correspondences (`compute_stage3_correspondences` + `pose_recovery_ransac_pnp`): the target
   cell is truncated to an integer, its 2D point is the official cell centre through the inverse
   official crop matrix, the 3D point is the template point cloud cell (nearest resize, cv2's floor
   sampling) with no validity filter (a cell without depth gives the camera centre), in the official
   (w h) order; and when PnP fails, the hypothesis' pose is `pose_recovery_2d_prediction`'s.

Official crop matrices are `diag(s, s, 1) @ [[1, 0, -x1], [0, 1, -y1]]` (continuous coordinates, no
half-pixel terms); ours are integer-centred (geometry/crop.py). The two differ by a constant shift,
so the official one is derived from ours (`official_crop_matrix`).
"""
from __future__ import annotations

import numpy as np

from novel_pose_ros.geometry.camera import project_points
from novel_pose_ros.geometry.se3 import check_shape

PATCH_PX = 14.0  # the official stage-2 translation unit (trans_scale)
# The departures, by name: `picopose_mode: official` applies all of them; EstimatorConfig.official_rules
# applies single ones on top of ours (to measure each: docs/OFFICIAL_PICOPOSE.md).
OFFICIAL_RULES = ("stage1", "float32_features", "template_centre", "no_scale_clip", "correspondences", "fallback_pose")


def official_crop_matrix(M_crop_img: np.ndarray) -> np.ndarray:
    """(…, 2, 3) our integer-centred crop transform -> the official one of the same window: ours maps x to
    (x − x1 + ½)·s − ½, the official one to (x − x1)·s, so its offset is ours minus (s − 1)/2."""
    M = np.array(M_crop_img, dtype=np.float64, copy=True)
    if M.shape[-2:] != (2, 3):
        raise ValueError(f"M_crop_img: expected (..., 2, 3), got {M.shape}")
    M[..., 0, 2] -= 0.5 * M[..., 0, 0] - 0.5
    M[..., 1, 2] -= 0.5 * M[..., 1, 1] - 0.5
    return M


def integer_centred_crop_matrix(M_official: np.ndarray) -> np.ndarray:
    """Inverse of `official_crop_matrix` (e.g. for an official `tem_M` / `query_M`)."""
    M = np.array(M_official, dtype=np.float64, copy=True)[..., :2, :]
    M[..., 0, 2] += 0.5 * M[..., 0, 0] - 0.5
    M[..., 1, 2] += 0.5 * M[..., 1, 1] - 0.5
    return M


def official_stage1_scores(query_unit: np.ndarray, query_patch_mask: np.ndarray,
                           template_units: np.ndarray) -> np.ndarray:
    """(N,) stage-1 scores of `matching_templates`: query_unit (256, C) and template_units (N, 256, C)
    unit patch vectors (row-major patches), query_patch_mask (256,) 0/1 (nearest resize of the mask)."""
    sim = np.einsum("tc,nsc->nts", query_unit, template_units) * query_patch_mask[None, :, None]
    best_template_patch = sim.argmax(axis=2)  # (N, t)
    best_query_patch = sim.argmax(axis=1)  # (N, s)
    counted = query_patch_mask[None, :] * (best_query_patch != 0) * (best_template_patch != 0)
    patches = query_unit.shape[0]
    scores = np.where(counted.sum(axis=1) > 0, (sim.max(axis=2) * counted).sum(axis=1) / patches, 0.0)
    return scores


def official_template_centres(T_cam_obj: np.ndarray, K: np.ndarray, M_crop_img: np.ndarray) -> np.ndarray:
    """(N, 2) `tem_M · K · t / t_z`: the template's object origin in official crop coordinates.
    T_cam_obj (N, 4, 4), K (3, 3), M_crop_img (N, 2, 3) ours (integer-centred)."""
    projected = project_points(K, T_cam_obj[:, :3, 3])
    M = official_crop_matrix(M_crop_img)
    return np.einsum("nij,nj->ni", M[:, :, :2], projected) + M[:, :, 2]


def official_grid_pixels(M_crop_img: np.ndarray, grid: int, crop_size_px: int) -> np.ndarray:
    """(G, G, 2) full-image points of the official dense grid (`init_points2d_numpy`: cell k at
    k·c + c/2, c = crop/G) through the inverse official crop matrix; [row h, col w] = (x, y)."""
    cell = crop_size_px / grid
    centres = np.arange(grid, dtype=np.float64) * cell + cell / 2.0
    xs, ys = np.meshgrid(centres, centres)
    M = official_crop_matrix(M_crop_img)
    A = np.vstack([M, [0.0, 0.0, 1.0]])
    inverse = np.linalg.inv(A)[:2]
    return np.stack([xs, ys], axis=-1) @ inverse[:, :2].T + inverse[:, 2]


def official_kept_cells(target_cells: np.ndarray, certainty: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(M, 4) int rows (w, h, x, y) of the kept template cells (w, h) and their truncated target cells (x, y),
    in the official (w h) order. target_cells: (G, G, 2) continuous (x, y) per template cell [h, w]
    (estimation/correspondences.targets_from_flow); certainty: (G, G) probabilities."""
    grid = target_cells.shape[0]
    check_shape("target_cells", target_cells, (grid, grid, 2))
    check_shape("certainty", certainty, (grid, grid))
    inside = np.all(target_cells > 0, axis=-1) & np.all(target_cells < grid - 1, axis=-1)
    keep = (certainty > threshold) & inside
    w, h = np.nonzero(keep.T)  # (w h) order: w outer, h inner
    truncated = target_cells[h, w].astype(np.int64)  # torch .long(): toward zero (all > 0 here)
    return np.stack([w, h, truncated[:, 0], truncated[:, 1]], axis=1)


def official_correspondences(target_cells: np.ndarray, certainty: np.ndarray, points_obj_grid: np.ndarray,
                             query_grid_pixels: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(points_obj (M, 3), pixels (M, 2)) as `pose_recovery_ransac_pnp` gathers them: the template point of
    each kept cell (w, h) and the query grid point of its truncated target (x, y)."""
    cells = official_kept_cells(target_cells, certainty, threshold)
    points = points_obj_grid[cells[:, 1], cells[:, 0]]
    pixels = query_grid_pixels[cells[:, 3], cells[:, 2]]
    return np.asarray(points, dtype=np.float64), np.asarray(pixels, dtype=np.float64)


def official_affine_3x3(translation: np.ndarray, scale: float, cos_sin: np.ndarray,
                        template_centre: np.ndarray) -> np.ndarray:
    """`calc_pred_Ms`: the 3×3 affine template crop -> query crop (official coordinates)."""
    c, s = float(cos_sin[0]), float(cos_sin[1])
    linear = float(scale) * np.array([[c, -s], [s, c]])
    centre_t = np.asarray(template_centre, dtype=np.float64)
    centre_q = centre_t + np.asarray(translation, dtype=np.float64) * PATCH_PX
    M = np.eye(3)
    M[:2, :2] = linear
    M[:2, 2] = centre_q - linear @ centre_t
    return M


def official_fallback_pose(pred_M: np.ndarray, query_M: np.ndarray, K_query: np.ndarray, template_M: np.ndarray,
                           K_template: np.ndarray, T_template: np.ndarray) -> np.ndarray:
    """`pose_recovery_2d_prediction`: the pose implied by the stage-2 affine alone. pred_M (3, 3) from
    `official_affine_3x3`; query_M / template_M: 3×3 official crop matrices; T_template (4, 4)."""
    pose = np.array(T_template, dtype=np.float64, copy=True)
    linear = pred_M[:2, :2]
    R_inplane = np.eye(3)
    R_inplane[:2, :2] = linear / np.linalg.norm(linear[:, 0])  # normalize_affine_transform
    pose[:3, :3] = R_inplane @ pose[:3, :3]
    template_z = pose[2, 3]
    centre_t = K_template @ pose[:3, 3]
    centre_t = centre_t / centre_t[2]
    affine2d = np.linalg.inv(query_M) @ pred_M @ template_M
    centre_q = affine2d @ centre_t
    scale2d = np.linalg.norm(affine2d[:2, 0])
    query_z = template_z / scale2d * (K_query[0, 0] / K_template[0, 0])
    ray = np.linalg.inv(K_query) @ centre_q
    pose[:3, 3] = ray / ray[2] * query_z
    return pose


def as_3x3(M: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(M, dtype=np.float64)[:2], [0.0, 0.0, 1.0]])

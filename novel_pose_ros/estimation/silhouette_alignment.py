"""Silhouette alignment: the chosen pose's depth and image-plane position fitted to the detection mask.

PnP on the dense correspondences puts the object a few per cent too near or too far (on real LM-O the
median depth error is ~8 % of the distance, which alone fails MSSD < 0.2 × diameter for a small
object), while its silhouette shows that error as a scale of the outline. For an object small
against its distance, moving it along its origin's viewing ray by a factor 1/s scales its image about
the origin's projection c by s, and moving the origin's projection to c + d shifts the image by d. So
the silhouette is rendered once, and (s, d) are searched by warping that mask (coordinate descent,
IoU with the detection mask), then applied to the translation; the rotation is kept.
"""
from __future__ import annotations

import cv2
import numpy as np

from novel_pose_ros.estimation.crops import QueryCrop
from novel_pose_ros.estimation.verification import agreement_of, crop_camera, render_in_crop
from novel_pose_ros.render import Renderer
from novel_pose_ros.types import ObjectModel

SCALE_RANGE = (0.85, 1.15)  # at most ±15 % of the distance
SHIFT_RANGE_FRACTION = 0.08  # at most 8 % of the silhouette's size, per axis
ROUNDS = 3


def _warp(mask: np.ndarray, centre: np.ndarray, scale: float, shift: np.ndarray) -> np.ndarray:
    """mask scaled by `scale` about `centre`, then shifted by `shift` (pixels)."""
    M = np.array([[scale, 0.0, (1.0 - scale) * centre[0] + shift[0]],
                  [0.0, scale, (1.0 - scale) * centre[1] + shift[1]]])
    size = mask.shape[1], mask.shape[0]
    return cv2.warpAffine(mask, M, size, flags=cv2.INTER_NEAREST) > 0


def align_to_mask(renderer: Renderer, obj: ObjectModel, T_cam_obj: np.ndarray, K: np.ndarray, crop: QueryCrop,
                  mask: np.ndarray) -> tuple[np.ndarray, float]:
    """(T_cam_obj with its translation fitted to `mask` (the crop's detection mask), the IoU reached).
    The pose is returned unchanged when it is behind the camera, renders empty, or no warp beats it."""
    T = np.asarray(T_cam_obj, dtype=np.float64)
    render = render_in_crop(renderer, obj, T, K, crop)
    if render is None or not render.mask.any() or not mask.any():
        return T, 0.0
    K_crop = crop_camera(K, crop.M_crop_img)
    silhouette = render.mask
    origin = K_crop @ T[:3, 3]
    centre = origin[:2] / origin[2]
    ys, xs = np.nonzero(silhouette)
    extent = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
    silhouette_u8, evidence = silhouette.astype(np.uint8), mask.astype(bool)
    scale, shift = 1.0, np.zeros(2)
    best = agreement_of(silhouette, evidence).iou
    start_iou = best
    max_shift = SHIFT_RANGE_FRACTION * extent
    for round_index in range(ROUNDS):
        # each round searches a finer grid around the current best, one parameter at a time
        scale_step = 0.02 / (2 ** round_index)
        shift_step = max(max_shift / 4 / (2 ** round_index), 0.5)
        for axis in ("scale", 0, 1):
            if axis == "scale":
                candidates = [(float(np.clip(scale + k * scale_step, *SCALE_RANGE)), shift) for k in range(-3, 4)]
            else:
                candidates = []
                for k in range(-3, 4):
                    moved = shift.copy()
                    moved[axis] = np.clip(shift[axis] + k * shift_step, -max_shift, max_shift)
                    candidates.append((scale, moved))
            for s, d in candidates:
                iou = agreement_of(_warp(silhouette_u8, centre, s, d), evidence).iou
                if iou > best + 1e-9:
                    best, scale, shift = iou, s, d
    if best <= start_iou + 1e-9:
        return T, start_iou
    # the origin's new projection, back into image pixels, at depth z / scale
    target = np.linalg.solve(K_crop, np.array([centre[0] + shift[0], centre[1] + shift[1], 1.0]))
    aligned = T.copy()
    aligned[:3, 3] = target / target[2] * (T[2, 3] / scale)
    return aligned, best

"""Silhouette alignment: a pose's depth and image-plane position fitted to the detection mask.

PnP on the dense correspondences puts the object a few per cent too near or too far (on real LM-O the
median depth error is ~8 % of the distance, which alone fails MSSD < 0.2 × diameter for a small
object), while its silhouette shows that error as a scale of the outline. For an object small
against its distance, moving it along its origin's viewing ray by a factor 1/s scales its image about
the origin's projection c by s, and moving the origin's projection to c + d shifts the image by d. So
the silhouette is rendered once, and (s, d) are searched by warping that mask (coordinate descent,
IoU with the detection mask), then applied to the translation; the rotation is kept.

On RGB frames the Estimator aligns every hypothesis before it compares their silhouettes
(estimation/estimator.py): a right rotation a few per cent off in depth then no longer loses to a wrong one
that happens to sit at the right scale (docs/ACCURACY.md); with depth it aligns the chosen pose only. The
search runs on the masks' region of interest, at half resolution when the silhouette is large with a last
round at full resolution, and keeps the full-resolution agreement.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from novel_pose_ros.estimation.crops import QueryCrop
from novel_pose_ros.estimation.verification import SilhouetteAgreement, agreement_of, crop_camera, render_in_crop
from novel_pose_ros.render import Renderer
from novel_pose_ros.types import ObjectModel

SCALE_RANGE = (0.85, 1.15)  # at most ±15 % of the distance
SHIFT_RANGE_FRACTION = 0.08  # at most 8 % of the silhouette's size, per axis
ROUNDS = 3
HALF_RESOLUTION_EXTENT_PX = 96  # silhouettes at least this large are searched at half resolution


@dataclass(frozen=True)
class MaskAlignment:
    """The scale s about `centre` and the shift d (crop pixels) that best fit a silhouette to the evidence, and
    the agreement of the silhouette so warped (`agreement`) and as rendered (`start`)."""

    scale: float
    shift: np.ndarray
    centre: np.ndarray
    agreement: SilhouetteAgreement
    start: SilhouetteAgreement

    @property
    def moved(self) -> bool:
        return self.agreement.iou > self.start.iou + 1e-9


def _warp(mask: np.ndarray, centre: np.ndarray, scale: float, shift: np.ndarray) -> np.ndarray:
    """mask scaled by `scale` about `centre`, then shifted by `shift` (pixels)."""
    M = np.array([[scale, 0.0, (1.0 - scale) * centre[0] + shift[0]],
                  [0.0, scale, (1.0 - scale) * centre[1] + shift[1]]])
    size = mask.shape[1], mask.shape[0]
    return cv2.warpAffine(mask, M, size, flags=cv2.INTER_NEAREST) > 0


def _search(silhouette: np.ndarray, evidence: np.ndarray, centre: np.ndarray, max_shift: float, min_step: float,
            rounds: range = range(ROUNDS), scale: float = 1.0, shift: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Coordinate descent over (scale, shift x, shift y) of the IoU from (scale, shift); round r searches a grid
    2^r times finer around the current best, one parameter at a time."""
    u8 = silhouette.astype(np.uint8)
    evidence_px = int(np.count_nonzero(evidence))

    def iou(s: float, d: np.ndarray) -> float:
        warped = _warp(u8, centre, s, d)
        both = int(np.count_nonzero(warped & evidence))
        union = int(np.count_nonzero(warped)) + evidence_px - both
        return both / union if union else 0.0

    shift = np.zeros(2) if shift is None else np.asarray(shift, dtype=np.float64)
    best = iou(scale, shift)
    for round_index in rounds:
        scale_step = 0.02 / (2 ** round_index)
        shift_step = max(max_shift / 4 / (2 ** round_index), min_step)
        for axis in ("scale", 0, 1):
            for k in (-3, -2, -1, 1, 2, 3):
                s, d = scale, shift.copy()
                if axis == "scale":
                    s = float(np.clip(scale + k * scale_step, *SCALE_RANGE))
                else:
                    d[axis] = np.clip(shift[axis] + k * shift_step, -max_shift, max_shift)
                value = iou(s, d)
                if value > best + 1e-9:
                    best, scale, shift = value, s, d
    return scale, shift


def fit_mask_alignment(silhouette: np.ndarray, centre: np.ndarray, evidence: np.ndarray) -> MaskAlignment | None:
    """The best scale about `centre` (the origin's projection, crop pixels) and shift of `silhouette` onto
    `evidence` (both (S, S) bool); None when either is empty."""
    if not silhouette.any() or not evidence.any():
        return None
    start = agreement_of(silhouette, evidence)
    ys, xs = np.nonzero(silhouette)
    extent = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
    max_shift = SHIFT_RANGE_FRACTION * extent
    # every warp stays inside the silhouette's box grown by the largest scale and shift: search that region
    # together with the evidence's box (so every count is exact), not the whole crop
    grow = (SCALE_RANGE[1] - 1.0) * extent + max_shift + 2
    ey, ex = np.nonzero(evidence)
    x0 = int(max(min(xs.min() - grow, ex.min()), 0))
    y0 = int(max(min(ys.min() - grow, ey.min()), 0))
    x1 = int(min(max(xs.max() + grow, ex.max()) + 1, silhouette.shape[1]))
    y1 = int(min(max(ys.max() + grow, ey.max()) + 1, silhouette.shape[0]))
    sil_roi, ev_roi = silhouette[y0:y1, x0:x1], evidence[y0:y1, x0:x1]
    local_centre = centre - np.array([x0, y0])
    factor = 2 if extent >= HALF_RESOLUTION_EXTENT_PX else 1
    if factor > 1:  # area-averaged, then thresholded: the masks at half resolution
        half = (max((x1 - x0) // 2, 1), max((y1 - y0) // 2, 1))
        sil_roi = cv2.resize(sil_roi.astype(np.float32), half, interpolation=cv2.INTER_AREA) >= 0.5
        ev_roi = cv2.resize(ev_roi.astype(np.float32), half, interpolation=cv2.INTER_AREA) >= 0.5
    # pixel centres: x_half = (x + 0.5) / factor - 0.5
    scale, shift = _search(sil_roi, ev_roi, (local_centre + 0.5) / factor - 0.5, max_shift / factor, 0.5 / factor)
    shift = shift * factor
    if factor > 1:  # the finest round again at full resolution: half-resolution steps leave ~1 % of the depth
        scale, shift = _search(silhouette[y0:y1, x0:x1], evidence[y0:y1, x0:x1], local_centre, max_shift, 0.5,
                               range(ROUNDS, ROUNDS + 1), scale, shift)
    agreement = agreement_of(_warp(silhouette.astype(np.uint8), centre, scale, shift), evidence)
    if agreement.iou <= start.iou + 1e-9:
        return MaskAlignment(1.0, np.zeros(2), centre, start, start)
    return MaskAlignment(scale, shift, centre, agreement, start)


def origin_in_crop(T_cam_obj: np.ndarray, K_crop: np.ndarray) -> np.ndarray:
    """(2,) the projection of the object's origin in the crop (pixels)."""
    origin = K_crop @ np.asarray(T_cam_obj, dtype=np.float64)[:3, 3]
    return origin[:2] / origin[2]


def apply_alignment(T_cam_obj: np.ndarray, K_crop: np.ndarray, alignment: MaskAlignment) -> np.ndarray:
    """T_cam_obj moved so that its silhouette scales by s and shifts by d: the origin's new projection, at
    depth z / s; the rotation is kept."""
    T = np.asarray(T_cam_obj, dtype=np.float64)
    if not alignment.moved:
        return T
    target = np.linalg.solve(K_crop, np.array([*(alignment.centre + alignment.shift), 1.0]))
    aligned = T.copy()
    aligned[:3, 3] = target / target[2] * (T[2, 3] / alignment.scale)
    return aligned


def align_silhouette(T_cam_obj: np.ndarray, silhouette: np.ndarray, K_crop: np.ndarray,
                     evidence: np.ndarray) -> tuple[np.ndarray, MaskAlignment | None]:
    """(T_cam_obj moved so that its silhouette, rendered in the crop camera K_crop, best fits `evidence`, the fit);
    the pose unchanged and None when the silhouette or the evidence is empty."""
    T = np.asarray(T_cam_obj, dtype=np.float64)
    alignment = fit_mask_alignment(silhouette, origin_in_crop(T, K_crop), evidence)
    return (T if alignment is None else apply_alignment(T, K_crop, alignment)), alignment


def align_to_mask(renderer: Renderer, obj: ObjectModel, T_cam_obj: np.ndarray, K: np.ndarray, crop: QueryCrop,
                  mask: np.ndarray) -> tuple[np.ndarray, float]:
    """(T_cam_obj with its translation fitted to `mask` (the crop's detection mask), the IoU reached).
    The pose is returned unchanged when it is behind the camera, renders empty, or no warp beats it."""
    T = np.asarray(T_cam_obj, dtype=np.float64)
    render = render_in_crop(renderer, obj, T, K, crop)
    if render is None:
        return T, 0.0
    aligned, alignment = align_silhouette(T, render.mask, crop_camera(K, crop.M_crop_img), mask.astype(bool))
    return aligned, 0.0 if alignment is None else alignment.agreement.iou

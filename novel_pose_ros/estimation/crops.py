"""Query crops of detections (the PicoPose recipe) and the reasons a detection is rejected.

A detection with a mask is cropped around the mask's tight box; without a mask,
around its box. Rejections raise `DetectionRejected` with a short cause (used to
count causes) and a message for the log.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from novel_pose_ros.geometry.crop import SquareBox, box_from_mask, crop_transform, square_box_around, warp_crop
from novel_pose_ros.types import Detection, Frame


class DetectionRejected(Exception):
    """A detection the estimator cannot handle. `cause` is a stable short key, e.g. 'mask_too_small'."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class QueryCrop:
    """One detection's network input.

    rgb: (S, S, 3) uint8 RGB crop; mask: (S, S) bool visible mask, or None for box-only detections;
    M_crop_img: (2, 3) image pixels -> crop pixels; box: the square window in the image.
    """

    detection_index: int
    object_name: str
    rgb: np.ndarray
    mask: np.ndarray | None
    M_crop_img: np.ndarray
    box: SquareBox


def make_query_crop(
    frame: Frame,
    detection: Detection,
    detection_index: int,
    object_name: str,
    crop_size_px: int,
    min_mask_pixels: int,
    mask_background: bool = False,
) -> QueryCrop:
    """Crop one detection, or raise DetectionRejected.

    object_name: the library's name of the detected object.
    mask_background: zero the crop outside the detection mask (when there is one).
    """
    mask = detection.mask
    if mask is not None:
        if mask.shape != (frame.height, frame.width):
            raise DetectionRejected(
                "mask_size_mismatch",
                f"detection {detection_index} ({detection.object_id}): mask is {mask.shape[1]}x{mask.shape[0]}, "
                f"image is {frame.width}x{frame.height}",
            )
        pixels = int(mask.sum())
        if pixels < min_mask_pixels:
            raise DetectionRejected(
                "mask_too_small",
                f"detection {detection_index} ({detection.object_id}): mask has {pixels} pixels, need {min_mask_pixels}",
            )
        box_xywh = box_from_mask(mask)
    else:
        box_xywh = detection.bbox_xywh
    try:
        box = square_box_around(box_xywh, frame.width, frame.height)
    except ValueError as exc:
        raise DetectionRejected("box_outside_image", f"detection {detection_index} ({detection.object_id}): {exc}") from exc
    M = crop_transform(box, crop_size_px)
    rgb = warp_crop(frame.image, M, crop_size_px)
    mask_crop = warp_crop(mask, M, crop_size_px, nearest=True) if mask is not None else None
    if mask_background and mask_crop is not None:
        rgb = rgb * mask_crop[..., None].astype(np.uint8)
    return QueryCrop(detection_index, object_name, rgb, mask_crop, M, box)

"""Square crops of detections (the PicoPose recipe) and their pixel transforms.

A crop is described by a 2×3 affine `M_crop_img` mapping full-image pixel
coordinates to crop pixel coordinates, both with pixel centres at integer
coordinates. The crop is sampled with exactly that transform, so points move
between image and crop with `transform_pixels(M, uv)` and its inverse.

Half-pixel rule: cropping [x1, x1+side) and resizing it to `out_size` the way
cv2.resize does maps image pixel x to crop pixel (x − x1 + 0.5)·s − 0.5 with
s = out_size / side. We sample with that map, so crops are pixel-identical to
PicoPose's crop-then-resize, and M is exact. (METHODS.md writes M without the
±0.5 terms; the difference is below half a crop pixel.)
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from novel_pose_ros.geometry.se3 import check_shape


@dataclass(frozen=True)
class SquareBox:
    """Square pixel window [x1, x1+side) × [y1, y1+side) inside an image."""

    x1: int
    y1: int
    side: int


def box_from_mask(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box (x, y, w, h) of a boolean mask in pixel indices, or None if the mask is empty."""
    mask = np.asarray(mask, dtype=bool)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def square_box_around(box_xywh: tuple[float, float, float, float], image_width: int, image_height: int) -> SquareBox:
    """PicoPose crop window: a square of side max(w, h) centred on the box, shifted inside the image.

    When the square is larger than the image's shorter side it is shrunk to that
    side (no padding, as in PicoPose). Raises ValueError for a box that is empty
    or lies entirely outside the image.
    """
    x, y, w, h = (float(v) for v in box_xywh)
    if not np.all(np.isfinite([x, y, w, h])) or w <= 0 or h <= 0:
        raise ValueError(f"box {box_xywh}: width and height must be positive and finite")
    if x >= image_width or y >= image_height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"box {box_xywh}: lies outside the {image_width}x{image_height} image")
    side = int(round(max(w, h)))
    side = max(1, min(side, image_width, image_height))
    x1 = int(round(x + w / 2.0 - side / 2.0))
    y1 = int(round(y + h / 2.0 - side / 2.0))
    x1 = min(max(x1, 0), image_width - side)
    y1 = min(max(y1, 0), image_height - side)
    return SquareBox(x1=x1, y1=y1, side=side)


def crop_transform(box: SquareBox, out_size: int) -> np.ndarray:
    """2×3 affine M_crop_img that maps image pixels into a crop of `out_size`² (half-pixel rule above)."""
    s = out_size / box.side
    return np.array(
        [[s, 0.0, (0.5 - box.x1) * s - 0.5], [0.0, s, (0.5 - box.y1) * s - 0.5]],
        dtype=np.float64,
    )


def invert_affine(M: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine transform."""
    return cv2.invertAffineTransform(check_shape("M", M, (2, 3)))


def transform_pixels(M: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine to pixel coordinates (N, 2)."""
    M = check_shape("M", M, (2, 3))
    return check_shape("uv", uv, (None, 2)) @ M[:, :2].T + M[:, 2]


def warp_crop(image: np.ndarray, M: np.ndarray, out_size: int, nearest: bool = False) -> np.ndarray:
    """Sample the crop defined by M (bilinear for images, nearest for masks and depth)."""
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    src = image.astype(np.uint8) if image.dtype == bool else image
    out = cv2.warpAffine(src, M, (out_size, out_size), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.astype(bool) if image.dtype == bool else out

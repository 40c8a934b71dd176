"""Lens distortion: images, masks and boxes of a distorted camera, re-sampled as the pinhole camera K sees them.

The estimator assumes a pinhole camera (K only). A driver's `image_raw` is distorted (CameraInfo.d);
`Undistorter` maps a frame to the ideal pinhole image of the same K with OpenCV (the maps are made
once per camera and reused), so the poses it yields are right for the camera's optical frame.

Models (ROS CameraInfo.distortion_model): plumb_bob (k1 k2 p1 p2 k3) and rational_polynomial
(k1 k2 p1 p2 k3 k4 k5 k6) are OpenCV's standard model; equidistant (k1 k2 k3 k4) is OpenCV's fisheye.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MODELS = {"plumb_bob": "standard", "rational_polynomial": "standard", "equidistant": "fisheye"}
COEFFICIENTS = {"plumb_bob": (5,), "rational_polynomial": (8,), "equidistant": (4,)}


@dataclass(frozen=True)
class LensDistortion:
    """A camera's distortion: its ROS model name and coefficients."""

    model: str
    coefficients: tuple[float, ...]

    @classmethod
    def from_camera_info(cls, model: str, coefficients) -> "LensDistortion | None":
        """None when the camera has no distortion (no or all-zero coefficients); ValueError for a model we
        cannot undo or a coefficient count that does not fit it."""
        values = tuple(float(v) for v in coefficients)
        if not values or not any(values):
            return None
        if model not in MODELS:
            raise ValueError(f"camera_info.distortion_model '{model}' with non-zero d is not supported "
                             f"(supported: {', '.join(MODELS)}); publish rectified images and set use_projection_matrix")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"camera_info.d has non-finite values: {list(values)}")
        if model != "rational_polynomial" and len(values) not in COEFFICIENTS[model]:
            raise ValueError(f"camera_info.d: the {model} model has {COEFFICIENTS[model][0]} coefficients, got {len(values)}")
        if model == "rational_polynomial" and len(values) not in (5, 8, 12, 14):
            raise ValueError(f"camera_info.d: rational_polynomial takes 8 coefficients (or 5/12/14), got {len(values)}")
        return cls(model, values)

    @property
    def fisheye(self) -> bool:
        return MODELS[self.model] == "fisheye"


class Undistorter:
    """Re-samples the frames of one camera (K, image size, distortion) as its pinhole camera K sees them."""

    def __init__(self, K: np.ndarray, width: int, height: int, distortion: LensDistortion) -> None:
        self.K = np.asarray(K, dtype=np.float64)
        self.size = (int(width), int(height))
        self.distortion = distortion
        D = np.asarray(distortion.coefficients, dtype=np.float64)
        if distortion.fisheye:
            self._maps = cv2.fisheye.initUndistortRectifyMap(self.K, D, np.eye(3), self.K, self.size, cv2.CV_32FC1)
        else:
            self._maps = cv2.initUndistortRectifyMap(self.K, D, None, self.K, self.size, cv2.CV_32FC1)
        self._D = D

    def key(self) -> tuple:
        return (tuple(self.K.ravel()), self.size, self.distortion)

    def image(self, image: np.ndarray) -> np.ndarray:
        """An image (colour: bilinear), as the pinhole camera sees it; pixels from outside the sensor are 0."""
        return cv2.remap(image, *self._maps, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def nearest(self, image: np.ndarray) -> np.ndarray:
        """A mask or depth image (nearest neighbour: no mixing of labels or of depths across edges)."""
        if image.dtype == bool:
            return cv2.remap(image.astype(np.uint8), *self._maps, interpolation=cv2.INTER_NEAREST) > 0
        return cv2.remap(image, *self._maps, interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)

    def points(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2) distorted pixels -> where the pinhole camera K sees them."""
        pts = np.asarray(uv, dtype=np.float64).reshape(-1, 1, 2)
        if self.distortion.fisheye:
            out = cv2.fisheye.undistortPoints(pts, self.K, self._D, P=self.K)
        else:
            out = cv2.undistortPoints(pts, self.K, self._D, P=self.K)
        return out.reshape(-1, 2)

    def box(self, bbox_xywh: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """The box (x, y, w, h) around the undistorted outline of a box (its edges, sampled), clipped to the image."""
        x, y, w, h = bbox_xywh
        x, y = x - 0.5, y - 0.5  # the box's outline in pixel-centre coordinates (types.Detection)
        t = np.linspace(0.0, 1.0, 9)
        edges = np.concatenate([np.stack([x + t * w, np.full_like(t, y)], 1), np.stack([x + t * w, np.full_like(t, y + h)], 1),
                                np.stack([np.full_like(t, x), y + t * h], 1), np.stack([np.full_like(t, x + w), y + t * h], 1)])
        pts = self.points(edges)
        x0, y0 = np.clip(pts.min(axis=0) + 0.5, 0, None)
        x1, y1 = np.minimum(pts.max(axis=0) + 0.5, self.size)
        return float(x0), float(y0), float(max(x1 - x0, 1.0)), float(max(y1 - y0, 1.0))

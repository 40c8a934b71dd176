"""Pinhole camera helpers in the OpenCV convention (pixel centres at integer coordinates)."""
from __future__ import annotations

import numpy as np

from novel_pose_ros.geometry.se3 import check_shape


def validate_K(K: np.ndarray, name: str = "K") -> np.ndarray:
    """Return K as a float64 3×3 array, or raise ValueError saying what is wrong with it.

    Rejects non-finite entries (NaN in a CameraInfo), non-positive focal lengths
    (an uncalibrated camera publishes K = 0) and a last row other than (0, 0, 1).
    """
    K = check_shape(name, K, (3, 3))
    if not np.all(np.isfinite(K)):
        raise ValueError(f"{name}: contains non-finite values: {K.ravel().tolist()}")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"{name}: focal lengths must be positive (uncalibrated camera?), got fx={K[0, 0]}, fy={K[1, 1]}")
    if not np.allclose(K[2], [0.0, 0.0, 1.0]) or K[1, 0] != 0:
        raise ValueError(f"{name}: not an upper-triangular intrinsic matrix with last row (0, 0, 1): {K.tolist()}")
    return K


def project_points(K: np.ndarray, points_cam: np.ndarray) -> np.ndarray:
    """Pixel coordinates (N, 2) of camera-frame points (N, 3); z must be positive."""
    points_cam = check_shape("points_cam", points_cam, (None, 3))
    uvw = points_cam @ check_shape("K", K, (3, 3)).T
    return uvw[:, :2] / uvw[:, 2:3]


def backproject_pixels(K: np.ndarray, uv: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
    """Camera-frame points (N, 3) of pixels uv (N, 2) at camera depths z (N,) in metres."""
    uv = check_shape("uv", uv, (None, 2))
    z = np.asarray(depth_m, dtype=np.float64).reshape(-1)
    K = check_shape("K", K, (3, 3))
    x = (uv[:, 0] - K[0, 2] - K[0, 1] * (uv[:, 1] - K[1, 2]) / K[1, 1]) / K[0, 0]
    y = (uv[:, 1] - K[1, 2]) / K[1, 1]
    return np.stack([x * z, y * z, z], axis=1)

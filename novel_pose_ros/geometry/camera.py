"""Pinhole camera helpers in the OpenCV convention (pixel centres at integer coordinates)."""
from __future__ import annotations

import cv2
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


def point_map(K: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
    """(H, W, 3) camera-frame point of every pixel of a depth image (H, W) in metres (0 depth: the camera centre)."""
    h, w = depth_m.shape
    ys, xs = np.mgrid[0:h, 0:w]
    pixels = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float64)
    return backproject_pixels(K, pixels, depth_m.reshape(-1)).reshape(h, w, 3)


def surface_normals(points: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normals (H, W, 3), not normalised, of a point map (H, W, 3) from central differences, and where they are
    defined (H, W): the pixel's 3×3 neighbourhood `valid` and a non-zero cross product."""
    dx = np.zeros_like(points)
    dy = np.zeros_like(points)
    dx[:, 1:-1] = points[:, 2:] - points[:, :-2]
    dy[1:-1] = points[2:] - points[:-2]
    normals = np.cross(dx, dy)
    defined = (cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & (np.linalg.norm(normals, axis=2) > 0)
    return normals, defined


def ray_rotation(t: np.ndarray) -> np.ndarray:
    """Smallest rotation taking the optical axis (0, 0, 1) to the direction of t (3,)."""
    ray = np.asarray(t, dtype=np.float64) / np.linalg.norm(t)
    axis = np.cross([0.0, 0.0, 1.0], ray)
    sin, cos = np.linalg.norm(axis), ray[2]
    if sin < 1e-12:
        return np.eye(3)
    k = axis / sin
    skew = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + sin * skew + (1 - cos) * skew @ skew


def inplane_angle_rad(T_q: np.ndarray, T_t: np.ndarray) -> float:
    """Image rotation (radians, about the optical axis) that takes a view T_t of an object to the view T_q,
    each rotation first expressed relative to the ray through its object origin (PicoPose's stage-2 angle)."""
    R_q = ray_rotation(T_q[:3, 3]).T @ np.asarray(T_q)[:3, :3]
    R_t = ray_rotation(T_t[:3, 3]).T @ np.asarray(T_t)[:3, :3]
    R_rel = R_q @ R_t.T
    return float(np.arctan2(R_rel[1, 0] - R_rel[0, 1], R_rel[0, 0] + R_rel[1, 1]))

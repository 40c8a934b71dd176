"""SE(3) and rotation helpers on NumPy arrays.

`T_a_b` is a 4×4 homogeneous transform mapping points of frame b into frame a:
`p_a = T_a_b @ p_b`. Rotations are 3×3 matrices inside the core; quaternions
(x, y, z, w) exist only at the ROS boundary (`quaternion_from_matrix`).
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def check_shape(name: str, array: np.ndarray, shape: tuple[int | None, ...]) -> np.ndarray:
    """Return `array` as float64 if its shape matches `shape` (None = any size), else raise.

    The error states the expected and the actual shape.
    """
    arr = np.asarray(array, dtype=np.float64)
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        expected = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {expected}, got {arr.shape}")
    return arr


def make_T(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """4×4 transform from a 3×3 rotation and a translation (3,)."""
    T = np.eye(4)
    T[:3, :3] = check_shape("R", R, (3, 3))
    T[:3, 3] = check_shape("t", np.ravel(t), (3,))
    return T


def invert_T(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid transform (uses Rᵀ, not a general matrix inverse)."""
    T = check_shape("T", T, (4, 4))
    R, t = T[:3, :3], T[:3, 3]
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ t
    return out


def transform_points(T_a_b: np.ndarray, points_b: np.ndarray) -> np.ndarray:
    """Map points (N, 3) of frame b into frame a."""
    T_a_b = check_shape("T_a_b", T_a_b, (4, 4))
    points_b = check_shape("points_b", points_b, (None, 3))
    return points_b @ T_a_b[:3, :3].T + T_a_b[:3, 3]


def rotation_angle_rad(R_a: np.ndarray, R_b: np.ndarray) -> float:
    """Geodesic angle between two rotations, in radians, in [0, π]."""
    R = check_shape("R_a", R_a, (3, 3)).T @ check_shape("R_b", R_b, (3, 3))
    cos = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.arccos(cos))


def is_rotation(R: np.ndarray, atol: float = 1e-4) -> bool:
    """True when R is orthonormal with determinant +1 (within atol) and finite."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3) or not np.all(np.isfinite(R)):
        return False
    return bool(np.allclose(R.T @ R, np.eye(3), atol=atol) and abs(np.linalg.det(R) - 1.0) < atol)


def orthonormalize(R: np.ndarray) -> np.ndarray:
    """Nearest rotation matrix (SVD projection), e.g. for R read from text files."""
    U, _, Vt = np.linalg.svd(check_shape("R", R, (3, 3)))
    D = np.diag([1.0, 1.0, np.linalg.det(U @ Vt)])
    return U @ D @ Vt


def rotation_from_axis_angle(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rotation by `angle_rad` about `axis` (any non-zero length)."""
    axis = check_shape("axis", axis, (3,))
    norm = np.linalg.norm(axis)
    if norm == 0:
        raise ValueError("axis: must be non-zero")
    return Rotation.from_rotvec(axis / norm * angle_rad).as_matrix()


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Rotation drawn uniformly from SO(3)."""
    return Rotation.random(random_state=rng).as_matrix()


def quaternion_from_matrix(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) with w ≥ 0, for ROS messages."""
    q = Rotation.from_matrix(check_shape("R", R, (3, 3))).as_quat()
    return q if q[3] >= 0 else -q


def matrix_from_quaternion(q_xyzw: np.ndarray) -> np.ndarray:
    """3×3 rotation from a quaternion (x, y, z, w); normalises the input."""
    q = check_shape("q_xyzw", q_xyzw, (4,))
    if not np.all(np.isfinite(q)) or np.linalg.norm(q) == 0:
        raise ValueError(f"q_xyzw: not a valid quaternion: {q}")
    return Rotation.from_quat(q).as_matrix()


def look_at_T_cam_obj(camera_position_obj: np.ndarray, up_obj: np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:
    """Pose of the object in an OpenCV camera placed at `camera_position_obj` looking at the object origin.

    The image's up direction (−y_cam) follows the object's `up_obj` axis as far as
    possible, so views have no arbitrary in-plane rotation. When the viewing
    direction is parallel to `up_obj`, the object's y axis serves as up instead.
    """
    position = check_shape("camera_position_obj", camera_position_obj, (3,))
    distance = np.linalg.norm(position)
    if distance == 0:
        raise ValueError("camera_position_obj: camera cannot sit at the object origin")
    z_cam = -position / distance  # optical axis points at the origin
    up = check_shape("up_obj", np.asarray(up_obj, dtype=np.float64), (3,))
    if np.linalg.norm(np.cross(z_cam, up)) < 1e-6:
        up = np.array([0.0, 1.0, 0.0]) if abs(up[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    y_cam = -(up - np.dot(up, z_cam) * z_cam)
    y_cam /= np.linalg.norm(y_cam)
    x_cam = np.cross(y_cam, z_cam)
    R_cam_obj = np.stack([x_cam, y_cam, z_cam])  # rows: camera axes in object coordinates
    return make_T(R_cam_obj, -R_cam_obj @ position)


def viewing_direction_obj(T_cam_obj: np.ndarray) -> np.ndarray:
    """(3,) unit direction from the object origin to the camera, in the object frame."""
    R, t = np.asarray(T_cam_obj)[:3, :3], np.asarray(T_cam_obj)[:3, 3]
    camera_obj = -R.T @ t
    return camera_obj / max(float(np.linalg.norm(camera_obj)), 1e-12)

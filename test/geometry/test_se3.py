import numpy as np
import pytest

from novel_pose_ros.geometry.se3 import (
    check_shape,
    invert_T,
    is_rotation,
    look_at_T_cam_obj,
    make_T,
    matrix_from_quaternion,
    orthonormalize,
    quaternion_from_matrix,
    random_rotation,
    rotation_angle_rad,
    rotation_from_axis_angle,
    transform_points,
)


def test_check_shape_states_expected_and_actual():
    with pytest.raises(ValueError, match=r"expected shape \(N, 3\), got \(4, 2\)"):
        check_shape("points", np.zeros((4, 2)), (None, 3))


def test_invert_round_trip(rng):
    for _ in range(20):
        T = make_T(random_rotation(rng), rng.normal(size=3))
        np.testing.assert_allclose(T @ invert_T(T), np.eye(4), atol=1e-12)
        points = rng.normal(size=(10, 3))
        np.testing.assert_allclose(transform_points(invert_T(T), transform_points(T, points)), points, atol=1e-12)


def test_quaternion_round_trip_and_sign(rng):
    for _ in range(20):
        R = random_rotation(rng)
        q = quaternion_from_matrix(R)
        assert q[3] >= 0 and np.isclose(np.linalg.norm(q), 1.0)
        np.testing.assert_allclose(matrix_from_quaternion(q), R, atol=1e-12)
    with pytest.raises(ValueError):
        matrix_from_quaternion(np.array([np.nan, 0, 0, 1]))


def test_rotation_angle_and_axis_angle():
    R = rotation_from_axis_angle(np.array([0.0, 0.0, 2.0]), 0.3)
    assert np.isclose(rotation_angle_rad(np.eye(3), R), 0.3)
    assert is_rotation(R)
    assert not is_rotation(np.diag([1.0, 1.0, -1.0]))


def test_orthonormalize_projects_noisy_matrix(rng):
    R = random_rotation(rng)
    R_noisy = R + 1e-4 * rng.normal(size=(3, 3))
    R_fixed = orthonormalize(R_noisy)
    assert is_rotation(R_fixed, atol=1e-10)
    assert rotation_angle_rad(R, R_fixed) < 1e-3


@pytest.mark.parametrize("position", [(0.3, 0.1, 0.2), (0.0, 0.0, 0.5), (0.0, 0.0, -0.5), (0.0, 0.4, 0.0)])
def test_look_at_puts_origin_on_optical_axis(position):
    T = look_at_T_cam_obj(np.array(position))
    assert is_rotation(T[:3, :3], atol=1e-10)
    np.testing.assert_allclose(T[:3, 3], [0, 0, np.linalg.norm(position)], atol=1e-12)
    camera_in_obj = invert_T(T)[:3, 3]
    np.testing.assert_allclose(camera_in_obj, position, atol=1e-12)


def test_look_at_keeps_object_up_pointing_up_in_image():
    T = look_at_T_cam_obj(np.array([0.5, 0.0, 0.0]))
    up_in_cam = T[:3, :3] @ np.array([0.0, 0.0, 1.0])
    assert up_in_cam[1] < -0.99  # OpenCV y points down, so object +z appears up

import numpy as np
import pytest

from novel_pose_ros.geometry.camera import project_points, validate_K
from novel_pose_ros.geometry.pnp import solve_pnp_ransac
from novel_pose_ros.geometry.se3 import make_T, random_rotation, rotation_angle_rad, transform_points

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])


def _correspondences(rng, n=200):
    T = make_T(random_rotation(rng), [0.05, -0.02, 0.6])
    points = rng.uniform(-0.05, 0.05, size=(n, 3))
    return T, points, project_points(K, transform_points(T, points))


def test_recovers_known_pose(rng):
    T, points, pixels = _correspondences(rng)
    result = solve_pnp_ransac(points, pixels, K)
    assert result.success and result.inlier_ratio > 0.99
    assert np.linalg.norm(result.T_cam_obj[:3, 3] - T[:3, 3]) < 1e-3
    assert np.degrees(rotation_angle_rad(result.T_cam_obj[:3, :3], T[:3, :3])) < 0.1


def test_ransac_rejects_outliers_and_lm_refines(rng):
    T, points, pixels = _correspondences(rng, 300)
    pixels = pixels + rng.normal(scale=0.3, size=pixels.shape)
    outliers = rng.choice(300, 90, replace=False)
    pixels[outliers] += rng.uniform(-80, 80, size=(90, 2))
    result = solve_pnp_ransac(points, pixels, K, refine_lm=True)
    assert result.success
    assert len(set(outliers) & set(result.inliers.tolist())) < 5
    assert np.linalg.norm(result.T_cam_obj[:3, 3] - T[:3, 3]) < 3e-3
    assert np.degrees(rotation_angle_rad(result.T_cam_obj[:3, :3], T[:3, :3])) < 1.0


def test_too_few_points_fail_with_reason(rng):
    _, points, pixels = _correspondences(rng, 5)
    result = solve_pnp_ransac(points, pixels, K)
    assert not result.success and "need at least" in result.reason


def test_bad_inputs_raise(rng):
    _, points, pixels = _correspondences(rng, 20)
    with pytest.raises(ValueError, match="rows"):
        solve_pnp_ransac(points, pixels[:10], K)
    pixels[3, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        solve_pnp_ransac(points, pixels, K)


@pytest.mark.parametrize("bad_K,message", [
    (np.zeros((3, 3)), "focal lengths"),
    (np.array([[np.nan, 0, 320], [0, 600, 240], [0, 0, 1]]), "non-finite"),
    (np.eye(2), "expected shape"),
])
def test_validate_K_messages(bad_K, message):
    with pytest.raises(ValueError, match=message):
        validate_K(bad_K)

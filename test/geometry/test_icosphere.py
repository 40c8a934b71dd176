import numpy as np
import pytest

from novel_pose_ros.geometry.icosphere import level_subset_indices, template_poses, viewpoint_directions
from novel_pose_ros.geometry.se3 import is_rotation


@pytest.mark.parametrize("level,count", [(0, 42), (1, 162), (2, 642)])
def test_view_counts_and_unit_directions(level, count):
    directions = viewpoint_directions(level)
    assert directions.shape == (count, 3)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0, atol=1e-12)
    assert len(np.unique(directions.round(9), axis=0)) == count


@pytest.mark.parametrize("coarse,fine", [(0, 1), (1, 2), (0, 2)])
def test_coarse_level_is_exact_subset(coarse, fine):
    indices = level_subset_indices(coarse, fine)
    assert len(np.unique(indices)) == len(viewpoint_directions(coarse))
    np.testing.assert_allclose(viewpoint_directions(fine)[indices], viewpoint_directions(coarse), atol=1e-12)


def test_level_zero_views_are_well_spread():
    directions = viewpoint_directions(0)
    cos = directions @ directions.T
    np.fill_diagonal(cos, -1)
    nearest_deg = np.degrees(np.arccos(cos.max(axis=1)))
    assert 30 < nearest_deg.min() and nearest_deg.max() < 33  # 42 views: ~32° between neighbours


def test_template_poses_look_at_origin():
    poses = template_poses(0, 0.4)
    assert poses.shape == (42, 4, 4)
    np.testing.assert_allclose(poses[:, :3, 3], np.tile([0, 0, 0.4], (42, 1)), atol=1e-12)
    assert all(is_rotation(T[:3, :3], atol=1e-10) for T in poses)
    with pytest.raises(ValueError):
        template_poses(3, 1.0)

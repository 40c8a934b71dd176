"""novel_pose_ros.geometry.transform_history: lookups at a time, interpolated along a chain, never extrapolated."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from novel_pose_ros.geometry.se3 import invert_T, make_T, random_rotation, rotation_angle_rad, rotation_from_axis_angle
from novel_pose_ros.geometry.transform_history import TransformHistory, TransformUnavailable

S = 1_000_000_000  # ns per second


def arm_pose(t_s: float) -> np.ndarray:
    """T_base_tool of an arm turning about z at 0.2 rad/s while moving 0.1 m/s along x."""
    return make_T(rotation_from_axis_angle(np.array([0.0, 0.0, 1.0]), 0.2 * t_s), [0.1 * t_s, 0.0, 0.5])


def test_lookup_between_samples_interpolates_translation_and_rotation():
    history = TransformHistory()
    for t in (0, 1, 2):
        history.add("base_link", "tool", t * S, arm_pose(t))
    T = history.lookup("base_link", "tool", int(1.25 * S))
    np.testing.assert_allclose(T, arm_pose(1.25), atol=1e-12)  # uniform motion: slerp + lerp are exact
    np.testing.assert_allclose(history.lookup("tool", "base_link", 2 * S), invert_T(arm_pose(2)), atol=1e-12)
    assert np.allclose(history.lookup("base_link", "base_link", 0), np.eye(4))


def test_a_chain_of_static_and_moving_edges(rng):
    history = TransformHistory()
    T_tool_camera = make_T(random_rotation(rng), [0.02, 0.0, 0.05])
    T_world_base = make_T(random_rotation(rng), [1.0, 2.0, 0.0])
    history.add("tool", "camera_optical", 0, T_tool_camera, static=True)  # the camera mount: valid at every time
    history.add("world", "base_link", 0, T_world_base, static=True)
    for t in np.arange(0.0, 3.01, 0.5):
        history.add("base_link", "tool", int(t * S), arm_pose(t))
    expected = T_world_base @ arm_pose(1.7) @ T_tool_camera
    np.testing.assert_allclose(history.lookup("world", "camera_optical", int(1.7 * S)), expected, atol=1e-9)
    # the newest transform, what the latest-only buffer gave, is 10 cm and 0.26 rad away at this time
    newest = T_world_base @ arm_pose(3.0) @ T_tool_camera
    assert np.linalg.norm(newest[:3, 3] - expected[:3, 3]) > 0.1
    assert rotation_angle_rad(newest[:3, :3], expected[:3, :3]) > 0.25


def test_no_extrapolation_and_clear_reasons():
    history = TransformHistory(cache_s=2.0)
    for t in range(6):
        history.add("base_link", "tool", t * S, arm_pose(t))
    with pytest.raises(TransformUnavailable, match=r"'base_link' -> 'tool'.*0\.500 s older than the time"):
        history.lookup("base_link", "tool", int(5.5 * S))
    with pytest.raises(TransformUnavailable, match="before its oldest sample kept"):  # 2 s kept: 3, 4, 5
        history.lookup("base_link", "tool", int(2.5 * S))
    history.lookup("base_link", "tool", 3 * S)
    with pytest.raises(TransformUnavailable, match="unknown frame"):
        history.lookup("map", "camera", 0)
    history.add("map", "odom", 0, np.eye(4), static=True)
    with pytest.raises(TransformUnavailable, match="not connected"):
        history.lookup("map", "tool", 3 * S)


def test_rotation_slerp_takes_the_short_way():
    history = TransformHistory()
    a = Rotation.from_euler("z", 170, degrees=True).as_matrix()
    b = Rotation.from_euler("z", -170, degrees=True).as_matrix()
    history.add("a", "b", 0, make_T(a, [0, 0, 0]))
    history.add("a", "b", S, make_T(b, [0, 0, 0]))
    middle = history.lookup("a", "b", S // 2)[:3, :3]
    assert rotation_angle_rad(middle, Rotation.from_euler("z", 180, degrees=True).as_matrix()) < 1e-9


def test_a_child_that_changes_parent_and_a_resent_sample():
    history = TransformHistory()
    history.add("a", "c", 0, make_T(np.eye(3), [1, 0, 0]), static=True)
    history.add("b", "c", 0, make_T(np.eye(3), [2, 0, 0]), static=True)  # re-parented, as tf2 allows
    with pytest.raises(TransformUnavailable):
        history.lookup("a", "c", 0)
    history.add("b", "d", S, make_T(np.eye(3), [0, 0, 1]))
    history.add("b", "d", S, make_T(np.eye(3), [0, 0, 2]))  # the same stamp again replaces the sample
    assert history.lookup("b", "d", S)[2, 3] == 2.0


def test_wait_for_returns_once_the_samples_arrive_and_times_out_with_the_reason():
    history = TransformHistory()
    history.add("base_link", "tool", 0, arm_pose(0))
    late = threading.Timer(0.2, lambda: history.add("base_link", "tool", 2 * S, arm_pose(2)))
    late.start()
    started = time.monotonic()
    T = history.wait_for("base_link", "tool", S, timeout_s=5.0)
    assert time.monotonic() - started < 4.0
    np.testing.assert_allclose(T, arm_pose(1), atol=1e-12)
    with pytest.raises(TransformUnavailable, match="older than the time"):
        history.wait_for("base_link", "tool", 3 * S, timeout_s=0.05)

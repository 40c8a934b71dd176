"""Depth in the estimator: the cleaned depth image, the final depth check of a pose, and use_depth end to end.

Real renders of the bundled meshes stand in for the sensor; the estimator runs the untrained small network
(plumbing: its poses are arbitrary, so the end-to-end checks are about what depth changes, not accuracy).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from helpers import BUNDLED_OBJECTS, MESHES
from novel_pose_ros.estimation import Estimator, EstimatorConfig
from novel_pose_ros.estimation.crops import make_query_crop
from novel_pose_ros.estimation.depth_correspondences import clean_depth, lift_pixels
from novel_pose_ros.estimation.depth_refinement import check_pose_with_depth, robust_median
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.geometry.se3 import make_T, rotation_angle_rad, rotation_from_axis_angle
from novel_pose_ros.objects import ObjectLibrary, load_object
from novel_pose_ros.render import SHADED
from novel_pose_ros.types import Detection, Frame

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])
T_TRUE = make_T(rotation_from_axis_angle(np.array([0.4, 1.0, 0.2]), 1.0), [0.04, -0.02, 0.7])


@pytest.fixture(scope="module")
def mug():
    return load_object(MESHES / "mug.ply", 1, "mug", units="m")


@pytest.fixture(scope="module")
def view(mug, gl_renderer):
    """The mug at T_TRUE in front of a wall 0.9 m away: rgb, exact depth (m), the mug's visible mask."""
    result = gl_renderer.render([(mug, T_TRUE)], K, 640, 480, SHADED)
    depth = np.where(result.mask, result.depth_m, np.float32(0.9)).astype(np.float32)
    rgb = np.where(result.mask[..., None], result.rgb, np.uint8(90)).astype(np.uint8)
    return rgb, depth, result.mask


def _crop(rgb, mask):
    return make_query_crop(Frame(rgb, K), Detection("mug", box_from_mask(mask), 1.0, mask), 0, "mug", 224, 1)


def _errors(T, T_ref=T_TRUE):
    return np.linalg.norm(T[:3, 3] - T_ref[:3, 3]), np.degrees(rotation_angle_rad(T[:3, :3], T_ref[:3, :3]))


def test_clean_depth_drops_invalid_values_and_flying_pixels_but_keeps_surfaces():
    depth = np.full((40, 40), 1.0, np.float32)
    depth[:, 20:] = 2.0  # a step of 1 m between column 19 and 20
    depth[5, 5], depth[6, 6], depth[7, 7], depth[8, 8] = 0.0, np.nan, np.inf, 0.01
    cleaned = clean_depth(depth)
    assert not cleaned.valid[5, 5] and not cleaned.valid[6, 6] and not cleaned.valid[7, 7] and not cleaned.valid[8, 8]
    assert not cleaned.valid[:, 19:21].any()  # both sides of the step: a sensor mixes them there
    assert cleaned.valid[20:, 2:17].all() and cleaned.valid[:, 23:].all()  # a hole does not eat its neighbours
    assert np.all(cleaned.depth_m[~cleaned.valid] == 0)
    points, valid = lift_pixels(cleaned, K, np.array([[2.0, 30.0], [30.0, 30.0], [19.0, 3.0], [-5.0, 3.0]]))
    assert valid.tolist() == [True, True, False, False] and np.isclose(points[1, 2], 2.0)


def test_robust_median_ignores_a_third_of_wild_residuals(rng):
    residuals = np.concatenate([rng.normal(0.02, 0.002, 200), rng.uniform(0.1, 0.5, 100)])
    centre, keep = robust_median(residuals, 0.005)
    assert abs(centre - 0.02) < 0.001 and keep[:200].mean() > 0.95 and not keep[200:].any()


def test_a_pose_too_far_and_slightly_turned_is_brought_onto_the_measured_depth(mug, view, gl_renderer):
    rgb, depth, mask = view
    T_off = make_T(rotation_from_axis_angle(np.array([0.0, 1.0, 0.0]), np.radians(3.0)) @ T_TRUE[:3, :3],
                   T_TRUE[:3, 3] * 1.06)  # 6 % too far (4 cm), 3° off
    check = check_pose_with_depth(gl_renderer, mug, T_off, K, _crop(rgb, mask), clean_depth(depth), icp_iterations=3)
    assert check.improved and check.agreement > 0.9 > check.agreement_before
    shift, turn = _errors(check.T_cam_obj)
    assert abs(check.T_cam_obj[2, 3] - T_TRUE[2, 3]) / T_TRUE[2, 3] < 0.005 and shift < 0.004 and turn < 3.0
    ray_only = check_pose_with_depth(gl_renderer, mug, T_off, K, _crop(rgb, mask), clean_depth(depth))
    assert np.array_equal(ray_only.T_cam_obj[:3, :3], T_off[:3, :3]) and ray_only.icp_steps == 0
    assert abs(ray_only.T_cam_obj[2, 3] - T_TRUE[2, 3]) / T_TRUE[2, 3] < 0.01


def test_depth_in_millimetres_and_in_metres_give_the_same_pose(mug, view, gl_renderer):
    rgb, depth, mask = view
    T_off = make_T(T_TRUE[:3, :3], T_TRUE[:3, 3] * 0.95)
    as_uint16_mm = np.rint(depth * 1000.0).astype(np.uint16)  # a 16UC1 sensor image
    from_mm = as_uint16_mm.astype(np.float32) * np.float32(0.001)
    checks = [check_pose_with_depth(gl_renderer, mug, T_off, K, _crop(rgb, mask), clean_depth(d), 3)
              for d in (depth, from_mm)]
    shift, turn = _errors(checks[0].T_cam_obj, checks[1].T_cam_obj)
    assert shift < 0.001 and turn < 0.2  # mm quantisation only
    assert _errors(checks[1].T_cam_obj)[0] < 0.004


def test_depth_on_half_the_object_still_corrects_the_distance(mug, view, gl_renderer):
    rgb, depth, mask = view
    half = depth.copy()
    xs = np.nonzero(mask.any(axis=0))[0]
    half[:, : (xs.min() + xs.max()) // 2] = 0.0  # the sensor sees nothing on the left half
    T_off = make_T(T_TRUE[:3, :3], T_TRUE[:3, 3] * 1.05)
    check = check_pose_with_depth(gl_renderer, mug, T_off, K, _crop(rgb, mask), clean_depth(half), 3)
    assert check.improved and abs(check.T_cam_obj[2, 3] - T_TRUE[2, 3]) / T_TRUE[2, 3] < 0.01


def test_no_depth_on_the_object_keeps_the_pose_with_a_reason(mug, view, gl_renderer):
    rgb, depth, mask = view
    T_off = make_T(T_TRUE[:3, :3], T_TRUE[:3, 3] * 1.05)
    check = check_pose_with_depth(gl_renderer, mug, T_off, K, _crop(rgb, mask), clean_depth(np.where(mask, 0, depth)))
    assert not check.improved and np.array_equal(check.T_cam_obj, T_off) and "pixels" in check.failure


# --- the Estimator with use_depth ---


@pytest.fixture(scope="module")
def block_scene(gl_renderer):
    library = ObjectLibrary.from_yaml(BUNDLED_OBJECTS).subset(["toy_block"])
    T = make_T(rotation_from_axis_angle(np.array([1.0, 0.3, 0.2]), 2.2), [-0.03, 0.02, 0.6])
    result = gl_renderer.render([(library.get("toy_block"), T)], K, 640, 480, SHADED)
    rgb = np.where(result.mask[..., None], result.rgb, np.uint8(90)).astype(np.uint8)
    depth = np.where(result.mask, result.depth_m, np.float32(0.8)).astype(np.float32)
    detection = Detection("toy_block", box_from_mask(result.mask), 0.9, result.mask)
    return library, T, rgb, depth, detection


@pytest.fixture(scope="module")
def estimators(block_scene, untrained_backend, gl_renderer, tmp_path_factory):
    templates = tmp_path_factory.mktemp("templates")
    config = EstimatorConfig(templates_dir=templates)
    return {mode: Estimator(block_scene[0], dataclasses.replace(config, use_depth=mode), untrained_backend, gl_renderer)
            for mode in ("auto", "on", "off")}


def test_use_depth_off_and_frames_without_depth_give_todays_pose_exactly(block_scene, estimators):
    _, _, rgb, depth, detection = block_scene
    rgb_only = estimators["off"].run(Frame(rgb, K), [detection])
    for mode, frame in (("off", Frame(rgb, K, depth)), ("auto", Frame(rgb, K))):
        report = estimators[mode].run(frame, [detection])
        assert np.array_equal(report.poses[0].T_cam_obj, rgb_only.poses[0].T_cam_obj)
        assert report.poses[0].confidence == rgb_only.poses[0].confidence and "depth" not in report.timings.seconds


def test_use_depth_on_without_depth_fails_each_detection_with_its_cause(block_scene, estimators):
    _, _, rgb, _, detection = block_scene
    report = estimators["on"].run(Frame(rgb, K), [detection, detection])
    assert report.poses == [] and [(f.detection_index, f.cause) for f in report.failures] == [
        (0, "depth_missing"), (1, "depth_missing")]
    assert "no depth" in report.failures[0].message


def test_a_frame_with_depth_on_half_the_object_gets_a_depth_checked_pose(block_scene, estimators):
    _, T_true, rgb, depth, detection = block_scene
    half = depth.copy()
    xs = np.nonzero(detection.mask.any(axis=0))[0]
    half[:, : (xs.min() + xs.max()) // 2] = 0.0
    report = estimators["auto"].run(Frame(rgb, K, half), [detection])
    assert len(report.poses) == 1 and report.failures == [] and report.timings.seconds["depth"] > 0
    pose = report.poses[0]
    rgb_only = estimators["off"].run(Frame(rgb, K), [detection]).poses[0]
    # the untrained network's rotation is arbitrary (its RGB pose is ~1 m too far here); the distance is what the
    # measured depth fixes, to within the block's size whatever the rotation
    assert abs(rgb_only.t_m[2] - T_true[2, 3]) > 0.3
    assert abs(pose.t_m[2] - T_true[2, 3]) < 0.03 and pose.hypotheses[-1].source.endswith("+depth")

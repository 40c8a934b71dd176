"""Diagnosis against the truth: GT-nearest template, its stage-1 rank, and oracle switches that do what they say.

Real ONNX Runtime sessions (untrained weights) and the GL renderer: the oracles must act whatever the
network predicts, so untrained weights are the harder case.
"""
import numpy as np
import pytest

from helpers import BUNDLED_OBJECTS
from novel_pose_ros.bop.metrics import rotation_error_deg
from novel_pose_ros.estimation import Estimator, EstimatorConfig
from novel_pose_ros.estimation.diagnosis import (
    Oracle,
    at_true_depth,
    nearest_template,
    oracle_ordering,
    true_cos_sin,
)
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.render import SHADED
from novel_pose_ros.types import Detection, Frame

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])


def test_oracle_parse_names_unknown_switches():
    assert Oracle.parse("template, depth") == Oracle(template=True, depth=True)
    assert Oracle.parse("").label == "none" and not Oracle.parse(None).any
    with pytest.raises(ValueError, match="unknown switch.*'flow'"):
        Oracle.parse("template,flow")


def test_nearest_template_and_ordering():
    R = rotation_from_axis_angle(np.array([0.2, 1.0, 0.1]), 1.3)
    poses = np.stack([make_T(rotation_from_axis_angle(np.array([1.0, 0.0, 0.0]), a) @ R, [0, 0, 0.5])
                      for a in (0.0, 0.5, 1.0, 2.0)])
    view, angle = nearest_template(poses[2], poses)
    assert view == 2 and angle < 1e-3
    assert oracle_ordering(np.array([3, 1, 2, 0]), 2).tolist() == [2, 3, 1, 0]


def test_true_inplane_rotation_and_depth():
    T_t = make_T(rotation_from_axis_angle(np.array([0.3, 1.0, 0.0]), 0.8), [0.0, 0.0, 0.6])
    turn = make_T(rotation_from_axis_angle(np.array([0.0, 0.0, 1.0]), 0.7), [0.0, 0.0, 0.0])
    cos, sin = true_cos_sin(turn @ T_t, T_t)
    assert np.degrees(np.arctan2(sin, cos)) == pytest.approx(np.degrees(0.7), abs=1e-4)
    T = make_T(np.eye(3), [0.1, -0.05, 0.8])
    moved = at_true_depth(T, make_T(np.eye(3), [0.3, 0.0, 1.2]))
    assert moved[2, 3] == pytest.approx(1.2)
    assert np.allclose(np.cross(moved[:3, 3], T[:3, 3]), 0.0, atol=1e-12)  # on the same ray


@pytest.fixture(scope="module")
def setting(tmp_path_factory, untrained_backend, gl_renderer):
    library = ObjectLibrary.from_yaml(BUNDLED_OBJECTS).subset(["toy_block"])
    T_true = make_T(rotation_from_axis_angle(np.array([1.0, 0.3, 0.2]), 2.2), [0.02, 0.01, 0.6])
    result = gl_renderer.render([(library.get("toy_block"), T_true)], K, 640, 480, SHADED)
    image = np.where(result.mask[..., None], result.rgb, np.uint8(90))
    detection = Detection("toy_block", box_from_mask(result.mask), 0.9, result.mask)
    templates = tmp_path_factory.mktemp("templates")

    def estimator(**values):
        return Estimator(library, EstimatorConfig(templates_dir=templates, **values), untrained_backend, gl_renderer)

    return estimator, Frame(image, K), detection, T_true


def test_diagnostics_report_the_gt_template_and_its_rank(setting):
    estimator, frame, detection, T_true = setting
    est = estimator()
    plain = est.run(frame, [detection])
    assert plain.diagnostics  # a PicoPose outcome always says where its pose came from
    assert plain.diagnostics[0].gt_view is None  # ... but nothing of a truth it was not given
    report = est.run(frame, [detection], [T_true])
    d = report.diagnostics[0]
    view, angle = nearest_template(T_true, est.templates_of("toy_block").bank.T_cam_obj)
    assert (d.gt_view, d.gt_view_angle_deg) == (view, pytest.approx(angle))
    assert 0 <= d.gt_view_rank < 42 and d.source.split(":")[0] in ("pnp", "affine_fallback")
    assert np.allclose(report.poses[0].T_cam_obj, plain.poses[0].T_cam_obj)  # the truth alone changes nothing
    with pytest.raises(ValueError, match="needs the true poses"):
        est.run(frame, [detection], oracle=Oracle(depth=True))


def test_template_and_inplane_oracles_give_the_true_rotation_up_to_the_template_spacing(setting):
    estimator, frame, detection, T_true = setting
    # one hypothesis and no PnP (min_inliers above any count): the pose is stage 2's affine of the chosen template
    est = estimator(hypotheses=1, min_inliers=10**6)
    view, angle = nearest_template(T_true, est.templates_of("toy_block").bank.T_cam_obj)
    report = est.run(frame, [detection], [T_true], Oracle(template=True, inplane=True))
    d = report.diagnostics[0]
    assert d.source.split("+")[0] == f"affine_fallback:view{view}" and d.chosen_view == view
    error = rotation_error_deg(report.poses[0].T_cam_obj[:3, :3], T_true[:3, :3])
    assert error <= angle + 1.0  # only the out-of-plane template offset is left
    without = est.run(frame, [detection], [T_true], Oracle(template=True))
    assert without.diagnostics[0].chosen_view == view
    assert not np.allclose(without.poses[0].T_cam_obj[:3, :3], report.poses[0].T_cam_obj[:3, :3], atol=1e-3)


def test_depth_oracle_moves_the_pose_to_the_true_distance(setting):
    estimator, frame, detection, T_true = setting
    report = estimator().run(frame, [detection], [T_true], Oracle(depth=True))
    assert report.poses[0].T_cam_obj[2, 3] == pytest.approx(T_true[2, 3])


def test_min_inliers_rejects_weak_hypotheses(setting):
    estimator, frame, detection, _ = setting
    report = estimator(min_inliers=10**6).run(frame, [detection])
    assert report.poses[0].hypotheses[-1].source.startswith("affine_fallback")
    with pytest.raises(ValueError, match="min_inliers"):
        EstimatorConfig(min_inliers=3)
    with pytest.raises(ValueError, match="hypothesis_rule"):
        EstimatorConfig(hypothesis_rule="votes")

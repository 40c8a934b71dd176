"""Silhouette verification: the right pose of a rendered object agrees with its detection better than wrong ones."""
import numpy as np
import pytest

from helpers import BUNDLED_OBJECTS
from novel_pose_ros.estimation.crops import make_query_crop
from novel_pose_ros.estimation.diagnosis import StageDiagnostics
from novel_pose_ros.estimation.picopose_stages import DetectionOutcome
from novel_pose_ros.estimation.verification import choose_by_silhouette, evidence_mask, silhouette_agreements
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.types import Detection, Frame, PoseHypothesis

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def scene(gl_renderer):
    obj = ObjectLibrary.from_yaml(BUNDLED_OBJECTS).get("toy_block")
    T_true = make_T(rotation_from_axis_angle(np.array([1.0, 0.4, 0.2]), 1.1), [0.03, -0.02, 0.5])
    mask = gl_renderer.render([(obj, T_true)], K, 640, 480).mask
    frame = Frame(np.zeros((480, 640, 3), np.uint8), K)
    flip = make_T(rotation_from_axis_angle(np.array([0.0, 1.0, 0.0]), np.pi / 2), [0, 0, 0])  # a quarter turn
    wrong = [T_true @ flip, make_T(T_true[:3, :3], T_true[:3, 3] + [0.02, 0.0, 0.0])]
    return obj, T_true, wrong, mask, frame


def test_the_true_pose_has_the_best_silhouette(scene, gl_renderer):
    obj, T_true, wrong, mask, frame = scene
    detection = Detection("toy_block", box_from_mask(mask), 1.0, mask)
    crop = make_query_crop(frame, detection, 0, "toy_block", 224, 1)
    agreements = silhouette_agreements(gl_renderer, obj, [T_true, *wrong], K, crop, evidence_mask(crop, detection))
    ious = [a.iou for a in agreements]
    assert ious[0] > 0.97 and ious[0] > max(ious[1:]) + 0.05
    assert agreements[0].coverage > 0.97 and agreements[0].on_evidence > 0.97
    assert agreements[2].coverage < 0.97 or agreements[2].on_evidence < 0.97  # the shifted pose misses some
    behind = make_T(np.eye(3), [0.0, 0.0, -0.5])
    assert silhouette_agreements(gl_renderer, obj, [behind], K, crop, crop.mask)[0].iou == 0.0


def test_box_only_detections_compare_with_the_box(scene, gl_renderer):
    obj, T_true, wrong, mask, frame = scene
    detection = Detection("toy_block", box_from_mask(mask), 1.0)
    crop = make_query_crop(frame, detection, 0, "toy_block", 224, 1)
    box = evidence_mask(crop, detection)
    assert box.any() and box.sum() >= crop.rgb.shape[0] ** 2 * 0.4  # the box fills the long side of its square crop
    right, shifted = silhouette_agreements(gl_renderer, obj, [T_true, wrong[1]], K, crop, box)
    assert right.iou > shifted.iou


def test_choice_follows_the_silhouette_and_updates_the_diagnostics(scene, gl_renderer):
    obj, T_true, wrong, mask, frame = scene
    detection = Detection("toy_block", box_from_mask(mask), 1.0, mask)
    crop = make_query_crop(frame, detection, 0, "toy_block", 224, 1)
    hypotheses = (PoseHypothesis(wrong[0], 0.9, "pnp:view4", 90, 100), PoseHypothesis(T_true, 0.5, "pnp:view7", 50, 100))
    diagnostics = StageDiagnostics("pnp:view4", 4, 0, 90, 100, 0.9)
    outcome = DetectionOutcome(0, wrong[0], "pnp", 0.9, hypotheses, diagnostics)
    agreements = silhouette_agreements(gl_renderer, obj, [h.T_cam_obj for h in hypotheses], K, crop,
                                       evidence_mask(crop, detection))
    chosen = choose_by_silhouette(outcome, agreements)
    assert np.allclose(chosen.T_cam_obj, T_true)
    assert (chosen.diagnostics.chosen_view, chosen.diagnostics.chosen_rank, chosen.diagnostics.inliers) == (7, 1, 50)
    assert chosen.diagnostics.silhouette_iou == pytest.approx(agreements[1].iou)

"""AR scoring: greedy matching and top-inst_count on tiny inputs, then whole datasets with known answers."""
import json
import shutil

import cv2
import numpy as np
import pytest

from helpers import shared_data
from novel_pose_ros.bop import metrics
from novel_pose_ros.bop.dataset import BopDataset, scene_camera_entry, scene_gt_entry, write_json
from novel_pose_ros.bop.evaluate import evaluate
from novel_pose_ros.bop.results import PoseResult
from novel_pose_ros.bop.scoring import (
    TargetErrors,
    average_recall,
    greedy_match,
    target_counts,
    top_estimates,
    valid_gt_mask,
)
from novel_pose_ros.geometry.se3 import make_T

INF = np.inf


# --- matching rules, no rendering ---------------------------------------------------------

def test_greedy_match_takes_the_smallest_error_below_the_threshold():
    errors = np.array([[0.10, 0.05],
                       [0.02, 0.30]])
    # threshold 0.2: estimate 0 takes GT 1 (0.05 < 0.10), estimate 1 takes GT 0.
    assert greedy_match(errors, 0.2) == [(0, 1), (1, 0)]
    # threshold 0.04: estimate 0 has no error below it; estimate 1 takes GT 0.
    assert greedy_match(errors, 0.04) == [(1, 0)]


def test_greedy_match_serves_estimates_in_score_order_and_is_strict():
    # Both estimates fit GT 0; the first (higher score) takes it although the second is closer.
    assert greedy_match(np.array([[0.10], [0.01]]), 0.2) == [(0, 0)]
    assert greedy_match(np.array([[0.2]]), 0.2) == []  # error == threshold is not correct
    # An invalid GT is never matched: the estimate falls back to the valid one.
    assert greedy_match(np.array([[0.01, 0.05]]), 0.2, gt_valid=np.array([False, True])) == [(0, 1)]
    assert greedy_match(np.zeros((0, 2)), 0.2) == []


def test_top_estimates_and_valid_gt_mask():
    assert top_estimates(np.array([0.2, 0.9, 0.5]), 2).tolist() == [1, 2]
    assert top_estimates(np.array([0.5, 0.5, 0.5]), 2).tolist() == [0, 1]  # ties keep the given order
    assert top_estimates(np.array([]), 3).tolist() == []
    assert valid_gt_mask([0.2, 0.9, 0.5], 2).tolist() == [False, True, True]  # the 2 most visible
    assert valid_gt_mask([None, None], 1).tolist() == [True, False]


def _target(obj_id, scores, mssd_rel, mspd_px, inst_count=1, vsd=None, diameter=0.1, valid=None):
    mssd_rel = np.asarray(mssd_rel, dtype=float).reshape(len(scores), -1)
    gts = mssd_rel.shape[1]
    return TargetErrors(0, obj_id, obj_id, inst_count, diameter, np.asarray(scores, dtype=float),
                        np.ones(gts, bool) if valid is None else np.asarray(valid), mssd_rel * diameter,
                        np.asarray(mspd_px, dtype=float).reshape(len(scores), gts), vsd)


def test_only_the_top_inst_count_estimates_count():
    # inst_count 1: the best-scored estimate is wrong, the lower-scored one is perfect -> 0 matches.
    target = _target(1, [0.9, 0.3], [[0.9], [0.0]], [[90.0], [0.0]])
    counts = target_counts(target)
    assert counts.mssd.sum() == 0 and counts.mspd.sum() == 0
    # The same estimates with the perfect one scored higher -> matched at every threshold.
    assert target_counts(_target(1, [0.3, 0.9], [[0.9], [0.0]], [[90.0], [0.0]])).mssd.tolist() == [1.0] * 10


def test_average_recall_by_hand():
    """Object 1: three targets, all correct; object 2: one target, MSSD = 0.22 d, MSPD = 12 px.

    Object 2: MSSD is correct for thresholds 0.25 … 0.50 (6 of 10) -> AR_MSSD 0.6;
    MSPD 12 px is correct for 15 … 50 px (8 of 10) -> AR_MSPD 0.8; AR (MSSD, MSPD) = 0.7.
    Dataset: MSSD recall (3 + 0.6) / 4 = 0.9; MSPD (3 + 0.8) / 4 = 0.95; AR = 0.925
    (pooled over targets, not the mean 0.85 of the object rows).
    """
    targets = [_target(1, [1.0], [[0.0]], [[0.0]]) for _ in range(3)] + [_target(2, [1.0], [[0.22]], [[12.0]])]
    scores = average_recall(targets)
    by_object = {row.obj_id: row for row in scores.objects}
    assert by_object[1].ar == pytest.approx(1.0) and by_object[1].targets == 3
    assert by_object[2].ar_mssd == pytest.approx(0.6)
    assert by_object[2].ar_mspd == pytest.approx(0.8)
    assert by_object[2].ar == pytest.approx(0.7)
    overall = scores.overall
    assert (overall.ar_mssd, overall.ar_mspd, overall.ar) == pytest.approx((0.9, 0.95, 0.925))
    assert overall.ar_vsd is None and overall.vsd_targets == 0  # no depth: not available, never 0
    assert overall.ar_terms == ("MSSD", "MSPD") and overall.ar_label == "AR (MSSD, MSPD)"


def test_vsd_recall_counts_only_targets_with_depth():
    """Target A has depth and VSD error 0.12 at every τ: correct for thresholds 0.15 … 0.50 (8 of 10)
    -> AR_VSD = 0.8 over 1 target; target B has no depth. MSSD/MSPD perfect for both.
    AR = (0.8 + 1 + 1) / 3."""
    with_depth = _target(1, [1.0], [[0.0]], [[0.0]], vsd=np.full((1, 1, 10), 0.12))
    without = _target(1, [1.0], [[0.0]], [[0.0]])
    row = average_recall([with_depth, without]).overall
    assert (row.targets, row.vsd_targets) == (2, 1)
    assert row.ar_vsd == pytest.approx(0.8)
    assert row.ar == pytest.approx(2.8 / 3) and row.ar_label == "AR"


def test_target_errors_checks_shapes():
    with pytest.raises(ValueError, match=r"mssd_m: expected shape \(2, 1\)"):
        TargetErrors(0, 0, 1, 1, 0.1, np.ones(2), np.ones(1, bool), np.zeros((1, 1)), np.zeros((2, 1)))


# --- whole datasets -----------------------------------------------------------------------

def _gt_results(dataset):
    return [PoseResult(im.scene_id, im.im_id, g.obj_id, 1.0, g.T_cam_obj, 0.25, line=n + 2)
            for n, (im, g) in enumerate((im, g) for im in dataset.images() for g in im.gt)]


@pytest.mark.needs_data
def test_ground_truth_scores_one_on_the_oracle(gl_renderer):
    dataset = BopDataset(shared_data("bop_metric_oracle"))
    report = evaluate(dataset, _gt_results(dataset), gl_renderer)
    assert report.problems == ()
    assert (report.overall.ar, report.overall.ar_vsd, report.overall.ar_mssd, report.overall.ar_mspd) == (1.0, 1.0, 1.0, 1.0)
    assert report.overall.targets == report.overall.vsd_targets == 8
    assert [r.obj_id for r in report.objects] == [1, 5, 6, 8, 9, 10, 11, 12]
    assert all(r.ar == 1.0 and r.ar_label == "AR" for r in report.objects)


@pytest.mark.needs_data
def test_ground_truth_scores_one_on_ycbv_real_with_vsd_where_depth_exists(gl_renderer):
    dataset = BopDataset(shared_data("ycbv_real"))
    report = evaluate(dataset, _gt_results(dataset), gl_renderer)
    assert report.problems == ()
    overall = report.overall
    assert (overall.ar, overall.ar_vsd, overall.ar_mssd, overall.ar_mspd) == (1.0, 1.0, 1.0, 1.0)
    # Scene 48 (objects 1, 6, 14, 19, 20) has no depth: VSD covers the other 10 of 15 targets.
    assert (overall.targets, overall.vsd_targets) == (15, 10)
    assert (report.images, report.images_with_depth) == (4, 3)
    no_vsd = {r.obj_id for r in report.objects if r.ar_vsd is None}
    assert no_vsd == {6, 19, 20}
    assert all(r.ar == 1.0 for r in report.objects)
    assert {r.obj_id: r.vsd_targets for r in report.objects}[14] == 1  # scene 0 has depth, scene 48 not


@pytest.mark.needs_data
def test_two_objects_with_swapped_poses(gl_renderer):
    """Objects 1 and 5 given each other's GT pose, the other 6 objects their GT pose.

    Each swapped estimate is wrong at every threshold (checked below), so 6 of the 8 targets
    match at every threshold: recall 6/8 for every MSSD, MSPD and (τ, VSD) threshold,
    AR_VSD = AR_MSSD = AR_MSPD = 0.75 and AR = (0.75 + 0.75 + 0.75) / 3 = 0.75.
    Per object: 0 for objects 1 and 5, 1 for the others.
    """
    dataset = BopDataset(shared_data("bop_metric_oracle"))
    image = dataset.image(2, 3)
    gt = {g.obj_id: g.T_cam_obj for g in image.gt}
    swap = {1: 5, 5: 1}
    results = [PoseResult(2, 3, o, 1.0, gt[swap.get(o, o)], 0.1) for o in gt]

    library = dataset.object_library([1, 5])
    depth = image.load_depth_m()
    for obj_id, other in swap.items():
        obj, T_est, T_gt = library.get(obj_id), gt[other], gt[obj_id]
        syms = metrics.symmetry_transforms(obj.symmetries)
        points = np.asarray(obj.mesh.vertices)
        assert metrics.mssd(T_est, T_gt, points, syms) > 0.5 * obj.diameter_m
        assert metrics.mspd(T_est, T_gt, points, syms, image.K, 640) > 50
        depth_est = metrics.render_depth_m(gl_renderer, obj, T_est, image.K, 640, 480)
        depth_gt = metrics.render_depth_m(gl_renderer, obj, T_gt, image.K, 640, 480)
        assert min(metrics.vsd(depth_est, depth_gt, depth, image.K, obj.diameter_m)) >= 0.5

    report = evaluate(dataset, results, gl_renderer)
    overall = report.overall
    assert (overall.ar_vsd, overall.ar_mssd, overall.ar_mspd, overall.ar) == pytest.approx((0.75, 0.75, 0.75, 0.75))
    assert {r.obj_id: r.ar for r in report.objects} == {1: 0.0, 5: 0.0, 6: 1.0, 8: 1.0, 9: 1.0, 10: 1.0, 11: 1.0, 12: 1.0}


@pytest.mark.needs_data
def test_oracle_perturbations_score_what_the_reference_errors_imply(gl_renderer):
    """The 8 'tz20mm' estimates (20 mm further away): AR from the BOP toolkit's own errors.

    For each object: MSSD recall = #{θ ∈ 0.05…0.5 : mssd < θ·d} / 10, MSPD = #{θ ∈ 5…50 : mspd < θ} / 10,
    VSD = #{(τ, θ) : vsd_τ < θ} / 100; one target per object, so the dataset row is the mean.
    """
    root = shared_data("bop_metric_oracle")
    reference = json.loads((root / "reference_errors.json").read_text())
    dataset = BopDataset(root)
    diameters = {int(k): v["diameter"] for k, v in dataset.models_info.items()}
    thresholds = [round(0.05 * k, 2) for k in range(1, 11)]
    cases = [c for c in reference["results"] if c["perturbation"] == "tz20mm"]
    expected_mssd = np.mean([sum(c["mssd_mm"] < th * diameters[c["obj_id"]] for th in thresholds) / 10 for c in cases])
    expected_mspd = np.mean([sum(c["mspd_px"] < 100 * th for th in thresholds) / 10 for c in cases])
    expected_vsd = np.mean([sum(e < th for e in c["vsd"] for th in thresholds) / 100 for c in cases])
    # e.g. object 1: mssd 20 mm < θ·102.099 mm for θ ≥ 0.2 -> 7/10; its VSD errors
    # [1, 1, 1, 0.78, 0.326, 0.308, 0.304, 0.2996 ×3] -> 0+0+0+0+4+4+4+5+5+5 = 27/100.
    assert expected_mssd < 1 and expected_vsd < 1  # the case is not trivial

    results = [PoseResult(2, 3, c["obj_id"], 1.0, make_T(np.reshape(c["R_est"], (3, 3)), np.asarray(c["t_est"]) * 1e-3), 0.1)
               for c in cases]
    report = evaluate(dataset, results, gl_renderer)
    overall = report.overall
    assert overall.ar_mssd == pytest.approx(expected_mssd)
    assert overall.ar_mspd == pytest.approx(expected_mspd)
    assert overall.ar_vsd == pytest.approx(expected_vsd)
    row_1 = next(r for r in report.objects if r.obj_id == 1)
    assert (row_1.ar_mssd, row_1.ar_mspd, row_1.ar_vsd) == pytest.approx((0.7, 1.0, 0.27))


@pytest.fixture
def two_instance_dataset(tmp_path):
    """A BOP dataset with two instances of LM-O object 1 in one 640×480 image, no depth."""
    oracle = shared_data("bop_metric_oracle")
    (tmp_path / "models").mkdir()
    shutil.copy(oracle / "models" / "obj_000001.ply", tmp_path / "models")
    info = json.loads((oracle / "models" / "models_info.json").read_text())
    write_json(tmp_path / "models" / "models_info.json", {"1": info["1"]})
    scene = tmp_path / "test" / "000000"
    K = np.array([[572.4114, 0.0, 325.2611], [0.0, 573.57043, 242.04899], [0.0, 0.0, 1.0]])
    T_a = BopDataset(oracle).image(2, 3).gt[0].T_cam_obj
    T_b = T_a.copy()
    T_b[0, 3] -= 0.15  # 15 cm to the left: far beyond 0.5 × 102 mm
    write_json(scene / "scene_camera.json", {"0": scene_camera_entry(K, 1.0)})
    write_json(scene / "scene_gt.json", {"0": [scene_gt_entry(1, T_a), scene_gt_entry(1, T_b)]})
    (scene / "rgb").mkdir()
    cv2.imwrite(str(scene / "rgb" / "000000.png"), np.zeros((480, 640, 3), np.uint8))
    return BopDataset(tmp_path), T_a, T_b


@pytest.mark.needs_data
def test_two_instances_exchanged_duplicated_and_cut_by_inst_count(two_instance_dataset):
    """One target (object 1, inst_count 2), GT instances A and B; no depth, so AR = AR (MSSD, MSPD).

    exchanged (B scored 0.9, A 0.8): each finds its own GT -> 2/2 -> AR 1.0.
    duplicated (A 0.9, A 0.8): the first takes A, the second has only B, 15 cm off -> 1/2 -> 0.5.
    cut (far-off 0.95, A 0.9, B 0.1): only the top 2 count, B is dropped -> 1/2 -> 0.5.
    """
    dataset, T_a, T_b = two_instance_dataset
    far = T_a.copy()
    far[2, 3] += 1.0

    def ar(poses_scores):
        results = [PoseResult(0, 0, 1, s, T, 0.1, line=i + 2) for i, (T, s) in enumerate(poses_scores)]
        report = evaluate(dataset, results)
        assert report.problems == () and report.renderer is None and report.images_with_depth == 0
        assert report.overall.targets == 2 and report.overall.ar_vsd is None
        assert report.overall.ar_label == "AR (MSSD, MSPD)"
        return report.overall.ar

    assert ar([(T_b, 0.9), (T_a, 0.8)]) == pytest.approx(1.0)
    assert ar([(T_a, 0.9), (T_a, 0.8)]) == pytest.approx(0.5)
    assert ar([(far, 0.95), (T_a, 0.9), (T_b, 0.1)]) == pytest.approx(0.5)

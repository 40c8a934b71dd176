"""evaluate(): bad results become problems naming file and line, and the good rows are still scored."""
import json
import shutil

import numpy as np
import pytest

from helpers import shared_data
from novel_pose_ros.bop.dataset import BopDataset
from novel_pose_ros.bop.evaluate import EvalReport, evaluate, evaluate_results_file
from novel_pose_ros.bop.results import PoseResult, read_results_csv, write_results_csv

GOOD_OBJECTS = (1, 5, 6, 9, 10, 11)  # 6 of the 8 targets of the oracle image


@pytest.fixture(scope="module")
def oracle():
    return BopDataset(shared_data("bop_metric_oracle"))


def _gt(dataset, obj_id):
    return next(g.T_cam_obj for g in dataset.image(2, 3).gt if g.obj_id == obj_id)


@pytest.mark.needs_data
def test_bad_lines_become_problems_and_the_rest_is_evaluated(oracle, gl_renderer, tmp_path):
    """Good rows: GT poses of 6 of the 8 objects (8 and 12 get no valid estimate).

    Recall 6/8 at every threshold: AR_VSD = AR_MSSD = AR_MSPD = AR = 0.75.
    """
    path = tmp_path / "results.csv"
    write_results_csv(path, [PoseResult(2, 3, o, 0.9, _gt(oracle, o), 0.4) for o in GOOD_OBJECTS])  # lines 1-7
    identity = "1 0 0 0 1 0 0 0 1"
    with path.open("a") as f:
        f.write("2,3,12,0.9,1 0 0 0 1 0\n")  # line 8: malformed (6 columns, R too short)
        f.write(f"2,3,99,0.9,{identity},0 0 900,0.4\n")  # line 9: unknown obj_id
        f.write(f"2,999,1,0.9,{identity},0 0 900,0.4\n")  # line 10: image not in the dataset
        f.write("2,3,8,0.9,nan 0 0 0 1 0 0 0 1,0 0 900,0.4\n")  # line 11: non-finite R

    report = evaluate_results_file(oracle, path, gl_renderer)

    problems = {p.where: p.reason for p in report.problems}
    assert set(problems) == {f"{path}:{n}" for n in (8, 9, 10, 11)}
    assert "expected 7 columns" in problems[f"{path}:8"]
    assert "unknown obj_id 99" in problems[f"{path}:9"]
    assert "missing image: scene 2 image 999" in problems[f"{path}:10"]
    assert "non-finite" in problems[f"{path}:11"]
    assert [str(p).split(": ")[0] for p in report.problems] == [f"{path}:{n}" for n in (8, 9, 10, 11)]

    overall = report.overall
    assert (overall.ar_vsd, overall.ar_mssd, overall.ar_mspd, overall.ar) == pytest.approx((0.75, 0.75, 0.75, 0.75))
    assert {r.obj_id: r.ar for r in report.objects} == {1: 1.0, 5: 1.0, 6: 1.0, 8: 0.0, 9: 1.0, 10: 1.0, 11: 1.0, 12: 0.0}
    assert (report.results_given, report.results_on_targets, report.results_not_on_targets) == (8, 6, 0)
    assert report.mean_time_per_image_s == pytest.approx(0.4)
    assert report.evaluated


@pytest.mark.needs_data
def test_problems_found_by_evaluate_itself(oracle, gl_renderer):
    """Results built in code (not read from CSV): a NaN pose, a non-rotation, an inconsistent time."""
    T_nan = _gt(oracle, 1).copy()
    T_nan[0, 0] = np.nan
    T_scaled = _gt(oracle, 5) * np.diag([2.0, 2.0, 2.0, 1.0])
    results = [
        PoseResult(2, 3, 1, 0.9, T_nan, 0.4, line=3),
        PoseResult(2, 3, 5, 0.9, T_scaled, 0.4, line=4),
        PoseResult(2, 3, 6, 0.9, _gt(oracle, 6), 0.4, line=5),
        PoseResult(2, 3, 9, 0.9, _gt(oracle, 9), 0.7, line=6),  # another time for the same image
    ]
    report = evaluate(oracle, results, gl_renderer, results_file="mine.csv")
    problems = {p.where: p.reason for p in report.problems}
    assert set(problems) == {"mine.csv:3", "mine.csv:4", "mine.csv:6"}
    assert "non-finite value in R or t" in problems["mine.csv:3"]
    assert "not a rotation matrix" in problems["mine.csv:4"]
    assert "differs from 0.4 s at mine.csv:5" in problems["mine.csv:6"]
    # Objects 6 and 9 are evaluated (the time problem does not drop a row): recall 2/8.
    assert report.overall.ar == pytest.approx(0.25)
    assert report.mean_time_per_image_s == pytest.approx(0.4)  # the first time of the image


@pytest.mark.needs_data
def test_missing_depth_file_makes_vsd_unavailable_with_a_problem(tmp_path):
    """A copy of the oracle whose depth folder lacks the image's file: VSD n/a (None), AR of MSSD and MSPD."""
    oracle = shared_data("bop_metric_oracle")
    shutil.copytree(oracle / "models", tmp_path / "models")
    shutil.copy(oracle / "test_targets_lmo_bop19.json", tmp_path)
    scene = tmp_path / "test" / "000002"
    (scene / "depth").mkdir(parents=True)
    for name in ("scene_camera.json", "scene_gt.json"):
        shutil.copy(oracle / "test" / "000002" / name, scene)
    dataset = BopDataset(tmp_path)
    # No RGB either: MSPD falls back to 640 px (a problem says so) -- the LM-O width anyway.
    results = [PoseResult(2, 3, g.obj_id, 1.0, g.T_cam_obj, 0.2, line=n + 2) for n, g in enumerate(dataset.image(2, 3).gt)]

    report = evaluate(dataset, results)

    depth_problem = next(p for p in report.problems if p.where.endswith("depth/000003.png"))
    assert "depth image missing" in depth_problem.reason
    assert any("image size" in p.reason for p in report.problems)
    assert report.overall.ar_vsd is None and report.overall.vsd_targets == 0
    assert report.overall.ar == 1.0 and report.overall.ar_label == "AR (MSSD, MSPD)"
    assert report.images_with_depth == 0 and report.renderer is None


@pytest.mark.needs_data
def test_report_serialises_to_json(oracle, gl_renderer):
    results = [PoseResult(2, 3, o, 0.5, _gt(oracle, o), -1.0) for o in (1, 5)]
    report = evaluate(oracle, results, gl_renderer)
    data = json.loads(report.to_json())
    assert set(data) == {"dataset_root", "split", "results_file", "renderer", "results_given", "results_on_targets",
                         "results_not_on_targets", "images", "images_with_depth", "mean_time_per_image_s",
                         "overall", "objects", "problems", "settings"}
    assert data["mean_time_per_image_s"] is None  # time −1 = unknown
    assert data["overall"]["ar"] == pytest.approx(0.25) and data["overall"]["ar_label"] == "AR"
    assert len(data["objects"]) == 8 and data["objects"][0]["obj_id"] == 1
    assert data["settings"]["thresholds"]["mspd_px"] == [5.0 * k for k in range(1, 11)]
    assert isinstance(report, EvalReport) and not report.problems


@pytest.mark.needs_data
def test_a_dataset_without_targets_is_a_user_error(tmp_path):
    oracle = shared_data("bop_metric_oracle")
    shutil.copytree(oracle / "models", tmp_path / "models")
    (tmp_path / "test" / "000002").mkdir(parents=True)
    shutil.copy(oracle / "test" / "000002" / "scene_camera.json", tmp_path / "test" / "000002")
    with pytest.raises(ValueError, match="no evaluation targets"):
        evaluate(BopDataset(tmp_path), [])


@pytest.mark.needs_data
def test_ground_truth_rows_survive_a_csv_round_trip(oracle, tmp_path):
    path = tmp_path / "gt.csv"
    write_results_csv(path, [PoseResult(2, 3, g.obj_id, 1.0, g.T_cam_obj, 0.1) for g in oracle.image(2, 3).gt])
    results, problems = read_results_csv(path)
    assert problems == [] and len(results) == 8

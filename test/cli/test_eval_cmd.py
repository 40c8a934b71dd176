"""`novel-pose eval` end to end on the metric oracle."""
import json

import pytest

from helpers import shared_data
from novel_pose_ros.bop.dataset import BopDataset
from novel_pose_ros.bop.results import PoseResult, write_results_csv
from novel_pose_ros.cli import main

REPORT_KEYS = {"dataset_root", "split", "results_file", "renderer", "results_given", "results_on_targets",
               "results_not_on_targets", "images", "images_with_depth", "mean_time_per_image_s",
               "overall", "objects", "problems", "settings"}
ROW_KEYS = {"obj_id", "targets", "vsd_targets", "ar_vsd", "ar_mssd", "ar_mspd", "ar", "ar_terms", "ar_label",
            "mean_time_per_image_s"}


@pytest.fixture
def oracle_gt_csv(tmp_path):
    root = shared_data("bop_metric_oracle")
    image = BopDataset(root).image(2, 3)
    results = [PoseResult(2, 3, g.obj_id, 1.0, g.T_cam_obj, 0.25) for g in image.gt]
    path = tmp_path / "gt.csv"
    write_results_csv(path, results)
    return root, path


@pytest.mark.needs_data
def test_eval_of_ground_truth_prints_ar_one_and_writes_json(oracle_gt_csv, tmp_path, capsys):
    root, results = oracle_gt_csv
    out = tmp_path / "report" / "eval.json"
    assert main(["eval", "--dataset", str(root), "--results", str(results), "--json", str(out), "--renderer", "gl"]) == 0
    captured = capsys.readouterr()
    all_row = next(line for line in captured.out.splitlines() if line.startswith("all "))
    assert all_row.split() == ["all", "8", "1.000", "1.000", "1.000", "1.000", "VSD+MSSD+MSPD", "0.250"]
    assert captured.out.count("obj_0000") == 8
    assert captured.err.count(str(results)) == 0  # no problems

    data = json.loads(out.read_text())
    assert set(data) == REPORT_KEYS
    assert set(data["overall"]) == ROW_KEYS and all(set(row) == ROW_KEYS for row in data["objects"])
    assert data["overall"]["ar"] == 1.0 and data["overall"]["ar_vsd"] == 1.0 and data["overall"]["targets"] == 8
    assert [row["obj_id"] for row in data["objects"]] == [1, 5, 6, 8, 9, 10, 11, 12]
    assert data["results_file"] == str(results) and data["problems"] == []
    assert data["mean_time_per_image_s"] == pytest.approx(0.25)
    assert data["renderer"].startswith("gl")


@pytest.mark.needs_data
def test_eval_reports_skipped_lines_on_stderr_and_still_exits_0(oracle_gt_csv, capsys):
    root, results = oracle_gt_csv
    with results.open("a") as f:
        f.write("2,3,77,1.0,1 0 0 0 1 0 0 0 1,0 0 900,0.25\n")  # line 10: unknown object
    assert main(["eval", "--dataset", str(root), "--results", str(results)]) == 0
    captured = capsys.readouterr()
    assert f"{results}:10: unknown obj_id 77" in captured.err
    assert "1 problems" in captured.out


@pytest.mark.needs_data
def test_eval_exits_2_when_nothing_can_be_evaluated(tmp_path, capsys):
    root = shared_data("bop_metric_oracle")
    results = tmp_path / "bad.csv"
    results.write_text("scene_id,im_id,obj_id,score,R,t,time\n2,3,1,oops\n")
    json_path = tmp_path / "bad.json"
    assert main(["eval", "--dataset", str(root), "--results", str(results), "--json", str(json_path)]) == 2
    err = capsys.readouterr().err
    assert f"{results}:2: expected 7 columns" in err
    assert "no result of" in err and "could be evaluated" in err
    assert json.loads(json_path.read_text())["problems"][0]["where"] == f"{results}:2"
    assert main(["eval", "--dataset", str(tmp_path / "nowhere"), "--results", str(results)]) == 2
    assert "no 'test' folder" in capsys.readouterr().err


def test_eval_breakdown_writes_json_png_and_prints_the_table(tmp_path, capsys):
    """A tiny hand-written dataset (test/bop/test_breakdown.py): object 1 flipped in two of its three images."""
    import cv2
    import numpy as np

    from bop.test_breakdown import FLIPS, RANKS, SOURCES, write_results_and_diagnostics, write_tiny_dataset

    dataset = write_tiny_dataset(tmp_path / "bop")
    for image in dataset.images():
        image.image_path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image.image_path), np.zeros((480, 640, 3), np.uint8))
    results, diagnostics = write_results_and_diagnostics(dataset, tmp_path, RANKS, SOURCES, FLIPS)
    out = tmp_path / "breakdown"
    args = ["eval", "--dataset", str(dataset.root), "--results", str(results), "--breakdown", str(out)]
    assert main(args + ["--diagnostics", str(diagnostics)]) == 0
    captured = capsys.readouterr()
    assert "AR_MSSD" in captured.out and "rot p50°" in captured.out and "top-1 %" in captured.out
    rows = {line.split()[0]: line.split() for line in captured.out.splitlines() if line.startswith(("obj_000001", "all"))}
    assert rows["obj_000001"][:5] == ["obj_000001", "3", "0", "180.0", "66.7"]  # targets, missing, rot p50°, flip %
    assert rows["all"][:5] == ["all", "6", "0", "0.0", "33.3"] and rows["all"][-4:] == ["40.0", "80.0", "33.3", "35.0"]

    data = json.loads((out / "breakdown.json").read_text())
    assert {"overall", "objects", "targets", "settings", "results_file", "diagnostics_file"} <= set(data)
    assert len(data["targets"]) == 6 and data["overall"]["diagnostics"]["top1_rate"] == pytest.approx(0.4)
    png = cv2.imread(str(out / "breakdown.png"))
    assert png is not None and png.shape == (640, 960, 3)
    assert (png < 128).any(axis=2).mean() > 0.01 and len(np.unique(png.reshape(-1, 3), axis=0)) > 10  # bars and text

    assert main(args[:-2] + ["--diagnostics", str(diagnostics)]) == 2  # --diagnostics needs --breakdown
    assert "--diagnostics needs --breakdown" in capsys.readouterr().err
    assert main(args[:-2]) == 0 and "rot p50°" not in capsys.readouterr().out  # plain eval: no breakdown

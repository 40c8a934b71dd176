"""`novel-pose synth` and `novel-pose detections from-gt` end to end, and their user errors."""
import shutil

import numpy as np
import pytest

from helpers import MESHES
from novel_pose_ros.bop.dataset import BopDataset
from novel_pose_ros.bop.detections import read_detections_json
from novel_pose_ros.cli import main


@pytest.fixture
def objects_yaml(tmp_path):
    path = tmp_path / "objects.yaml"
    path.write_text(
        "objects:\n"
        f"  - {{id: 5, name: toy_block, mesh: {MESHES}/toy_block.ply, units: m}}\n"
        f"  - {{id: 9, name: cereal_box, mesh: {MESHES}/cereal_box.obj, units: m}}\n"
    )
    return path


def test_synth_then_detections_from_gt(tmp_path, objects_yaml, capsys):
    out = tmp_path / "dataset"
    args = ["synth", "--objects", str(objects_yaml), "--out", str(out), "--scenes", "2", "--images-per-scene", "2",
            "--seed", "5", "--objects-per-scene", "2", "3", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "mean visib_fract" in printed and str(out) in printed and "toy_block (id 5)" in printed
    dataset = BopDataset(out)
    assert len(list(dataset.images())) == 4
    assert {g.obj_id for image in dataset.images() for g in image.gt} <= {5, 9}
    assert all(2 <= len(image.gt) <= 3 for image in dataset.images())

    detections_file = tmp_path / "det.json"
    assert main(["detections", "from-gt", "--dataset", str(out), "--out", str(detections_file), "--box-noise", "0",
                 "--seed", "1"]) == 0
    assert "detections" in capsys.readouterr().out
    detections, problems = read_detections_json(detections_file)
    reference, _ = read_detections_json(out / "detections_gt.json")
    assert not problems and len(detections) == len(reference) > 0
    for d, r in zip(detections, reference):
        assert (d.scene_id, d.im_id, d.obj_id, d.bbox_xywh) == (r.scene_id, r.im_id, r.obj_id, r.bbox_xywh)
        np.testing.assert_array_equal(d.mask, r.mask)


def test_synth_from_a_mesh_folder(tmp_path, capsys):
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    shutil.copy(MESHES / "bracket.stl", meshes / "a-bracket.stl")  # mm, detected by --units auto
    shutil.copy(MESHES / "toy_block.ply", meshes / "b_block.ply")
    out = tmp_path / "dataset"
    assert main(["synth", "--meshes", str(meshes), "--out", str(out), "--scenes", "1", "--images-per-scene", "1",
                 "--size", "320", "240", "--no-progress"]) == 0
    assert "a_bracket (id 1)" in capsys.readouterr().out
    dataset = BopDataset(out)
    assert dataset.image(0, 0).load_rgb().shape == (240, 320, 3)
    assert dataset.models_info["1"]["diameter"] == pytest.approx(102.4695, abs=1e-3)  # the bracket, in mm


def test_user_errors_exit_2_with_a_message(tmp_path, objects_yaml, capsys):
    out = str(tmp_path / "dataset")
    assert main(["synth", "--objects", str(tmp_path / "missing.yaml"), "--out", out]) == 2
    assert "missing.yaml: not found" in capsys.readouterr().err
    assert main(["synth", "--objects", str(objects_yaml), "--out", out, "--scenes", "0"]) == 2
    assert "at least one scene" in capsys.readouterr().err
    assert main(["synth", "--meshes", str(tmp_path), "--out", out]) == 2
    assert "no .ply, .obj, .stl files" in capsys.readouterr().err
    small = ["synth", "--objects", str(objects_yaml), "--out", out, "--scenes", "1", "--images-per-scene", "1", "--no-progress"]
    assert main(small) == 0
    capsys.readouterr()
    assert main(small) == 2
    assert "already holds a dataset" in capsys.readouterr().err
    assert main(small + ["--overwrite"]) == 0
    assert main(["detections", "from-gt", "--dataset", str(tmp_path / "nowhere"), "--out", str(tmp_path / "d.json")]) == 2
    assert "no 'test' folder" in capsys.readouterr().err
    assert main(["detections", "from-gt", "--dataset", out, "--out", str(tmp_path / "d.json"), "--drop", "2"]) == 2
    assert "drop must be a probability" in capsys.readouterr().err


def test_synth_then_eval_of_ground_truth_gives_ar_one(tmp_path, objects_yaml, capsys):
    """The issue's check: 2 meshes, 2 scenes × 5 images; `novel-pose eval` with GT results prints AR 1.0."""
    from novel_pose_ros.bop.results import PoseResult, write_results_csv

    out = tmp_path / "dataset"
    assert main(["synth", "--objects", str(objects_yaml), "--out", str(out), "--scenes", "2", "--images-per-scene", "5",
                 "--seed", "11", "--no-progress"]) == 0
    dataset = BopDataset(out)
    results = [PoseResult(t.scene_id, t.im_id, g.obj_id, 1.0, g.T_cam_obj, 0.1)
               for t in dataset.targets for g in dataset.image(t.scene_id, t.im_id).gt if g.obj_id == t.obj_id]
    write_results_csv(tmp_path / "gt.csv", results)
    capsys.readouterr()
    assert main(["eval", "--dataset", str(out), "--results", str(tmp_path / "gt.csv"), "--json", str(tmp_path / "e.json")]) == 0
    all_row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("all "))
    assert all_row.split()[2:6] == ["1.000", "1.000", "1.000", "1.000"]
    assert len(dataset.targets) >= 10

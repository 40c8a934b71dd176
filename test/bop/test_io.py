"""BOP-format I/O: dataset reader, results CSV, CNOS detection JSON."""
import json

import numpy as np
import pytest

from helpers import shared_data
from novel_pose_ros.bop.dataset import BopDataset, Target, scene_gt_entry, write_targets
from novel_pose_ros.bop.detections import (
    BopDetection,
    decode_mask,
    encode_mask,
    group_by_image,
    read_detections_json,
    write_detections_json,
)
from novel_pose_ros.bop.results import PoseResult, read_results_csv, write_results_csv
from novel_pose_ros.geometry.se3 import make_T, random_rotation


@pytest.mark.needs_data
def test_reads_ycbv_real_with_units_converted():
    dataset = BopDataset(shared_data("ycbv_real"))
    assert sorted(dataset.scenes) == [0, 1, 48]
    image = dataset.image(0, 1)
    assert [g.obj_id for g in image.gt] == [8, 14, 21]
    raw = json.loads((dataset.split_dir / "000000" / "scene_gt.json").read_text())["1"][0]
    np.testing.assert_allclose(image.gt[0].T_cam_obj[:3, 3], np.array(raw["cam_t_m2c"]) / 1000.0)
    assert image.load_rgb().shape == (480, 640, 3)
    depth = image.load_depth_m()
    assert depth.dtype == np.float32 and 0.3 < np.median(depth[depth > 0]) < 3.0  # metres, scale 0.1 mm applied
    assert dataset.image(48, 1).depth_path is None and dataset.image(48, 1).load_depth_m() is None
    assert not dataset.has_depth
    # no targets file: every GT instance is a target
    assert dataset.targets_path is None and sum(t.inst_count for t in dataset.targets) == 15
    with pytest.raises(KeyError, match="no image scene 0 im 7"):
        dataset.image(0, 7)


@pytest.mark.needs_data
def test_reads_targets_file_and_keeps_only_images_present():
    dataset = BopDataset(shared_data("bop_metric_oracle"))
    assert dataset.targets_path.name == "test_targets_lmo_bop19.json"
    assert {(t.scene_id, t.im_id) for t in dataset.targets} == {(2, 3)}
    assert len(dataset.targets) == 8 and dataset.has_depth
    assert len(dataset.object_library()) == 8


def test_missing_split_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no 'test' folder"):
        BopDataset(tmp_path)


def test_written_scene_round_trips(tmp_path, rng):
    scene = tmp_path / "test" / "000003"
    (scene / "rgb").mkdir(parents=True)
    T = make_T(random_rotation(rng), [0.1, -0.05, 0.7])
    (scene / "scene_camera.json").write_text(json.dumps({"0": {"cam_K": [500, 0, 320, 0, 500, 240, 0, 0, 1], "depth_scale": 0.1}}))
    (scene / "scene_gt.json").write_text(json.dumps({"0": [scene_gt_entry(4, T)]}))
    write_targets(tmp_path / "test_targets_bop19.json", [Target(3, 0, 4, 1)])
    dataset = BopDataset(tmp_path)
    np.testing.assert_allclose(dataset.image(3, 0).gt[0].T_cam_obj, T, atol=1e-12)
    assert dataset.targets == [Target(3, 0, 4, 1)]
    with pytest.raises(FileNotFoundError, match="000000.png: missing"):
        dataset.image(3, 0).load_rgb()


def test_bad_camera_intrinsics_name_the_file(tmp_path):
    scene = tmp_path / "test" / "000001"
    scene.mkdir(parents=True)
    (scene / "scene_camera.json").write_text(json.dumps({"5": {"cam_K": [0, 0, 0, 0, 0, 0, 0, 0, 1]}}))
    with pytest.raises(ValueError, match=r"scene_camera.json image 5 cam_K: focal lengths"):
        BopDataset(tmp_path)


def test_results_csv_round_trip_in_mm(tmp_path, rng):
    results = [PoseResult(1, 2, 3, 0.9, make_T(random_rotation(rng), [0.01, 0.02, 0.5]), 0.25),
               PoseResult(1, 2, 5, 0.4, make_T(random_rotation(rng), [-0.1, 0.0, 1.5]), 0.25)]
    path = tmp_path / "results.csv"
    write_results_csv(path, results)
    lines = path.read_text().splitlines()
    assert lines[0] == "scene_id,im_id,obj_id,score,R,t,time"
    assert lines[1].split(",")[5].split()[2] == "500.000000"  # t in mm
    back, problems = read_results_csv(path)
    assert problems == []
    for a, b in zip(results, back):
        np.testing.assert_allclose(a.T_cam_obj, b.T_cam_obj, atol=1e-8)
        assert (a.scene_id, a.im_id, a.obj_id, a.time_s) == (b.scene_id, b.im_id, b.obj_id, b.time_s)
    assert [r.line for r in back] == [2, 3]


def test_results_csv_reports_each_bad_line_and_keeps_the_rest(tmp_path):
    good = "1,2,3,0.5,1 0 0 0 1 0 0 0 1,0 0 500,0.1"
    path = tmp_path / "r.csv"
    path.write_text("\n".join([
        "scene_id,im_id,obj_id,score,R,t,time", good,
        "1,2,3,0.5,1 0 0 0 1 0,0 0 500,0.1",          # 6 numbers in R
        "1,2,x,0.5,1 0 0 0 1 0 0 0 1,0 0 500,0.1",    # not a number
        "1,2,3,0.5,1 0 0 0 nan 0 0 0 1,0 0 500,0.1",  # non-finite
        "1,2,3,0.5,2 0 0 0 1 0 0 0 1,0 0 500,0.1",    # not a rotation
        "1,2,3",                                      # too few columns
        good,
    ]) + "\n")
    results, problems = read_results_csv(path)
    assert [r.line for r in results] == [2, 8]
    assert [p.where for p in problems] == [f"{path}:{n}" for n in (3, 4, 5, 6, 7)]
    assert "non-finite" in problems[2].reason and "not a rotation" in problems[3].reason


def test_rle_round_trip_and_uncompressed_counts():
    mask = np.zeros((48, 64), bool)
    mask[10:30, 5:40] = True
    mask[40, 60] = True
    rle = encode_mask(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [48, 64]
    assert np.array_equal(decode_mask(json.loads(json.dumps(rle))), mask)
    small = np.zeros((3, 4), bool)
    small[1, 1:3] = True  # column-major runs: 4 off, 1 on, 2 off, 1 on, 4 off
    assert np.array_equal(decode_mask({"size": [3, 4], "counts": [4, 1, 2, 1, 4]}), small)


def test_detections_json_round_trip_and_bad_entries(tmp_path):
    mask = np.zeros((20, 30), bool)
    mask[5:10, 5:15] = True
    detections = [BopDetection(1, 7, 3, (5.0, 5.0, 10.0, 5.0), 0.8, mask, 0.05),
                  BopDetection(1, 7, 4, (0.0, 0.0, 4.0, 4.0), 0.3, None),
                  BopDetection(1, 8, 3, (1.0, 2.0, 3.0, 4.0), 0.6, None)]
    path = tmp_path / "det.json"
    write_detections_json(path, detections)
    entries = json.loads(path.read_text())
    assert set(entries[0]) == {"scene_id", "image_id", "category_id", "bbox", "score", "time", "segmentation"}
    back, problems = read_detections_json(path)
    assert problems == [] and np.array_equal(back[0].mask, mask) and back[1].mask is None
    assert [len(v) for v in group_by_image(back).values()] == [2, 1]
    entries.append({"scene_id": 1, "image_id": 9, "category_id": 3, "bbox": [0, 0, -1, 5], "score": 1})
    entries.append({"scene_id": 1, "category_id": 3, "bbox": [0, 0, 1, 5]})
    path.write_text(json.dumps(entries))
    back, problems = read_detections_json(path)
    assert len(back) == 3 and [p.where.rsplit(":", 1)[1] for p in problems] == ["entry 3", "entry 4"]

"""Pose-error breakdown on tiny hand-written BOP datasets (two boxes, no images or depth needed)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from novel_pose_ros.bop.breakdown import (
    breakdown_results_file,
    compute_breakdown,
    read_diagnostics,
    symmetric_rotation_error_deg,
)
from novel_pose_ros.bop.dataset import BopDataset, Target, scene_camera_entry, scene_gt_entry, write_json, write_targets
from novel_pose_ros.bop.metrics import rotation_error_deg
from novel_pose_ros.bop.results import PoseResult, write_results_csv
from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle

K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
BOXES_MM = {1: (60.0, 40.0, 20.0), 2: (50.0, 30.0, 24.0)}  # object 2 declares the 180° turn about its x axis
FLIP_X = make_T(rotation_from_axis_angle(np.array([1.0, 0.0, 0.0]), np.pi), np.zeros(3))
BOX_FACES = [(0, 2, 1), (0, 3, 2), (4, 5, 6), (4, 6, 7), (0, 1, 5), (0, 5, 4),
             (2, 3, 7), (2, 7, 6), (1, 2, 6), (1, 6, 5), (0, 4, 7), (0, 7, 3)]


def _box_ply(size_mm: tuple[float, float, float]) -> str:
    a, b, c = (s / 2 for s in size_mm)
    corners = [(-a, -b, -c), (a, -b, -c), (a, b, -c), (-a, b, -c), (-a, -b, c), (a, -b, c), (a, b, c), (-a, b, c)]
    header = ["ply", "format ascii 1.0", "element vertex 8", "property float x", "property float y", "property float z",
              "element face 12", "property list uchar int vertex_indices", "end_header"]
    return "\n".join(header + [f"{x} {y} {z}" for x, y, z in corners] + [f"3 {i} {j} {k}" for i, j, k in BOX_FACES]) + "\n"


def gt_pose(n: int, obj_id: int) -> np.ndarray:
    """T_cam_obj whose object x axis is perpendicular to the optical axis: R = Rz(θ) Rx(φ)."""
    R = rotation_from_axis_angle(np.array([0.0, 0.0, 1.0]), 0.7 * n + 0.3 * obj_id) @ \
        rotation_from_axis_angle(np.array([1.0, 0.0, 0.0]), 0.5 + 0.4 * n)
    return make_T(R, np.array([0.08 * (obj_id - 1.5), 0.03 * n - 0.03, 0.6 + 0.05 * n]))


def write_tiny_dataset(root: Path, images: int = 3, extra: dict | None = None, targets: list[Target] | None = None) -> BopDataset:
    """Scene 0, `images` images, each with one instance of objects 1 and 2 (extra: {im_id: [(obj_id, T, visib)]})."""
    info = {}
    for obj_id, size in BOXES_MM.items():
        (root / "models").mkdir(parents=True, exist_ok=True)
        (root / "models" / f"obj_{obj_id:06d}.ply").write_text(_box_ply(size))
        info[str(obj_id)] = {"diameter": float(np.linalg.norm(size))}
    sym_mm = FLIP_X.copy()
    info["2"]["symmetries_discrete"] = [sym_mm.ravel().tolist()]
    write_json(root / "models" / "models_info.json", info)
    scene = root / "test" / "000000"
    cameras, gts, gt_infos = {}, {}, {}
    for im in range(images):
        instances = [(o, gt_pose(im, o), 1.0) for o in BOXES_MM] + list((extra or {}).get(im, []))
        cameras[str(im)] = scene_camera_entry(K, 1.0)
        gts[str(im)] = [scene_gt_entry(o, T) for o, T, _ in instances]
        gt_infos[str(im)] = [{"visib_fract": v} for _, _, v in instances]
    write_json(scene / "scene_camera.json", cameras)
    write_json(scene / "scene_gt.json", gts)
    write_json(scene / "scene_gt_info.json", gt_infos)
    if targets is not None:
        write_targets(root / "test_targets_bop19.json", targets)
    return BopDataset(root)


def gt_results(dataset: BopDataset, change=lambda T, obj_id: T) -> list[PoseResult]:
    """One result per GT instance, `change(T_gt, obj_id)` applied, lines 2, 3, … as in a CSV with a header."""
    rows = [(image, g) for image in dataset.images() for g in image.gt]
    return [PoseResult(image.scene_id, image.im_id, g.obj_id, 0.9, change(g.T_cam_obj, g.obj_id), 0.1, line=n + 2)
            for n, (image, g) in enumerate(rows)]


def flipped(T: np.ndarray) -> np.ndarray:
    return T @ FLIP_X  # 180° about the object's x axis, which is perpendicular to the view


@pytest.fixture
def dataset(tmp_path):
    return write_tiny_dataset(tmp_path / "bop")


def test_ground_truth_results_have_no_error(dataset):
    results = gt_results(dataset)
    results.insert(0, PoseResult(0, 1, 1, 1.0, flipped(dataset.image(0, 1).gt[0].T_cam_obj), 0.1, line=99))  # worse, first, higher score
    out = compute_breakdown(dataset, results)
    all_ = out.overall
    assert (all_.targets, all_.missing) == (6, 0) and len(out.rows) == 6
    assert all_.rot_err_deg_p90 == pytest.approx(0.0, abs=1e-3) and all_.flip_rate == 0.0
    assert all_.within_15deg == all_.within_30deg == 1.0
    assert all_.depth_err_pct_p75 == pytest.approx(0.0, abs=1e-6) and all_.plane_err_mm_p50 == pytest.approx(0.0, abs=1e-6)
    assert all_.mssd_below_0_1d == all_.mssd_below_0_2d == 1.0 and all_.mspd_px_p50 == pytest.approx(0.0, abs=1e-4)
    assert [s.obj_id for s in out.objects] == [1, 2] and all(s.targets == 3 for s in out.objects)
    assert 99 not in [r.result_line for r in out.rows]  # the best estimate is the lowest MSSD, not the highest score
    assert all_.diagnostics is None


def test_flip_of_a_non_symmetric_object_is_a_flip(dataset):
    out = compute_breakdown(dataset, gt_results(dataset, lambda T, o: flipped(T) if o == 1 else T))
    obj1, obj2 = out.objects
    assert obj1.flip_rate == 1.0 and obj1.rot_err_deg_p25 == pytest.approx(180.0, abs=1e-3)
    assert obj1.within_30deg == 0.0 and obj1.mssd_below_0_2d == 0.0
    assert obj1.depth_err_pct_p50 == pytest.approx(0.0, abs=1e-6)  # a rotation about the centre: no translation error
    assert obj2.flip_rate == 0.0 and out.overall.flip_rate == 0.5


def test_flip_declared_as_a_symmetry_is_no_error(dataset):
    out = compute_breakdown(dataset, gt_results(dataset, lambda T, o: flipped(T) if o == 2 else T))
    obj2 = out.objects[1]
    assert obj2.rot_err_deg_p90 == pytest.approx(0.0, abs=1e-3) and obj2.flip_rate == 0.0
    assert obj2.mssd_below_0_1d == 1.0
    rows = [r for r in out.rows if r.obj_id == 2]
    assert all(r.rotation_error_deg < 1e-3 for r in rows)


def test_depth_error_along_the_ray_is_depth_not_plane(dataset):
    def farther(T, obj_id):
        T = T.copy()
        T[:3, 3] *= 1.1
        return T

    out = compute_breakdown(dataset, gt_results(dataset, farther))
    all_ = out.overall
    assert all_.depth_err_pct_p50 == pytest.approx(10.0, abs=1e-6) and all_.depth_err_pct_p75 == pytest.approx(10.0, abs=1e-6)
    assert all_.plane_err_mm_p50 == pytest.approx(0.0, abs=1e-6)
    assert all_.rot_err_deg_p90 == pytest.approx(0.0, abs=1e-3)
    assert all(r.depth_error == pytest.approx(0.1) and r.plane_error_m < 1e-9 for r in out.rows)


def test_missing_estimates_are_missing_not_errors(dataset):
    results = [r for r in gt_results(dataset) if not (r.im_id == 2 and r.obj_id == 1)]
    out = compute_breakdown(dataset, results)
    assert (out.overall.targets, out.overall.missing) == (6, 1)
    assert (out.objects[0].targets, out.objects[0].missing) == (3, 1)
    assert out.overall.flip_rate == 0.0 and out.overall.mssd_below_0_1d == 1.0  # over the 5 estimated targets
    missing = [r for r in out.rows if r.missing]
    assert [(r.im_id, r.obj_id) for r in missing] == [(2, 1)] and missing[0].rotation_error_deg is None
    data = json.loads(out.to_json())
    row = next(t for t in data["targets"] if t["missing"])
    assert row["rotation_error_deg"] is None and row["flip"] is None


def test_only_valid_gt_instances_are_targets(tmp_path):
    """A second, less visible instance of object 1 with inst_count 1 is not broken down (BOP19 rule)."""
    hidden = make_T(np.eye(3), np.array([0.0, 0.1, 0.9]))
    targets = [Target(0, 0, 1, 1), Target(0, 0, 2, 1)]
    dataset = write_tiny_dataset(tmp_path / "bop", images=1, extra={0: [(1, hidden, 0.2)]}, targets=targets)
    out = compute_breakdown(dataset, gt_results(dataset))
    assert [(r.obj_id, r.gt_index) for r in out.rows] == [(1, 0), (2, 1)]
    assert out.overall.targets == 2 and out.overall.rot_err_deg_p90 == pytest.approx(0.0, abs=1e-3)


def test_rotation_error_matches_the_plain_metric_without_symmetries(rng):
    for _ in range(5):
        R_a = rotation_from_axis_angle(rng.normal(size=3), rng.uniform(0, np.pi))
        R_b = rotation_from_axis_angle(rng.normal(size=3), rng.uniform(0, np.pi))
        assert symmetric_rotation_error_deg(R_a, R_b, np.eye(4)[None]) == pytest.approx(rotation_error_deg(R_a, R_b), abs=1e-6)


def write_results_and_diagnostics(dataset: BopDataset, folder: Path, ranks, sources, flips) -> tuple[Path, Path]:
    """CSV: one row per GT instance (object 1 flipped where `flips`), a malformed row after the first;
    diagnostics: one line per CSV row, in order."""
    results = gt_results(dataset, lambda T, o: T)
    results = [PoseResult(r.scene_id, r.im_id, r.obj_id, r.score, flipped(r.T_cam_obj) if f else r.T_cam_obj, r.time_s)
               for r, f in zip(results, flips)]
    csv_path, diag_path = folder / "results.csv", folder / "results.diag.jsonl"
    write_results_csv(csv_path, results)
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(lines[:2] + ["0,0,1,oops"] + lines[2:]) + "\n")
    entries = [dict(scene_id=r.scene_id, im_id=r.im_id, obj_id=r.obj_id, source=s, chosen_rank=0 if k == 0 else 1,
                    inliers=10 * (n + 1), correspondences=100, inlier_ratio=0.1 * (n + 1), gt_view_rank=k,
                    gt_view_angle_deg=None if k is None else 3.0 * k) for n, (r, k, s) in enumerate(zip(results, ranks, sources))]
    entries.insert(1, dict(scene_id=0, im_id=0, obj_id=1, source="pnp:view0", chosen_rank=0, inliers=0))  # the bad row's
    diag_path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return csv_path, diag_path


RANKS = [0, 0, 2, 5, None, 1]  # rows: (im 0, obj 1), (im 0, obj 2), (im 1, obj 1), (im 1, obj 2), (im 2, obj 1), (im 2, obj 2)
SOURCES = ["pnp:view1", "pnp:view2", "affine_fallback:view3", "pnp:view4", "affine_fallback:view5", "pnp:view6"]
FLIPS = [False, False, True, False, True, False]  # object 1 only


def test_diagnostics_join_aggregates_ranks_sources_and_flips(dataset, tmp_path):
    csv_path, diag_path = write_results_and_diagnostics(dataset, tmp_path, RANKS, SOURCES, FLIPS)
    out = breakdown_results_file(dataset, csv_path, diag_path)
    d = out.overall.diagnostics
    assert (d.lines, d.retrieval_known) == (6, 5)
    assert d.top1_rate == pytest.approx(2 / 5) and d.top3_rate == pytest.approx(4 / 5)
    assert d.source_shares == pytest.approx({"affine_fallback": 2 / 6, "pnp": 4 / 6}) and d.fallback_share == pytest.approx(2 / 6)
    assert d.chosen_rank0_share == pytest.approx(2 / 6) and d.chosen_rank_other_share == pytest.approx(4 / 6)
    assert d.inliers_p50 == pytest.approx(35.0)  # 10 … 60, the bad row's line (0 inliers) belongs to no result
    assert d.flip_rate_top1_right == 0.0 and d.flip_rate_top1_wrong == pytest.approx(1 / 3)  # ranks 2 (flip), 5, 1
    obj1 = out.objects[0].diagnostics
    assert obj1.top1_rate == pytest.approx(1 / 2) and obj1.fallback_share == pytest.approx(2 / 3)
    assert obj1.flip_rate_top1_wrong == 1.0 and out.objects[0].flip_rate == pytest.approx(2 / 3)
    rows = json.loads(out.to_json())["targets"]
    assert [r["diagnostics"]["gt_view_rank"] for r in rows] == RANKS
    assert [r["diagnostics"]["line"] for r in rows] == [1, 3, 4, 5, 6, 7]


def test_diagnostics_errors_name_the_file_and_line(dataset, tmp_path):
    csv_path, diag_path = write_results_and_diagnostics(dataset, tmp_path, RANKS, SOURCES, FLIPS)
    lines = diag_path.read_text().splitlines()
    wrong = json.loads(lines[3])
    wrong["obj_id"] = 7
    diag_path.write_text("\n".join(lines[:3] + [json.dumps(wrong)] + lines[4:]) + "\n")
    with pytest.raises(ValueError, match=rf"{diag_path}:4: scene/im/obj \(0, 1, 7\) does not match results {csv_path}:5"):
        breakdown_results_file(dataset, csv_path, diag_path)

    diag_path.write_text("\n".join(lines[:-1]) + "\n")  # one line short
    with pytest.raises(ValueError, match="6 lines for 7 results rows"):
        breakdown_results_file(dataset, csv_path, diag_path)
    diag_path.write_text(lines[0] + "\n{not json\n")
    with pytest.raises(ValueError, match=rf"{diag_path}:2: invalid JSON"):
        read_diagnostics(diag_path)
    diag_path.write_text('{"scene_id": 0, "im_id": 0, "obj_id": 1, "gt_view_rank": "top"}\n')
    with pytest.raises(ValueError, match=rf"{diag_path}:1: 'gt_view_rank' must be int or null"):
        read_diagnostics(diag_path)
    diag_path.write_text('[1, 2]\n')
    with pytest.raises(ValueError, match="expected a JSON object"):
        read_diagnostics(diag_path)

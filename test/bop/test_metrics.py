"""Our BOP error functions against the BOP toolkit's own numbers (reference_errors.json), plus unit checks."""
import json
import math

import numpy as np
import pytest

from helpers import SHARED_DATA, shared_data
from novel_pose_ros.bop import metrics
from novel_pose_ros.bop.dataset import BopDataset
from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle
from novel_pose_ros.types import Symmetries

MM = 1e-3


@pytest.fixture(scope="module")
def oracle():
    root = shared_data("bop_metric_oracle")
    reference = json.loads((root / "reference_errors.json").read_text())
    dataset = BopDataset(root)
    image = dataset.image(2, 3)
    library = dataset.object_library(sorted({c["obj_id"] for c in reference["results"]}))
    depth = image.load_depth_m()
    return {"reference": reference, "image": image, "library": library, "depth": depth,
            "gt": {g.obj_id: g.T_cam_obj for g in image.gt}, "K": np.array(reference["K"]).reshape(3, 3)}


def _cases():
    """One parameter per reference case (a single skipped one when the data is absent)."""
    path = SHARED_DATA / "bop_metric_oracle" / "reference_errors.json"
    if not path.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"needs {path}"))]
    results = json.loads(path.read_text())["results"]
    return [pytest.param(i, id=f"obj{c['obj_id']}-{c['perturbation']}") for i, c in enumerate(results)]


def _relative(ours: float, reference: float) -> float:
    return abs(ours - reference) / abs(reference)


@pytest.mark.needs_data
@pytest.mark.parametrize("case_index", _cases())
def test_errors_match_the_bop_toolkit(oracle, gl_renderer, case_index):
    case = oracle["reference"]["results"][case_index]
    obj = oracle["library"].get(case["obj_id"])
    T_gt = oracle["gt"][case["obj_id"]]
    T_est = make_T(np.reshape(case["R_est"], (3, 3)), np.asarray(case["t_est"]) * MM)
    points = np.asarray(obj.mesh.vertices)
    symmetries = metrics.symmetry_transforms(obj.symmetries)
    K, depth = oracle["K"], oracle["depth"]
    height, width = depth.shape

    assert len(symmetries) == case["n_syms"]
    assert _relative(metrics.mssd(T_est, T_gt, metrics.hull_points(points), symmetries) / MM, case["mssd_mm"]) < 1e-3
    assert _relative(metrics.mspd(T_est, T_gt, points, symmetries, K, width), case["mspd_px"]) < 1e-3
    assert _relative(metrics.add(T_est, T_gt, points) / MM, case["add_mm"]) < 1e-3
    assert _relative(metrics.adi(T_est, T_gt, points) / MM, case["adi_mm"]) < 1e-3
    assert metrics.rotation_error_deg(T_est[:3, :3], T_gt[:3, :3]) == pytest.approx(case["re_deg"], rel=1e-3, abs=1e-4)
    assert metrics.translation_error_m(T_est[:3, 3], T_gt[:3, 3]) / MM == pytest.approx(case["te_mm"], rel=1e-6, abs=1e-6)

    depth_est = metrics.render_depth_m(gl_renderer, obj, T_est, K, width, height)
    depth_gt = metrics.render_depth_m(gl_renderer, obj, T_gt, K, width, height)
    ours = metrics.vsd(depth_est, depth_gt, depth, K, obj.diameter_m, oracle["reference"]["taus"], delta_m=0.015)
    assert len(ours) == 10
    np.testing.assert_allclose(ours, case["vsd"], rtol=0, atol=0.01)


@pytest.mark.needs_data
def test_symmetric_pose_has_zero_mssd_and_mspd_but_not_zero_add(oracle):
    """Object 10 turned by its discrete symmetry looks the same: MSSD/MSPD ≈ 0, ADD large."""
    obj = oracle["library"].get(10)
    T_gt = oracle["gt"][10]
    S = np.asarray(obj.symmetries.discrete[0])
    T_est = T_gt @ S
    points = np.asarray(obj.mesh.vertices)
    symmetries = metrics.symmetry_transforms(obj.symmetries)
    assert metrics.mssd(T_est, T_gt, points, symmetries) < 1e-9
    assert metrics.mspd(T_est, T_gt, points, symmetries, oracle["K"], 640) < 1e-6
    assert metrics.add(T_est, T_gt, points) > 0.05  # metres: the flip moves vertices a lot
    without_symmetry = metrics.symmetry_transforms(Symmetries())
    assert metrics.mssd(T_est, T_gt, points, without_symmetry) > 0.1


@pytest.mark.needs_data
def test_hull_and_chunking_do_not_change_mssd_mspd(oracle, monkeypatch):
    obj = oracle["library"].get(11)
    case = next(c for c in oracle["reference"]["results"] if c["obj_id"] == 11 and c["perturbation"] == "roty20deg")
    T_est = make_T(np.reshape(case["R_est"], (3, 3)), np.asarray(case["t_est"]) * MM)
    points = np.asarray(obj.mesh.vertices)
    symmetries = metrics.symmetry_transforms(obj.symmetries)
    full = metrics.mssd(T_est, oracle["gt"][11], points, symmetries)
    assert metrics.mssd(T_est, oracle["gt"][11], metrics.hull_points(points), symmetries) == pytest.approx(full, rel=1e-12)
    mspd = metrics.mspd(T_est, oracle["gt"][11], points, symmetries, oracle["K"], 640)
    monkeypatch.setattr(metrics, "CHUNK_ELEMENTS", 10)  # one symmetry per block
    assert metrics.mssd(T_est, oracle["gt"][11], points, symmetries) == pytest.approx(full, rel=1e-12)
    assert metrics.mspd(T_est, oracle["gt"][11], points, symmetries, oracle["K"], 640) == pytest.approx(mspd, rel=1e-12)
    assert full / MM == pytest.approx(case["mssd_mm"], rel=1e-3)


def test_symmetry_transforms_continuous_axis_sampling():
    offset = np.array([0.01, -0.02, 0.0])
    axis = np.array([0.0, 0.0, 2.0])
    flip = make_T(rotation_from_axis_angle(np.array([1.0, 0.0, 0.0]), math.pi), [0.0, 0.0, 0.03])
    sym = Symmetries(discrete=flip[None], continuous_axes=axis[None], continuous_offsets_m=offset[None])
    transforms = metrics.symmetry_transforms(sym)
    n = math.ceil(math.pi / 0.01)
    assert n == 315 and transforms.shape == (2 * n, 4, 4)
    np.testing.assert_allclose(transforms[0], np.eye(4), atol=1e-12)  # identity first
    np.testing.assert_allclose(transforms[n], flip, atol=1e-12)  # continuous step 0 ∘ flip
    # Every continuous sample rotates about the axis through `offset`: that point stays fixed.
    for T in transforms[:n]:
        np.testing.assert_allclose(T[:3, :3] @ offset + T[:3, 3], offset, atol=1e-12)
    angles = np.arctan2(transforms[:n, 1, 0], transforms[:n, 0, 0])
    np.testing.assert_allclose(np.diff(np.unwrap(angles)), 2 * math.pi / n, atol=1e-12)
    # C ∘ D: flip first, then the continuous rotation.
    np.testing.assert_allclose(transforms[n + 5], transforms[5] @ flip, atol=1e-12)
    assert metrics.symmetry_transforms(Symmetries()).shape == (1, 4, 4)


def test_mspd_is_scaled_to_a_640_px_wide_image_and_inf_behind_the_camera():
    points = np.array([[0.05, 0.0, 0.0], [0.0, 0.05, 0.0], [0.0, 0.0, 0.05], [-0.05, -0.05, -0.05]])
    K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
    T_gt = make_T(np.eye(3), [0.0, 0.0, 1.0])
    T_est = make_T(np.eye(3), [0.002, 0.0, 1.0])  # 2 mm sideways at ~1 m: about 1 px
    syms = metrics.symmetry_transforms(Symmetries())
    at_640 = metrics.mspd(T_est, T_gt, points, syms, K, 640)
    assert at_640 == pytest.approx(500 * 0.002 / 0.95, rel=1e-9)  # the nearest vertex (z = 0.95) moves most
    assert metrics.mspd(T_est, T_gt, points, syms, K, 1280) == pytest.approx(at_640 / 2)
    behind = make_T(np.eye(3), [0.0, 0.0, -1.0])
    assert metrics.mspd(behind, T_gt, points, syms, K, 640) == math.inf


def test_distance_image_uses_integer_pixel_centres():
    K = np.array([[500.0, 0.0, 2.0], [0.0, 400.0, 1.0], [0.0, 0.0, 1.0]])
    depth = np.full((3, 5), 2.0, dtype=np.float32)
    depth[0, 0] = 0.0
    dist = metrics.distance_image(depth, K)
    assert dist[1, 2] == pytest.approx(2.0)  # the principal point
    assert dist[2, 4] == pytest.approx(2.0 * math.sqrt((2 / 500) ** 2 + (1 / 400) ** 2 + 1), rel=1e-6)
    assert dist[0, 0] == 0.0


def test_vsd_step_cost_on_synthetic_depth():
    K = np.array([[500.0, 0.0, 1.5], [0.0, 500.0, 1.5], [0.0, 0.0, 1.0]])
    test = np.ones((4, 4), dtype=np.float32)
    gt = np.zeros((4, 4), dtype=np.float32)
    gt[:2, :] = 1.0  # 8 visible pixels
    assert metrics.vsd(gt, gt, test, K, 0.1, [0.05, 0.5]) == [0.0, 0.0]
    est = gt.copy()
    est[:2, :2] += 0.01  # 4 pixels 1 cm behind: visible (≤ δ), off by 0.1 × diameter
    est[2, 0] = 1.0  # one extra visible pixel outside the GT surface
    # union 9 pixels, intersection 8; τ = 0.05: 4 costly + 1 outside; τ = 0.5: 0 + 1.
    np.testing.assert_allclose(metrics.vsd(est, gt, test, K, 0.1, [0.05, 0.5]), [5 / 9, 1 / 9], rtol=1e-5)
    empty = np.zeros_like(gt)
    assert metrics.vsd(empty, empty, test, K, 0.1, [0.05]) == [1.0]
    occluded = np.full_like(gt, 1.5)  # behind the test surface by more than δ: invisible
    assert metrics.vsd(occluded, gt, test, K, 0.1, [0.5]) == [1.0]
    with pytest.raises(ValueError, match="expected shape"):
        metrics.vsd(est[:3], gt, test, K, 0.1)


def test_mspd_pruning_over_continuous_symmetries_is_exact(rng):
    """MSPD bounds symmetries on a point subset first; it must equal the plain min over all 315."""
    points = rng.normal(size=(6000, 3)) * np.array([0.03, 0.03, 0.06])
    sym = Symmetries(continuous_axes=np.array([[0.0, 0.0, 1.0]]), continuous_offsets_m=np.array([[0.005, 0.0, 0.0]]))
    transforms = metrics.symmetry_transforms(sym)
    K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])
    T_gt = make_T(rotation_from_axis_angle(np.array([1.0, 0.2, 0.0]), 2.0), [0.02, -0.01, 0.8])
    T_est = T_gt @ make_T(rotation_from_axis_angle(np.array([0.0, 0.3, 1.0]), 0.4), [0.004, 0.0, 0.01])

    def project(T):
        cam = points @ T[:3, :3].T + T[:3, 3]
        return cam[:, :2] / cam[:, 2:] * 600.0

    brute = min(np.linalg.norm(project(T_est) - project(T_gt @ S), axis=1).max() for S in transforms)
    assert metrics.mspd(T_est, T_gt, points, transforms, K, 640) == pytest.approx(brute, rel=1e-9)
    assert metrics.mssd(T_est, T_gt, points, transforms) == pytest.approx(
        min(np.linalg.norm(points @ (T_est[:3, :3] - (T_gt @ S)[:3, :3]).T + T_est[:3, 3] - (T_gt @ S)[:3, 3], axis=1).max()
            for S in transforms), rel=1e-9)

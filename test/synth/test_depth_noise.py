"""Kinect-like synthetic depth: axial noise growing with z², holes at depth edges and grazing angles, quantisation,
seeded; `depth_noise: none` leaves the generator's output as it was, `kinect` changes the depth only."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import BUNDLED_OBJECTS
from novel_pose_ros.bop.dataset import BopDataset
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.synth import SynthSettings, generate_dataset
from novel_pose_ros.synth.depth_noise import (
    KINECT_BASELINE_M,
    KINECT_FOCAL_PX,
    apply_depth_noise,
    axial_std_m,
    depth_edges,
    kinect_depth,
    quantise_disparity,
)

K = np.array([[580.0, 0.0, 160.0], [0.0, 580.0, 120.0], [0.0, 0.0, 1.0]])


def _flat(z: float) -> np.ndarray:
    return np.full((240, 320), z, np.float32)


def test_axial_noise_grows_with_the_square_of_the_distance():
    stds = []
    for z in (0.6, 1.0, 2.0, 3.0):
        noisy = kinect_depth(_flat(z), K, np.random.default_rng(0))[20:-20, 20:-20]  # a frontal wall
        assert (noisy > 0).mean() > 0.999  # no holes on a frontal surface
        step = z ** 2 * (1.0 / 8.0) / (KINECT_FOCAL_PX * KINECT_BASELINE_M)  # disparity quantisation step
        expected = np.sqrt(axial_std_m(z) ** 2 + step ** 2 / 12.0)
        stds.append(float(np.std(noisy - z)))
        assert stds[-1] == pytest.approx(expected, rel=0.25)
        assert abs(float(np.median(noisy)) - z) < max(step, 0.002)  # unbiased up to one quantisation step
    assert stds == sorted(stds) and stds[-1] / stds[1] > 4.0  # 3 m against 1 m: ≈ (3 − 0.4)² / (1 − 0.4)² in the z² term


def test_quantisation_steps_grow_with_z_squared():
    z = np.linspace(0.8, 1.2, 2000)
    levels_near = np.unique(quantise_disparity(z))
    far = np.linspace(2.8, 3.2, 2000)
    levels_far = np.unique(quantise_disparity(far))
    step_near, step_far = np.median(np.diff(levels_near)), np.median(np.diff(levels_far))
    assert step_far / step_near == pytest.approx(9.0, rel=0.1) and 0.002 < step_near < 0.004


def test_holes_come_at_depth_edges_and_grazing_angles_not_on_frontal_surfaces():
    depth = _flat(1.5)
    depth[80:160, 100:220] = 0.8  # a box in front of a wall
    noisy = kinect_depth(depth, K, np.random.default_rng(1))
    edges = depth_edges(depth)
    interior = np.ones_like(edges)
    interior[75:165, 95:225] = False  # away from the box outline (lateral noise reaches ~2 px) ...
    interior[85:155, 105:215] = True  # ... on the box face and on the wall
    interior[:3], interior[-3:], interior[:, :3], interior[:, -3:] = False, False, False, False
    assert 0.35 < (noisy[edges] == 0).mean() < 0.75
    assert (noisy[interior] == 0).mean() < 0.002
    ys = np.arange(240, dtype=np.float64)[:, None]
    tilted = np.broadcast_to(1.0 + 0.5 * (ys - 120) / 580.0 * 12.0, (240, 320)).astype(np.float32)  # ≈ 80° slope
    tilted = np.where(tilted > 0.3, tilted, 0.3).astype(np.float32)
    grazing_holes = (kinect_depth(tilted, K, np.random.default_rng(2))[60:180, 40:280] == 0).mean()
    assert grazing_holes > 0.3


def test_the_noise_is_seeded_and_none_changes_nothing():
    depth = _flat(1.0)
    depth[50:100, 50:100] = 0.7
    a = apply_depth_noise("kinect", depth, K, seed=3, scene_id=0, im_id=1)
    assert np.array_equal(a, apply_depth_noise("kinect", depth, K, seed=3, scene_id=0, im_id=1))
    assert not np.array_equal(a, apply_depth_noise("kinect", depth, K, seed=3, scene_id=0, im_id=2))
    assert apply_depth_noise("none", depth, K, seed=3, scene_id=0, im_id=1) is depth
    with pytest.raises(ValueError, match="expected one of"):
        apply_depth_noise("realsense", depth, K, 0, 0, 0)
    with pytest.raises(ValueError, match="depth_noise must be one of"):
        SynthSettings(depth_noise="tof")


def test_kinect_datasets_differ_from_exact_ones_in_depth_only(tmp_path, gl_renderer):
    library = ObjectLibrary.from_yaml(BUNDLED_OBJECTS).subset(["cereal_box"])
    settings = SynthSettings(width=160, height=120, focal_px=150.0, objects_per_scene=(2, 2))
    exact = BopDataset(generate_dataset(library, tmp_path / "exact", 1, 2, 5, settings, gl_renderer, False).out_dir)
    noisy_settings = SynthSettings(width=160, height=120, focal_px=150.0, objects_per_scene=(2, 2), depth_noise="kinect")
    noisy = BopDataset(generate_dataset(library, tmp_path / "noisy", 1, 2, 5, noisy_settings, gl_renderer, False).out_dir)
    for a, b in zip(exact.images(), noisy.images()):
        assert np.array_equal(a.load_rgb(), b.load_rgb()) and [g.T_cam_obj.tolist() for g in a.gt] == [
            g.T_cam_obj.tolist() for g in b.gt]
        da, db = a.load_depth_m(), b.load_depth_m()
        both = (da > 0) & (db > 0)
        # holes: edges, and the support plane where a low camera sees it at a grazing angle
        assert not np.array_equal(da, db) and 0.01 < (db[da > 0] == 0).mean() < 0.6
        assert np.median(np.abs(db[both] - da[both])) < 0.004

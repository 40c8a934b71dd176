"""Rigid 3D–3D fit: exact Kabsch, a known transform recovered through noise and 40 % outliers, no reflections."""
from __future__ import annotations

import numpy as np
import pytest

from novel_pose_ros.geometry.rigid_fit import fit_rigid_ransac, kabsch
from novel_pose_ros.geometry.se3 import make_T, random_rotation, rotation_angle_rad, transform_points


def _pairs(rng, n=400, noise_m=0.002, outlier_share=0.4):
    T = make_T(random_rotation(rng), rng.uniform(-0.3, 0.3, 3) + [0.0, 0.0, 0.8])
    src = rng.uniform(-0.08, 0.08, (n, 3))  # an object-sized cloud, metres
    dst = transform_points(T, src) + rng.normal(0.0, noise_m, (n, 3))
    outliers = rng.random(n) < outlier_share
    dst[outliers] = rng.uniform(-0.3, 0.3, (int(outliers.sum()), 3)) + [0.0, 0.0, 0.8]  # anywhere in the view
    return T, src, dst, outliers


def test_kabsch_is_exact_without_noise_and_ignores_zero_weights(rng):
    T, src, dst, _ = _pairs(rng, n=50, noise_m=0.0, outlier_share=0.0)
    assert np.allclose(kabsch(src, dst), T, atol=1e-9)
    dst[:5] += 1.0  # five wrong pairs that count for nothing
    weights = np.ones(50)
    weights[:5] = 0.0
    assert np.allclose(kabsch(src, dst, weights), T, atol=1e-9)


def test_a_known_transform_is_recovered_from_noisy_pairs_with_40_percent_outliers(rng):
    T, src, dst, outliers = _pairs(rng)
    fit = fit_rigid_ransac(src, dst, threshold_m=0.008, iterations=200, seed=0)
    assert fit.success
    assert np.degrees(rotation_angle_rad(fit.T_dst_src[:3, :3], T[:3, :3])) < 0.5
    assert np.linalg.norm(fit.T_dst_src[:3, 3] - T[:3, 3]) < 0.002
    found = np.zeros(len(src), bool)
    found[fit.inliers] = True
    assert (found & outliers).sum() <= 2 and (found & ~outliers).mean() / (~outliers).mean() > 0.97
    assert fit.rms_m < 0.006  # 2 mm per axis: ≈ 3.5 mm in 3D
    again = fit_rigid_ransac(src, dst, threshold_m=0.008, iterations=200, seed=0)
    assert np.array_equal(again.T_dst_src, fit.T_dst_src)  # seeded


def test_a_mirror_image_gives_a_rotation_not_a_reflection(rng):
    src = rng.uniform(-0.1, 0.1, (30, 3))
    T = kabsch(src, src * [1.0, 1.0, -1.0])
    assert np.isclose(np.linalg.det(T[:3, :3]), 1.0)


def test_collinear_points_and_too_few_inliers_fail_with_a_reason(rng):
    line = np.outer(np.linspace(0.0, 0.1, 20), [1.0, 0.0, 0.0])
    fit = fit_rigid_ransac(line, line + [0.0, 0.0, 0.5], threshold_m=0.005)
    assert not fit.success and "degenerate" in fit.reason
    _, src, dst, _ = _pairs(rng, n=40, outlier_share=1.0)
    fit = fit_rigid_ransac(src, dst, threshold_m=0.001, min_inliers=12)
    assert not fit.success and "need 12" in fit.reason


def test_bad_input_says_expected_versus_actual():
    with pytest.raises(ValueError, match=r"points_dst.*\(5, 3\)"):
        fit_rigid_ransac(np.zeros((5, 3)), np.zeros((4, 3)), 0.01)
    with pytest.raises(ValueError, match="threshold_m"):
        fit_rigid_ransac(np.zeros((5, 3)), np.zeros((5, 3)), 0.0)

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from novel_pose_ros.geometry.lm_pnp import (
    DEFAULT_FLOW_RADIUS_PX,
    correspondence_weights,
    flow_probability,
    lm_pnp,
    se3_exp,
)
from novel_pose_ros.training.refiner_losses import disentangled_point_matching

K_640 = np.array([[600.0, 0.0, 319.5], [0.0, 600.0, 239.5], [0.0, 0.0, 1.0]])


def make_problems(rng, batch=3, n=400, angle_deg=10.0, shift_m=0.03):
    """Points in a 10 cm box at 0.5–1 m, exact pixels, and a start perturbed by angle_deg / shift_m."""
    points = rng.uniform(-0.05, 0.05, size=(batch, n, 3))
    T_gt = np.tile(np.eye(4), (batch, 1, 1))
    T_gt[:, :3, :3] = Rotation.random(batch, random_state=rng.integers(1 << 31)).as_matrix()
    T_gt[:, :3, 3] = np.column_stack([rng.uniform(-0.1, 0.1, batch), rng.uniform(-0.08, 0.08, batch),
                                      rng.uniform(0.5, 1.0, batch)])
    X = points @ T_gt[:, :3, :3].transpose(0, 2, 1) + T_gt[:, None, :3, 3]
    uv = X @ K_640.T
    pixels = uv[..., :2] / uv[..., 2:]
    axes = rng.normal(size=(batch, 3))
    dirs = rng.normal(size=(batch, 3))
    xi = np.concatenate([dirs / np.linalg.norm(dirs, axis=1, keepdims=True) * shift_m,
                         axes / np.linalg.norm(axes, axis=1, keepdims=True) * math.radians(angle_deg)], axis=1)
    T_init = se3_exp(torch.from_numpy(xi)).numpy() @ T_gt
    return {k: torch.from_numpy(v) for k, v in
            dict(points=points, pixels=pixels, T_gt=T_gt, T_init=T_init, K=np.tile(K_640, (batch, 1, 1))).items()}


def pose_errors(T, T_gt):
    """Largest translation error (mm) and rotation error (degrees) over the batch."""
    T, T_gt = T.detach().double().numpy(), T_gt.detach().double().numpy()
    t_mm = np.linalg.norm(T[:, :3, 3] - T_gt[:, :3, 3], axis=1).max() * 1000.0
    R_rel = T[:, :3, :3].transpose(0, 2, 1) @ T_gt[:, :3, :3]
    deg = max(np.degrees(Rotation.from_matrix(r).magnitude()) for r in R_rel)
    return t_mm, deg


def solve(p, weights, dtype=torch.float64, pixels=None, **kwargs):
    pixels = p["pixels"] if pixels is None else pixels
    return lm_pnp(p["points"].to(dtype), pixels.to(dtype), weights.to(dtype), p["K"].to(dtype),
                  p["T_init"].to(dtype), **kwargs)


def test_se3_exp_matches_rodrigues_and_is_identity_at_zero(rng):
    xi = torch.from_numpy(rng.normal(size=(20, 6)) * np.r_[[0.1] * 3, [1.0] * 3])
    xi[:5, 3:] *= 1e-4  # Taylor branch
    T = se3_exp(xi).numpy()
    for x, Tk in zip(xi.numpy(), T):
        np.testing.assert_allclose(Tk[:3, :3], Rotation.from_rotvec(x[3:]).as_matrix(), atol=1e-12)
        np.testing.assert_allclose(Tk[3], [0, 0, 0, 1])
    assert torch.equal(se3_exp(torch.zeros(2, 6)), torch.eye(4).repeat(2, 1, 1))
    small = torch.tensor([[0.01, 0.02, 0.03, 1e-3, -2e-3, 3e-3]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(se3_exp, (small,))
    assert torch.autograd.gradcheck(se3_exp, (torch.zeros(1, 6, dtype=torch.float64, requires_grad=True),))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_exact_correspondences_recover_the_pose(rng, dtype):
    p = make_problems(rng)
    T = solve(p, torch.ones(p["points"].shape[:2]), dtype)
    assert T.dtype == dtype
    t_mm, deg = pose_errors(T, p["T_gt"])
    assert t_mm < 0.5 and deg < 0.05, (t_mm, deg)


def test_converges_from_the_training_noise(rng):
    """Co-op's refiner training noise: 15° per axis (≈ 26° in all) and 5 cm; 3 LM + 3 GN suffice."""
    p = make_problems(rng, batch=8, angle_deg=15.0 * math.sqrt(3.0), shift_m=0.05)
    t_mm, deg = pose_errors(solve(p, torch.ones(p["points"].shape[:2])), p["T_gt"])
    assert t_mm < 1e-6 and deg < 1e-6, (t_mm, deg)


def outlier_problem(rng):
    """30 % of the pixels moved 20–80 px; the network's weights on them are 0.01–0.05 (large b)."""
    p = make_problems(rng)
    B, N = p["points"].shape[:2]
    outlier = torch.from_numpy(rng.random((B, N)) < 0.3)
    angle = rng.uniform(0, 2 * np.pi, (B, N))
    offset = rng.uniform(20, 80, (B, N))[..., None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    pixels = p["pixels"] + torch.from_numpy(offset) * outlier[..., None]
    weights = torch.where(outlier, torch.from_numpy(rng.uniform(0.01, 0.05, (B, N))), torch.ones(B, N))
    return p, pixels, weights


def test_down_weighted_outliers_barely_move_the_pose_and_uniform_weights_fail(rng):
    """The residual bias (outlier weight ≈ 1 % of the total) is mostly depth and out-of-plane rotation,
    the directions a 10 cm object at up to 1 m barely shows: over 30 seeds the worst problem is off by
    1.1 mm / 0.22° (median) to 4.8 mm / 0.47° (max), with uniform weights ≥ 9× (translation) and
    ≥ 15× (rotation) worse. This seed: 0.41 mm / 0.17°, uniform weights 21 mm / 3.3°."""
    p, pixels, weights = outlier_problem(rng)
    t_mm, deg = pose_errors(solve(p, weights, pixels=pixels), p["T_gt"])
    assert t_mm < 5.0 and deg < 0.5, (t_mm, deg)
    t_uniform, deg_uniform = pose_errors(solve(p, torch.ones_like(weights), pixels=pixels), p["T_gt"])
    assert t_uniform > 5 * t_mm and t_uniform > 5.0, (t_uniform, t_mm)
    assert deg_uniform > 5 * deg and deg_uniform > 1.0, (deg_uniform, deg)


def test_zero_weights_return_the_start_and_points_behind_are_ignored(rng):
    p = make_problems(rng, batch=2, n=50)
    weights = torch.ones(2, 50)
    weights[0] = 0.0
    T = solve(p, weights, pixels=torch.where(weights[..., None] > 0, p["pixels"], torch.nan))
    assert torch.isfinite(T).all()
    assert torch.equal(T[0], p["T_init"][0])
    assert pose_errors(T[1:], p["T_gt"][1:])[0] < 0.5
    # a weighted point behind the camera (z < 0 at every pose near the truth) changes nothing
    behind_cam = torch.tensor([0.0, 0.0, -5.0], dtype=torch.float64)
    behind_obj = ((behind_cam - p["T_gt"][:, :3, 3])[:, None, :] @ p["T_gt"][:, :3, :3])  # R_gtᵀ (X − t)
    points = torch.cat([p["points"], behind_obj], 1)
    pixels = torch.cat([p["pixels"], torch.full((2, 1, 2), 300.0, dtype=torch.float64)], 1)
    q = dict(p, points=points)
    T_behind = solve(q, torch.ones(2, 51), pixels=pixels)
    assert pose_errors(T_behind, p["T_gt"])[0] < 0.5


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batch_matches_one_by_one(rng, dtype):
    p, pixels, weights = outlier_problem(rng)
    batched = solve(p, weights, dtype, pixels=pixels)
    for k in range(len(batched)):
        single = {key: v[k:k + 1] for key, v in p.items()}
        one = solve(single, weights[k:k + 1], dtype, pixels=pixels[k:k + 1])
        torch.testing.assert_close(batched[k:k + 1], one, rtol=0, atol=1e-12 if dtype == torch.float64 else 1e-5)


def test_shape_errors_state_expected_and_actual(rng):
    p = make_problems(rng, batch=2, n=10)
    with pytest.raises(ValueError, match=r"weights: expected shape \(2, 10\), got \(2, 9\)"):
        lm_pnp(p["points"], p["pixels"], torch.ones(2, 9), p["K"], p["T_init"])


def test_gradcheck_wrt_pixels_and_weights(rng):
    p = make_problems(rng, batch=1, n=12, angle_deg=3.0, shift_m=0.01)
    pixels = (p["pixels"] + torch.from_numpy(rng.normal(0, 0.5, (1, 12, 2)))).requires_grad_(True)
    weights = torch.from_numpy(rng.uniform(0.2, 1.0, (1, 12))).requires_grad_(True)

    def f(px, w):
        return lm_pnp(p["points"], px, w, p["K"], p["T_init"])[:, :3, :]

    assert torch.autograd.gradcheck(f, (pixels, weights), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


def test_pose_loss_gradients_reach_flow_and_confidence_heads(rng):
    """Co-op's training path: W from the heads, LM-PnP, disentangled point matching against the GT."""
    p = make_problems(rng, batch=2, n=64, angle_deg=8.0, shift_m=0.02)
    B, N = p["points"].shape[:2]
    mu = torch.from_numpy(rng.normal(0, 1.0, (B, N, 2))).requires_grad_(True)  # flow noise around the truth
    log_b = torch.zeros(B, N, dtype=torch.float64, requires_grad=True)
    certainty = torch.from_numpy(rng.normal(0, 1, (B, N))).requires_grad_(True)
    sensitivity = torch.from_numpy(rng.normal(0, 1, (B, N))).requires_grad_(True)
    W = correspondence_weights(certainty, sensitivity, torch.exp(log_b), DEFAULT_FLOW_RADIUS_PX)
    T = lm_pnp(p["points"], p["pixels"] + mu, W, p["K"], p["T_init"])
    loss = disentangled_point_matching(T, p["T_gt"], p["points"])["pose"]
    loss.backward()
    for name, leaf in [("mu", mu), ("log_b", log_b), ("certainty", certainty), ("sensitivity", sensitivity)]:
        assert torch.isfinite(leaf.grad).all(), name
        assert leaf.grad.abs().max() > 0, name


def test_flow_probability_and_weights():
    b = torch.tensor([1e-3, 1.0, 2.0, 1e3])
    P = flow_probability(b, 2.0)
    torch.testing.assert_close(P, 1 - torch.exp(-2.0 / b))
    assert P[0] == 1.0 and P[-1] < 0.01 and torch.all(P[:-1] > P[1:])
    W = correspondence_weights(torch.tensor([0.0, 20.0]), torch.tensor([20.0, 0.0]), torch.tensor([1.0, 1.0]), 2.0)
    torch.testing.assert_close(W, torch.full((2,), 0.5 * (1 - math.exp(-2.0))))
    with pytest.raises(ValueError, match="radius"):
        flow_probability(b, 0.0)

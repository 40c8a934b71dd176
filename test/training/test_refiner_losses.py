import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

from novel_pose_ros.training.refiner_losses import (
    certainty_bce,
    disentangled_point_matching,
    laplace_nll,
    refiner_loss,
)


def test_laplace_nll_zero_error_is_two_log_b():
    mu = torch.randn(2, 2, 4, 5)
    log_b = torch.full((2, 1, 4, 5), math.log(0.7))
    valid = torch.ones(2, 4, 5, dtype=torch.bool)
    torch.testing.assert_close(laplace_nll(mu, log_b, mu.clone(), valid), torch.tensor(2 * math.log(0.7)))


def test_laplace_nll_is_minimal_at_half_the_l1_error():
    """For L1 error e per pixel, e/b + 2 log b is minimal at b = mean(e)/2 (a shared b)."""
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(1, 2, 8, 8, generator=gen, dtype=torch.float64)
    gt = mu + torch.randn(1, 2, 8, 8, generator=gen, dtype=torch.float64)
    valid = torch.rand(1, 8, 8, generator=gen) > 0.3
    e_mean = (mu - gt).abs().sum(1)[valid].mean()
    shared = torch.log(e_mean / 2).requires_grad_(True)
    loss = laplace_nll(mu, shared.expand(1, 1, 8, 8), gt, valid)
    loss.backward()
    assert abs(float(shared.grad)) < 1e-12
    torch.testing.assert_close(loss.detach(), 2 + 2 * torch.log(e_mean / 2))
    for factor in (0.8, 1.25):
        assert laplace_nll(mu, (shared.detach() + math.log(factor)).expand(1, 1, 8, 8), gt, valid) > loss
    # per pixel (its own b): the minimum is at b = e/2
    e = (mu - gt).abs().sum(1, keepdim=True)
    own = torch.log(e / 2).requires_grad_(True)
    laplace_nll(mu, own, gt, valid).backward()
    assert own.grad.abs().max() < 1e-12


def test_laplace_nll_ignores_invalid_pixels_and_uses_the_l1_norm():
    mu = torch.zeros(1, 2, 1, 2)
    gt = torch.tensor([[3.0, torch.nan], [4.0, torch.nan]]).reshape(1, 2, 1, 2)
    valid = torch.tensor([[[True, False]]])
    loss = laplace_nll(mu, torch.zeros(1, 1, 1, 2), gt, valid)
    torch.testing.assert_close(loss, torch.tensor(7.0))  # |3| + |4| over b = 1, log 1 = 0
    with pytest.raises(ValueError, match=r"log_b: expected shape \(1, 1, 1, 2\), got \(1, 1, 2, 1\)"):
        laplace_nll(mu, torch.zeros(1, 1, 2, 1), gt, valid)


def test_certainty_bce():
    visible = torch.tensor([[[True, False], [True, True]]])
    confident = torch.tensor([[[[20.0, -20.0], [20.0, 20.0]]]])
    assert certainty_bce(confident, visible) < 1e-6
    assert certainty_bce(-confident, visible) > 10
    torch.testing.assert_close(certainty_bce(torch.zeros(1, 1, 2, 2), visible), torch.tensor(math.log(2.0)))
    logits = torch.randn(1, 1, 2, 2)
    mask = torch.tensor([[[True, True], [False, False]]])
    expected = F.binary_cross_entropy_with_logits(logits[0, 0, 0], visible[0, 0].float())
    torch.testing.assert_close(certainty_bce(logits, visible, mask), expected)


def _pose(R, t):
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = torch.as_tensor(R, dtype=torch.float64)
    T[:3, 3] = torch.as_tensor(t, dtype=torch.float64)
    return T[None]


POINTS = torch.from_numpy(np.random.default_rng(0).uniform(-0.05, 0.05, (1, 100, 3)))
R_GT = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
T_GT = _pose(R_GT, [0.05, -0.02, 0.8])


def test_point_matching_is_zero_at_the_truth():
    terms = disentangled_point_matching(T_GT, T_GT, POINTS)
    assert all(float(v) == 0.0 for v in terms.values())


@pytest.mark.parametrize("component", ["rotation", "xy", "z"])
def test_each_point_matching_term_sees_only_its_component(component):
    R, t = R_GT, np.array([0.05, -0.02, 0.8])
    if component == "rotation":
        R = Rotation.from_rotvec([0.0, 0.1, 0.0]).as_matrix() @ R_GT
    elif component == "xy":
        t = t + [0.01, 0.005, 0.0]  # changes x/z, y/z at the same depth
    else:
        t = t * 1.1  # same image-plane centre (x/z, y/z), another depth
    terms = disentangled_point_matching(_pose(R, t), T_GT, POINTS)
    for name in ("rotation", "xy", "z"):
        value = float(terms[f"pose_{name}"])
        assert (value > 1e-4) if name == component else (value < 1e-12), (name, value)
    torch.testing.assert_close(terms["pose"], terms[f"pose_{component}"] / 3)
    if component == "z":  # pure depth error: every point moves by 0.1 · its own depth offset
        torch.testing.assert_close(terms["pose_z"], (0.08 * torch.tensor([0.05 / 0.8, 0.02 / 0.8, 1.0]).abs()).mean()
                                   .double())


def test_refiner_loss_weights():
    gen = torch.Generator().manual_seed(1)
    mu, gt = torch.randn(2, 2, 4, 4, generator=gen), torch.randn(2, 2, 4, 4, generator=gen)
    log_b, cert = torch.randn(2, 1, 4, 4, generator=gen), torch.randn(2, 1, 4, 4, generator=gen)
    visible = torch.rand(2, 4, 4, generator=gen) > 0.5
    T_pred = _pose(Rotation.from_rotvec([0.05, 0.0, 0.02]).as_matrix() @ R_GT, [0.06, -0.02, 0.85]).repeat(2, 1, 1)
    terms = refiner_loss(mu, log_b, cert, gt, visible, T_pred.float(), T_GT.repeat(2, 1, 1).float(),
                         POINTS.repeat(2, 1, 1).float())
    assert set(terms) == {"laplace_nll", "certainty_bce", "pose_rotation", "pose_xy", "pose_z", "pose", "total"}
    expected = terms["laplace_nll"] + 5 * terms["certainty_bce"] + 20 * terms["pose"]
    torch.testing.assert_close(terms["total"], expected)
    assert all(float(terms[k]) > 0 for k in ("certainty_bce", "pose_rotation", "pose_xy", "pose_z"))

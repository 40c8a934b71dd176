"""The losses: zero (or minimal) at the ground truth, and the stage-3 noise stays within its clamps."""
import math

import torch

from novel_pose_ros.training.config import LossConfig, NoiseConfig
from novel_pose_ros.training.losses import (
    certainty_loss,
    flow_loss,
    infonce_loss,
    inplane_loss,
    scale_loss,
    translation_loss,
)
from novel_pose_ros.training.model import noisy_affine


def test_regression_losses_vanish_at_the_truth():
    angle = torch.tensor([0.3, -2.0])
    cos_sin = torch.stack([angle.cos(), angle.sin()], dim=1)
    assert translation_loss(torch.ones(2, 2), torch.ones(2, 2)) == 0
    assert scale_loss(torch.tensor([[1.5], [0.7]]), torch.tensor([1.5, 0.7])) < 1e-12
    assert inplane_loss(cos_sin, cos_sin) < 1e-2
    turned = torch.stack([(angle + 0.5).cos(), (angle + 0.5).sin()], dim=1)
    assert math.isclose(float(inplane_loss(turned, cos_sin)), 0.5, rel_tol=1e-4)
    assert scale_loss(torch.tensor([[-1.0]]), torch.tensor([1.0])) > 20  # negative scales are clamped, not NaN


def test_flow_and_certainty_losses_use_only_valid_cells():
    gt = torch.zeros(1, 2, 4, 4)
    pred = torch.zeros(1, 2, 4, 4)
    pred[0, :, 0, 0] = 3.0
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    assert math.isclose(float(flow_loss(pred, gt, valid, 400.0)), 6.0 / 16)
    valid[0, 0, 0] = False
    assert flow_loss(pred, gt, valid, 400.0) == 0
    huge = gt.clone()
    huge[0, 0, 1, 1] = 1000.0
    assert flow_loss(pred * 0, huge, torch.ones(1, 4, 4, dtype=torch.bool), 400.0) == 0  # |flow| ≥ 400: ignored
    logits = torch.where(valid, 20.0, -20.0).unsqueeze(1)
    assert certainty_loss(logits, valid) < 1e-6


def test_infonce_prefers_the_true_match():
    torch.manual_seed(0)
    query = torch.randn(2, 16, 16, 16)
    index = torch.tensor([[0, 5, 9, -1], [3, 4, 200, 255]])
    assert infonce_loss(query, query.clone(), index, index, 0.1) < 0.05  # identical features at the positives
    shuffled = torch.tensor([[5, 9, 0, -1], [4, 200, 255, 3]])
    assert infonce_loss(query, query.clone(), index, shuffled, 0.1) > 1.0
    none = torch.full((2, 4), -1)
    assert infonce_loss(query, query, none, none, 0.1) == 0


def test_stage3_noise_respects_the_clamps():
    B = 2000
    config = NoiseConfig(scale_std=(0.2, 0.2), rotation_std_deg=(15.0, 15.0), translation_std_px=(20.0, 20.0))
    angle = torch.zeros(B)
    centre = torch.full((B, 2), 112.0)
    affine = noisy_affine(torch.zeros(B, 2), torch.ones(B), torch.stack([angle.cos(), angle.sin()], 1), centre,
                          config, torch.Generator().manual_seed(0))
    moved = (affine[:, :, :2] @ centre.unsqueeze(-1)).squeeze(-1) + affine[:, :, 2] - centre
    assert moved.abs().max() <= 56.0 + 1e-4 and moved.std() > 10
    rotation = torch.atan2(affine[:, 1, 0], affine[:, 0, 0])
    assert rotation.abs().max() <= math.radians(45.0) + 1e-6
    scale = torch.linalg.det(affine[:, :, :2]).sqrt()
    assert 0.1 < float(scale.log().std()) < 0.3
    again = noisy_affine(torch.zeros(B, 2), torch.ones(B), torch.stack([angle.cos(), angle.sin()], 1), centre,
                         config, torch.Generator().manual_seed(0))
    assert torch.equal(affine, again)
    assert LossConfig().total_clamp == 100.0

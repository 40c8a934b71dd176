"""Geometry of the PicoPose heads: patch grid, similarity layout, affine, initial flow, correlation lookup."""
import math

import pytest
import torch
import torch.nn.functional as F

from novel_pose_ros.networks.picopose.affine_regressor import (
    AffinePrediction,
    affine_from_prediction,
    similarity_volume,
    template_patch_mask,
)
from novel_pose_ros.networks.picopose.config import ViTConfig
from novel_pose_ros.networks.picopose.flow_decoder import correlation_lookup, initial_flow, warp
from novel_pose_ros.networks.picopose.vit_backbone import DinoVisionTransformer


def _cells(n=16):
    ys, xs = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys])  # [2, n, n]: (x = column, y = row)


def test_identity_affine_maps_template_patch_centres_onto_themselves():
    flow, certainty = initial_flow(torch.eye(3).unsqueeze(0), torch.ones(1, 16, 16))
    target_px = (_cells() + flow[0]) * 14  # target in query-crop pixels
    centres_px = _cells() * 14 + 7  # template patch centres (official convention)
    assert torch.allclose(target_px, centres_px, atol=1e-5)
    assert torch.allclose(flow, torch.full_like(flow, 0.5))  # +½ cell: pixel x ↦ x / 14
    assert torch.equal(certainty, torch.ones(1, 1, 16, 16))


def test_initial_flow_follows_a_similarity_and_zeroes_targets_outside_the_mask():
    angle, scale, shift = 0.3, 1.2, torch.tensor([10.0, -4.0])
    R = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    M = torch.cat([scale * R, shift[:, None]], dim=1).unsqueeze(0)
    mask = torch.ones(1, 16, 16)
    mask[0, 3, 5] = 0
    flow, certainty = initial_flow(M, mask)
    h, w = 7, 2
    expected = (scale * R @ torch.tensor([14.0 * w + 7, 14.0 * h + 7]) + shift) / 14 - torch.tensor([w, h])
    assert torch.allclose(flow[0, :, h, w], expected, atol=1e-5)
    assert torch.allclose(flow[0, :, 3, 5], -torch.tensor([5.0, 3.0]))  # official: target × mask − grid
    assert certainty[0, 0, 3, 5] == 0 and certainty[0, 0, 0, 0] == 1


def test_affine_from_prediction_is_a_similarity_about_the_template_centre():
    centre = torch.tensor([[100.0, 80.0], [112.0, 112.0]])
    identity = AffinePrediction(torch.zeros(2, 2), torch.ones(2, 1), torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert torch.allclose(affine_from_prediction(identity, centre), torch.eye(3)[:2].expand(2, 2, 3))
    theta = 0.7
    prediction = AffinePrediction(torch.tensor([[1.5, -2.0]] * 2), torch.full((2, 1), 0.8),
                                  torch.tensor([[math.cos(theta), math.sin(theta)]] * 2))
    M = affine_from_prediction(prediction, centre)
    mapped = (M[:, :, :2] @ centre.unsqueeze(-1)).squeeze(-1) + M[:, :, 2]
    assert torch.allclose(mapped, centre + 14 * torch.tensor([1.5, -2.0]), atol=1e-4)  # c_q = c_t + 14 t
    R = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    assert torch.allclose(M[0, :, :2], 0.8 * R, atol=1e-6)


def test_template_patch_mask_reads_the_top_left_pixel_of_each_patch():
    mask = torch.zeros(1, 224, 224)
    mask[0, 14 * 3, 14 * 5] = 1  # top-left pixel of patch (row 3, col 5)
    mask[0, 14 * 6 + 7, 14 * 2 + 7] = 1  # centre of patch (6, 2): not read
    small = template_patch_mask(mask)
    assert small[0, 3, 5] == 1 and small.sum() == 1
    assert torch.equal(template_patch_mask(mask), F.interpolate(mask[:, None], size=(16, 16))[:, 0])


def test_similarity_volume_is_spatially_transposed_like_the_official_code():
    template = torch.eye(256).reshape(1, 256, 16, 16)  # template patch s has feature e_s
    query = torch.zeros(1, 256, 16, 16)
    query[0, 7, 2, 5] = 1.0  # query patch (row 2, col 5) looks like template patch 7
    query[0, 9, 4, 4] = 1.0  # ... (4, 4) like template patch 9, which the mask removes
    mask = torch.ones(1, 16, 16)
    mask[0, 0, 9] = 0
    volume = similarity_volume(query, template, mask)
    assert volume[0, 7, 5, 2] == pytest.approx(1.0)  # [s, col, row]
    assert volume[0, 7, 2, 5] == 0
    assert volume[0, 9].abs().sum() == 0
    assert (volume >= 0).all()


def test_local_correlation_equals_the_all_pairs_volume_and_warp_equals_grid_sample():
    gen = torch.Generator().manual_seed(0)
    for level, n in enumerate((16, 32, 64)):
        template, query = torch.randn(2, 8, n, n, generator=gen), torch.randn(2, 8, n, n, generator=gen)
        flow = torch.randn(2, 2, n, n, generator=gen) * 4
        flow[0, :, 0, :4] = torch.tensor([[-3.0, float(n), 0.25, -0.5], [0.0, 0.0, float(n) - 0.5, -2.0]])  # borders
        full = correlation_lookup(template, query, flow, level + 1, 2, "all_pairs")
        local = correlation_lookup(template, query, flow, level + 1, 2, "local")
        assert full.shape == (2, 25 * (level + 1), n, n)
        assert torch.allclose(full, local, atol=1e-4)
        assert torch.allclose(warp(query, flow, "all_pairs"), warp(query, flow, "local"), atol=1e-4)


@pytest.mark.parametrize("mode", ["all_pairs", "local"])
def test_correlation_window_order_matches_the_official_lookup(mode):
    """Window channel k = a·5 + b samples offset (x: a − 2, y: b − 2): the slow index moves x."""
    torch.manual_seed(0)
    features = F.normalize(torch.randn(1, 16, 16, 16), dim=1)
    query = torch.roll(features, shifts=1, dims=3)  # the query is the template moved +1 cell in x
    corr = correlation_lookup(features, query, torch.zeros(1, 2, 16, 16), 1, 2, mode)
    best = corr[0, :, 5:11, 5:11].argmax(dim=0)
    assert (best == (1 + 2) * 5 + 2).all()  # dx = +1, dy = 0 → channel 17
    assert torch.allclose(corr[0, 17, 8, 8], torch.tensor(1.0 / 4.0), atol=1e-5)  # |f|² / √C


def test_positional_grid_is_resized_with_dinov2s_offset_scale():
    vit = DinoVisionTransformer(ViTConfig(embed_dim=12, depth=4, num_heads=2, pos_grid=37, out_blocks=(0, 1, 2, 3)))
    cells = torch.arange(37.0)
    with torch.no_grad():
        vit.pos_embed.zero_()
        vit.pos_embed[0, 1:, 0] = cells.repeat(37)  # x coordinate of each source cell
        vit.pos_embed[0, 0, 1] = 5.0  # class token entry, passed through
        resized = vit.interpolated_pos_embed(16, 16)
    assert resized.shape == (1, 257, 12) and resized[0, 0, 1] == 5.0
    x = resized[0, 1:, 0].reshape(16, 16)[4]
    j = torch.arange(16.0)
    with_offset = (j + 0.5) * 37 / 16.1 - 0.5  # scale factor (16 + 0.1) / 37
    plain = (j + 0.5) * 37 / 16 - 0.5  # what size=(16, 16) would give
    assert (x - with_offset).abs().max() < 0.12
    assert (x - plain).abs().max() > 0.2
    small = DinoVisionTransformer(ViTConfig(embed_dim=12, depth=4, num_heads=2, pos_grid=16, out_blocks=(0, 1, 2, 3)))
    assert small.interpolated_pos_embed(16, 16) is small.pos_embed  # no interpolation when the grid matches

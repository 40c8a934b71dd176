"""Co-op coarse stage: config, network shapes and helpers, ground truth, loss, ONNX parity.

Ground truth is checked on analytic scenes (a fronto-parallel square: same view → identity classes,
shifted crop → shifted classes, an occluder in the template → no match) and on rendered boxes seen from
two viewpoints, where the GT matches fed to PnP must give back the query pose.
"""
import math

import numpy as np
import pytest
import torch

from novel_pose_ros.geometry.crop import SquareBox, crop_transform, invert_affine, transform_pixels, warp_crop
from novel_pose_ros.geometry.se3 import make_T
from novel_pose_ros.networks.coop.coarse_config import (
    NO_MATCH,
    CoopCoarseConfig,
    get_coarse_config,
)
from novel_pose_ros.networks.coop.coarse_loss import coarse_loss
from novel_pose_ros.networks.coop.coarse_net import CoopCoarseNet, matches, patch_centres_px, template_scores
from novel_pose_ros.networks.coop.coarse_truth import coarse_truth
from novel_pose_ros.training.config import DataConfig

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])
W, H = 640, 480
OWN = np.arange(256)


@pytest.fixture(scope="module")
def tiny_net():
    torch.manual_seed(0)
    return CoopCoarseNet(get_coarse_config("coop_coarse_tiny")).eval()


# --- config -------------------------------------------------------------------------------------

def test_config_round_trip_and_validation():
    small = get_coarse_config("coop_coarse_small")
    assert CoopCoarseConfig.from_dict(small.to_dict()) == small
    assert small.token_in_dim == 512 and small.mlp_hidden == 512
    with pytest.raises(ValueError, match="unknown Co-op coarse config"):
        get_coarse_config("nope")
    for bad in ({"dim": 30, "heads": 4}, {"token_maps": (3, 2)}, {"token_maps": (4,)}, {"backbone": "resnet"},
                {"depth": 0}, {"name": "a b"}):
        with pytest.raises(ValueError):
            CoopCoarseConfig(**{"name": "x", **bad})
    with pytest.raises(ValueError, match="unknown keys"):
        CoopCoarseConfig.from_dict({"name": "x", "width": 3})


# --- network ------------------------------------------------------------------------------------

def test_shapes_and_offset_range(tiny_net):
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tokens = tiny_net.encode(images)
        logits, offsets = tiny_net.match(tokens, tokens.flip(0))
        logits2, offsets2 = tiny_net(images, images.flip(0))
    assert tokens.shape == (2, 256, 32)
    assert logits.shape == (2, 256, 257) and offsets.shape == (2, 256, 2)
    torch.testing.assert_close(logits2, logits)
    assert offsets.abs().max() <= 0.5
    with torch.no_grad():
        big = tiny_net.match(tokens * 100.0, tokens.flip(0) * 100.0)[1]
    assert big.abs().max() <= 0.5
    with pytest.raises(ValueError, match=r"expected shape \(B, 256, 32\)"):
        tiny_net.match(tokens[:, :100], tokens)
    with pytest.raises(ValueError, match="batch"):
        tiny_net.match(tokens, tokens[:1])


def test_imagenet_backbone_is_loaded():
    from novel_pose_ros.networks.picopose.cnn_backbone import imagenet_state_dict

    net = CoopCoarseNet(get_coarse_config("coop_coarse_tiny"), imagenet_backbone=True)
    expected = imagenet_state_dict()["_conv_stem.weight"]
    torch.testing.assert_close(net.feature_extractor.cnn._conv_stem.weight.detach(), expected)


def test_template_score_and_matches_by_hand():
    logits = torch.full((1, 256, 257), -30.0)
    logits[0, :, NO_MATCH] = 0.0  # every patch: no match...
    logits[0, 0, 3], logits[0, 0, NO_MATCH] = 2.0, 1.0  # ...except patch 0 → template patch 3
    logits[0, 17, 200], logits[0, 17, NO_MATCH] = math.log(3.0), 0.0  # patch 17 → template patch 200
    logits[0, 40, 9], logits[0, 40, NO_MATCH] = 0.5, 1.0  # no match wins
    tiny = 255 * math.exp(-30.0)
    p0 = math.exp(2.0) / (math.exp(2.0) + math.exp(1.0) + tiny)
    p17 = 3.0 / (3.0 + 1.0 + tiny)
    assert float(template_scores(logits)[0]) == pytest.approx(p0 + p17, rel=1e-6)
    offsets = torch.zeros(1, 256, 2)
    offsets[0, 17] = torch.tensor([0.25, -0.5])
    index, xy, probability = matches(logits[0], offsets[0])
    assert index.tolist() == [0, 17]
    torch.testing.assert_close(probability, torch.tensor([p0, p17]))
    # template patch 3 = row 0, col 3; patch 200 = row 12, col 8; centre (14j + 6.5, 14i + 6.5) + 14 U
    torch.testing.assert_close(xy, torch.tensor([[48.5, 6.5], [118.5 + 3.5, 174.5 - 7.0]]))
    torch.testing.assert_close(patch_centres_px()[[0, 17, 255]], torch.tensor([[6.5, 6.5], [20.5, 20.5], [216.5, 216.5]]))


# --- ground truth -------------------------------------------------------------------------------

def _square_scene(side_m=0.125, z_m=0.5):
    """Depth and labels of a fronto-parallel square (object frame at its centre) and its pose."""
    T = make_T(np.eye(3), [0.01, -0.005, z_m])
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    x = (u - K[0, 2]) / K[0, 0] * z_m - T[0, 3]
    y = (v - K[1, 2]) / K[1, 1] * z_m - T[1, 3]
    on = (np.abs(x) <= side_m / 2) & (np.abs(y) <= side_m / 2)
    return np.where(on, z_m, 0.0).astype(np.float32), on.astype(np.int32), T


def _template(depth, labels, box):
    M = crop_transform(box, 224)
    return warp_crop(depth, M, 224, nearest=True), warp_crop(labels > 0, M, 224, nearest=True), M


def _truth(depth, labels, T, M_q, template_depth, template_mask, M_t, T_t=None):
    return coarse_truth(depth, labels, 1, K, M_q, T, template_depth, template_mask, K, M_t,
                        T if T_t is None else T_t, DataConfig().visibility_tolerance(0.18))


def test_truth_same_view_is_the_identity():
    depth, labels, T = _square_scene()
    box = SquareBox(208, 128, 224)  # scale 1, even corner: crop pixel centres read the same image pixels
    t_depth, t_mask, M = _template(depth, labels, box)
    truth = _truth(depth, labels, T, M, t_depth, t_mask, M)
    on = truth.query_on_object
    assert 100 < on.sum() < 256  # object patches and background patches
    np.testing.assert_array_equal(truth.matched, on)
    np.testing.assert_array_equal(truth.target_class[on], OWN[on])
    assert np.abs(truth.target_offset).max() < 1e-6
    assert (truth.target_class[~on] == NO_MATCH).all()
    assert truth.target_class.dtype == np.int64 and truth.target_offset.dtype == np.float32


def test_truth_same_view_other_crop_scale():
    """Query crop of side 180 px: matches land on their own patch within a sub-pixel offset."""
    depth, labels, T = _square_scene()
    box = SquareBox(230, 150, 180)
    t_depth, t_mask, M = _template(depth, labels, box)
    truth = _truth(depth, labels, T, M, t_depth, t_mask, M)
    assert truth.matched.sum() >= truth.query_on_object.sum() - 4  # silhouette rounding at the border
    np.testing.assert_array_equal(truth.target_class[truth.matched], OWN[truth.matched])
    assert np.abs(truth.target_offset).max() < 1e-6


def test_truth_shifted_template_crop_shifts_the_classes():
    depth, labels, T = _square_scene()
    query_box = SquareBox(208, 128, 224)
    M_q = crop_transform(query_box, 224)
    t_depth, t_mask, M_t = _template(depth, labels, SquareBox(208 + 28, 128 - 14, 224))  # 2 patches right, 1 up
    truth = _truth(depth, labels, T, M_q, t_depth, t_mask, M_t)
    rows, cols = np.divmod(OWN, 16)
    expected = np.where(cols >= 2, (rows + 1) * 16 + cols - 2, NO_MATCH)
    expected = np.where(truth.query_on_object & (rows + 1 < 16), expected, NO_MATCH)
    np.testing.assert_array_equal(truth.target_class, expected)
    assert truth.matched.sum() > 50 and np.abs(truth.target_offset).max() < 1e-6


def test_truth_occluded_in_the_template_is_no_match():
    depth, labels, T = _square_scene()
    box = SquareBox(208, 128, 224)
    t_depth, t_mask, M = _template(depth, labels, box)
    t_depth = t_depth.copy()
    t_depth[:112] = np.where(t_depth[:112] > 0, t_depth[:112] - 0.05, 0.0)  # a surface 5 cm closer: top half
    truth = _truth(depth, labels, T, M, t_depth, t_mask, M)
    rows = OWN // 16
    assert not truth.matched[rows < 8].any()
    np.testing.assert_array_equal(truth.matched[rows >= 8], truth.query_on_object[rows >= 8])


def test_truth_through_pnp_recovers_the_query_pose(gl_renderer, tmp_path):
    """Rendered box, template 25° away: GT matches + template depth → EPnP + RANSAC → the query pose."""
    import trimesh

    from novel_pose_ros.estimation.crops import make_query_crop
    from novel_pose_ros.geometry.camera import backproject_pixels
    from novel_pose_ros.geometry.crop import box_from_mask, square_box_around
    from novel_pose_ros.geometry.pnp import solve_pnp_ransac
    from novel_pose_ros.geometry.se3 import invert_T, rotation_angle_rad, rotation_from_axis_angle, transform_points
    from novel_pose_ros.objects import load_object
    from novel_pose_ros.types import Detection, Frame

    path = tmp_path / "box.ply"
    trimesh.creation.box(extents=[0.12, 0.08, 0.05]).export(path)
    obj = load_object(path, object_id=1, units="m")
    T_t = make_T(rotation_from_axis_angle(np.array([0.4, 1.0, 0.2]), 0.7), [0.0, 0.0, 0.6])
    T_q = make_T(rotation_from_axis_angle(np.array([1.0, 0.3, 0.0]), np.radians(25.0)) @ T_t[:3, :3],
                 [0.03, -0.02, 0.45])
    query, template = (gl_renderer.render([(obj, T)], K, W, H) for T in (T_q, T_t))
    M_q = make_query_crop(Frame(query.rgb, K), Detection("box", box_from_mask(query.mask), mask=query.mask),
                          0, "box", 224, 1).M_crop_img
    M_t = crop_transform(square_box_around(box_from_mask(template.mask), W, H), 224)
    truth = coarse_truth(query.depth_m, query.labels, 1, K, M_q, T_q, warp_crop(template.depth_m, M_t, 224, nearest=True),
                         warp_crop(template.mask, M_t, 224, nearest=True), K, M_t, T_t, DataConfig().visibility_tolerance(0.15))
    assert truth.matched.sum() > 60 and truth.matched.sum() < truth.query_on_object.sum()  # a few hidden in the template
    keep = truth.matched
    rows, cols = np.divmod(truth.target_class[keep], 16)
    cells = np.stack([cols, rows], axis=1) + 0.5 + truth.target_offset[keep]
    np.testing.assert_allclose(cells * 14 - 0.5, truth.template_xy_px[keep], atol=1e-4)
    uv_t = transform_pixels(invert_affine(M_t), truth.template_xy_px[keep])
    px = np.rint(uv_t).astype(int)
    points_obj = transform_points(invert_T(T_t), backproject_pixels(K, uv_t, template.depth_m[px[:, 1], px[:, 0]]))
    pixels_q = transform_pixels(invert_affine(M_q), patch_centres_px().numpy()[keep])
    result = solve_pnp_ransac(points_obj, pixels_q, K, 2.0, 300)
    assert result.success and result.inlier_ratio > 0.9
    assert np.linalg.norm(result.T_cam_obj[:3, 3] - T_q[:3, 3]) < 1e-3
    assert np.degrees(rotation_angle_rad(result.T_cam_obj[:3, :3], T_q[:3, :3])) < 0.3


def test_truth_rejects_bad_shapes():
    depth, labels, T = _square_scene()
    M = crop_transform(SquareBox(208, 128, 224), 224)
    with pytest.raises(ValueError, match="query_labels"):
        coarse_truth(depth, labels[:10], 1, K, M, T, depth[:224, :224], labels[:224, :224] > 0, K, M, T, 0.003)
    with pytest.raises(ValueError, match="template_mask"):
        coarse_truth(depth, labels, 1, K, M, T, depth[:224, :224], labels[:100, :100] > 0, K, M, T, 0.003)


# --- loss and training --------------------------------------------------------------------------

def test_loss_terms_by_hand():
    target = torch.full((1, 256), NO_MATCH, dtype=torch.int64)
    target[0, :4] = torch.tensor([0, 1, 2, 3])
    logits = torch.zeros(1, 256, 257)
    offsets = torch.zeros(1, 256, 2)
    offsets[0, 4:] = 0.4  # unmatched patches: ignored by the offset term
    target_offset = torch.zeros(1, 256, 2)
    target_offset[0, :4, 0] = 0.2
    terms = coarse_loss(logits, offsets, target, target_offset)
    assert float(terms["ce"]) == pytest.approx(math.log(257.0), rel=1e-6)
    assert float(terms["offset_l1"]) == pytest.approx(0.2, rel=1e-6)
    assert float(terms["total"]) == pytest.approx(math.log(257.0) + 0.4, rel=1e-6)
    weighted = coarse_loss(logits, offsets, target, target_offset, no_match_weight=0.5)
    assert float(weighted["ce"]) == pytest.approx(math.log(257.0), rel=1e-6)  # uniform logits: every term equal
    none = coarse_loss(logits, offsets, torch.full((1, 256), NO_MATCH), target_offset)
    assert float(none["offset_l1"]) == 0.0
    with pytest.raises(ValueError, match="int64"):
        coarse_loss(logits, offsets, target.int(), target_offset)


def _shift_batch():
    """Queries = templates moved right by one patch: query patch (i, j) shows template patch (i, j − 1)."""
    gen = torch.Generator().manual_seed(3)
    template = torch.randn(1, 3, 224, 224, generator=gen)
    query = torch.roll(template, shifts=14, dims=3)
    cols = torch.arange(256) % 16
    target = torch.where(cols >= 1, torch.arange(256) - 1, torch.full_like(cols, NO_MATCH)).expand(1, 256).clone()
    target_offset = torch.full((1, 256, 2), 0.2) * (target != NO_MATCH).unsqueeze(-1)
    return query, template, target, target_offset


def test_network_fits_a_fixed_batch_and_gradients_reach_the_encoder():
    torch.manual_seed(0)
    net = CoopCoarseNet(get_coarse_config("coop_coarse_tiny")).train()
    query, template, target, target_offset = _shift_batch()
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3)
    losses = []
    for step in range(30):
        optimiser.zero_grad()
        terms = coarse_loss(*net(query, template), target, target_offset)
        assert all(torch.isfinite(v) for v in terms.values())
        terms["total"].backward()
        if step == 0:
            stem = net.feature_extractor.cnn._conv_stem.weight.grad
            assert stem is not None and torch.isfinite(stem).all() and stem.abs().sum() > 0
            assert net.token_proj.weight.grad.abs().sum() > 0
        optimiser.step()
        losses.append(float(terms["total"].detach()))
    assert losses[-1] < 0.5 * losses[0], losses


# --- ONNX ---------------------------------------------------------------------------------------

def test_onnx_parity_batch_1_and_3(tiny_net, tmp_path):
    from novel_pose_ros.networks.coop.coarse_export import export_coarse_onnx, verify
    from novel_pose_ros.networks.picopose.export import load_sidecar

    sidecar_path = export_coarse_onnx(tiny_net, tmp_path, weights_sha256="0" * 64)
    sidecar = load_sidecar(sidecar_path, "coop_coarse")
    assert sidecar["network"] == "coop_coarse" and set(sidecar["graphs"]) == {"encoder", "match"}
    assert CoopCoarseConfig.from_dict(sidecar["config_values"]) == tiny_net.config
    assert sidecar["graphs"]["match"]["outputs"][0]["shape"] == ["B", 256, 257]
    for batch in (1, 3):
        diffs = verify(tiny_net, sidecar_path, batch=batch)
        assert set(diffs) == {"encoder", "match"}
        assert max(diffs.values()) <= 1e-3, (batch, diffs)

"""The Co-op selector: config, shapes, positive test and pose sampling, loss, learning, gradients, ONNX parity."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from novel_pose_ros.geometry.se3 import is_rotation, make_T, random_rotation, rotation_from_axis_angle
from novel_pose_ros.networks.coop.selector_export import SelectorGraph, export_selector_onnx, selector_example_inputs
from novel_pose_ros.networks.coop.selector_loss import is_positive, sample_selector_poses, selector_loss
from novel_pose_ros.networks.coop.selector_net import (
    SELECTOR_CONFIGS,
    CoopSelectorConfig,
    CoopSelectorNet,
    get_selector_config,
)
from novel_pose_ros.networks.picopose.config import get_config
from novel_pose_ros.networks.picopose.picopose_net import build_network
from novel_pose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend


@pytest.fixture(scope="module")
def net():
    """Tiny decoder on the ImageNet backbone: a random EfficientNet in eval mode gives maps that are
    constant over the grid, which would make every pair look alike."""
    torch.manual_seed(0)
    return CoopSelectorNet(get_selector_config("coop_selector_tiny"), imagenet_backbone=True).eval()


def _T_gt(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_T(random_rotation(rng), np.array([0.05, -0.03, 0.6]))


# --- config -------------------------------------------------------------------------------------

def test_configs_round_trip_and_bad_values_are_named():
    for config in SELECTOR_CONFIGS.values():
        assert CoopSelectorConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="divisible"):
        CoopSelectorConfig(name="x", dim=30, heads=4)
    with pytest.raises(ValueError, match="CNN PicoPose config"):
        CoopSelectorConfig(picopose="small")
    with pytest.raises(ValueError, match="unknown keys"):
        CoopSelectorConfig.from_dict({"name": "x", "width": 3})
    with pytest.raises(ValueError, match="known"):
        get_selector_config("nope")


# --- network ------------------------------------------------------------------------------------

def test_one_logit_per_pair_and_wrong_shapes_are_named(net):
    inputs = selector_example_inputs(2)["selector"]
    inputs["render_mask16"][1] = 0.0  # an empty render mask still gives a finite score
    with torch.no_grad():
        logits = net(*inputs.values())
    assert logits.shape == (2,) and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="render_mask16"):
        net(inputs["query"], inputs["render"], torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="query"):
        net(torch.zeros(2, 3, 224, 224), inputs["render"], inputs["render_mask16"])
    with pytest.raises(ValueError, match="batch"):
        net(inputs["query"][:1], inputs["render"], inputs["render_mask16"])


def test_picopose_backbone_loads_strictly():
    torch.manual_seed(3)
    picopose = build_network(get_config("small_cnn")).state_dict()
    selector = CoopSelectorNet(get_selector_config("coop_selector_tiny"))
    copied = selector.load_backbone_from(picopose)
    assert copied == len(selector.feature_extractor.state_dict())
    assert torch.equal(selector.feature_extractor.adapters[3].weight, picopose["feature_extractor.adapters.3.weight"])
    key = "feature_extractor.adapters.3.weight"
    for broken in ({k: v for k, v in picopose.items() if k != key},  # missing
                   {**picopose, key: torch.zeros(1)},  # another shape
                   {**picopose, "feature_extractor.extra": torch.zeros(1)}):  # unexpected
        with pytest.raises(ValueError, match="does not fit"):
            selector.load_backbone_from(broken)


def _pairs():
    """Two smooth 'objects' on black; positives: query = render; negatives: the query moved by 40 px
    (first object) or turned by 90° (second). Labels [1, 1, 0, 0]."""
    gen = torch.Generator().manual_seed(0)
    mask = torch.zeros(2, 1, 256, 256)
    mask[:, :, 64:192, 48:208] = 1.0
    renders = F.interpolate(torch.randn(2, 3, 8, 8, generator=gen), size=256, mode="bilinear") * 1.5 * mask
    mask16 = F.avg_pool2d(mask, 16)[:, 0].round()
    moved = torch.cat([torch.roll(renders[:1], (40, 40), (2, 3)), torch.rot90(renders[1:], 1, (2, 3))])
    return (torch.cat([renders, moved]), torch.cat([renders, renders]), torch.cat([mask16, mask16]),
            torch.tensor([1.0, 1.0, 0.0, 0.0]))


def test_decoder_learns_to_separate_good_from_bad_poses_on_a_fixed_batch():
    """20 AdamW steps on the decoder and head (the ImageNet backbone frozen, as run time sees it: ~8 s
    on 2 loaded CPU cores; training through the backbone triples that)."""
    torch.manual_seed(0)
    net = CoopSelectorNet(get_selector_config("coop_selector_tiny"), imagenet_backbone=True).train()
    net.feature_extractor.eval().requires_grad_(False)
    query, render, mask16, labels = _pairs()
    optimiser = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    history = []
    for _ in range(20):
        terms = selector_loss(net(query, render, mask16), labels)
        optimiser.zero_grad()
        terms["total"].backward()
        optimiser.step()
        history.append((float(terms["bce"].detach()), float(terms["accuracy"])))
    with torch.no_grad():
        final = selector_loss(net(query, render, mask16), labels)
    assert float(final["bce"]) < 0.5 * history[0][0], history
    assert float(final["accuracy"]) == 1.0, history


def test_gradients_reach_the_backbone_and_every_part():
    torch.manual_seed(0)
    net = CoopSelectorNet(get_selector_config("coop_selector_tiny")).train()
    inputs = selector_example_inputs(2)["selector"]
    selector_loss(net(*inputs.values()), torch.tensor([1.0, 0.0]))["total"].backward()
    params = dict(net.named_parameters())
    for name in ("feature_extractor.cnn._conv_stem.weight", "feature_extractor.adapters.2.weight",
                 "token_proj.weight", "pair_proj.weight", "pos_embed", "blocks.0.cross_attn.q.weight",
                 "score_head.2.weight"):
        grad = params[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


# --- loss and pose sampling ---------------------------------------------------------------------

def test_selector_loss_is_the_mean_bce_and_reports_accuracy():
    logits, labels = torch.tensor([2.0, -1.0, 0.5, -3.0]), torch.tensor([1.0, 0.0, 0.0, 0.0])
    terms = selector_loss(logits, labels)
    expected = -np.mean([np.log(1 / (1 + np.exp(-2.0))), np.log(1 - 1 / (1 + np.exp(1.0))),
                         np.log(1 - 1 / (1 + np.exp(-0.5))), np.log(1 - 1 / (1 + np.exp(3.0)))])
    assert float(terms["bce"]) == pytest.approx(expected, rel=1e-5)
    assert terms["total"] is terms["bce"] and float(terms["accuracy"]) == 0.75
    with pytest.raises(ValueError, match="0 or 1"):
        selector_loss(logits, torch.tensor([1.0, 0.5, 0.0, 0.0]))


def test_is_positive_at_the_thresholds():
    T_gt = _T_gt()

    def moved(angle_deg=0.0, dt=(0.0, 0.0, 0.0)):
        T = T_gt.copy()
        T[:3, :3] = rotation_from_axis_angle(np.array([0.3, -1.0, 0.5]), np.radians(angle_deg)) @ T[:3, :3]
        T[:3, 3] += dt
        return T

    assert is_positive(T_gt, T_gt)
    assert is_positive(moved(4.9), T_gt) and not is_positive(moved(5.1), T_gt)
    assert is_positive(moved(dt=(0, 0, 0.049)), T_gt) and not is_positive(moved(dt=(0, 0, -0.051)), T_gt)
    assert not is_positive(moved(dt=(0.011, 0, 0)), T_gt) and not is_positive(moved(dt=(0, -0.011, 0)), T_gt)
    assert is_positive(moved(4.9, (0.009, -0.009, 0.049)), T_gt)
    with pytest.raises(ValueError, match="T_hyp"):
        is_positive(np.eye(3), T_gt)


def test_sampled_poses_hold_one_positive_then_negatives_and_are_seeded():
    for seed in range(10):
        T_gt = _T_gt(seed)
        poses, labels = sample_selector_poses(T_gt, np.random.default_rng(seed))
        assert poses.shape == (6, 4, 4) and labels.shape == (6,)
        assert labels.tolist() == [1, 0, 0, 0, 0, 0]
        assert [is_positive(T, T_gt) for T in poses] == [True] + [False] * 5
        assert all(is_rotation(T[:3, :3]) for T in poses)
        again, _ = sample_selector_poses(T_gt, np.random.default_rng(seed))
        assert np.array_equal(poses, again)
    other, _ = sample_selector_poses(T_gt, np.random.default_rng(99))
    assert not np.allclose(other, poses)


# --- ONNX ---------------------------------------------------------------------------------------

def test_onnx_runtime_matches_pytorch_at_batch_1_and_3(net, tmp_path):
    backend = OnnxRuntimeBackend(export_selector_onnx(net, tmp_path, "test-weights"))
    assert backend.weights_id == "test-weights" and backend.config_name == "coop_selector_tiny"
    for batch in (1, 3):
        inputs = selector_example_inputs(batch, seed=batch)["selector"]
        (got,) = backend.run("selector", {k: v.numpy() for k, v in inputs.items()})
        with torch.no_grad():
            expected = SelectorGraph(net)(*inputs.values())
        assert got.shape == (batch,)
        assert np.abs(got - expected.numpy()).max() <= 1e-3

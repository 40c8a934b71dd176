"""Co-op selector training: the groups (labels, windows), the batch, the config, a tiny run with a frozen
backbone, its checkpoint, the CLI dispatch."""
import numpy as np
import pytest
import torch

from novel_pose_ros.estimation.refiner_geometry import (
    box_corners,
    crop_camera,
    refiner_window,
    render_for_refiner,
    window_transform,
)
from novel_pose_ros.estimation.template_bank import patch_grid_mask
from novel_pose_ros.geometry.camera import project_points
from novel_pose_ros.geometry.crop import warp_crop
from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle, transform_points
from novel_pose_ros.networks.coop.selector_loss import is_positive
from novel_pose_ros.networks.coop.selector_net import CoopSelectorNet, get_selector_config
from novel_pose_ros.training.augment import AugmentSettings
from novel_pose_ros.training.config import DataConfig, OptimConfig, _build
from novel_pose_ros.training.coop_checkpoint import load_coop_checkpoint
from novel_pose_ros.training.coop_config import coop_config_class, coop_train_config_from_dict, load_coop_train_config
from novel_pose_ros.training.pairs import SceneImage
from novel_pose_ros.training.selector_config import SelectorTrainConfig
from novel_pose_ros.training.selector_pairs import SelectorPairSampler, collate_selector
from novel_pose_ros.networks.coop.picopose_backbone import freeze
from novel_pose_ros.training.selector_trainer import SelectorTrainer, group_top1

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])
T_GT = make_T(rotation_from_axis_angle(np.array([1.0, 0.3, 0.2]), 2.2), [0.03, -0.01, 0.45])
BACKBONE = "feature_extractor."


@pytest.fixture(scope="module")
def selector_groups(bundled_pool, gl_renderer):
    """Three groups of the bundled objects in cluttered scenes (seeded)."""
    return SelectorPairSampler(bundled_pool, DataConfig(), renderer=gl_renderer).sample(np.random.default_rng(7), 3)


def test_a_group_has_one_positive_within_the_thresholds(selector_groups):
    for g in selector_groups:
        assert len(g) == 6 and g.labels.dtype == np.float32 and g.labels.sum() == 1 and g.labels[0] == 1
        assert [is_positive(T, g.T_gt) for T in g.T_hyp] == [bool(v) for v in g.labels]
        assert g.query_rgb.shape == g.render_rgb.shape == (6, 256, 256, 3) and g.query_rgb.dtype == np.uint8
        assert g.render_mask16.shape == (6, 16, 16) and g.render_mask16.dtype == np.float32
        assert (g.render_mask16.reshape(6, -1).sum(axis=1) > 0).all()  # no empty render


def test_each_hypothesis_is_seen_through_its_own_window(bundled_pool, gl_renderer):
    block = bundled_pool.get(bundled_pool.names.index("toy_block"))
    r = gl_renderer.render([(block, T_GT)], K, 640, 480)
    image = SceneImage(r.rgb, r.depth_m, r.labels.astype(np.int32), K, ((block, block, T_GT),))
    data = DataConfig(augment=AugmentSettings(probability=0.0), grey_template_probability=0.0)
    group = SelectorPairSampler(bundled_pool, data, renderer=gl_renderer).make_pair(image, 0, np.random.default_rng(3))
    corners = box_corners(*block.mesh.bounds)
    for k, T_hyp in enumerate(group.T_hyp):  # exactly the estimator's window, query crop and render
        M = window_transform(refiner_window(T_hyp, K, corners, 0.2))
        np.testing.assert_allclose(group.M_crop_img[k], M)
        np.testing.assert_array_equal(group.query_rgb[k], warp_crop(image.rgb, M, 256))
        render = render_for_refiner(gl_renderer, block, T_hyp, crop_camera(K, M))
        np.testing.assert_array_equal(group.render_rgb[k], render.rgb)
        np.testing.assert_array_equal(group.render_mask16[k], patch_grid_mask(render.depth_m > 0, 16))
        # the box of the object at the hypothesis is centred in its window, (1 + 2 × 0.2) times smaller
        uv = project_points(group.K_crop[k], transform_points(T_hyp, corners))
        lo, hi = uv.min(axis=0), uv.max(axis=0)
        np.testing.assert_allclose((lo + hi) / 2, [127.5, 127.5], atol=2.0)
        assert (hi - lo).max() == pytest.approx(256 / 1.4, abs=2.0)
        rows, cols = np.nonzero(group.render_mask16[k])
        assert rows.min() >= 1 and cols.min() >= 1 and rows.max() <= 14 and cols.max() <= 14
    assert len({tuple(np.round(M.ravel(), 6)) for M in group.M_crop_img}) == 6  # one window per hypothesis
    # the positive's window shows the object where its render is
    seen = warp_crop(image.labels.astype(np.float32), group.M_crop_img[0], 256, nearest=True) == 1
    assert np.mean(patch_grid_mask(seen, 16) == group.render_mask16[0]) > 0.9


def test_collate_stacks_groups_group_major(selector_groups):
    batch = collate_selector(selector_groups[:2])
    assert batch.query.shape == batch.render.shape == (12, 3, 256, 256)
    assert batch.query.dtype == batch.render.dtype == torch.float32
    assert batch.render_mask16.shape == (12, 16, 16) and batch.render_mask16.dtype == torch.float32
    assert batch.labels.dtype == torch.float32 and batch.labels.tolist() == [1, 0, 0, 0, 0, 0] * 2
    assert batch.group.dtype == torch.int64 and batch.group.tolist() == [0] * 6 + [1] * 6 and batch.groups == 2
    with pytest.raises(ValueError, match="no groups"):
        collate_selector([])


def test_top1_counts_groups_whose_positive_scores_highest():
    labels = torch.tensor([1.0, 0, 0, 1, 0, 0])
    group = torch.tensor([0, 0, 0, 1, 1, 1])
    assert float(group_top1(torch.tensor([2.0, 1, -1, 0, 3, 1]), labels, group)) == 0.5
    assert float(group_top1(torch.tensor([2.0, 1, -1, 4, 3, 1]), labels, group)) == 1.0


def test_config_file_dispatch_and_errors():
    config = load_coop_train_config("configs/train_selector_small.yaml")
    assert config.network == "coop_selector_small" and config.freeze_backbone and config.negatives == 5
    assert config.run.batch_size == 1 and config.validation.groups == 16 and config.picopose_weights is None
    assert coop_config_class({"network": "coop_selector_tiny"}) is SelectorTrainConfig
    with pytest.raises(ValueError, match="unknown keys.*pairs"):
        coop_train_config_from_dict({"network": "coop_selector_small", "validation": {"pairs": 3}})
    with pytest.raises(ValueError, match="negatives"):
        coop_train_config_from_dict({"network": "coop_selector_small", "negatives": 0})
    with pytest.raises(ValueError, match="unknown Co-op selector config"):
        _build(SelectorTrainConfig, {"network": "coop_refiner_small"}, "test")


def test_the_optimiser_leaves_a_frozen_backbone_out():
    from novel_pose_ros.training.optim import build_optimizer

    net = CoopSelectorNet(get_selector_config("coop_selector_tiny"))
    freeze(net.feature_extractor)
    optimised = {id(p) for group in build_optimizer(net, OptimConfig()).param_groups for p in group["params"]}
    for name, parameter in net.named_parameters():
        assert (id(parameter) in optimised) == (not name.startswith(BACKBONE)), name


class FixedGroups:
    """A sampler stand-in that hands out the same rendered groups every step (no rendering in the loop)."""

    def __init__(self, groups):
        self.groups = groups

    def sample(self, rng, count):
        return [self.groups[i % len(self.groups)] for i in range(count)]


class WatchedTrainer(SelectorTrainer):
    """Keeps the network, its initial weights and, per backbone call, (training mode, output needs grad)."""

    def build_network(self, from_weights):
        net = super().build_network(from_weights)
        self.initial = {k: v.clone() for k, v in net.state_dict().items()}
        return net

    def training_model(self, net):
        self.net, self.backbone_calls = net, []

        def watch(module, inputs, outputs):
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            self.backbone_calls.append((module.training, any(t.requires_grad for t in outputs)))

        net.feature_extractor.register_forward_hook(watch)
        return super().training_model(net)


def test_tiny_run_trains_the_decoder_only_and_saves_loadable_weights(selector_groups, tmp_path):
    from novel_pose_ros.runtime.weights import load_network, resolve_checkpoint

    config = coop_train_config_from_dict({
        "network": "coop_selector_tiny",
        "run": {"out_dir": str(tmp_path), "steps": 3, "batch_size": 1, "num_workers": 0, "log_every": 1,
                "checkpoint_every": 2, "keep_checkpoints": 2, "seed": 3, "device": "cpu"},
        "optim": {"lr": 1e-3, "warmup_steps": 0, "min_lr_ratio": 1.0},
        "validation": {"every_steps": 1000, "groups": 2}})
    trainer = WatchedTrainer(config, make_sampler=lambda: FixedGroups(selector_groups[:2]),
                             make_val_sampler=lambda: FixedGroups(selector_groups[1:3]), show_progress=False)
    summary = trainer.run()
    train = [r for r in summary.records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3]
    for r in train:
        assert all(np.isfinite(r[k]) for k in ("loss", "bce", "accuracy", "top1")) and r["skipped"] == 0, r
    (val,) = [r for r in summary.records if r["kind"] == "validation"]
    assert np.isfinite(val["val_bce"]) and 0 <= val["val_accuracy"] <= 1 and val["val_top1"] in (0.0, 0.5, 1.0)
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "config.yaml").is_file()

    # the backbone: the shipped PicoPose one, unchanged (weights and BatchNorm statistics), run without a graph
    picopose, _ = load_network("small_cnn", resolve_checkpoint("small_cnn", None))
    shipped = picopose.state_dict()
    final = trainer.net.state_dict()
    for key, value in final.items():
        if key.startswith(BACKBONE):
            assert torch.equal(value, trainer.initial[key]) and torch.equal(value, shipped[key]), key
    assert any(not torch.equal(v, trainer.initial[k]) for k, v in final.items() if not k.startswith(BACKBONE))
    assert len(trainer.backbone_calls) >= 2 * 3 and trainer.backbone_calls[:6] == [(False, False)] * 6

    # what the estimator loads gives the trained network's scores
    loaded, _ = load_coop_checkpoint(summary.last_checkpoint, "coop_selector")
    batch = collate_selector(selector_groups[:1])
    with torch.no_grad():
        expected = trainer.net.eval()(batch.query, batch.render, batch.render_mask16)
        torch.testing.assert_close(loaded(batch.query, batch.render, batch.render_mask16), expected, rtol=0, atol=0)


def test_cli_dispatches_a_selector_config(tmp_path, monkeypatch):
    from novel_pose_ros.cli import main
    from novel_pose_ros.training import coop_config
    from novel_pose_ros.training.loop import TrainSummary

    seen = []

    def fake_train(config, resume=False, show_progress=True):
        seen.append(config)
        return TrainSummary(tmp_path, 0, config.run.steps, None, [])

    monkeypatch.setattr(coop_config, "train_coop", fake_train)
    path = tmp_path / "selector.yaml"
    path.write_text("network: coop_selector_tiny\ninit_from_picopose: false\n")
    assert main(["train", "--config", str(path), "--steps", "7", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    (config,) = seen
    assert isinstance(config, SelectorTrainConfig) and config.run.steps == 7 and config.network == "coop_selector_tiny"

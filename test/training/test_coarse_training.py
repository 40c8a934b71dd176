"""Co-op coarse-matcher training: the pairs (truth against the template crop), the batch, the config, a tiny
run with a frozen encoder, its checkpoint, the CLI dispatch."""
import numpy as np
import pytest
import torch

from novel_pose_ros.networks.coop.coarse_config import NO_MATCH
from novel_pose_ros.networks.coop.coarse_net import CoopCoarseNet, patch_centres_px
from novel_pose_ros.training.coarse_config import CoarseTrainConfig
from novel_pose_ros.training.coarse_pairs import CoarsePairSampler, collate_coarse
from novel_pose_ros.training.coarse_trainer import CoarseTrainer, correspondence_error_px
from novel_pose_ros.training.config import DataConfig, _build
from novel_pose_ros.training.coop_checkpoint import load_coop_checkpoint
from novel_pose_ros.training.coop_config import coop_config_class, is_coop_config_file, load_coop_train_config

BACKBONE = "feature_extractor."


@pytest.fixture(scope="module")
def coarse_sampler(bundled_pool, gl_renderer):
    return CoarsePairSampler(bundled_pool, DataConfig(template_level=0, nearest_templates=2), renderer=gl_renderer,
                             far_template_probability=0.3)


@pytest.fixture(scope="module")
def coarse_pairs(coarse_sampler):
    return coarse_sampler.sample(np.random.default_rng(5), 6)


def test_template_crops_carry_their_depth(coarse_sampler, bundled_pool):
    view = coarse_sampler.views.view(bundled_pool.get(0), 3)
    assert view.depth_m.shape == view.mask.shape == (224, 224) and view.depth_m.dtype == np.float32
    assert (view.depth_m[view.mask] > 0).mean() > 0.97 and (view.depth_m[~view.mask] == 0).all()


def test_pairs_match_query_patches_onto_the_template_object(coarse_pairs, coarse_sampler, bundled_pool):
    assert len(coarse_pairs) == 6
    for pair in coarse_pairs:
        assert pair.query_rgb.shape == pair.template_rgb.shape == (224, 224, 3)
        assert pair.target_class.shape == (256,) and pair.target_offset.shape == (256, 2)
        matched = pair.target_class != NO_MATCH
        assert pair.far_template or matched.any()
        assert np.all(np.abs(pair.target_offset) <= 0.5) and np.all(pair.target_offset[~matched] == 0)
        obj = bundled_pool.get(bundled_pool.names.index(pair.object_name))
        template = coarse_sampler.views.view(obj, pair.view)  # the geometry is the same for the grey version
        xy = patch_centres_px()[torch.from_numpy(pair.target_class[matched])].numpy() + pair.target_offset[matched] * 14
        px = np.clip(np.rint(xy).astype(int), 0, 223)
        assert template.mask[px[:, 1], px[:, 0]].mean() > 0.95  # a matched point lands on the template's object


def test_collate_and_correspondence_error(coarse_pairs):
    batch = collate_coarse(coarse_pairs[:3])
    assert batch.query.shape == batch.template.shape == (3, 3, 224, 224) and batch.query.dtype == torch.float32
    assert batch.target_class.dtype == torch.int64 and batch.target_offset.shape == (3, 256, 2)
    with pytest.raises(ValueError, match="no pairs"):
        collate_coarse([])
    # logits that put every GT class first and the GT offsets give zero error; a shifted offset gives 14·δ px
    logits = torch.nn.functional.one_hot(batch.target_class, 257).float() * 10
    errors = correspondence_error_px(logits, batch.target_offset, batch.target_class, batch.target_offset)
    assert len(errors) == int((batch.target_class != NO_MATCH).sum()) and float(errors.max()) < 1e-4
    shifted = correspondence_error_px(logits, batch.target_offset + torch.tensor([0.1, 0.0]), batch.target_class,
                                      batch.target_offset)
    torch.testing.assert_close(shifted, torch.full_like(shifted, 1.4))


def test_config_file_dispatch_and_errors():
    config = load_coop_train_config("configs/train_coarse_small.yaml")
    assert config.network == "coop_coarse_small" and config.freeze_backbone
    assert config.data.template_level == 0 and config.data.nearest_templates == 2
    assert is_coop_config_file("configs/train_coarse_small.yaml") and not is_coop_config_file("configs/train_small.yaml")
    assert coop_config_class({"network": "coop_coarse_tiny"}) is CoarseTrainConfig
    with pytest.raises(ValueError, match="far_template_probability"):
        _build(CoarseTrainConfig, {"far_template_probability": 2.0}, "test")
    with pytest.raises(ValueError, match="unknown Co-op coarse config"):
        _build(CoarseTrainConfig, {"network": "coop_refiner_small"}, "test")


class FixedPairs:
    def __init__(self, pairs):
        self.pairs = pairs

    def sample(self, rng, count):
        return [self.pairs[i % len(self.pairs)] for i in range(count)]


class WatchedTrainer(CoarseTrainer):
    def build_network(self, from_weights):
        self.net = super().build_network(from_weights)
        self.initial = {k: v.clone() for k, v in self.net.state_dict().items()}
        return self.net


def test_tiny_run_trains_the_decoder_only_and_saves_loadable_weights(coarse_pairs, tmp_path):
    from novel_pose_ros.runtime.weights import load_network, resolve_checkpoint

    config = _build(CoarseTrainConfig, {
        "network": "coop_coarse_tiny",
        "run": {"out_dir": str(tmp_path), "steps": 3, "batch_size": 2, "num_workers": 0, "log_every": 1,
                "checkpoint_every": 2, "keep_checkpoints": 2, "seed": 3, "device": "cpu"},
        "optim": {"lr": 1e-3, "warmup_steps": 0, "min_lr_ratio": 1.0},
        "validation": {"every_steps": 1000, "pairs": 2}}, "test")
    trainer = WatchedTrainer(config, make_sampler=lambda: FixedPairs(coarse_pairs[:2]),
                             make_val_sampler=lambda: FixedPairs(coarse_pairs[2:4]), show_progress=False)
    summary = trainer.run()
    train = [r for r in summary.records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3] and all(r["skipped"] == 0 for r in train)
    assert train[-1]["loss"] < train[0]["loss"]  # the same two pairs every step: the loss must fall
    (val,) = [r for r in summary.records if r["kind"] == "validation"]
    assert np.isfinite(val["val_ce"]) and 0 <= val["val_match_accuracy"] <= 1 and 0 <= val["val_no_match_accuracy"] <= 1
    assert (tmp_path / "curves.png").stat().st_size > 0

    picopose, _ = load_network("small_cnn", resolve_checkpoint("small_cnn", None))
    shipped, final = picopose.state_dict(), trainer.net.state_dict()
    for key, value in final.items():
        if key.startswith(BACKBONE):  # the shipped PicoPose encoder, unchanged (BatchNorm statistics included)
            assert torch.equal(value, trainer.initial[key]) and torch.equal(value, shipped[key]), key
    assert any(not torch.equal(v, trainer.initial[k]) for k, v in final.items() if not k.startswith(BACKBONE))

    loaded, _ = load_coop_checkpoint(summary.last_checkpoint, "coop_coarse")
    assert isinstance(loaded, CoopCoarseNet) and not loaded.training
    batch = collate_coarse(coarse_pairs[:1])
    with torch.no_grad():
        expected = trainer.net.eval()(batch.query, batch.template)
        for got, want in zip(loaded(batch.query, batch.template), expected):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_cli_dispatches_a_coarse_config(tmp_path, monkeypatch):
    from novel_pose_ros.cli import main
    from novel_pose_ros.training import coop_config
    from novel_pose_ros.training.loop import TrainSummary

    seen = []

    def fake_train(config, resume=False, show_progress=True):
        seen.append(config)
        return TrainSummary(tmp_path, 0, config.run.steps, None, [])

    monkeypatch.setattr(coop_config, "train_coop", fake_train)
    assert main(["train", "--config", "configs/train_coarse_small.yaml", "--steps", "7", "--out", str(tmp_path)]) == 0
    assert len(seen) == 1 and seen[0].run.steps == 7 and seen[0].network == "coop_coarse_small"

"""Co-op refiner training: the GT on exact cases, the pairs, the config, a tiny run, checkpoints, resume."""
import numpy as np
import pytest
import torch

from novel_pose_ros.estimation.refiner_geometry import identity_flow
from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle
from novel_pose_ros.networks.coop.refiner_net import CoopRefinerNet, get_refiner_config
from novel_pose_ros.hashing import file_sha256
from novel_pose_ros.training.pairs import SceneImage
from novel_pose_ros.training.config import _build
from novel_pose_ros.training.coop_checkpoint import load_coop_checkpoint, save_coop_weights
from novel_pose_ros.training.coop_config import coop_config_class, coop_train_config_from_dict, load_coop_train_config
from novel_pose_ros.training.refiner_config import RefinerTrainConfig
from novel_pose_ros.training.refiner_pairs import RefinerPairSampler, collate_refiner, perturb_pose
from novel_pose_ros.training.refiner_truth import refiner_truth

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])
T_GT = make_T(rotation_from_axis_angle(np.array([1.0, 0.3, 0.2]), 2.2), [0.03, -0.01, 0.45])


def _scene(obj, renderer, T=T_GT) -> SceneImage:
    """The object alone, unoccluded, over a black background."""
    r = renderer.render([(obj, T)], K, 640, 480)
    return SceneImage(r.rgb, r.depth_m, r.labels.astype(np.int32), K, ((obj, obj, T),))


@pytest.fixture(scope="module")
def block(bundled_pool):
    return bundled_pool.get(bundled_pool.names.index("toy_block"))


def test_truth_at_the_gt_pose_is_the_identity_flow_and_mostly_visible(block, gl_renderer):
    truth = refiner_truth(_scene(block, gl_renderer), 0, T_GT, T_GT, gl_renderer)
    assert truth.points_valid.sum() > 300
    assert truth.visible.sum() >= 0.9 * truth.points_valid.sum()  # unoccluded: nearly every render cell is seen
    assert not (truth.visible & ~truth.points_valid).any()
    np.testing.assert_allclose(truth.flow_gt[:, truth.visible], identity_flow()[:, truth.visible], atol=1e-6)
    assert truth.flow_gt.dtype == np.float32 and truth.flow_gt.shape == (2, 64, 64)
    assert truth.query_rgb.shape == truth.render_rgb.shape == (256, 256, 3)
    # the query crop shows the scene through the same window: the object where the render has it
    assert np.mean((truth.query_labels == 1) == truth.render_mask) > 0.97


def test_a_known_shift_of_the_current_pose_gives_the_expected_pixel_shift(block, gl_renderer):
    dx = 0.004
    T_cur = T_GT.copy()
    T_cur[0, 3] += dx
    truth = refiner_truth(_scene(block, gl_renderer), 0, T_GT, T_cur, gl_renderer)
    vis = truth.visible
    assert vis.sum() > 0.8 * truth.points_valid.sum()
    # every render point sits dx further right at T_cur than at T_gt: its target is fx·dx/z crop px to the left
    z = (truth.points_obj @ T_cur[:3, :3].T + T_cur[:3, 3])[..., 2]
    expected_dx_cells = -truth.K_crop[0, 0] * dx / z / 4.0
    np.testing.assert_allclose(truth.flow_gt[0][vis], identity_flow()[0][vis] + expected_dx_cells[vis], atol=1e-5)
    np.testing.assert_allclose(truth.flow_gt[1][vis], identity_flow()[1][vis], atol=1e-5)
    assert 0.5 < float(np.median(-expected_dx_cells[vis])) < 5  # a few mm: a few pixels


def test_an_occluder_hides_cells(block, bundled_pool, gl_renderer):
    mug = bundled_pool.get(bundled_pool.names.index("mug"))
    T_mug = make_T(np.eye(3), T_GT[:3, 3] + [0.03, 0.0, -0.15])  # in front of the block, to its right
    r = gl_renderer.render([(block, T_GT), (mug, T_mug)], K, 640, 480)
    scene = SceneImage(r.rgb, r.depth_m, r.labels.astype(np.int32), K, ((block, block, T_GT), (mug, mug, T_mug)))
    truth = refiner_truth(scene, 0, T_GT, T_GT, gl_renderer)
    assert 0.2 * truth.points_valid.sum() < truth.visible.sum() < 0.6 * truth.points_valid.sum()


def test_perturbation_follows_the_configured_noise():
    from novel_pose_ros.training.refiner_config import PoseNoiseConfig

    rng = np.random.default_rng(0)
    noise = PoseNoiseConfig(translation_std_m=(0.01, 0.02, 0.05), rotation_std_deg=15.0)
    draws = [perturb_pose(T_GT, rng, noise) for _ in range(2000)]
    dt = np.array([T[:3, 3] - T_GT[:3, 3] for T in draws])
    np.testing.assert_allclose(dt.std(axis=0), [0.01, 0.02, 0.05], rtol=0.1)
    angles = np.array([np.arccos(np.clip((np.trace(T[:3, :3] @ T_GT[:3, :3].T) - 1) / 2, -1, 1)) for T in draws])
    # |ω| with ω ~ N(0, σ²I₃) (Maxwell): mean 2σ·sqrt(2/π)
    assert np.degrees(angles.mean()) == pytest.approx(2 * 15.0 * np.sqrt(2 / np.pi), rel=0.1)


@pytest.fixture(scope="module")
def refiner_pairs(bundled_pool, gl_renderer):
    from novel_pose_ros.training.config import DataConfig

    sampler = RefinerPairSampler(bundled_pool, DataConfig(), renderer=gl_renderer, model_points=64)
    return sampler.sample(np.random.default_rng(7), 4)


def test_sampled_pairs_have_the_documented_shapes(refiner_pairs):
    for p in refiner_pairs:
        assert p.query_rgb.shape == p.render_rgb.shape == (256, 256, 3) and p.query_rgb.dtype == np.uint8
        assert p.render_mask16.shape == (16, 16) and p.render_mask16.dtype == np.float32
        assert p.flow_gt.shape == (2, 64, 64) and p.flow_gt.dtype == np.float32
        assert p.visible.shape == p.points_valid.shape == (64, 64) and p.visible.dtype == bool
        assert p.points_obj.shape == (64, 64, 3) and p.K_crop.shape == (3, 3)
        assert p.T_cur.shape == p.T_gt.shape == (4, 4) and not np.allclose(p.T_cur, p.T_gt)
        assert p.model_points.shape == (64, 3) and p.visible.any()
        assert np.all(np.abs(p.model_points) <= p.diameter_m + 1e-9)
    batch = collate_refiner(refiner_pairs[:2])
    assert batch.query.shape == (2, 3, 256, 256) and batch.query.dtype == torch.float32
    assert batch.visible.dtype == torch.bool and batch.T_cur.dtype == torch.float64
    assert batch.model_points.shape == (2, 64, 3)


def test_config_dispatch_and_unknown_keys(tmp_path):
    config = load_coop_train_config("configs/train_refiner_small.yaml")
    assert isinstance(config, RefinerTrainConfig)
    assert config.loss.flow_weight == 1 and config.loss.certainty_weight == 5 and config.loss.pose_weight == 20
    assert config.noise.translation_std_m == (0.01, 0.01, 0.05) and config.init_from_picopose
    assert coop_config_class({"network": "coop_refiner_small"}) is RefinerTrainConfig
    assert coop_config_class({"network": "small_cnn"}) is None
    with pytest.raises(ValueError, match="unknown keys.*lm_iters"):
        _build(RefinerTrainConfig, {"solver": {"lm_iters": 3}}, "test")
    with pytest.raises(ValueError, match="translation_std_m"):
        _build(RefinerTrainConfig, {"noise": {"translation_std_m": [0.01, 0.01]}}, "test")
    with pytest.raises(ValueError, match="unknown Co-op refiner config"):
        _build(RefinerTrainConfig, {"network": "small_cnn"}, "test")
    with pytest.raises(ValueError, match="names no Co-op config"):
        load_coop_train_config("configs/train_small.yaml")


def test_refiner_weights_round_trip_strictly(tmp_path):
    torch.manual_seed(1)
    net = CoopRefinerNet(get_refiner_config("coop_refiner_small"))
    path = save_coop_weights(net, tmp_path / "r.ckpt", 5)
    loaded, weights_id = load_coop_checkpoint(path, "coop_refiner")
    assert weights_id == file_sha256(path) and not loaded.training
    a, b = net.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    raw = torch.load(path, weights_only=True)
    raw["state_dict"].pop(next(iter(raw["state_dict"])))
    torch.save(raw, tmp_path / "broken.ckpt")
    with pytest.raises(RuntimeError, match="Missing key"):
        load_coop_checkpoint(tmp_path / "broken.ckpt", "coop_refiner")


class FixedPairs:
    """A sampler stand-in that hands out the same rendered pairs every step (no rendering in the loop)."""

    def __init__(self, pairs):
        self.pairs = pairs

    def sample(self, rng, count):
        return [self.pairs[i % len(self.pairs)] for i in range(count)]


def _config(out_dir, steps, init_from_picopose=False, val_pairs=0):
    return coop_train_config_from_dict({
        "network": "coop_refiner_small", "init_from_picopose": init_from_picopose,
        "run": {"out_dir": str(out_dir), "steps": steps, "batch_size": 2, "num_workers": 0, "log_every": 1,
                "checkpoint_every": 2, "keep_checkpoints": 2, "seed": 3, "device": "cpu"},
        "optim": {"lr": 1e-3, "backbone_lr": 1e-4, "warmup_steps": 0, "min_lr_ratio": 1.0},
        "loss": {"model_points": 64},
        "validation": {"every_steps": 1000, "pairs": val_pairs},
    })


def _trainer(config, pairs, resume=False):
    from novel_pose_ros.training.refiner_trainer import RefinerTrainer

    return RefinerTrainer(config, resume=resume, make_sampler=lambda: FixedPairs(pairs),
                          make_val_sampler=lambda: FixedPairs(pairs), show_progress=False)


def test_tiny_refiner_run_logs_validates_and_saves_loadable_weights(refiner_pairs, tmp_path):
    summary = _trainer(_config(tmp_path, 3, init_from_picopose=True, val_pairs=2), refiner_pairs[:2]).run()
    train = [r for r in summary.records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3]
    for r in train:
        assert all(np.isfinite(r[k]) for k in ("loss", "laplace_nll", "certainty_bce", "pose", "pose_rotation", "pose_xy", "pose_z")), r
        assert r["skipped"] == 0 and r["sec_per_step"] > 0
    (val,) = [r for r in summary.records if r["kind"] == "validation"]
    for key in ("val_loss", "val_rot_err_deg_before", "val_rot_err_deg_after", "val_trans_err_mm_before",
                "val_trans_err_mm_after"):
        assert np.isfinite(val[key]), key
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "config.yaml").is_file()
    assert len(list((tmp_path / "checkpoints").glob("*.ckpt"))) == 2  # keep_checkpoints
    net, weights_id = load_coop_checkpoint(summary.last_checkpoint, "coop_refiner")  # what the estimator loads
    saved = torch.load(summary.last_checkpoint, weights_only=True)
    assert saved["global_step"] == 3 and saved["novel_pose"]["config_values"] == net.config.to_dict()
    for key, value in net.state_dict().items():
        assert torch.equal(value, saved["state_dict"]["network." + key]), key
    assert weights_id == file_sha256(summary.last_checkpoint)


def test_resume_continues_from_the_checkpoint_step(refiner_pairs, tmp_path):
    pairs = refiner_pairs[2:4]
    straight = _trainer(_config(tmp_path / "straight", 3), pairs).run()
    _trainer(_config(tmp_path / "split", 2), pairs).run()
    resumed = _trainer(_config(tmp_path / "split", 3), pairs, resume=True).run()
    assert resumed.start_step == 2
    assert [r["step"] for r in resumed.records if r["kind"] == "train"] == [1, 2, 3]  # nothing duplicated
    a = load_coop_checkpoint(straight.last_checkpoint, "coop_refiner")[0].state_dict()
    b = load_coop_checkpoint(resumed.last_checkpoint, "coop_refiner")[0].state_dict()
    for key in a:  # same batches and optimiser state: the weights of the uninterrupted run
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        _trainer(_config(tmp_path / "empty", 2), pairs, resume=True).run()

"""The training loop on CPU with a tiny network: the loss goes down, checkpoints resume exactly."""
import json

import numpy as np
import pytest
import torch

from novel_pose_ros.networks.picopose.checkpoint import load_weights, read_checkpoint
from novel_pose_ros.training.checkpoints import latest_checkpoint, load_training_checkpoint
from novel_pose_ros.training.config import train_config_from_dict
from novel_pose_ros.training.logs import plot_curves
from novel_pose_ros.training.optim import build_optimizer
from novel_pose_ros.training.trainer import Trainer, build_training_network


class FixedPairs:
    """A sampler stand-in that hands out the same rendered pairs every step (no rendering in the loop)."""

    def __init__(self, pairs):
        self.pairs = pairs

    def sample(self, rng, count):
        return [self.pairs[i % len(self.pairs)] for i in range(count)]


def _config(tiny_network, out_dir, steps, **run):
    return train_config_from_dict({
        "network": tiny_network, "pretrained_backbone": False,
        "run": {"out_dir": str(out_dir), "steps": steps, "batch_size": 2, "num_workers": 0, "log_every": 1,
                "checkpoint_every": 2, "keep_checkpoints": 2, "seed": 3, **run},
        "optim": {"lr": 2e-3, "backbone_lr": 2e-3, "warmup_steps": 0, "min_lr_ratio": 1.0},
        "validation": {"every_steps": 1000, "pairs": 0, "ar": False},
    })


def _trainer(config, pairs, resume=False):
    return Trainer(config, resume=resume, make_sampler=lambda: FixedPairs(pairs),
                   make_val_sampler=lambda: FixedPairs(pairs), show_progress=False)


def test_tiny_training_lowers_the_loss(tiny_network, rendered_pairs, tmp_path):
    summary = _trainer(_config(tiny_network, tmp_path, 14), rendered_pairs[:2]).run()
    train = [r for r in summary.records if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 15))
    first, last = train[0], np.mean([r["loss"] for r in train[-3:]])
    assert last < 0.7 * first["loss"], [round(r["loss"], 3) for r in train]
    # not only the (initially clamped) scale term: the flow and certainty terms learn too
    assert np.mean([r["flow64"] + r["cert64"] for r in train[-3:]]) < first["flow64"] + first["cert64"]
    assert all(r["sec_per_step"] > 0 and r["data_s"] >= 0 for r in train)
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "config.yaml").is_file()
    contents = read_checkpoint(summary.last_checkpoint)  # the official layout, readable with weights_only
    assert contents.layout == "lightning" and contents.metadata["global_step"] == 14
    assert len(list((tmp_path / "checkpoints").glob("*.ckpt"))) == 2  # keep_checkpoints


def test_resume_continues_the_step_count_with_optimizer_state(tiny_network, rendered_pairs, tmp_path):
    pairs = rendered_pairs[2:4]
    straight = _trainer(_config(tiny_network, tmp_path / "straight", 6), pairs).run()
    _trainer(_config(tiny_network, tmp_path / "split", 4), pairs).run()
    paths = latest_checkpoint(tmp_path / "split" / "checkpoints")
    net = build_training_network(_config(tiny_network, tmp_path, 4))
    optimizer = build_optimizer(net, _config(tiny_network, tmp_path, 4).optim)
    state = load_training_checkpoint(paths, net, optimizer, load_weights)
    assert state["step"] == 4
    assert all(int(s["step"]) == 4 for s in optimizer.state_dict()["state"].values())  # AdamW moments of 4 steps
    resumed = _trainer(_config(tiny_network, tmp_path / "split", 6), pairs, resume=True).run()
    assert resumed.start_step == 4
    steps = [r["step"] for r in resumed.records if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]  # the log continues; nothing duplicated
    a = read_checkpoint(straight.last_checkpoint).state_dict
    b = read_checkpoint(resumed.last_checkpoint).state_dict
    assert a.keys() == b.keys()
    for key in a:  # the same batches, noise and optimizer state: the same weights as without the interruption
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        _trainer(_config(tiny_network, tmp_path / "empty", 2), pairs, resume=True).run()


def test_curves_plot_without_matplotlib(tmp_path):
    records = [{"kind": "train", "step": s, "loss": 10 / s, "infonce": 5 / s, "flow64": 3.0} for s in range(1, 30)]
    records.append({"kind": "validation", "step": 29, "val_loss": 0.5, "ar": 0.1, "ar_mssd": 0.2})
    path = plot_curves(records, tmp_path / "c.png")
    import cv2

    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] == 1000 and image.shape[0] == 360 + 220
    json.dumps(records)

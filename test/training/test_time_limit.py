"""run.max_minutes (training/loop.py): a wall-time limit that ends the run cleanly, for every trainer.

The tiny network on fixed rendered pairs (as test_train_loop.py) takes ~0.1 s a step on a CPU.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from novel_pose_ros.cli import build_parser
from novel_pose_ros.cli.train_cmd import _overrides
from novel_pose_ros.networks.picopose.checkpoint import read_checkpoint
from novel_pose_ros.training.config import train_config_from_dict
from novel_pose_ros.training.distributed import Distributed
from novel_pose_ros.training.loop import past_time_limit
from novel_pose_ros.training.trainer import Trainer

BURST_SUMMARY = Path(__file__).resolve().parents[2] / "tools" / "gpu" / "burst_summary.py"


class FixedPairs:
    """A sampler stand-in: the same rendered pairs every step (no rendering in the loop)."""

    def __init__(self, pairs):
        self.pairs = pairs

    def sample(self, rng, count):
        return [self.pairs[i % len(self.pairs)] for i in range(count)]


def _trainer(tiny_network, pairs, out_dir, steps, max_minutes, resume=False):
    config = train_config_from_dict({
        "network": tiny_network, "pretrained_backbone": False,
        "run": {"out_dir": str(out_dir), "steps": steps, "batch_size": 2, "num_workers": 0, "log_every": 1000,
                "checkpoint_every": 1000, "seed": 5, "max_minutes": max_minutes},
        "optim": {"warmup_steps": 0},
        "validation": {"every_steps": 1000, "pairs": 2, "ar": False},
    })
    return Trainer(config, resume=resume, make_sampler=lambda: FixedPairs(pairs),
                   make_val_sampler=lambda: FixedPairs(pairs), show_progress=False)


def test_a_tiny_limit_stops_after_the_first_step_with_checkpoint_and_validation(tiny_network, rendered_pairs, tmp_path):
    summary = _trainer(tiny_network, rendered_pairs[:2], tmp_path, 500, 1e-9).run()
    assert summary.steps_done == 1
    assert [(r["kind"], r["step"]) for r in summary.records] == [("train", 1), ("stop", 1), ("validation", 1)]
    stop = summary.records[1]
    assert stop["reason"] == "max_minutes" and stop["train_minutes"] >= 1e-9
    assert "val_loss" in summary.records[2]  # the final validation ran
    assert summary.last_checkpoint.name == "step_0000001.ckpt"
    assert read_checkpoint(summary.last_checkpoint).metadata["global_step"] == 1
    latest = json.loads((tmp_path / "checkpoints" / "latest.json").read_text())
    assert latest["step"] == 1
    # a stopped run resumes from that checkpoint like any other (here without a limit, to run.steps)
    resumed = _trainer(tiny_network, rendered_pairs[:2], tmp_path, 3, None, resume=True).run()
    assert resumed.start_step == 1 and resumed.steps_done == 3
    assert [r["step"] for r in resumed.records if r["kind"] == "train"] == [1, 3]


def test_the_limit_ends_the_run_after_its_wall_time_not_its_steps(tiny_network, rendered_pairs, tmp_path):
    limit_min = 1.5 / 60
    summary = _trainer(tiny_network, rendered_pairs[2:4], tmp_path, 100000, limit_min).run()
    stop = [r for r in summary.records if r["kind"] == "stop"]
    assert len(stop) == 1 and stop[0]["step"] == summary.steps_done
    assert 1 <= summary.steps_done < 100000  # on a busy CPU the first step alone can take the 1.5 s
    assert limit_min <= stop[0]["train_minutes"] < limit_min + 0.5  # stops at the first step past the limit
    assert summary.last_checkpoint.name == f"step_{summary.steps_done:07d}.ckpt"
    # what train_burst.sh brings back about such a run (tools/gpu/burst_summary.py, standard library only)
    out = tmp_path / "burst_summary.json"
    result = subprocess.run([sys.executable, str(BURST_SUMMARY), str(tmp_path), str(out), "seed=5"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    brought = json.loads(out.read_text())
    assert brought["steps"] == summary.steps_done and brought["stopped_by"] == "max_minutes"
    assert brought["checkpoint"] == summary.last_checkpoint.name and brought["seed"] == "5"
    assert brought["validation"]["step"] == summary.steps_done and brought["ar"] is None  # ar off here
    assert f"burst: {summary.steps_done} steps (stopped by max_minutes)" in result.stdout


def test_past_time_limit_without_a_limit_never_stops():
    single = Distributed(0, 1, 0, torch.device("cpu"))
    assert not past_time_limit(0.0, None, single)
    assert past_time_limit(0.0, 1e-6, single)  # perf_counter() is far past 0 s
    assert not past_time_limit(time.perf_counter(), 10.0, single)


def test_max_minutes_is_validated_and_set_from_the_command_line(tiny_network):
    with pytest.raises(ValueError, match="max_minutes"):
        train_config_from_dict({"network": tiny_network, "run": {"max_minutes": 0}})
    args = build_parser().parse_args(["train", "--config", "burst.yaml", "--max-minutes", "6.5", "--batch-size", "32",
                                      "--init-weights", "w.ckpt", "--seed", "4", "--validation-pairs", "0",
                                      "--no-validation-ar"])
    overrides = _overrides(args)
    assert overrides["run"] == {"max_minutes": 6.5, "batch_size": 32, "init_weights": "w.ckpt", "seed": 4}
    assert overrides["validation"] == {"pairs": 0, "ar": False}
    plain = _overrides(build_parser().parse_args(["train", "--config", "x.yaml"]))
    assert plain == {}

"""tools/gpu/train_burst.sh and its config: valid bash, arguments checked before anything runs, and a burst
config that is the shipped fine-tune's recipe (so its validation AR compares) with only the burst's changes.
The dry run itself downloads wheels (tools/gpu/train_burst.sh --dry-run), so it is not a test."""
from __future__ import annotations

import subprocess
from pathlib import Path

from novel_pose_ros.training.config import load_train_config

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "gpu" / "train_burst.sh"
BURST = REPO / "tools" / "gpu" / "burst_config.yaml"
FINETUNE = REPO / "models" / "picopose_small_cnn" / "finetune_config.yaml"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_script_is_valid_bash_and_explains_itself():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    shown = _run("--help")
    assert shown.returncode == 0 and "--dry-run" in shown.stdout and "picopose_small_cnn_burst.ckpt" in shown.stdout


def test_bad_arguments_exit_2_before_anything_runs():
    bad_minutes = _run("--dry-run", "--minutes", "seven")
    assert bad_minutes.returncode == 2 and "--minutes must be a number" in bad_minutes.stderr
    unknown = _run("--fast")
    assert unknown.returncode == 2 and "unknown argument '--fast'" in unknown.stderr
    missing = _run("--dry-run", "--init", "models/no_such.ckpt")
    assert missing.returncode == 2 and "no_such.ckpt not found" in missing.stderr


def test_burst_config_is_the_finetune_recipe_with_the_burst_changes():
    burst, finetune = load_train_config(BURST), load_train_config(FINETUNE)
    assert burst.network == finetune.network and not burst.pretrained_backbone
    assert burst.run.init_weights == Path("models/picopose_small_cnn/picopose_small_cnn.ckpt")
    assert (REPO / burst.run.init_weights).is_file()
    assert burst.run.device == "cuda" and burst.run.max_minutes == 7.0 and burst.run.steps > 10000
    assert burst.optim.min_lr_ratio == 1.0  # the clock, not run.steps, ends the run: no schedule tied to steps
    for section in ("loss", "noise"):
        assert getattr(burst, section) == getattr(finetune, section), section
    same_data = {k: v for k, v in vars(burst.data).items() if k != "meshes_dir"}
    assert same_data == {k: v for k, v in vars(finetune.data).items() if k != "meshes_dir"}
    assert burst.data.meshes_dir == Path(".gpu_pack")
    # the same validation (objects, images, hypotheses, seed): the burst's AR compares with the fine-tune's
    assert {k: v for k, v in vars(burst.validation).items() if k != "every_steps"} == \
           {k: v for k, v in vars(finetune.validation).items() if k != "every_steps"}
    assert burst.validation.every_steps >= burst.run.steps  # only the final validation

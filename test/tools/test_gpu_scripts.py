"""The prepared GPU scripts (tools/gpu): they parse, carry what requirements.txt pins, and their summary
reads a real bench report. Their dry run (`make gpu-dry-run`) downloads wheels, so it is not a test."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GPU_TOOLS = REPO / "tools" / "gpu"


@pytest.mark.parametrize("script", ["common.sh", "check.sh", "train_burst.sh", "novel-pose"])
def test_gpu_scripts_are_valid_bash(script):
    path = GPU_TOOLS / script
    assert path.is_file(), f"{path} is missing"
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.split("[")[0].strip().lower()] = version.strip()
    return pins


def test_carried_wheels_have_the_pins_of_requirements_txt():
    required = _pins(REPO / "requirements.txt")
    carried = [line.split()[1] for line in (GPU_TOOLS / "carry.txt").read_text().splitlines()
               if line.startswith("wheel ")]
    assert carried
    for entry in carried:
        name, version = entry.split("==")
        assert required.get(name.lower()) == version, f"carry.txt {entry} vs requirements.txt {required.get(name.lower())}"


def test_novel_pose_wrapper_parses_in_dry_run_mode_and_refuses_a_bad_option():
    env = {"GPU_DRY_RUN": "1", "PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}
    good = subprocess.run([str(GPU_TOOLS / "novel-pose"), "bench", "--backend", "torch", "--device", "cuda",
                           "--torch-autocast", "bf16", "--objects-per-frame", "1", "4", "8"],
                          capture_output=True, text=True, env=env)
    assert good.returncode == 0 and "parses: novel-pose bench" in good.stdout, good.stderr
    bad = subprocess.run([str(GPU_TOOLS / "novel-pose"), "bench", "--torch-autocast", "int4"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and "int4" in bad.stderr


def test_summary_table_reads_a_real_bench_report(tmp_path):
    """summarise.py against the report of a real (CPU, tiny) estimator bench run."""
    from helpers import toy_block_objects_yaml
    from novel_pose_ros.cli import main

    work = tmp_path / "work"
    work.mkdir()
    assert main(["bench", "--objects-per-frame", "1", "--frames", "1", "--warmup", "0",
                 "--objects", str(toy_block_objects_yaml(tmp_path)), "--network", "small", "--backend", "torch",
                 "--torch-autocast", "bf16", "--json", str(work / "bench_small_bf16.json")]) == 0
    (work / "steps.txt").write_text("bench_small_bf16 0 12\ngpu_tests 1 40\n")
    out = tmp_path / "gpu_check.json"
    result = subprocess.run([sys.executable, str(GPU_TOOLS / "summarise.py"), str(work), str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| small |")]
    assert len(rows) == 1 and "| autocast-bf16 | 1 |" in rows[0]
    assert "gpu_tests exit 1 (40 s)" in result.stdout
    summary = json.loads(out.read_text())
    assert summary["results"]["bench_small_bf16"]["environment"]["precision"] == "autocast-bf16"

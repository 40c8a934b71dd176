import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from helpers import MESHES, REPO_ROOT, toy_block_objects_yaml
from novel_pose_ros.cli import main


@pytest.fixture
def one_object_yaml(tmp_path):
    return toy_block_objects_yaml(tmp_path)


def test_console_script_is_declared():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("novel-pose") == "novel_pose_ros.cli:main"


def test_templates_build_then_up_to_date_then_show(tmp_path, one_object_yaml, capsys):
    args = ["templates", "build", "--objects", str(one_object_yaml), "--out", str(tmp_path / "cache")]
    assert main(args) == 0
    assert "built: no templates yet" in capsys.readouterr().out
    assert main(args) == 0
    assert "up to date" in capsys.readouterr().out
    sheet = tmp_path / "sheet.png"
    assert main(["templates", "show", "--cache", str(tmp_path / "cache"), "--object", "toy_block", "--out", str(sheet)]) == 0
    assert sheet.stat().st_size > 1000


def test_user_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["templates", "build", "--objects", str(tmp_path / "missing.yaml"), "--out", str(tmp_path)]) == 2
    assert "missing.yaml: not found" in capsys.readouterr().err
    assert main(["templates", "show", "--cache", str(tmp_path), "--object", "ghost", "--out", str(tmp_path / "x.png")]) == 2
    assert "build templates first" in capsys.readouterr().err


def test_bench_templates_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "templates", "--mesh", str(MESHES / "toy_block.ply"), "--units", "m", "--repeat", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())["results"][0]
    assert set(result) >= {"object", "faces", "views", "load_s", "render_s", "write_s", "build_s", "load_plus_build_s"}
    assert result["views"] == 42 and result["build_s"] > 0
    assert "load+build s" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.ros
def test_demo_runs_the_ros_graph(tmp_path):
    """The README's main job: bop_player and pose_estimator as separate processes, poses collected."""
    run = subprocess.run([sys.executable, "-m", "novel_pose_ros.cli", "demo", "--frames", "1", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "the graph worked" in run.stdout and "== synthetic: 1 frames ==" in run.stdout
    assert list(tmp_path.glob("synthetic_overlay_*.png"))

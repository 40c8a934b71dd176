"""A real multi-process run: `torchrun --nproc_per_node 2 -m novel_pose_ros.cli train` on CPU (gloo)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import MESHES, REPO_ROOT
from novel_pose_ros.objects import load_object
from novel_pose_ros.training.meshes import MeshEntry, write_manifest


def _bundled_manifest(folder: Path) -> Path:
    """A training-mesh folder made of two bundled meshes (train) and one (validation)."""
    entries = []
    for object_id, (name, split) in enumerate([("toy_block", "train"), ("mug", "train"), ("cereal_box", "validation")], 1):
        for path in MESHES.glob(f"{name}.*"):
            (folder / "meshes").mkdir(parents=True, exist_ok=True)
            shutil.copy(path, folder / "meshes" / path.name)
        mesh = next(p for p in (folder / "meshes").glob(f"{name}.*") if p.suffix in (".ply", ".obj"))
        obj = load_object(mesh, object_id, name=name, units="m")
        entries.append(MeshEntry(name, object_id, "bundled", mesh.name, split, "project", str(mesh.relative_to(folder)),
                                 "m", (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), obj.has_appearance, len(obj.mesh.faces),
                                 tuple(float(e) for e in obj.extents_m), obj.diameter_m))
    write_manifest(folder, entries, {"bundled": {"licence": "project"}}, [])
    return folder


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path, tiny_network):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        pytest.skip(f"torchrun not found next to {sys.executable}")
    config = {
        "network": tiny_network, "pretrained_backbone": False,
        "run": {"out_dir": str(tmp_path / "run"), "steps": 3, "batch_size": 2, "num_workers": 0, "log_every": 1,
                "checkpoint_every": 3, "device": "cpu"},
        "data": {"meshes_dir": str(_bundled_manifest(tmp_path / "meshes")), "images_per_layout": 1,
                 "scene": {"objects_per_scene": [2, 3]}},
        "validation": {"every_steps": 100, "pairs": 2, "ar": False},
    }
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "novel_pose_ros.cli", "train",
               "--config", str(tmp_path / "train.yaml"), "--no-progress"]
    result = subprocess.run(command,
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3]
    assert any(r["kind"] == "validation" and "val_loss" in r for r in records)
    assert (tmp_path / "run" / "checkpoints" / "step_0000003.ckpt").is_file()
    assert result.stdout.count("trained steps 0 → 3") == 1  # only rank 0 reports

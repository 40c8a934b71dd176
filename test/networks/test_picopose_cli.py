"""`novel-pose weights inspect` and `novel-pose export` end to end on a small random checkpoint."""
import json

import pytest
import torch

from novel_pose_ros.cli import main
from novel_pose_ros.networks.picopose.checkpoint import save_checkpoint
from novel_pose_ros.networks.picopose.config import SMALL
from novel_pose_ros.hashing import file_sha256
from novel_pose_ros.networks.picopose.picopose_net import build_network


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(2)
    return save_checkpoint(build_network(SMALL), tmp_path_factory.mktemp("cli") / "small.ckpt")


def test_weights_inspect(checkpoint, tmp_path, capsys):
    assert main(["weights", "inspect", str(checkpoint), "--config", "small", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "lightning layout" in out and "feature_extractor.dinov2" in out and "matches config 'small'" in out
    assert "pytorch-lightning_version" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["matches_config"] and report["entries"] == 399
    assert main(["weights", "inspect", str(checkpoint), "--config", "official"]) == 1
    out = capsys.readouterr().out
    assert "does NOT match config 'official'" in out and "missing" in out and "mismatched" in out


def test_weights_inspect_user_errors(tmp_path, capsys):
    assert main(["weights", "inspect", str(tmp_path / "absent.ckpt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    assert main(["weights", "inspect", str(tmp_path / "junk.ckpt"), "--config", "small"]) == 2
    assert "not a PyTorch checkpoint" in capsys.readouterr().err
    assert main(["weights", "inspect", str(tmp_path / "junk.ckpt"), "--config", "huge"]) == 2
    assert "unknown PicoPose config 'huge'" in capsys.readouterr().err


def test_export(checkpoint, tmp_path, capsys):
    out_dir = tmp_path / "onnx"
    assert main(["export", "--config", "small", "--weights", str(checkpoint), "--out", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert "max |onnxruntime - torch|" in printed and "FAILED" not in printed
    sidecar = json.loads((out_dir / "picopose_small.json").read_text())
    assert sidecar["weights_sha256"] == file_sha256(checkpoint)
    assert sorted(p.name for p in out_dir.glob("*.onnx")) == sorted(
        f"picopose_small_{g}.onnx" for g in ("affine", "backbone", "dpt", "flow"))


def test_export_refuses_a_checkpoint_of_another_config(checkpoint, tmp_path, capsys):
    code = main(["export", "--config", "small_cnn", "--weights", str(checkpoint), "--out", str(tmp_path)])
    assert code == 2 and "does not match PicoPose config 'small_cnn'" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx"))

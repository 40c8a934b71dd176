"""Float16 storage of weights (networks/half_storage.py) and the torch back end's autocast, on the CPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import picopose_graph_inputs


@pytest.fixture(scope="module")
def float32_checkpoint(tmp_path_factory):
    from novel_pose_ros.networks.picopose.checkpoint import save_checkpoint
    from novel_pose_ros.networks.picopose.config import get_config
    from novel_pose_ros.networks.picopose.picopose_net import build_network

    torch.manual_seed(3)
    net = build_network(get_config("small"))
    return save_checkpoint(net, tmp_path_factory.mktemp("half") / "small_fp32.ckpt", global_step=7)


def test_half_storage_halves_the_file_and_loads_as_float32(float32_checkpoint, tmp_path):
    from novel_pose_ros.hashing import file_sha256
    from novel_pose_ros.networks.half_storage import storage_dtype, store_half
    from novel_pose_ros.networks.picopose.checkpoint import read_checkpoint
    from novel_pose_ros.runtime.weights import load_network

    target = tmp_path / "small_fp16.ckpt"
    report = store_half(float32_checkpoint, target)
    assert report["bytes_after"] < 0.55 * report["bytes_before"]
    assert 0 < report["max_relative_rounding"] <= 2.0 ** -10
    contents = read_checkpoint(target)
    halved = [t for t in contents.state_dict.values() if t.dtype == torch.float16]
    kept = [t for t in contents.state_dict.values() if t.dtype == torch.float32]
    assert len(halved) == report["halved"] > 10 * len(kept)
    assert all(float(t.abs().max()) < 2.0 ** -14 for t in kept)  # only tensors in float16's subnormal range
    assert any(t.dtype == torch.int64 for t in contents.state_dict.values())  # BatchNorm counters stay integers
    assert storage_dtype(contents.metadata) == "float16"
    assert contents.metadata["novel_pose"]["float32_sha256"] == file_sha256(float32_checkpoint)
    assert contents.metadata["global_step"] == 7 and contents.layout == "lightning"

    full, _ = load_network("small", float32_checkpoint)
    half, weights_id = load_network("small", target)
    assert weights_id == file_sha256(target)
    for (name, a), b in zip(full.state_dict().items(), half.state_dict().values()):
        assert b.dtype == a.dtype, name  # loaded back as float32
        if a.is_floating_point():
            assert float((a - b).abs().max()) <= 2.0 ** -10 * float(a.abs().max()), name


def test_half_storage_refuses_what_it_cannot_store(tmp_path):
    from novel_pose_ros.networks.half_storage import store_half

    torch.save({"weights": torch.ones(3)}, tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="state_dict"):
        store_half(tmp_path / "bare.pt", tmp_path / "out.pt")
    torch.save({"state_dict": {"w": torch.full((2,), 1e6)}}, tmp_path / "huge.ckpt")
    with pytest.raises(ValueError, match="does not fit in float16"):
        store_half(tmp_path / "huge.ckpt", tmp_path / "out.ckpt")


def test_the_shipped_checkpoints_are_stored_as_float16():
    """What keeps the working tree small enough for a GPU machine (issue 19)."""
    from novel_pose_ros.networks.half_storage import storage_dtype
    from novel_pose_ros.paths import share_dir

    shipped = sorted((share_dir() / "models").glob("*/*.ckpt"))
    assert len(shipped) == 4
    for path in shipped:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        assert storage_dtype(raw) == "float16", path.name
        assert not list(path.parent.glob("*.onnx")), f"ONNX graphs are exported into the cache, not shipped: {path.parent}"


def test_torch_autocast_on_the_cpu_stays_near_fp32(untrained_backend):
    from novel_pose_ros.runtime import create_backend

    backend = create_backend("torch", "small", None, seed=0, torch_autocast="bf16")
    assert backend.precision == "autocast-bf16"
    feed = picopose_graph_inputs(1)["affine"]
    for got, want in zip(backend.run("affine", feed), untrained_backend.run("affine", feed)):
        assert got.dtype == np.float32
        assert float(np.abs(got - want).max()) <= 0.05 * max(1.0, float(np.abs(want).max()))
    with pytest.raises(ValueError, match="autocast"):
        create_backend("torch", "small", None, seed=0, torch_autocast="int8")

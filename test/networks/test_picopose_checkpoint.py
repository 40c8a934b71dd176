"""Checkpoints in the official Lightning layout: strict round trip, legacy prefixes, clear rejections."""
import argparse

import pytest
import torch

from novel_pose_ros.networks.picopose.checkpoint import (
    LEGACY_PREFIXES,
    inspect_checkpoint,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from novel_pose_ros.networks.picopose.config import OFFICIAL, SMALL, SMALL_CNN
from novel_pose_ros.networks.picopose.picopose_net import build_network


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    net = build_network(SMALL)
    with torch.no_grad():  # non-default BatchNorm statistics, so buffers are checked too
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.num_batches_tracked.fill_(7)
    path = save_checkpoint(net, tmp_path_factory.mktemp("ckpt") / "small.ckpt", epoch=3, global_step=1200)
    return net, path


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def test_saved_checkpoint_has_the_official_lightning_layout(small_checkpoint):
    net, path = small_checkpoint
    raw = torch.load(path, weights_only=True)
    assert set(raw["state_dict"]) == {"network." + k for k in net.state_dict()}
    assert raw["epoch"] == 3 and raw["global_step"] == 1200 and "pytorch-lightning_version" in raw
    assert raw["novel_pose"]["config"] == "small"


def test_small_round_trip_is_strict_and_exact(small_checkpoint):
    net, path = small_checkpoint
    fresh = build_network(SMALL)
    contents = load_weights(fresh, path)
    assert contents.layout == "lightning" and contents.prefixes == ("network.",)
    _assert_same_weights(net, fresh)


def test_first_release_prefixes_and_bare_state_dicts_load(small_checkpoint, tmp_path):
    net, _ = small_checkpoint
    renamed = {}
    for name, tensor in net.state_dict().items():
        for old, new in LEGACY_PREFIXES:
            if name.startswith(new):
                name = old + name[len(new):]
                break
        renamed["network." + name] = tensor
    assert any(k.startswith("network.backbone.dinov2.") for k in renamed)
    assert any(k.startswith("network.dpt.scratch.") for k in renamed)
    torch.save({"state_dict": renamed, "epoch": 0}, tmp_path / "legacy.ckpt")
    fresh = build_network(SMALL)
    contents = load_weights(fresh, tmp_path / "legacy.ckpt")
    assert set(contents.prefixes) == {"network.", "backbone.", "regressor.", "dpt.", "decoder."}
    _assert_same_weights(net, fresh)
    torch.save(net.state_dict(), tmp_path / "bare.pt")
    other = build_network(SMALL)
    assert load_weights(other, tmp_path / "bare.pt").layout == "state_dict"
    _assert_same_weights(net, other)


def test_wrong_shapes_missing_and_unexpected_entries_are_rejected_with_the_names(small_checkpoint, tmp_path):
    net, _ = small_checkpoint
    state = {"network." + k: v for k, v in net.state_dict().items()}
    state["network.affine_regressor.fc1.weight"] = torch.zeros(3, 3)
    del state["network.offset_regressor.flow_decoder.proj.0.0.bias"]
    state["network.extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "bad.ckpt")
    fresh = build_network(SMALL)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(ValueError) as info:
        load_weights(fresh, tmp_path / "bad.ckpt")
    message = str(info.value)
    assert "affine_regressor.fc1.weight  expected [256, 4096], got [3, 3]" in message
    assert "1 missing" in message and "offset_regressor.flow_decoder.proj.0.0.bias" in message
    assert "1 unexpected" in message and "extra.weight" in message
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())  # nothing was loaded


def test_a_checkpoint_of_another_config_is_rejected(small_checkpoint):
    _, path = small_checkpoint
    with pytest.raises(ValueError, match="does not match PicoPose config 'small_cnn'"):
        load_weights(build_network(SMALL_CNN), path)


def test_pickled_objects_need_explicit_trust(small_checkpoint, tmp_path):
    net, _ = small_checkpoint
    path = tmp_path / "hparams.ckpt"
    torch.save({"state_dict": {"network." + k: v for k, v in net.state_dict().items()},
                "hyper_parameters": argparse.Namespace(lr=1e-5)}, path)
    with pytest.raises(ValueError, match="trust-pickle"):
        read_checkpoint(path)
    assert read_checkpoint(path, allow_pickle=True).metadata["hyper_parameters"].lr == 1e-5


def test_inspect_reports_counts_and_differences(small_checkpoint):
    net, path = small_checkpoint
    report = inspect_checkpoint(path, SMALL)
    assert report["entries"] == len(net.state_dict()) and report["matches_config"]
    assert report["parameters"] == sum(p.numel() for p in net.parameters())
    assert report["parameters_per_module"]["feature_extractor.dinov2"] == sum(
        p.numel() for p in net.feature_extractor.parameters())
    assert report["metadata"]["global_step"] == 1200
    other = inspect_checkpoint(path, OFFICIAL)
    assert not other["matches_config"] and other["missing"] and other["mismatched"]


@pytest.mark.slow
def test_official_round_trip(tmp_path):
    torch.manual_seed(0)
    net = build_network(OFFICIAL)
    path = save_checkpoint(net, tmp_path / "official.ckpt")
    fresh = build_network(OFFICIAL)
    load_weights(fresh, path)
    _assert_same_weights(net, fresh)

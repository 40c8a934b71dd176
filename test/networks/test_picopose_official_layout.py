"""The `official` config builds exactly the official network's state dict (names, shapes, dtypes, order)."""
import json

import pytest

from helpers import shared_data
from novel_pose_ros.networks.picopose.checkpoint import expected_entries
from novel_pose_ros.networks.picopose.config import OFFICIAL
from novel_pose_ros.networks.picopose.picopose_net import build_network


@pytest.fixture(scope="module")
def official_reference():
    return json.loads(shared_data("picopose_official/state_dict.json").read_text())


@pytest.mark.needs_data
def test_official_state_dict_equals_reference(official_reference):
    ours = [(k, list(shape), str(dtype).replace("torch.", ""))
            for k, (shape, dtype) in expected_entries(OFFICIAL).items()]
    reference = [(k, list(shape), dtype) for k, shape, dtype in official_reference["state_dict"]]
    assert len(reference) == official_reference["num_state_dict_entries"] == 603
    missing = sorted({r[0] for r in reference} - {o[0] for o in ours})
    unexpected = sorted({o[0] for o in ours} - {r[0] for r in reference})
    assert not missing and not unexpected, f"missing {missing[:5]}, unexpected {unexpected[:5]}"
    assert ours == reference  # same shapes, dtypes and order


@pytest.mark.needs_data
def test_official_parameter_counts_per_module(official_reference):
    net = build_network(OFFICIAL, "meta")
    assert sum(p.numel() for p in net.parameters()) == official_reference["param_count"]
    for module, count in official_reference["by_module"].items():
        assert sum(p.numel() for p in getattr(net, module).parameters()) == count, module
    buffers = [name for name, _ in net.named_buffers()]
    assert len(buffers) == official_reference["num_buffers"]

"""The Co-op refiner network: shapes, identity start, PicoPose weight transfer, ONNX parity, gradients."""
import numpy as np
import pytest
import torch

from novel_pose_ros.networks.coop.refiner_export import RefinerGraph, export_refiner_onnx, refiner_example_inputs
from novel_pose_ros.networks.coop.refiner_net import (
    CoopRefinerConfig,
    CoopRefinerNet,
    get_refiner_config,
    identity_start,
    load_picopose_weights,
)
from novel_pose_ros.networks.picopose.config import get_config
from novel_pose_ros.networks.picopose.flow_decoder import initial_flow
from novel_pose_ros.networks.picopose.picopose_net import build_network
from novel_pose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return CoopRefinerNet(get_refiner_config("coop_refiner_small")).eval()


def test_outputs_have_the_documented_shapes_and_start_neutral(net):
    inputs = refiner_example_inputs(2)["refiner"]
    with torch.no_grad():
        out = net(inputs["query"], inputs["render"], inputs["render_mask16"])
    assert out["flow"].shape == (2, 2, 64, 64)
    for name in ("log_b", "certainty", "sensitivity"):
        assert out[name].shape == (2, 1, 64, 64)
    # zero-initialised extra heads: b = 1 cell and sensitivity 0.5 everywhere before training
    assert torch.all(out["log_b"] == 0) and torch.all(out["sensitivity"] == 0)


def test_wrong_crop_size_is_named(net):
    with pytest.raises(ValueError, match="query"):
        net(torch.zeros(1, 3, 224, 224), torch.zeros(1, 3, 256, 256), torch.zeros(1, 16, 16))


def test_identity_start_equals_initial_flow_of_the_identity_affine():
    mask = (torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    flow, certainty = identity_start(mask)
    expected = initial_flow(torch.eye(2, 3).expand(3, 2, 3), mask)
    assert torch.equal(flow, expected[0]) and torch.equal(certainty, expected[1])


def test_picopose_weights_transfer_into_backbone_dpt_and_decoder(net):
    torch.manual_seed(3)
    picopose = build_network(get_config("small_cnn"))
    copied = load_picopose_weights(net, picopose.state_dict())
    state = net.state_dict()
    assert copied == sum(1 for k in state if k.split(".")[0] in ("feature_extractor", "dpt_head", "flow_decoder"))
    assert torch.equal(state["flow_decoder.proj.0.0.weight"], picopose.state_dict()["offset_regressor.flow_decoder.proj.0.0.weight"])
    with pytest.raises(ValueError, match="lack"):
        load_picopose_weights(net, {"feature_extractor.cnn._conv_stem.weight": torch.zeros(1)})


def test_a_vit_picopose_config_is_refused():
    with pytest.raises(ValueError, match="CNN PicoPose config"):
        CoopRefinerConfig(picopose="small")


def test_gradients_reach_the_encoder_and_every_head(net):
    net.train()
    inputs = refiner_example_inputs(1)["refiner"]
    out = net(inputs["query"], inputs["render"], inputs["render_mask16"])
    (out["flow"].sum() + out["log_b"].sum() + out["certainty"].sum() + out["sensitivity"].sum()).backward()
    for name in ("feature_extractor.adapters.3.weight", "scale_pred.predict_layer.weight",
                 "sensitivity_pred.predict_layer.weight", "flow_decoder.flow_pred.2.predict_layer.weight"):
        grad = dict(net.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    net.zero_grad()
    net.eval()


def test_onnx_runtime_matches_pytorch_at_batch_1_and_3(net, tmp_path):
    backend = OnnxRuntimeBackend(export_refiner_onnx(net, tmp_path, "test-weights"))
    assert backend.weights_id == "test-weights"
    for batch in (1, 3):
        inputs = refiner_example_inputs(batch, seed=batch)["refiner"]
        got = backend.run("refiner", {k: v.numpy() for k, v in inputs.items()})
        with torch.no_grad():
            expected = RefinerGraph(net)(*inputs.values())
        for g, e in zip(got, expected):
            assert g.shape == tuple(e.shape)
            assert np.abs(g - e.numpy()).max() <= 1e-3


def test_without_refiner_weights_it_runs_picopose_initialised_and_says_so(monkeypatch, tmp_path, caplog):
    from novel_pose_ros.runtime import coop_weights

    monkeypatch.setattr(coop_weights, "shipped_coop_checkpoint", lambda name: tmp_path / "none.ckpt")
    net, weights_id = coop_weights.load_coop_network("coop_refiner", None)
    assert weights_id.startswith("picopose-init-") and not net.training
    assert "UNTRAINED Laplace-scale and sensitivity heads" in caplog.text
    with pytest.raises(FileNotFoundError, match="does not exist"):
        coop_weights.load_coop_network("coop_refiner", tmp_path / "missing.ckpt")
    with pytest.raises(FileNotFoundError, match="train_coarse_small.yaml"):  # no untrained fallback for the others
        coop_weights.load_coop_network("coop_coarse", None)


@pytest.mark.parametrize("kind, config_name", [("coop_refiner", "coop_refiner_small"),
                                               ("coop_coarse", "coop_coarse_small"),
                                               ("coop_selector", "coop_selector_small")])
def test_shipped_coop_weights_load_strictly_with_the_sha_of_their_model_card(kind, config_name):
    from novel_pose_ros.runtime.coop_weights import load_coop_network, shipped_coop_checkpoint

    path = shipped_coop_checkpoint(config_name)
    assert path.is_file()
    net, weights_id = load_coop_network(kind, None)
    assert len(weights_id) == 64 and net.config.name == config_name and not net.training
    assert weights_id in (path.parent / "MODEL_CARD.md").read_text()
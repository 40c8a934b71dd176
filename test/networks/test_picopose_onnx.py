"""ONNX Runtime runs the exported graphs like PyTorch (fp32, max abs diff ≤ 1e-3) at batch 1 and 3."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from novel_pose_ros.networks.picopose.config import OFFICIAL, SMALL, SMALL_CNN
from novel_pose_ros.networks.picopose.export import GRAPHS, example_inputs, export_onnx, graph_modules, load_sidecar
from novel_pose_ros.networks.picopose.picopose_net import build_network

TOLERANCE = 1e-3


def _export(config, folder):
    torch.manual_seed(0)
    net = build_network(config)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    sidecar = export_onnx(net, folder, weights_sha256="0" * 64)
    assert not any(m.training for m in net.modules())  # exporting leaves the network in eval mode
    return net, sidecar


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    return _export(SMALL, tmp_path_factory.mktemp("onnx_small"))


def _check_parity(net, sidecar_path, batches):
    sidecar = load_sidecar(sidecar_path)
    if net.config.backbone.kind == "vit":  # positional embedding baked for 224: no interpolation in the graph
        backbone = onnx.load(str(sidecar_path.parent / sidecar["graphs"]["backbone"]["file"]))
        assert "Resize" not in {n.op_type for n in backbone.graph.node}
        del backbone
    modules = graph_modules(net)
    for graph in GRAPHS:
        info = sidecar["graphs"][graph]
        session = ort.InferenceSession(str(sidecar_path.parent / info["file"]), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        assert names == [i["name"] for i in info["inputs"]]
        assert [o.name for o in session.get_outputs()] == [o["name"] for o in info["outputs"]]
        for batch in batches:
            inputs = example_inputs(net, batch, seed=batch)[graph]
            with torch.no_grad():
                expected = modules[graph](*(inputs[n] for n in names))
            got = session.run(None, {n: inputs[n].numpy() for n in names})
            for spec, e, g in zip(info["outputs"], expected, got):
                assert list(g.shape) == [batch if s == "B" else s for s in spec["shape"]], (graph, spec["name"])
                diff = float(np.abs(g - e.numpy()).max())
                assert diff <= TOLERANCE, f"{graph}.{spec['name']} batch {batch}: max diff {diff:.2e}"


def test_small_graphs_match_pytorch(small_export):
    _check_parity(*small_export, batches=(1, 3))


def test_small_cnn_graphs_match_pytorch(tmp_path):
    _check_parity(*_export(SMALL_CNN, tmp_path), batches=(1, 3))


def test_sidecar_describes_the_graphs(small_export):
    net, sidecar_path = small_export
    sidecar = json.loads(sidecar_path.read_text())
    assert sidecar["config"] == "small" and sidecar["weights_sha256"] == "0" * 64 and sidecar["opset"] >= 17
    assert sidecar["normalisation"]["channel_order"] == "BGR"
    assert sidecar["config_values"]["backbone"]["embed_dim"] == 384
    assert sidecar["graphs"]["flow"]["outputs"][0] == {
        "name": "flow", "shape": ["B", 2, 64, 64], "dtype": "float32",
        "description": sidecar["graphs"]["flow"]["outputs"][0]["description"]}
    for graph in GRAPHS:
        model = onnx.load(str(sidecar_path.parent / sidecar["graphs"][graph]["file"]), load_external_data=False)
        assert model.opset_import[0].version >= 17
        for value in list(model.graph.input) + list(model.graph.output):
            assert value.type.tensor_type.shape.dim[0].dim_param == "B"  # dynamic batch
        if graph == "backbone":  # plain attention (no fused/contrib ops)
            assert not {"Attention", "MultiHeadAttention"} & {n.op_type for n in model.graph.node}


def test_tampered_graph_is_refused(small_export, tmp_path):
    _, sidecar_path = small_export
    sidecar = json.loads(sidecar_path.read_text())
    copy = tmp_path / sidecar_path.name
    for info in sidecar["graphs"].values():
        (tmp_path / info["file"]).write_bytes((sidecar_path.parent / info["file"]).read_bytes())
    (tmp_path / sidecar["graphs"]["affine"]["file"]).write_bytes(b"not a model")
    copy.write_text(sidecar_path.read_text())
    with pytest.raises(ValueError, match="does not match its recorded sha256"):
        load_sidecar(copy)


@pytest.mark.slow
def test_official_graphs_match_pytorch(tmp_path):
    _check_parity(*_export(OFFICIAL, tmp_path), batches=(1, 3))

"""TensorRT engines of the untrained small network against ONNX Runtime (GPU only: skipped elsewhere)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from helpers import picopose_graph_inputs

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def requirements():
    from novel_pose_ros.runtime.tensorrt_backend import gpu_requirements_missing

    missing = gpu_requirements_missing()
    if missing:
        pytest.skip(f"TensorRT tests need an NVIDIA GPU and TensorRT (make venv-gpu): {missing}")


@pytest.fixture(scope="module")
def sidecar(requirements, untrained_backend):
    from novel_pose_ros.runtime.weights import ensure_onnx, load_network

    net, weights_id = load_network("small", None, seed=0)
    assert weights_id == untrained_backend.weights_id
    return ensure_onnx(net, weights_id)


@pytest.mark.parametrize("precision, atol, rtol", [("fp32", 1e-3, 1e-3), ("fp16", 5e-2, 5e-2)])
def test_tensorrt_matches_onnxruntime(sidecar, untrained_backend, tmp_path_factory, precision, atol, rtol):
    from novel_pose_ros.runtime.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(sidecar, precision, max_batch=4, cache=tmp_path_factory.mktemp(f"engines_{precision}"))
    assert (backend.name, backend.device, backend.weights_id) == ("tensorrt", "cuda", untrained_backend.weights_id)
    assert backend.input_names == untrained_backend.input_names
    for batch in (1, 3, 6):  # 6 > max_batch 4: split into chunks
        for graph, feed in picopose_graph_inputs(batch).items():
            got = backend.run(graph, feed)
            want = untrained_backend.run(graph, feed)
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert g.shape == w.shape and g.dtype == np.float32
                scale = max(1.0, float(np.abs(w).max()))
                np.testing.assert_allclose(g, w, atol=atol * scale, rtol=rtol, err_msg=f"{graph} batch {batch}")


def test_second_build_is_a_cache_hit_and_a_foreign_key_is_rebuilt(sidecar, tmp_path, caplog):
    from novel_pose_ros.runtime.engine_cache import EngineKey
    from novel_pose_ros.runtime.tensorrt_backend import TensorRTBackend

    first = TensorRTBackend(sidecar, "fp32", max_batch=2, cache=tmp_path)
    assert all(b.built_s is not None for b in first.builds.values())
    second = TensorRTBackend(sidecar, "fp32", max_batch=2, cache=tmp_path)
    assert all(b.built_s is None for b in second.builds.values())
    assert {g: b.path for g, b in second.builds.items()} == {g: b.path for g, b in first.builds.items()}

    # pretend the backbone engine was built by another TensorRT version: its sidecar key no longer matches
    build = first.builds["backbone"]
    meta_path = build.path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["key"] = dataclasses.replace(build.key, tensorrt_version="0.0.0").to_dict()
    meta_path.write_text(json.dumps(meta))
    caplog.clear()
    third = TensorRTBackend(sidecar, "fp32", max_batch=2, cache=tmp_path)
    assert third.builds["backbone"].built_s is not None and third.builds["affine"].built_s is None
    assert "tensorrt_version 0.0.0 !=" in caplog.text
    assert isinstance(third.builds["backbone"].key, EngineKey)


def test_engine_build_command_reports_cached_engines(sidecar, tmp_path, capsys):
    from novel_pose_ros.cli import main

    config = tmp_path / "estimator.yaml"
    config.write_text("network: small\n")
    assert main(["engine", "build", "--config", str(config), "--fp32", "--max-batch", "2", "--cache", str(tmp_path)]) == 0
    assert "built in" in capsys.readouterr().out
    assert main(["engine", "build", "--config", str(config), "--fp32", "--max-batch", "2", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count(": cached (fp32, profile 1x2x2)") == 4

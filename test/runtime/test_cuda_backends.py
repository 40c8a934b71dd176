"""ONNX Runtime's CUDA provider and PyTorch on CUDA against ONNX Runtime on the CPU, and the bench on
the GPU (GPU only: skipped elsewhere, with the reason).

Tolerances allow TF32, which both CUDA back ends may use for fp32 convolutions and matrix products.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import picopose_graph_inputs, toy_block_objects_yaml

pytestmark = pytest.mark.gpu
TF32_TOLERANCE = 1e-2


@pytest.fixture(scope="module")
def cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip(f"CUDA back-end tests need an NVIDIA GPU (make venv-gpu): no CUDA GPU visible to PyTorch "
                    f"{torch.__version__}")


@pytest.fixture(scope="module")
def sidecar(cuda, untrained_backend):
    from novel_pose_ros.runtime.weights import ensure_onnx, load_network

    net, weights_id = load_network("small", None, seed=0)
    assert weights_id == untrained_backend.weights_id
    return ensure_onnx(net, weights_id)


def _assert_matches(backend, reference) -> None:
    for batch in (1, 3):
        for graph, feed in picopose_graph_inputs(batch).items():
            got, want = backend.run(graph, feed), reference.run(graph, feed)
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert g.shape == w.shape and g.dtype == np.float32
                scale = max(1.0, float(np.abs(w).max()))
                np.testing.assert_allclose(g, w, atol=TF32_TOLERANCE * scale, rtol=TF32_TOLERANCE,
                                           err_msg=f"{backend.name} {graph} batch {batch}")


def test_onnxruntime_cuda_matches_the_cpu(sidecar, untrained_backend):
    import onnxruntime

    from novel_pose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("ONNX Runtime has no CUDA provider: the CPU onnxruntime is installed (make venv-gpu installs "
                    "onnxruntime-gpu)")
    backend = OnnxRuntimeBackend(sidecar, "cuda")  # raises if a session quietly fell back to the CPU
    assert (backend.device, backend.weights_id) == ("cuda", untrained_backend.weights_id)
    _assert_matches(backend, untrained_backend)


def test_torch_cuda_matches_onnxruntime_on_the_cpu(cuda, untrained_backend):
    from novel_pose_ros.runtime import create_backend

    backend = create_backend("torch", "small", None, device="cuda", seed=0)
    assert (backend.name, backend.device, backend.weights_id) == ("torch", "cuda", untrained_backend.weights_id)
    _assert_matches(backend, untrained_backend)


def test_bench_on_the_gpu_names_the_gpu_and_its_memory(cuda, tmp_path):
    from novel_pose_ros.cli import main

    objects = toy_block_objects_yaml(tmp_path)
    out = tmp_path / "bench.json"
    assert main(["bench", "--objects-per-frame", "1", "--frames", "1", "--warmup", "1", "--objects", str(objects),
                 "--network", "small", "--backend", "torch", "--device", "cuda", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    env = report["environment"]
    assert (env["backend"], env["device"]) == ("torch", "cuda") and isinstance(env["gpu_name"], str)
    assert report["results"][0]["gpu_peak_mib"] > 0
    assert report["results"][0]["answered_per_frame"] == [1]


@pytest.mark.parametrize("autocast", ["fp16", "bf16"])
def test_torch_cuda_autocast_stays_near_fp32(cuda, untrained_backend, autocast):
    """Mixed precision is a speed option, not a different network: outputs within a few % of fp32."""
    from novel_pose_ros.runtime import create_backend

    backend = create_backend("torch", "small", None, device="cuda", seed=0, torch_autocast=autocast)
    assert backend.precision == f"autocast-{autocast}"
    for graph, feed in picopose_graph_inputs(2).items():
        for got, want in zip(backend.run(graph, feed), untrained_backend.run(graph, feed)):
            assert got.dtype == np.float32
            scale = max(1.0, float(np.abs(want).max()))
            assert float(np.abs(got - want).max()) <= 0.05 * scale, f"{graph} under autocast {autocast}"

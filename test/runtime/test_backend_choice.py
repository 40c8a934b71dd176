"""Which back end 'auto' picks, and what happens when TensorRT cannot run: all decided without a GPU."""
from __future__ import annotations

import logging

import pytest

import novel_pose_ros.runtime as runtime
from novel_pose_ros.cli import main
from novel_pose_ros.cli.engine_cmd import load_estimator_config
from novel_pose_ros.estimation.config import EstimatorConfig
from novel_pose_ros.paths import share_dir
from novel_pose_ros.runtime import BACKENDS, choose_backend

CPU_ORT = ("CPUExecutionProvider",)
CUDA_ORT = ("CUDAExecutionProvider", "CPUExecutionProvider")


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("providers", [CPU_ORT, CUDA_ORT])
def test_auto_takes_tensorrt_when_a_gpu_and_tensorrt_are_present(device, providers):
    backend, chosen_device, reason = choose_backend("auto", device, True, True, providers)
    assert (backend, chosen_device) == ("tensorrt", "cuda")
    assert "GPU and TensorRT are present" in reason


@pytest.mark.parametrize("cuda, trt, missing", [
    (False, False, ["CUDA GPU", "tensorrt"]), (True, False, ["tensorrt"]), (False, True, ["CUDA GPU"]),
])
@pytest.mark.parametrize("device, providers, expected_device", [
    ("cpu", CPU_ORT, "cpu"), ("cpu", CUDA_ORT, "cpu"), ("cuda", CPU_ORT, "cpu"), ("cuda", CUDA_ORT, "cuda"),
])
def test_auto_without_tensorrt_is_onnxruntime_and_says_why(cuda, trt, missing, device, providers, expected_device):
    backend, chosen_device, reason = choose_backend("auto", device, cuda, trt, providers)
    assert (backend, chosen_device) == ("onnxruntime", expected_device)
    assert all(what in reason for what in missing), reason
    if device == "cuda":
        assert ("has the CUDA provider" if expected_device == "cuda" else "no CUDA provider") in reason


@pytest.mark.parametrize("cuda, trt, missing", [
    (False, False, "a CUDA GPU visible to PyTorch and the tensorrt Python package"),
    (True, False, "the tensorrt Python package"), (False, True, "a CUDA GPU visible to PyTorch"),
])
def test_explicit_tensorrt_without_its_requirements_says_what_is_missing(cuda, trt, missing):
    with pytest.raises(ValueError, match=f"backend 'tensorrt' cannot run here: missing {missing}"):
        choose_backend("tensorrt", "cuda", cuda, trt, CUDA_ORT)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_explicit_tensorrt_runs_on_the_gpu(device):
    assert choose_backend("tensorrt", device, True, True, CPU_ORT)[:2] == ("tensorrt", "cuda")


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("cuda, trt", [(False, False), (True, True)])
def test_explicit_torch_and_onnxruntime_are_kept(backend, device, cuda, trt):
    assert choose_backend(backend, device, cuda, trt, CPU_ORT) == (backend, device, "requested")


@pytest.mark.parametrize("backend, device", [("tensorflow", "cpu"), ("auto", "tpu")])
def test_unknown_backends_and_devices_are_refused(backend, device):
    with pytest.raises(ValueError, match="must be"):
        choose_backend(backend, device, False, False, CPU_ORT)


def test_tensorrt_is_a_configurable_backend_and_precision_is_validated():
    assert "tensorrt" in BACKENDS
    assert EstimatorConfig(backend="tensorrt", precision="fp32").precision == "fp32"
    assert EstimatorConfig().precision == "fp16"
    with pytest.raises(ValueError, match="precision must be one of"):
        EstimatorConfig(precision="int8")


def test_explicit_tensorrt_on_this_cpu_machine_fails_clearly():
    with pytest.raises(ValueError, match="backend 'tensorrt' cannot run here: missing a CUDA GPU"):
        runtime.create_backend("tensorrt", "small", None)


def test_auto_falls_back_to_onnxruntime_when_tensorrt_fails(monkeypatch, caplog, untrained_backend):
    """A GPU and TensorRT 'present', but the engine build runs out of memory: ONNX Runtime, with a warning."""
    from novel_pose_ros.runtime import tensorrt_backend

    class OutOfMemory:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("TensorRT ran out of GPU memory building picopose_small_backbone even with batch 1")

    monkeypatch.setattr(runtime, "machine_capabilities", lambda: (True, True, CPU_ORT))
    monkeypatch.setattr(tensorrt_backend, "TensorRTBackend", OutOfMemory)
    backend = runtime.create_backend("auto", "small", None, seed=0)
    assert (backend.name, backend.device) == ("onnxruntime", "cpu")
    assert backend.weights_id == untrained_backend.weights_id
    assert "backend auto -> tensorrt on cuda" in caplog.text
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "TensorRT failed" in r.getMessage()]
    assert len(warnings) == 1 and "out of GPU memory" in warnings[0] and "falling back to ONNX Runtime" in warnings[0]


def test_explicit_tensorrt_failure_is_not_hidden(monkeypatch, untrained_backend):
    from novel_pose_ros.runtime import tensorrt_backend

    def fail(*args, **kwargs):
        raise RuntimeError("TensorRT could not build an engine")

    monkeypatch.setattr(runtime, "machine_capabilities", lambda: (True, True, CPU_ORT))
    monkeypatch.setattr(tensorrt_backend, "TensorRTBackend", fail)
    with pytest.raises(RuntimeError, match="could not build"):
        runtime.create_backend("tensorrt", "small", None, seed=0)


def _cuda_provider_listed_but_not_loadable(monkeypatch):
    """What onnxruntime-gpu does when its CUDA/cuDNN libraries do not load: it lists the CUDA provider,
    then builds every session on the CPU. The CPU package here does the second part for real."""
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(CUDA_ORT))
    monkeypatch.setattr(runtime, "machine_capabilities", lambda: (False, False, CUDA_ORT))


def test_onnxruntime_cuda_that_quietly_runs_on_the_cpu_is_refused_with_the_reason(monkeypatch, untrained_backend):
    _cuda_provider_listed_but_not_loadable(monkeypatch)
    with pytest.raises(RuntimeError, match=r"got providers \['CPUExecutionProvider'\] instead of CUDAExecutionProvider"):
        runtime.create_backend("onnxruntime", "small", None, device="cuda", seed=0)


def test_auto_falls_back_to_the_cpu_when_onnxruntime_cuda_does_not_load(monkeypatch, caplog, untrained_backend):
    _cuda_provider_listed_but_not_loadable(monkeypatch)
    backend = runtime.create_backend("auto", "small", None, device="cuda", seed=0)
    assert (backend.name, backend.device) == ("onnxruntime", "cpu")
    assert backend.weights_id == untrained_backend.weights_id
    assert "ONNX Runtime has the CUDA provider" in caplog.text  # what auto decided first
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ONNX Runtime could not run on the GPU" in w and "falling back to the CPU" in w for w in warnings)


def test_onnxruntime_cuda_without_the_gpu_package_says_how_to_install_it(untrained_backend):
    with pytest.raises(RuntimeError, match="make venv-gpu"):
        runtime.create_backend("onnxruntime", "small", None, device="cuda", seed=0)


def test_engine_build_on_a_machine_without_gpu_exits_2_with_one_line(capsys, tmp_path):
    code = main(["engine", "build", "--cache", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "cannot build TensorRT engines here" in err[0] and "no CUDA GPU" in err[0]
    assert not list(tmp_path.iterdir())


def test_engine_build_with_a_bad_config_exits_2(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("network: no_such_network\n")
    assert main(["engine", "build", "--config", str(bad)]) == 2
    assert "network must be one of" in capsys.readouterr().err


def test_engine_build_reads_the_node_parameter_file_and_estimator_yaml(tmp_path):
    node = load_estimator_config(share_dir() / "config" / "pose_estimator.yaml")
    assert (node.precision, node.backend, node.weights) == ("fp16", "auto", None)
    flat = tmp_path / "estimator.yaml"
    flat.write_text("network: small\nprecision: fp32\nmax_batch: 8\n")
    assert load_estimator_config(flat) == EstimatorConfig(network="small", precision="fp32", max_batch=8)

"""TensorRT back end: engines built from our exported ONNX graphs, run with PyTorch CUDA tensors as buffers.

One engine per graph of an export sidecar (PicoPose's backbone, affine, dpt, flow; iterated from the
sidecar, so any network of that format works), each with one optimisation profile for the dynamic
batch axis B (1 / opt / max_batch). Engines live in an `EngineCache`; a cached engine is used only
when its key (ONNX sha256, TensorRT version, GPU, compute capability, precision, profile) matches.
Builds share a timing cache per TensorRT version and GPU model.

GPU out of memory: a failed build is retried with half the max batch, down to 1; a run that runs out
of memory is retried in halved chunks. When nothing fits a `RuntimeError` says so, and
`create_backend("auto")` falls back to ONNX Runtime. TensorRT and torch.cuda are imported only when
a backend is built, so this module imports on CPU-only machines.
"""
from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from novel_pose_ros.networks.picopose.export import load_sidecar
from novel_pose_ros.runtime.base import run_in_chunks
from novel_pose_ros.runtime.engine_cache import PRECISIONS, EngineCache, EngineKey, write_atomic

LOGGER = logging.getLogger(__name__)
BUILD_TIME_HINT = "typically 1-5 min per graph"
MIB = 1024 * 1024


def gpu_requirements_missing() -> str | None:
    """Why TensorRT cannot run here (no CUDA GPU visible to torch, no tensorrt package), or None when it can."""
    import torch

    if not torch.cuda.is_available():
        return ("no CUDA GPU visible to PyTorch (torch.cuda.is_available() is False: no GPU, no driver, "
                f"or a CPU build of torch {torch.__version__})")
    try:
        importlib.import_module("tensorrt")
    except (ImportError, OSError) as exc:
        return f"the tensorrt Python package does not import ({exc}); install it with `make venv-gpu`"
    return None


def gpu_identity() -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of the current CUDA device."""
    import torch

    major, minor = torch.cuda.get_device_capability()
    return torch.cuda.get_device_name(), f"{major}.{minor}"


def make_trt_logger(trt):
    """A TensorRT logger that forwards to ours and keeps the error messages of the last build."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg) -> None:
            level = int(severity)
            if level <= int(trt.ILogger.Severity.ERROR):
                self.errors.append(msg)
                LOGGER.error("tensorrt: %s", msg)
            elif level == int(trt.ILogger.Severity.WARNING):
                LOGGER.warning("tensorrt: %s", msg)
            else:
                LOGGER.debug("tensorrt: %s", msg)

    return _Logger()


def _looks_like_oom(messages: list[str]) -> bool:
    text = " ".join(messages).lower()
    return any(word in text for word in ("out of memory", "outofmemory", "cudaerrormemoryallocation", "insufficient memory"))


@dataclass(frozen=True)
class EngineBuild:
    """What `ensure_engine` did: path of the engine, its key, build seconds (None = found in the cache)."""

    path: Path
    key: EngineKey
    built_s: float | None


def ensure_engine(trt, logger, cache: EngineCache, label: str, onnx_path: Path, onnx_sha256: str,
                  inputs: list[dict], precision: str, max_batch: int, opt_batch: int | None = None) -> EngineBuild:
    """The cached engine of `onnx_path` for this GPU and settings, else one built now. A build that runs
    out of GPU memory is retried with half the max batch down to 1; any other failure raises RuntimeError."""
    gpu_name, capability = gpu_identity()
    if precision == "fp16" and not hasattr(trt.BuilderFlag, "FP16"):
        LOGGER.warning("TensorRT %s has no FP16 builder flag (strong typing only): building %s in fp32",
                       trt.__version__, label)
        precision = "fp32"
    batch = max_batch
    while True:
        opt = max(1, min(opt_batch or batch, batch))
        key = EngineKey(onnx_sha256, trt.__version__, gpu_name, capability, precision, (1, opt, batch))
        found = cache.lookup(label, key)
        if found is not None:
            return EngineBuild(found, key, None)
        LOGGER.info("building TensorRT engine for graph %s (%s, batch 1..%d), %s", label, precision, batch, BUILD_TIME_HINT)
        start = time.perf_counter()
        engine_bytes, oom = _build(trt, logger, cache, onnx_path, inputs, precision, (1, opt, batch))
        if engine_bytes is not None:
            path = cache.store(label, key, engine_bytes)
            seconds = time.perf_counter() - start
            LOGGER.info("built %s in %.1f s: %s", label, seconds, path)
            return EngineBuild(path, key, seconds)
        if not oom:
            raise RuntimeError(f"TensorRT could not build an engine for {label} ({onnx_path.name}): "
                               + ("; ".join(logger.errors[-3:]) or "no reason given"))
        if batch == 1:
            raise RuntimeError(f"TensorRT ran out of GPU memory building {label} even with batch 1")
        LOGGER.warning("GPU out of memory building %s with max batch %d: retrying with %d", label, batch, batch // 2)
        batch //= 2


def _build(trt, logger, cache: EngineCache, onnx_path: Path, inputs: list[dict], precision: str,
           profile: tuple[int, int, int]) -> tuple[bytes | None, bool]:
    """(serialized engine or None, whether the failure looked like GPU out of memory)."""
    import torch

    logger.errors.clear()
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    optimisation = builder.create_optimization_profile()
    for item in inputs:
        shapes = [tuple(b if d == "B" else int(d) for d in item["shape"]) for b in profile]
        optimisation.set_shape(item["name"], *shapes)
    config.add_optimization_profile(optimisation)
    gpu_name, capability = gpu_identity()
    timing_path = cache.timing_cache_path(trt.__version__, gpu_name, capability)
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, False)  # False: refuse a timing cache from another device
    try:
        serialized = builder.build_serialized_network(network, config)
    except torch.cuda.OutOfMemoryError:
        return None, True
    except RuntimeError as exc:  # some TensorRT versions raise instead of returning None
        logger.errors.append(str(exc))
        serialized = None
    if serialized is None:
        torch.cuda.empty_cache()
        return None, _looks_like_oom(logger.errors)
    try:
        write_atomic(timing_path, bytes(config.get_timing_cache().serialize()))
    except OSError as exc:
        LOGGER.warning("could not save the TensorRT timing cache %s (%s)", timing_path, exc)
    return bytes(serialized), False


class _Engine:
    """One deserialized engine and its execution context; runs NumPy batches through torch CUDA tensors."""

    def __init__(self, trt, runtime, build: EngineBuild, input_names: tuple[str, ...], output_names: tuple[str, ...]) -> None:
        import torch

        self.engine = runtime.deserialize_cuda_engine(build.path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not load {build.path} (rebuild it: delete the file)")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise RuntimeError(f"TensorRT could not create an execution context for {build.path.name} (GPU memory?)")
        dtypes = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
                  trt.int64: torch.int64, trt.bool: torch.bool}
        self.dtypes = {n: dtypes[self.engine.get_tensor_dtype(n)] for n in input_names + output_names}
        self.input_names, self.output_names = input_names, output_names
        self.max_batch = build.key.profile[2]
        self.run_limit = self.max_batch
        size = getattr(self.engine, "device_memory_size_v2", None) or getattr(self.engine, "device_memory_size", 0)
        self.device_memory_mib = float(size) / MIB

    def execute(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        import torch

        keep = []
        for name in self.input_names:
            tensor = torch.from_numpy(np.ascontiguousarray(inputs[name], dtype=np.float32)).to("cuda")
            tensor = tensor.to(self.dtypes[name]).contiguous()
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
            keep.append(tensor)
        outputs = []
        for name in self.output_names:
            out = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=self.dtypes[name], device="cuda")
            self.context.set_tensor_address(name, out.data_ptr())
            outputs.append(out)
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        stream.synchronize()
        return tuple(o.float().cpu().numpy() for o in outputs)


class TensorRTBackend:
    """Engines for the graphs of an export sidecar; `run` takes and returns NumPy float32 arrays."""

    name = "tensorrt"
    device = "cuda"

    def __init__(self, sidecar_path: str | Path, precision: str = "fp16", max_batch: int = 32,
                 cache: EngineCache | str | Path | None = None, opt_batch: int | None = None) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got '{precision}'")
        if max_batch < 1:
            raise ValueError(f"max_batch must be ≥ 1, got {max_batch}")
        missing = gpu_requirements_missing()
        if missing:
            raise RuntimeError(f"tensorrt backend: {missing}")
        import tensorrt as trt
        import torch

        sidecar_path = Path(sidecar_path)
        sidecar = load_sidecar(sidecar_path, network=None)
        self.cache = cache if isinstance(cache, EngineCache) else EngineCache(cache)
        self.weights_id = str(sidecar.get("weights_sha256"))
        self.config_name = sidecar["config"]
        self.input_names: dict[str, tuple[str, ...]] = {}
        self.builds: dict[str, EngineBuild] = {}
        self._engines: dict[str, _Engine] = {}
        logger = make_trt_logger(trt)
        runtime = trt.Runtime(logger)
        prefix = sidecar_path.stem
        for graph, info in sidecar["graphs"].items():
            onnx_path = sidecar_path.parent / info["file"]
            inputs = info["inputs"]
            self.input_names[graph] = tuple(i["name"] for i in inputs)
            try:
                build = ensure_engine(trt, logger, self.cache, f"{prefix}_{graph}", onnx_path, info["sha256"],
                                      inputs, precision, max_batch, opt_batch)
                self._engines[graph] = _Engine(trt, runtime, build, self.input_names[graph],
                                               tuple(o["name"] for o in info["outputs"]))
            except torch.cuda.OutOfMemoryError as exc:
                raise RuntimeError(f"tensorrt backend: GPU out of memory loading graph {graph}: {exc}") from exc
            self.builds[graph] = build
        self.precision = next(iter(self.builds.values())).key.precision if self.builds else precision
        self.device_memory_mib = sum(e.device_memory_mib for e in self._engines.values())
        LOGGER.info("tensorrt: %s (%s), %s, TensorRT %s, engines in %s", sidecar_path.name, self.config_name,
                    self.precision, trt.__version__, self.cache.root)

    def run(self, graph: str, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        import torch

        engine = self._engines[graph]
        batch = len(next(iter(inputs.values())))
        if batch > engine.run_limit:
            return run_in_chunks(self, graph, inputs, engine.run_limit)
        try:
            return engine.execute(inputs)
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            if batch <= 1:
                raise RuntimeError(f"tensorrt backend: GPU out of memory running {graph} with batch 1: {exc}") from exc
            engine.run_limit = max(1, batch // 2)
            LOGGER.warning("GPU out of memory running %s with batch %d: running in chunks of %d from now on",
                           graph, batch, engine.run_limit)
            return run_in_chunks(self, graph, inputs, engine.run_limit)

"""Latency and memory of the full Estimator on synthetic frames with K objects each (a benchmark, not a test).

Why synthetic frames: they are reproducible from a seed, need no dataset on disk, and carry exact
visible masks, so the detections are what a perfect segmenter would give (boxes and masks from the
rendered visible masks, occlusions included) and the crops have realistic sizes. Every frame is
rendered before anything is timed, so the renderer never competes with the Estimator for the CPU.

What is timed, per frame: `Estimator.run(frame, detections)`: its own StageTimings (the stage keys
below, mapped one to one; `STAGE_SOURCES` says what each actually covers) and the wall time of the
whole call (`total`, which also covers the pose assembly no stage key measures). Per K: median and
p90 of each, the rate 1 / median total, detections answered, peak host RSS and, on CUDA with the
torch back end, peak GPU memory. Warm-up frames run first and are left out.
"""
from __future__ import annotations

import logging
import os
import platform
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from novel_pose_ros.estimation.config import EstimatorConfig, Pipeline
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.render import Renderer, create_renderer
from novel_pose_ros.synth.backgrounds import procedural_texture, random_background, support_plane
from novel_pose_ros.synth.generate import PLANE_TEXTURE_PX
from novel_pose_ros.synth.lighting import degrade_rgb, random_lighting
from novel_pose_ros.synth.rendering import render_scene_image
from novel_pose_ros.synth.scene_sampling import StablePoses, sample_camera, sample_intrinsics, sample_layout
from novel_pose_ros.synth.settings import SynthSettings
from novel_pose_ros.types import Detection, Frame, ObjectModel

if TYPE_CHECKING:
    from novel_pose_ros.estimation.estimator import Estimator

LOGGER = logging.getLogger(__name__)

# Estimator StageTimings key -> what it measures (read from estimator.py / picopose_stages.py).
STAGE_SOURCES = {
    "crop": "query crops of every detection: mask box, square window, 224 px warp (Estimator key 'crop')",
    "backbone": "backbone graph on the query crops (key 'backbone')",
    "stage1": "template scoring + top-N only; the backbone that feeds it is in 'backbone' (key 'stage1')",
    "stage2": "affine regressor graph + affine -> initial flow and certainty (key 'stage2')",
    "stage3": "DPT head on the query maps + flow decoder graph + certainty sigmoid (key 'stage3')",
    "encoder": "Co-op coarse: encoder graph on the query crops (key 'encoder')",
    "match": "Co-op coarse: match graph on every (query, template) pair + template scores + top-N (key 'match')",
    "pnp": "correspondences + EPnP/RANSAC per hypothesis + choice or fallback (key 'pnp')",
    "verify": "render each hypothesis in the query crop, its agreement with the detection, the silhouette choice "
              "(hypothesis_rule silhouette) (key 'verify')",
    "align": "silhouette_alignment: fit the scale and shift of each hypothesis' silhouette (verify's render) to the "
             "detection mask (key 'align')",
    "refine": "pipelines with +refine: per round window, render, refiner graph, LM-PnP (key 'refine')",
    "confidence": "one shaded render of the final pose, its outline, edge and agreement checks, the confidence "
                  "model (key 'confidence')",
    "select": "pipeline coop+refine+select: window, render, selector graph per refined hypothesis (key 'select')",
    "depth": "use_depth auto|on (the bench frames carry their rendered depth): the final pose's depth check, renders "
             "in the query crop, ray correction and ICP; the cleaning of the depth image is in 'crop', the 3D–3D "
             "fits in 'pnp' (key 'depth')",
    "total": "wall time of the whole Estimator.run call: the stages above + pose assembly",
}
# picopose, defaults (RGB only: 'depth' joins them with --use-depth auto|on, the bench frames carrying their depth)
STAGE_KEYS = ("crop", "backbone", "stage1", "stage2", "stage3", "pnp", "verify", "align", "confidence")
REPORTED = STAGE_KEYS + ("total",)
MAX_OBJECTS_PER_FRAME = 64
# Frames a little less cropped than the synth default, and every instance visible enough to be a
# detection a segmenter would report (well above EstimatorConfig.min_mask_pixels).
BENCH_SCENES = SynthSettings(distance_factor=(0.9, 1.3))
MIN_VISIBLE_PX = 400
MAX_DRAWS = 100
MIB = 1024 * 1024


@dataclass(frozen=True)
class BenchSettings:
    """objects_per_frame: the loads K (instances per frame; objects repeat when K exceeds the library),
    kept sorted without duplicates; frames: timed frames per K; warmup: untimed frames run first per K;
    seed: scene generation. Checked on construction, before anything heavy is loaded."""

    objects_per_frame: tuple[int, ...] = (1, 2, 4, 8)
    frames: int = 10
    warmup: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        loads = tuple(int(k) for k in self.objects_per_frame)
        problems = []
        if not loads or not all(1 <= k <= MAX_OBJECTS_PER_FRAME for k in loads):
            problems.append(f"objects per frame must be 1 to {MAX_OBJECTS_PER_FRAME}, got {list(loads)}")
        if int(self.frames) < 1:
            problems.append(f"frames must be ≥ 1, got {self.frames}")
        if int(self.warmup) < 0:
            problems.append(f"warmup must be ≥ 0, got {self.warmup}")
        if int(self.seed) < 0:
            problems.append(f"seed must be ≥ 0, got {self.seed}")
        if problems:
            raise ValueError("benchmark settings: " + "; ".join(problems))
        object.__setattr__(self, "objects_per_frame", tuple(sorted(set(loads))))


@dataclass(frozen=True)
class BenchFrame:
    """One rendered frame and its detections (one per instance, in placement order)."""

    frame: Frame
    detections: list[Detection]


@dataclass(frozen=True)
class StageLatency:
    median_s: float
    p90_s: float


@dataclass(frozen=True)
class LoadResult:
    """The numbers of one load K over the timed frames.

    latency_s: REPORTED stage -> median / p90 seconds; untimed_median_s: median of total − Σ stages
    (what no stage key covers); hz: 1 / median total; answered_per_frame: poses returned per frame;
    failures: cause -> count. peak_rss_mib: host RSS high-water mark over this K, warm-up included, when
    the kernel let us reset it (peak_rss_scope 'load'), else over the process so far ('process');
    rss_mib: RSS after this K; gpu_peak_mib: torch.cuda.max_memory_allocated over this K, warm-up
    included (None on CPU, and on CUDA through ONNX Runtime, whose arena torch cannot see; TensorRT: its I/O
    buffers only, its activation memory is in environment.gpu_memory).
    """

    objects_per_frame: int
    frames: int
    warmup: int
    detections_per_frame: list[int]
    answered_per_frame: list[int]
    failures: dict[str, int]
    latency_s: dict[str, StageLatency]
    untimed_median_s: float
    hz: float
    peak_rss_mib: float
    peak_rss_scope: str
    rss_mib: float | None
    gpu_peak_mib: float | None


@dataclass(frozen=True)
class EstimatorBenchmark:
    """Everything one run measured: environment, set-up costs (seconds; the back end includes an ONNX
    export when none is cached), RSS after each set-up step (where a high peak comes from), one
    LoadResult per K."""

    environment: dict[str, Any]
    backend_setup_s: float
    onboarding_s: dict[str, float]
    onboarding_cache: str
    setup_rss_mib: dict[str, float | None]
    results: list[LoadResult]

    def to_json(self) -> dict[str, Any]:
        return {"benchmark": "estimator", "environment": self.environment, "backend_setup_s": self.backend_setup_s,
                "onboarding_s": self.onboarding_s, "onboarding_cache": self.onboarding_cache,
                "setup_rss_mib": self.setup_rss_mib, "stages": STAGE_SOURCES, "results": [asdict(r) for r in self.results]}


def make_frames(objects: list[ObjectModel], k: int, count: int, seed: int, renderer: Renderer,
                settings: SynthSettings = BENCH_SCENES) -> list[BenchFrame]:
    """`count` frames with `k` instances each; frame i of load k draws from default_rng([seed, k, i]).

    Instances cycle through a random order of `objects`, so a load larger than the library repeats
    objects as separate instances. A draw whose layout drops an instance, or where an instance shows
    fewer than MIN_VISIBLE_PX pixels, is redrawn (same generator, so still reproducible).
    """
    stable = StablePoses()
    return [_draw_frame(objects, k, np.random.default_rng([seed, k, i]), renderer, settings, stable) for i in range(count)]


def _draw_frame(objects: list[ObjectModel], k: int, rng: np.random.Generator, renderer: Renderer,
                settings: SynthSettings, stable: StablePoses) -> BenchFrame:
    width, height = settings.width, settings.height
    for _ in range(MAX_DRAWS):
        order = rng.permutation(len(objects))
        layout = sample_layout([objects[order[j % len(objects)]] for j in range(k)], rng, settings, stable)
        if len(layout.objects) < k:
            continue
        K = sample_intrinsics(rng, settings)
        plane = support_plane(procedural_texture(rng, PLANE_TEXTURE_PX), rng.uniform(*settings.plane_half_size_m),
                              rng.uniform(*settings.plane_texture_tile_m))
        T_cam_world = sample_camera(rng, layout, K, settings)
        posed = [(p.obj, T_cam_world @ p.T_world_obj) for p in layout.objects]
        image = render_scene_image(renderer, posed, (plane, T_cam_world), K, width, height,
                                   random_lighting(rng), random_background(rng, width, height))
        if min(int(m.sum()) for m in image.masks_visib) < MIN_VISIBLE_PX:
            continue
        detections = [Detection(obj.name, box_from_mask(mask), 1.0, mask) for (obj, _), mask in zip(posed, image.masks_visib)]
        return BenchFrame(Frame(degrade_rgb(image.rgb, rng, settings), K, image.depth_m), detections)
    raise RuntimeError(f"no frame with {k} instances each showing ≥ {MIN_VISIBLE_PX} px after {MAX_DRAWS} draws")


def run_estimator_benchmark(library: ObjectLibrary, config: EstimatorConfig, settings: BenchSettings,
                            renderer: Renderer | None = None) -> EstimatorBenchmark:
    """Render every frame, build one Estimator for the objects they show, then time each load K.

    With config.templates_dir None, onboarding runs in a fresh temporary folder, so it is measured
    cold (templates rendered, template features computed); give a folder to measure a warm cache.
    """
    from novel_pose_ros.estimation.estimator import Estimator
    from novel_pose_ros.runtime import create_backend
    from novel_pose_ros.runtime.coop_weights import create_coop_backend

    if len(library) == 0:
        raise ValueError("the object library is empty")
    renderer = renderer or create_renderer("auto")
    objects = sorted(library, key=lambda o: o.id)
    frames = {}
    for k in settings.objects_per_frame:
        start = time.perf_counter()
        frames[k] = make_frames(objects, k, settings.warmup + settings.frames, settings.seed, renderer)
        LOGGER.info("rendered %d frames with %d objects in %.1f s", len(frames[k]), k, time.perf_counter() - start)
    shown = sorted({d.object_id for bench in frames.values() for f in bench for d in f.detections})
    rss = {"frames_rendered": _rss_mib("process")[1]}
    start = time.perf_counter()
    if Pipeline.parse(config.pipeline).coarse == "coop":
        backend = create_coop_backend("coop_coarse", config.backend, config.coarse_weights, config.device,
                                      precision=config.precision, max_batch=config.max_batch)
    else:
        backend = create_backend(config.backend, config.network, config.weights, config.device, seed=config.seed,
                                 precision=config.precision, max_batch=config.max_batch,
                                 torch_autocast=config.torch_autocast)
    backend_setup_s = time.perf_counter() - start
    rss["backend_ready"] = _rss_mib("process")[1]
    with tempfile.TemporaryDirectory(prefix="novel_pose_bench_") as scratch:
        cache = "cold (fresh folder)" if config.templates_dir is None else str(config.templates_dir)
        config = config if config.templates_dir is not None else replace(config, templates_dir=Path(scratch))
        estimator = Estimator(library.subset(shown), config, backend, renderer)
        rss["objects_onboarded"] = _rss_mib("process")[1]
        results = [_time_load(estimator, k, frames[k], settings) for k in settings.objects_per_frame]
    return EstimatorBenchmark(environment(estimator, renderer), backend_setup_s, dict(estimator.onboarding_s), cache,
                              rss, results)


def _time_load(estimator: Estimator, k: int, bench_frames: list[BenchFrame], settings: BenchSettings) -> LoadResult:
    rss_scope = _reset_peak_rss()
    gpu = _gpu_counter(estimator.backend)
    if gpu is not None:
        gpu.reset_peak_memory_stats()
    for bench in bench_frames[: settings.warmup]:
        estimator.run(bench.frame, bench.detections)
    keys = estimator.stage_names + (("depth",) if estimator.config.use_depth != "off" else ())
    unknown = set(keys) - set(STAGE_SOURCES)
    if unknown:
        raise RuntimeError(f"the Estimator reports stage timings {sorted(unknown)} the benchmark does not describe: "
                           "update STAGE_SOURCES")
    seconds: dict[str, list[float]] = {name: [] for name in keys + ("total",)}
    answered, failures = [], Counter()
    for bench in bench_frames[settings.warmup:]:
        start = time.perf_counter()
        report = estimator.run(bench.frame, bench.detections)
        seconds["total"].append(time.perf_counter() - start)
        missing = set(keys) - set(report.timings.seconds)
        if missing:
            raise RuntimeError(f"the Estimator no longer reports stage timings {sorted(missing)}: update STAGE_SOURCES")
        for name in keys:
            seconds[name].append(report.timings.seconds[name])
        answered.append(len(report.poses))
        failures.update(f.cause for f in report.failures)
    latency = {name: StageLatency(float(np.median(v)), float(np.percentile(v, 90))) for name, v in seconds.items()}
    untimed = np.array(seconds["total"]) - np.sum([seconds[name] for name in keys], axis=0)
    peak_mib, rss_mib = _rss_mib(rss_scope)
    LOGGER.info("%d objects per frame: median %.1f ms per frame", k, 1000 * latency["total"].median_s)
    return LoadResult(
        objects_per_frame=k, frames=len(answered), warmup=settings.warmup,
        detections_per_frame=[len(b.detections) for b in bench_frames[settings.warmup:]], answered_per_frame=answered,
        failures=dict(sorted(failures.items())), latency_s=latency, untimed_median_s=float(np.median(untimed)),
        hz=1.0 / latency["total"].median_s, peak_rss_mib=peak_mib, peak_rss_scope=rss_scope, rss_mib=rss_mib,
        gpu_peak_mib=None if gpu is None else gpu.max_memory_allocated() / MIB,
    )


def _reset_peak_rss() -> str:
    """Reset the kernel's RSS high-water mark (Linux ≥ 4.0: '5' into /proc/self/clear_refs) so each load
    gets its own peak: 'load'. Elsewhere ru_maxrss can only give the process's peak so far: 'process'."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return "load" if proc_status_kib("VmHWM") is not None else "process"
    except OSError:
        return "process"


def proc_status_kib(field: str, pid: int | str = "self") -> int | None:
    """A field of /proc/<pid>/status in KiB (VmRSS, VmHWM), None where absent (no /proc, process gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _rss_mib(scope: str) -> tuple[float, float | None]:
    """(peak, current) RSS in MiB; current is None where /proc is absent."""
    current = proc_status_kib("VmRSS")
    peak_kib = proc_status_kib("VmHWM") if scope == "load" else None
    if peak_kib is None:
        max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        peak_kib = max_rss / 1024 if sys.platform == "darwin" else max_rss
    return peak_kib / 1024, None if current is None else current / 1024


def _gpu_counter(backend):
    """torch.cuda when the back end allocates through torch on a GPU (torch; TensorRT's I/O buffers), else
    None: ONNX Runtime's CUDA arena is invisible to torch's counters, and a CPU run has no GPU memory to report."""
    if backend.device != "cuda" or backend.name not in ("torch", "tensorrt"):
        return None
    import torch

    return torch.cuda if torch.cuda.is_available() else None


def environment(estimator: Estimator, renderer: Renderer) -> dict[str, Any]:
    """What the numbers depend on: back end, device, precision, batch, pipeline, network, weights, renderer, CPU,
    versions."""
    backend, config = estimator.backend, estimator.config
    gpu_memory = (f"torch.cuda.max_memory_allocated (I/O buffers) + {backend.device_memory_mib:.0f} MiB of TensorRT "
                  "activation memory, not in gpu_peak_mib" if backend.name == "tensorrt" else
                  "torch.cuda.max_memory_allocated" if _gpu_counter(backend) is not None else
                  "not measured: ONNX Runtime's CUDA arena is invisible to torch" if backend.device == "cuda" else "none (CPU)")
    return {
        "backend": backend.name, "device": backend.device, "precision": backend.precision,
        "max_batch": config.max_batch, "pipeline": config.pipeline,
        "network": getattr(backend, "config_name", config.network), "weights_id": backend.weights_id,
        "untrained": str(backend.weights_id).startswith("untrained"), "hypotheses": config.hypotheses,
        "template_level": config.template_level, "templates_per_object": estimator.template_counts,
        "renderer": renderer.name, "gl_renderer": getattr(renderer, "gl_renderer", None),
        "image": f"{BENCH_SCENES.width}x{BENCH_SCENES.height}", "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
        "cpu_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "gpu_name": _gpu_name(backend.device), "gpu_memory": gpu_memory, "platform": platform.platform(),
        "versions": _versions(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_name(device: str) -> str | None:
    if device != "cuda":
        return None
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def _versions() -> dict[str, str | None]:
    import cv2
    import torch

    try:
        import onnxruntime
        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    try:
        import tensorrt
        trt_version = tensorrt.__version__
    except (ImportError, OSError):
        trt_version = None
    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "onnxruntime": ort_version, "tensorrt": trt_version, "opencv": cv2.__version__}

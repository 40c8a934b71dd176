"""`novel-pose engine build`: TensorRT engines for the configured network, built ahead of time.

The node builds missing engines on its first start (minutes); this command does it beforehand, with
progress, and says which engines were already cached. Needs a CUDA GPU and TensorRT (`make venv-gpu`).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

EPILOG = """\
--config accepts either file:
  * the node's parameter file (config/pose_estimator.yaml: <node>: ros__parameters: {...}); the keys
    that are EstimatorConfig fields are used (network, weights, backend, device, precision, max_batch,
    seed), empty strings mean "default";
  * an EstimatorConfig YAML (a flat mapping of its fields, as EstimatorConfig.from_yaml reads).
Default: the bundled config/pose_estimator.yaml. Engines go to <cache>/engines
($NOVEL_POSE_CACHE, else ~/.cache/novel_pose_ros) unless --cache is given; a cached engine is reused
only when its ONNX hash, TensorRT version, GPU, compute capability, precision and batch profile all match.
Exit codes: 0 done, 1 a build failed, 2 bad config or no GPU / no TensorRT on this machine.
"""


def register(commands: argparse._SubParsersAction) -> None:
    engine = commands.add_parser("engine", help="TensorRT engines (build ahead of time)")
    actions = engine.add_subparsers(dest="engine_command", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="build (or find cached) TensorRT engines for every graph of the network",
                               epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_argument("--config", type=Path, default=None,
                       help="node parameter YAML or EstimatorConfig YAML (default: the bundled config/pose_estimator.yaml)")
    build.add_argument("--fp32", action="store_true", help="build FP32 engines (default: the config's precision, fp16)")
    build.add_argument("--max-batch", type=int, default=None,
                       help="largest batch of the optimisation profile (default: the config's max_batch)")
    build.add_argument("--cache", type=Path, default=None, help="engine cache folder (default: <user cache>/engines)")
    build.set_defaults(handler=run_engine_build)


def load_estimator_config(path: Path | None):
    """EstimatorConfig from a node parameter file or an EstimatorConfig YAML (see EPILOG)."""
    from dataclasses import fields

    from novel_pose_ros.estimation.config import EstimatorConfig
    from novel_pose_ros.paths import share_dir
    from novel_pose_ros.yaml_files import read_yaml

    path = Path(path or share_dir() / "config" / "pose_estimator.yaml")
    values = read_yaml(path, "config")
    if not isinstance(values, dict):
        raise ValueError(f"config {path}: expected a mapping")
    node_params = _ros_parameters(values)
    if node_params is None:
        return EstimatorConfig.from_dict(values)
    # the node's use_depth (bool: subscribe to a depth topic) is not the estimator's (auto|on|off), and an
    # engine does not depend on it
    known = {f.name for f in fields(EstimatorConfig)} - {"use_depth"}
    chosen = {k: v for k, v in node_params.items() if k in known and v != ""}
    return EstimatorConfig.from_dict(chosen)


def _ros_parameters(values: dict[str, Any]) -> dict[str, Any] | None:
    """The `ros__parameters` mapping of a node parameter file, or None when `values` is not one."""
    for section in values.values():
        if isinstance(section, dict) and isinstance(section.get("ros__parameters"), dict):
            return section["ros__parameters"]
    return None


def run_engine_build(args: argparse.Namespace) -> int:
    config = load_estimator_config(args.config)
    precision = "fp32" if args.fp32 else config.precision
    max_batch = args.max_batch if args.max_batch is not None else config.max_batch
    if max_batch < 1:
        raise ValueError(f"--max-batch must be ≥ 1, got {max_batch}")
    from novel_pose_ros.runtime.tensorrt_backend import gpu_requirements_missing

    missing = gpu_requirements_missing()
    if missing:
        print(f"novel-pose engine build: cannot build TensorRT engines here: {missing}", file=sys.stderr)
        return 2
    import tensorrt as trt

    from novel_pose_ros.networks.picopose.export import load_sidecar
    from novel_pose_ros.runtime.engine_cache import EngineCache
    from novel_pose_ros.runtime.tensorrt_backend import BUILD_TIME_HINT, make_trt_logger, ensure_engine, gpu_identity
    from novel_pose_ros.runtime.weights import ensure_onnx, load_network, resolve_checkpoint

    checkpoint = resolve_checkpoint(config.network, config.weights)
    net, weights_id = load_network(config.network, checkpoint, config.seed)
    sidecar_path = ensure_onnx(net, weights_id)
    sidecar = load_sidecar(sidecar_path)
    cache = EngineCache(args.cache)
    gpu_name, capability = gpu_identity()
    print(f"network {config.network} (weights {weights_id[:24]}), {precision}, batch 1..{max_batch}, "
          f"TensorRT {trt.__version__} on {gpu_name} (sm {capability}); engines in {cache.root}")
    logger = make_trt_logger(trt)
    start, failed = time.perf_counter(), 0
    for graph, info in sidecar["graphs"].items():
        print(f"  {graph}: looking for a cached engine, else building ({BUILD_TIME_HINT}) ...", flush=True)
        try:
            build = ensure_engine(trt, logger, cache, f"{sidecar_path.stem}_{graph}", sidecar_path.parent / info["file"],
                                  info["sha256"], info["inputs"], precision, max_batch)
        except RuntimeError as exc:
            print(f"  {graph}: FAILED: {exc}", flush=True)
            failed += 1
            continue
        state = "cached" if build.built_s is None else f"built in {build.built_s:.1f} s"
        profile = "x".join(map(str, build.key.profile))
        print(f"  {graph}: {state} ({build.key.precision}, profile {profile}): {build.path}", flush=True)
    print(f"done in {time.perf_counter() - start:.1f} s" + (f", {failed} graph(s) FAILED" if failed else ""))
    return 1 if failed else 0

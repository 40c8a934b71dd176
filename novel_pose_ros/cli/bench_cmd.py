"""`novel-pose bench`: the full Estimator's latency per stage and memory on synthetic frames with K objects;
`novel-pose bench templates`: timing of template building. Benchmarks print numbers, never pass or fail.

The sub-command is optional so that `novel-pose bench [options]` is the estimator benchmark; its
options go before a sub-command. Heavy imports (torch, the Estimator) happen inside the handler.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from novel_pose_ros.cli.estimate_cmd import pipeline_arguments, pipeline_values, selection_arguments, selection_values
from novel_pose_ros.cli.table import format_table
from novel_pose_ros.estimation.config import EstimatorConfig
from novel_pose_ros.networks.picopose.config import CONFIGS
from novel_pose_ros.objects import ObjectLibrary, load_object
from novel_pose_ros.paths import default_objects_file
from novel_pose_ros.render import create_renderer
from novel_pose_ros.runtime import BACKENDS, PRECISIONS
from novel_pose_ros.templates import TemplateSettings, ensure_templates

ESTIMATOR_COLUMNS = ("crop", "backbone", "stage1", "stage2", "stage3", "encoder", "match", "pnp", "verify", "align",
                     "refine", "select", "depth", "confidence", "total")


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("bench", help="benchmarks that print a table and write JSON (default: the estimator)",
                                description="Without a BENCHMARK: the full estimator on synthetic frames with K objects "
                                            "each (options below, given before any BENCHMARK).")
    group.add_argument("--objects-per-frame", type=int, nargs="+", default=[1, 2, 4, 8], metavar="K",
                       help="loads to measure: instances per frame (objects repeat beyond the library's size)")
    group.add_argument("--frames", type=int, default=10, help="timed frames per load")
    group.add_argument("--warmup", type=int, default=2, help="untimed frames run first per load")
    group.add_argument("--objects", type=Path, default=None, help="objects YAML (default: bundled objects)")
    group.add_argument("--network", default="small_cnn", choices=sorted(CONFIGS), help="PicoPose configuration")
    group.add_argument("--weights", type=Path, default=None,
                       help="PicoPose checkpoint (default: the shipped weights of --network; untrained if none shipped)")
    group.add_argument("--backend", default="auto", choices=BACKENDS)
    group.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    group.add_argument("--precision", default=EstimatorConfig.precision, choices=PRECISIONS,
                       help="TensorRT engine precision (the other back ends run fp32)")
    group.add_argument("--torch-autocast", default=EstimatorConfig.torch_autocast, choices=["off", "fp16", "bf16"],
                       help="mixed precision of the torch back end (e.g. on a GPU without TensorRT)")
    group.add_argument("--max-batch", type=int, default=EstimatorConfig.max_batch,
                       help="largest network batch (TensorRT: the optimisation profile's maximum)")
    group.add_argument("--hypotheses", type=int, default=EstimatorConfig.hypotheses,
                       help="templates that go on to stage 3 and PnP")
    pipeline_arguments(group)
    # RGB only unless asked (--use-depth auto): the bench frames carry their rendered depth, and the rates in
    # docs/PERFORMANCE.md are RGB rates
    group.set_defaults(use_depth="off")
    selection_arguments(group)
    group.add_argument("--templates", type=Path, default=None,
                       help="template cache to onboard from (default: a fresh folder, so onboarding is timed cold)")
    group.add_argument("--seed", type=int, default=0, help="scene generation seed (untrained weights keep their own seed)")
    group.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    group.set_defaults(handler=run_estimator_bench)
    sub = group.add_subparsers(dest="bench_command", required=False, metavar="BENCHMARK")
    templates = sub.add_parser("templates", help="time mesh loading + template rendering + writing, per object")
    source = templates.add_mutually_exclusive_group()
    source.add_argument("--objects", type=Path, default=None, help="objects YAML (default: bundled objects)")
    source.add_argument("--mesh", type=Path, nargs="+", help="mesh files instead of an objects YAML")
    templates.add_argument("--units", default="auto", choices=["auto", "m", "mm"], help="units of --mesh files")
    templates.add_argument("--level", type=int, default=0, choices=[0, 1, 2])
    templates.add_argument("--repeat", type=int, default=5, help="timed runs per object (median reported)")
    templates.add_argument("--renderer", default="auto", choices=["auto", "gl", "numpy"])
    templates.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    templates.set_defaults(handler=run_templates_bench)
    node = sub.add_parser("node", help="soak the pose_estimator node: a camera at --rate-hz for --duration-s (frames "
                                       "in/out, drops, latency, memory growth)")
    node.add_argument("--duration-s", type=float, default=600.0)
    node.add_argument("--rate-hz", type=float, default=30.0)
    node.add_argument("--objects-per-frame", dest="soak_objects", type=int, default=4)
    node.add_argument("--warmup-s", type=float, default=60.0, help="memory growth is measured from here to the end")
    node.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                      help="a pose_estimator parameter over config/pose_estimator.yaml (repeatable)")
    node.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    node.set_defaults(handler=run_node_soak)


def _load(args: argparse.Namespace, mesh_index: int | None):
    if mesh_index is None:
        return list(ObjectLibrary.from_yaml(args.objects or default_objects_file()))
    return [load_object(args.mesh[mesh_index], object_id=mesh_index + 1, units=args.units)]


def run_templates_bench(args: argparse.Namespace) -> int:
    if args.repeat < 1:
        raise ValueError(f"--repeat must be ≥ 1, got {args.repeat}")
    renderer = create_renderer(args.renderer)
    settings = TemplateSettings(level=args.level)
    sources = range(len(args.mesh)) if args.mesh else [None]
    results = []
    for source in sources:
        objects = _load(args, source)
        load_times: dict[str, list[float]] = {o.name: [] for o in objects}
        runs: dict[str, list] = {o.name: [] for o in objects}
        for _ in range(args.repeat):
            start = time.perf_counter()
            objects = _load(args, source)  # loading is part of what a build costs
            per_object_load = (time.perf_counter() - start) / len(objects)
            with tempfile.TemporaryDirectory() as cache:
                for obj in objects:
                    load_times[obj.name].append(per_object_load)
                    runs[obj.name].append(ensure_templates(obj, cache, settings, renderer, force=True, show_progress=False))
        for obj in objects:
            reports = runs[obj.name]
            load_s = statistics.median(load_times[obj.name])
            render_s = statistics.median(r.render_s for r in reports)
            write_s = statistics.median(r.write_s for r in reports)
            build_s = statistics.median(r.seconds for r in reports)
            results.append({
                "object": obj.name, "faces": int(len(obj.mesh.faces)), "views": reports[0].view_count,
                "load_s": load_s, "render_s": render_s, "write_s": write_s, "build_s": build_s,
                "load_plus_build_s": load_s + build_s, "repeat": args.repeat,
            })
    print(format_table(
        ["object", "faces", "views", "load s", "render s", "write s", "build s", "load+build s"],
        [[r["object"], r["faces"], r["views"], r["load_s"], r["render_s"], r["write_s"], r["build_s"], r["load_plus_build_s"]]
         for r in results],
    ))
    environment = {"renderer": renderer.name, "gl_renderer": getattr(renderer, "gl_renderer", None),
                   "machine": platform.machine(), "python": platform.python_version(),
                   "level": args.level, "image": f"{settings.width}x{settings.height}"}
    print(f"median of {args.repeat} runs; renderer: {renderer.name}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "templates", "environment": environment, "results": results}, indent=1))
        print(f"JSON: {args.json}")
    return 0


def run_node_soak(args: argparse.Namespace) -> int:
    from novel_pose_ros.benchmarks.node_soak import run_soak

    if args.duration_s <= 0 or args.rate_hz <= 0 or args.soak_objects < 1 or args.warmup_s >= args.duration_s:
        raise ValueError("need --duration-s > --warmup-s, --rate-hz > 0 and --objects-per-frame ≥ 1")
    overrides = {}
    for item in args.param:
        name, sep, value = item.partition(":=")
        if not sep:
            raise ValueError(f"--param {item}: expected NAME:=VALUE")
        overrides[name] = value
    print(f"[bench node] {args.duration_s:g} s at {args.rate_hz:g} Hz, {args.soak_objects} detections per frame")
    result = run_soak(args.duration_s, args.rate_hz, args.soak_objects, args.warmup_s, overrides=overrides)
    summary = result.summary()
    rows = [(key, "n/a" if value is None else value) for key, value in summary.items()]
    print(format_table(("measure", "value"), rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_json(), indent=1))
        print(f"JSON: {args.json}")
    return 0


def run_estimator_bench(args: argparse.Namespace) -> int:
    from novel_pose_ros.benchmarks.estimator_bench import BenchSettings, run_estimator_benchmark

    settings = BenchSettings(tuple(args.objects_per_frame), args.frames, args.warmup, args.seed)  # checks before loading
    config = EstimatorConfig(network=args.network, weights=args.weights, backend=args.backend, device=args.device,
                             precision=args.precision, torch_autocast=args.torch_autocast, max_batch=args.max_batch,
                             hypotheses=args.hypotheses,
                             templates_dir=args.templates, **selection_values(args), **pipeline_values(args))
    library = ObjectLibrary.from_yaml(args.objects or default_objects_file())
    bench = run_estimator_benchmark(library, config, settings)
    columns = [s for s in ESTIMATOR_COLUMNS if s in bench.results[0].latency_s]
    print(format_table(
        ["objects"] + [f"{s} ms" for s in columns] + ["Hz", "answered", "peak RSS MiB", "GPU MiB"],
        [[r.objects_per_frame] + [_ms(r.latency_s[s]) for s in columns]
         + [r.hz, f"{sum(r.answered_per_frame)}/{sum(r.detections_per_frame)}", r.peak_rss_mib,
            "-" if r.gpu_peak_mib is None else r.gpu_peak_mib] for r in bench.results],
    ))
    env = bench.environment
    print(f"median/p90 over {settings.frames} frames per load after {settings.warmup} warm-up; "
          f"stage 3 includes the DPT head on the query; total = wall time of Estimator.run")
    print(f"pipeline {env['pipeline']}: {env['backend']} on {env['device']} ({env['precision']}, max batch {env['max_batch']}), "
          f"network {env['network']}, weights {env['weights_id']}"
          f"{' (UNTRAINED)' if env['untrained'] else ''}; renderer {env['renderer']}; "
          f"CPU {env['cpu_model']} ({env['cpu_usable']} of {env['cpu_count']} cores usable)")
    print(f"backend set-up {bench.backend_setup_s:.2f} s; onboarding ({bench.onboarding_cache}): "
          + ", ".join(f"{name} {s:.2f} s" for name, s in bench.onboarding_s.items()))
    print("RSS MiB after set-up steps: " + ", ".join(f"{step} {'-' if mib is None else f'{mib:.0f}'}"
                                                    for step, mib in bench.setup_rss_mib.items()))
    for r in bench.results:
        if r.failures:
            print(f"{r.objects_per_frame} objects per frame: detections without a pose: "
                  + ", ".join(f"{cause} × {n}" for cause, n in r.failures.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(bench.to_json(), indent=1))
        print(f"JSON: {args.json}")
    return 0


def _ms(latency) -> str:
    return f"{1000 * latency.median_s:.1f}/{1000 * latency.p90_s:.1f}"

"""`novel-pose bench templates`: timing of template building (a benchmark, not a test)."""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from novel_pose_ros.cli.table import format_table
from novel_pose_ros.objects import ObjectLibrary, load_object
from novel_pose_ros.paths import default_objects_file
from novel_pose_ros.render import create_renderer
from novel_pose_ros.templates import TemplateSettings, ensure_templates


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("bench", help="benchmarks that print a table and write JSON")
    sub = group.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
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
    environment = {"renderer": renderer.name, "machine": platform.machine(), "python": platform.python_version(),
                   "level": args.level, "image": f"{settings.width}x{settings.height}"}
    print(f"median of {args.repeat} runs; renderer: {renderer.name}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "templates", "environment": environment, "results": results}, indent=1))
        print(f"JSON: {args.json}")
    return 0

"""`novel-pose demo`: the main job on a fresh machine.

Today it loads the bundled objects, builds (or reuses) their 42-view templates
and writes a contact sheet per object; the ROS graph joins it in a later step.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2

from novel_pose_ros.cli.table import format_table
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.paths import default_objects_file, default_templates_dir
from novel_pose_ros.render import create_renderer
from novel_pose_ros.templates import TemplateSettings, ensure_library_templates, load_template_set
from novel_pose_ros.templates.contact_sheet import contact_sheet


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="build templates for the bundled objects and show them")
    demo.add_argument("--objects", type=Path, default=None, help="objects YAML (default: bundled objects)")
    demo.add_argument("--cache", type=Path, default=None, help="template cache folder")
    demo.add_argument("--out", type=Path, default=Path("demo_output"), help="folder for the contact sheets")
    demo.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    objects_file = args.objects or default_objects_file()
    library = ObjectLibrary.from_yaml(objects_file)
    renderer = create_renderer("auto")
    cache = args.cache or default_templates_dir()
    reports = ensure_library_templates(library, cache, TemplateSettings(level=0), renderer)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for obj, report in zip(library, reports):
        sheet_path = args.out / f"templates_{obj.name}.png"
        cv2.imwrite(str(sheet_path), contact_sheet(load_template_set(report.folder))[..., ::-1])
        rows.append([
            obj.name, obj.id, len(obj.mesh.faces), f"{obj.mesh_scale_to_m:g}", round(obj.diameter_m, 4),
            "yes" if obj.has_appearance else "no (shaded grey)",
            "built" if report.rebuilt else "cached", report.seconds, sheet_path,
        ])
    print(f"objects: {objects_file}")
    print(f"renderer: {renderer.name}")
    print(format_table(
        ["object", "id", "faces", "m/unit", "diameter m", "colour", "templates", "seconds", "contact sheet"], rows,
    ))
    print(f"template cache: {cache}")
    print(f"demo finished in {time.perf_counter() - start:.1f} s")
    return 0

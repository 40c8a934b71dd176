"""`novel-pose templates build|show`."""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from novel_pose_ros.cli.table import format_table
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.paths import default_objects_file, default_templates_dir
from novel_pose_ros.render import create_renderer
from novel_pose_ros.templates import TemplateSettings, ensure_library_templates, load_template_set
from novel_pose_ros.templates.contact_sheet import contact_sheet


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("templates", help="build or show template views")
    sub = group.add_subparsers(dest="templates_command", required=True, metavar="ACTION")

    build = sub.add_parser("build", help="render the icosphere templates of every object (skipped when up to date)")
    build.add_argument("--objects", type=Path, default=None, help="objects YAML (default: the bundled config/objects.yaml)")
    build.add_argument("--level", type=int, default=0, choices=[0, 1, 2], help="icosphere level: 0 = 42 views, 1 = 162, 2 = 642")
    build.add_argument("--out", type=Path, default=None, help="template cache folder (default: ~/.cache/novel_pose_ros/templates)")
    build.add_argument("--force", action="store_true", help="rebuild even when the cache is up to date")
    build.add_argument("--renderer", default="auto", choices=["auto", "gl", "numpy"])
    build.set_defaults(handler=run_build)

    show = sub.add_parser("show", help="write a contact-sheet PNG of an object's template views")
    show.add_argument("--cache", type=Path, default=None, help="template cache folder")
    show.add_argument("--object", required=True, help="object name (a folder in the cache)")
    show.add_argument("--out", type=Path, required=True, help="PNG to write")
    show.set_defaults(handler=run_show)


def run_build(args: argparse.Namespace) -> int:
    library = ObjectLibrary.from_yaml(args.objects or default_objects_file())
    out = args.out or default_templates_dir()
    renderer = create_renderer(args.renderer)
    reports = ensure_library_templates(library, out, TemplateSettings(level=args.level), renderer, force=args.force)
    print(format_table(
        ["object", "views", "status", "seconds", "folder"],
        [[r.object_name, r.view_count or "-", "built: " + r.reason if r.rebuilt else "up to date", r.seconds, r.folder]
         for r in reports],
    ))
    print(f"renderer: {renderer.name}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    folder = (args.cache or default_templates_dir()) / args.object
    sheet = contact_sheet(load_template_set(folder))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), sheet[..., ::-1]):
        raise ValueError(f"cannot write {args.out}")
    print(f"contact sheet of {args.object}: {args.out}")
    return 0

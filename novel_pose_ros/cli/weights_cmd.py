"""`novel-pose weights inspect FILE [--config NAME]`: what a PicoPose checkpoint holds and whether it fits a config.
`novel-pose weights half IN OUT`: a copy of a PicoPose or Co-op weights file stored as float16 (networks/half_storage.py)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from novel_pose_ros.cli.table import format_table


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("weights", help="inspect network checkpoints, store them as float16")
    sub = group.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    inspect = sub.add_parser("inspect", help="entries, parameters per module, dtypes, metadata; match to a config")
    inspect.add_argument("file", type=Path, help="Lightning .ckpt or state-dict file")
    inspect.add_argument("--config", default=None, help="PicoPose config to check against (official, small, small_cnn)")
    inspect.add_argument("--trust-pickle", action="store_true",
                         help="allow arbitrary pickled objects (trusted files only)")
    inspect.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    inspect.set_defaults(handler=run_inspect)
    half = sub.add_parser("half", help="copy a PicoPose or Co-op weights file with its float tensors stored as float16 "
                                       "(half the size; loaded as float32)")
    half.add_argument("source", type=Path, help="weights checkpoint (.ckpt with a state_dict)")
    half.add_argument("target", type=Path, help="file to write")
    half.set_defaults(handler=run_half)


def run_half(args: argparse.Namespace) -> int:
    from novel_pose_ros.networks.half_storage import store_half

    if args.source.resolve() == args.target.resolve():
        raise ValueError("target must differ from source (write the copy elsewhere, then replace)")
    report = store_half(args.source, args.target)
    print(f"{args.target}: {report['halved']} of {report['tensors']} tensors stored as float16, "
          f"{report['bytes_before'] / 2**20:.1f} MiB -> {report['bytes_after'] / 2**20:.1f} MiB, "
          f"rounding <= {report['max_relative_rounding']:.1e} of each tensor's largest value")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from novel_pose_ros.networks.picopose.checkpoint import inspect_checkpoint
    from novel_pose_ros.networks.picopose.config import get_config

    config = get_config(args.config) if args.config else None
    report = inspect_checkpoint(args.file, config, allow_pickle=args.trust_pickle)
    prefixes = ", ".join(report["prefixes"]) or "none"
    print(f"{report['file']}: {report['layout']} layout, prefixes stripped: {prefixes}")
    print(f"{report['entries']} entries, {report['parameters']:,} parameters (BatchNorm buffers excluded); "
          f"dtypes: {', '.join(f'{k} x{v}' for k, v in report['dtypes'].items())}")
    print(format_table(["module", "parameters"], sorted(report["parameters_per_module"].items())))
    if report["metadata"]:
        print("metadata:")
        for key, value in report["metadata"].items():
            print(f"  {key}: {value}")
    status = 0
    if config is not None:
        if report["matches_config"]:
            print(f"matches config {config.name!r}: strict load will succeed")
        else:
            status = 1
            print(f"does NOT match config {config.name!r}:")
            for title in ("missing", "unexpected", "mismatched"):
                entries = report[title]
                if entries:
                    print(f"  {len(entries)} {title}:")
                    for name, detail in entries[:20]:
                        print(f"    {name}  {detail}")
                    if len(entries) > 20:
                        print(f"    ... and {len(entries) - 20} more")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return status

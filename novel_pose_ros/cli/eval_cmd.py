"""`novel-pose eval`: BOP AR of a results CSV on a BOP dataset (table on stdout, problems on stderr)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from novel_pose_ros.bop.dataset import BopDataset
from novel_pose_ros.bop.evaluate import EvalReport, evaluate_results_file
from novel_pose_ros.bop.scoring import ARRow
from novel_pose_ros.cli.table import format_table
from novel_pose_ros.render import create_renderer

HEADERS = ["object", "targets", "AR_VSD", "AR_MSSD", "AR_MSPD", "AR", "AR of", "time/image s"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help="BOP AR (VSD, MSSD, MSPD) of a results CSV on a BOP dataset")
    parser.add_argument("--dataset", type=Path, required=True, help="BOP dataset root (models/, <split>/)")
    parser.add_argument("--results", type=Path, required=True, help="results CSV: scene_id,im_id,obj_id,score,R,t,time")
    parser.add_argument("--split", default="test", help="dataset split folder (default: test)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    parser.add_argument("--renderer", default="auto", choices=["auto", "gl", "numpy"], help="renderer for VSD depth")
    parser.set_defaults(handler=run_eval)


def _value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _row(name: str, row: ARRow) -> list[str]:
    targets = str(row.targets) if row.vsd_targets in (0, row.targets) else f"{row.targets} (VSD: {row.vsd_targets})"
    return [name, targets, _value(row.ar_vsd), _value(row.ar_mssd), _value(row.ar_mspd), _value(row.ar),
            "+".join(row.ar_terms), _value(row.mean_time_per_image_s)]


def format_report(report: EvalReport) -> str:
    """The table of per-object rows and the dataset row, with a note on VSD coverage."""
    rows = [_row(f"obj_{r.obj_id:06d}", r) for r in report.objects] + [_row("all", report.overall)]
    lines = [format_table(HEADERS, rows)]
    overall = report.overall
    if overall.ar_vsd is None:
        lines.append(f"{overall.ar_label} = {overall.ar:.3f}: no depth, AR_VSD not available")
    elif overall.vsd_targets < overall.targets:
        lines.append(f"AR_VSD over the {overall.vsd_targets} of {overall.targets} targets in images with depth "
                     f"({report.images_with_depth} of {report.images} images)")
    lines.append(f"{report.results_on_targets} of {report.results_given} results on targets, "
                 f"{report.results_not_on_targets} for objects without a target in their image, "
                 f"{len(report.problems)} problems; renderer: {report.renderer or 'none (no VSD)'}")
    return "\n".join(lines)


def run_eval(args: argparse.Namespace) -> int:
    dataset = BopDataset(args.dataset, args.split)
    needs_renderer = any(image.depth_path is not None for image in dataset.target_images())  # VSD renders depth
    renderer = create_renderer(args.renderer) if needs_renderer else None
    report = evaluate_results_file(dataset, args.results, renderer)
    for problem in report.problems:
        print(problem, file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(report.to_json())
    if not report.evaluated:
        print(f"novel-pose eval: error: no result of {args.results} could be evaluated "
              f"({report.results_given} valid rows, {len(report.problems)} problems)", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.json:
        print(f"JSON: {args.json}")
    return 0

"""`novel-pose eval`: BOP AR of a results CSV on a BOP dataset (table on stdout, problems on stderr).

With --breakdown OUT_DIR it also breaks the errors down (bop/breakdown.py): breakdown.json,
breakdown.png and a second table; --diagnostics adds the estimator runner's JSON Lines.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from novel_pose_ros.bop.breakdown import Breakdown, BreakdownStats, breakdown_results_file
from novel_pose_ros.bop.breakdown_plot import write_breakdown
from novel_pose_ros.bop.dataset import BopDataset
from novel_pose_ros.bop.evaluate import EvalReport, evaluate_results_file
from novel_pose_ros.bop.scoring import ARRow
from novel_pose_ros.cli.table import format_table, optional_value
from novel_pose_ros.render import create_renderer

HEADERS = ["object", "targets", "AR_VSD", "AR_MSSD", "AR_MSPD", "AR", "AR of", "time/image s"]
BREAKDOWN_HEADERS = ["object", "targets", "missing", "rot p50°", "flip %", "≤15° %", "depth err % (p50)", "plane mm (p50)",
                     "<0.1d %", "<0.2d %"]
DIAGNOSTICS_HEADERS = ["top-1 %", "top-3 %", "fallback %", "inliers p50"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help="BOP AR (VSD, MSSD, MSPD) of a results CSV on a BOP dataset")
    parser.add_argument("--dataset", type=Path, required=True, help="BOP dataset root (models/, <split>/)")
    parser.add_argument("--results", type=Path, required=True, help="results CSV: scene_id,im_id,obj_id,score,R,t,time")
    parser.add_argument("--split", default="test", help="dataset split folder (default: test)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    parser.add_argument("--renderer", default="auto", choices=["auto", "gl", "numpy"], help="renderer for VSD depth")
    parser.add_argument("--breakdown", type=Path, default=None, metavar="OUT_DIR",
                        help="also break the errors down: OUT_DIR/breakdown.json, breakdown.png and a table")
    parser.add_argument("--diagnostics", type=Path, default=None,
                        help="with --breakdown: the runner's diagnostics JSON Lines (one line per results row)")
    parser.set_defaults(handler=run_eval)


def _row(name: str, row: ARRow) -> list[str]:
    targets = str(row.targets) if row.vsd_targets in (0, row.targets) else f"{row.targets} (VSD: {row.vsd_targets})"
    return [name, targets, optional_value(row.ar_vsd), optional_value(row.ar_mssd), optional_value(row.ar_mspd), optional_value(row.ar),
            "+".join(row.ar_terms), optional_value(row.mean_time_per_image_s)]


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


def _number(value: float | None, scale: float = 1.0) -> str:
    return "n/a" if value is None else f"{value * scale:.1f}"


def _breakdown_row(name: str, stats: BreakdownStats) -> list[str]:
    row = [name, str(stats.targets), str(stats.missing), _number(stats.rot_err_deg_p50), _number(stats.flip_rate, 100),
           _number(stats.within_15deg, 100), _number(stats.depth_err_pct_p50), _number(stats.plane_err_mm_p50),
           _number(stats.mssd_below_0_1d, 100), _number(stats.mssd_below_0_2d, 100)]
    d = stats.diagnostics
    if d is not None:
        row += [_number(d.top1_rate, 100), _number(d.top3_rate, 100), _number(d.fallback_share, 100), _number(d.inliers_p50)]
    return row


def format_breakdown(breakdown: Breakdown) -> str:
    """One row per object and "all": where the errors are (shares over the targets with an estimate)."""
    headers = BREAKDOWN_HEADERS + (DIAGNOSTICS_HEADERS if breakdown.overall.diagnostics is not None else [])
    rows = [_breakdown_row(f"obj_{s.obj_id:06d}", s) for s in breakdown.objects] + [_breakdown_row("all", breakdown.overall)]
    return format_table(headers, rows)


def run_eval(args: argparse.Namespace) -> int:
    if args.diagnostics is not None and args.breakdown is None:
        print("novel-pose eval: error: --diagnostics needs --breakdown OUT_DIR", file=sys.stderr)
        return 2
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
    if args.breakdown is not None:
        breakdown = breakdown_results_file(dataset, args.results, args.diagnostics)
        json_path, png_path = write_breakdown(breakdown, args.breakdown)
        print(f"\nBreakdown (best estimate per target by MSSD; {breakdown.overall.missing} of "
              f"{breakdown.overall.targets} targets without an estimate):")
        print(format_breakdown(breakdown))
        print(f"Breakdown: {json_path}, {png_path}")
    return 0

"""`novel-pose confidence collect | fit | report`: fit the pose-confidence model and measure how well it ranks and calibrates.

    novel-pose confidence collect --dataset heldout --detections heldout_det.json --out fit.jsonl
    novel-pose confidence fit fit.jsonl --out models/pose_confidence/pose_confidence.json
    novel-pose confidence report lmo.jsonl --out confidence_lmo/        # AUROC, reliability PNG, precision/recall

Fit on held-out synthetic scenes only (objects of the training manifest's validation split), never on
the real validation sets; report on those (bop/confidence_eval.py, estimation/confidence.py).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from novel_pose_ros.bop.confidence_eval import (TOLERANCES, confidence_report, label_samples, read_samples,
                                                write_reliability_png, write_samples)
from novel_pose_ros.bop.dataset import BopDataset
from novel_pose_ros.bop.detections import read_detections_json
from novel_pose_ros.cli.estimate_cmd import estimator_arguments, estimator_config
from novel_pose_ros.cli.table import format_table, optional_value
from novel_pose_ros.estimation.confidence import FEATURES, ConfidenceModel, default_confidence_model_path
from novel_pose_ros.paths import default_templates_dir


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("confidence", help="fit and measure the pose-confidence model")
    verbs = group.add_subparsers(dest="verb", required=True, metavar="VERB")

    collect = verbs.add_parser("collect", help="run the estimator on a BOP dataset; write each pose's evidence and error")
    collect.add_argument("--dataset", type=Path, required=True)
    collect.add_argument("--detections", type=Path, required=True, help="CNOS-style detection JSON")
    collect.add_argument("--split", default="test")
    collect.add_argument("--out", type=Path, required=True, help="samples (JSON Lines)")
    estimator_arguments(collect)
    collect.set_defaults(handler=run_collect)

    fit = verbs.add_parser("fit", help="fit the logistic confidence model on samples")
    fit.add_argument("samples", type=Path, nargs="+", help="samples of `confidence collect` (held-out synthetic)")
    fit.add_argument("--out", type=Path, required=True, help="model JSON to write")
    fit.add_argument("--tolerance", type=float, default=0.2, help="right pose: MSSD < tolerance x diameter")
    fit.add_argument("--l2", type=float, default=1e-3,
                     help="L2 penalty on the standardised weights (1e-3: best 5-fold CV AUROC of 1e-3 / 1e-2 / 1e-1)")
    fit.add_argument("--features", default=",".join(FEATURES), help="comma-separated evidence features")
    fit.set_defaults(handler=run_fit)

    report = verbs.add_parser("report", help="AUROC, reliability and precision/recall of a confidence model")
    report.add_argument("samples", type=Path, help="samples of `confidence collect`")
    report.add_argument("--model", type=Path, default=None, help="model JSON (default: the shipped one)")
    report.add_argument("--threshold", type=float, default=0.5, help="min_confidence whose precision/recall to report")
    report.add_argument("--out", type=Path, default=None, help="folder for confidence_report.json and reliability.png")
    report.set_defaults(handler=run_report)


def run_collect(args: argparse.Namespace) -> int:
    from novel_pose_ros.estimation.bop_runner import run_on_dataset

    dataset = BopDataset(args.dataset, args.split)
    detections, problems = read_detections_json(args.detections)
    for problem in problems:
        print(f"warning: {problem}")
    templates = args.templates or default_templates_dir() / dataset.root.name
    summary = run_on_dataset(dataset, detections, estimator_config(args, templates), show_progress=True, diagnose=True)
    samples = label_samples(dataset, summary.results, summary.diagnostics)
    write_samples(args.out, samples)
    right = {t: sum(s.right(t) for s in samples) for t in TOLERANCES}
    print(f"{len(samples)} samples ({', '.join(f'{n} right at {t:g} d' for t, n in right.items())}); "
          f"{summary.failures} detections without a pose; samples: {args.out}")
    return 0


def run_fit(args: argparse.Namespace) -> int:
    from novel_pose_ros.bop.confidence_eval import auroc
    from novel_pose_ros.estimation.confidence import fit_confidence_model
    from novel_pose_ros.hashing import file_sha256

    samples = [s for path in args.samples for s in read_samples(path)]
    labels = [s.right(args.tolerance) for s in samples]
    features = tuple(f.strip() for f in args.features.split(",") if f.strip())
    fitted_on = {"samples": [{"file": p.name, "sha256": file_sha256(p)} for p in args.samples], "count": len(samples),
                 "right": int(sum(labels)), "tolerance": args.tolerance, "l2": args.l2}
    model = fit_confidence_model([s.evidence for s in samples], labels, features, args.l2, fitted_on)
    model.fitted_on["auroc_on_fit_samples"] = auroc(model.predict([s.evidence for s in samples]), labels)
    model.save(args.out)
    print(format_table(["feature", "mean", "scale", "weight"],
                       [[f, f"{m:.3f}", f"{s:.3f}", f"{w:+.3f}"] for f, m, s, w in
                        zip(model.features, model.mean, model.scale, model.weights)]))
    print(f"bias {model.bias:+.3f}; {len(samples)} samples, {sum(labels)} right; AUROC on them "
          f"{model.fitted_on['auroc_on_fit_samples']:.3f}; model: {args.out}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    samples = read_samples(args.samples)
    if not samples:
        raise ValueError(f"confidence samples {args.samples}: empty")
    model = ConfidenceModel.load(args.model or default_confidence_model_path())
    confidences = model.predict([s.evidence for s in samples])
    report = confidence_report(samples, confidences, args.threshold)
    keys = ("auroc", "auroc_detection_score", "precision", "recall")
    rows = [[t, f"{report[t]['right_share']:.3f}", *(optional_value(report[t][k]) for k in keys)]
            for t in (f"{x:g}d" for x in TOLERANCES)]
    print(format_table(["right: MSSD <", "right share", "AUROC", "AUROC det. score", f"precision @{args.threshold:g}",
                        f"recall @{args.threshold:g}"], rows))
    print(format_table(["confidence bin", "poses", "mean confidence", "right share (0.2 d)"],
                       [[f"{b['low']:.1f}-{b['high']:.1f}", b["count"], optional_value(b["mean_confidence"]),
                         optional_value(b["observed"])] for b in report["reliability_0.2d"]]))
    print(f"{len(samples)} poses; mean confidence {np.mean(confidences):.3f}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "confidence_report.json").write_text(json.dumps(report, indent=1) + "\n")
        png = write_reliability_png(args.out / "reliability.png", report["reliability_0.2d"],
                                    f"{args.samples.stem}: right = MSSD < 0.2 d, n = {len(samples)}")
        print(f"report: {args.out / 'confidence_report.json'}, {png}")
    return 0

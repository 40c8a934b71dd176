"""`novel-pose estimate` (one image) and `novel-pose eval-run` (a BOP dataset -> results CSV)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from novel_pose_ros.bop.dataset import BopDataset
from novel_pose_ros.bop.detections import group_by_image, read_detections_json
from novel_pose_ros.bop.results import RESULT_SCORES, write_results_csv
from novel_pose_ros.cli.table import format_table
from novel_pose_ros.estimation import EstimatorConfig
from novel_pose_ros.estimation.config import HYPOTHESIS_RULES, PICOPOSE_MODES, PIPELINES, USE_DEPTH
from novel_pose_ros.estimation.official_picopose import OFFICIAL_RULES
from novel_pose_ros.estimation.diagnosis import ORACLE_SWITCHES, Oracle
from novel_pose_ros.geometry.camera import validate_K
from novel_pose_ros.geometry.se3 import quaternion_from_matrix
from novel_pose_ros.networks.picopose.config import CONFIGS
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.paths import default_objects_file, default_templates_dir
from novel_pose_ros.runtime import BACKENDS
from novel_pose_ros.types import Frame

if TYPE_CHECKING:
    from novel_pose_ros.estimation import EstimationReport

LOGGER = logging.getLogger(__name__)


def estimator_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", type=Path, default=None, help="PicoPose checkpoint (default: the shipped weights of --network; untrained if none shipped)")
    parser.add_argument("--network", default="small_cnn", choices=sorted(CONFIGS), help="PicoPose configuration")
    parser.add_argument("--backend", default="auto", choices=BACKENDS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--hypotheses", type=int, default=EstimatorConfig.hypotheses,
                        help="templates that go on to stage 3 and PnP")
    parser.add_argument("--templates", type=Path, default=None, help="template cache folder")
    parser.add_argument("--confidence-model", default=None,
                        help="pose-confidence model JSON (default: the shipped one; 'none': no confidence)")
    selection_arguments(parser)
    pipeline_arguments(parser)


def pipeline_arguments(parser) -> None:
    """--pipeline and the Co-op weights / rounds (estimate, eval-run, bench)."""
    parser.add_argument("--pipeline", default=EstimatorConfig.pipeline, choices=PIPELINES,
                        help="coarse stage (PicoPose or Co-op), then optionally the Co-op refiner and selector")
    for stage in ("coarse", "refiner", "selector"):
        parser.add_argument(f"--{stage}-weights", type=Path, default=None,
                            help=f"Co-op {stage} checkpoint (default: the shipped one)")
    parser.add_argument("--refine-iterations", type=int, default=EstimatorConfig.refine_iterations,
                        help="render-and-compare rounds of the refiner")
    parser.add_argument("--use-depth", default=EstimatorConfig.use_depth, choices=USE_DEPTH,
                        help="read the frame's depth: auto (when the image has it), on (required), off (RGB only); "
                             "docs/DEPTH.md")
    parser.add_argument("--depth-icp-iterations", type=int, default=EstimatorConfig.depth_icp_iterations,
                        help="point-to-plane ICP steps of the final depth check (0: ray correction only)")


def selection_arguments(parser) -> None:
    """How hypotheses are made and chosen (estimate, eval-run, bench)."""
    parser.add_argument("--hypothesis-rule", default=EstimatorConfig.hypothesis_rule, choices=HYPOTHESIS_RULES,
                        help="how PnP hypotheses are ranked")
    parser.add_argument("--templates-considered", type=int, default=EstimatorConfig.templates_considered,
                        help="templates kept after stage 1 (with a mask, the --hypotheses of best stage-2 silhouette go on)")
    parser.add_argument("--min-inliers", type=int, default=EstimatorConfig.min_inliers,
                        help="PnP hypotheses with fewer inliers do not compete")
    parser.add_argument("--inplane-hypotheses", type=int, default=EstimatorConfig.inplane_hypotheses,
                        choices=(1, 2, 4, 8), help="in-plane turns of stage 2's angle tried per template")
    parser.add_argument("--silhouette-alignment", action=argparse.BooleanOptionalAction,
                        default=EstimatorConfig.silhouette_alignment,
                        help="fit each hypothesis' depth and image position to the detection mask before the choice")
    parser.add_argument("--picopose-mode", default=EstimatorConfig.picopose_mode, choices=PICOPOSE_MODES,
                        help="whose rules the PicoPose stages follow (official: the official code's; auto: official "
                             "for an official checkpoint, else ours; docs/OFFICIAL_PICOPOSE.md)")
    parser.add_argument("--mask-background", action=argparse.BooleanOptionalAction,
                        default=EstimatorConfig.mask_query_background,
                        help="zero the query crop outside the detection mask")


def selection_values(args: argparse.Namespace) -> dict:
    """The EstimatorConfig values of selection_arguments."""
    return {"hypothesis_rule": args.hypothesis_rule, "min_inliers": args.min_inliers,
            "templates_considered": args.templates_considered,
            "inplane_hypotheses": args.inplane_hypotheses, "mask_query_background": args.mask_background,
            "silhouette_alignment": args.silhouette_alignment, "picopose_mode": args.picopose_mode}


def pipeline_values(args: argparse.Namespace) -> dict:
    """The EstimatorConfig values of pipeline_arguments."""
    return {"pipeline": args.pipeline, "coarse_weights": args.coarse_weights, "refiner_weights": args.refiner_weights,
            "selector_weights": args.selector_weights, "refine_iterations": args.refine_iterations,
            "use_depth": args.use_depth, "depth_icp_iterations": args.depth_icp_iterations}


def estimator_config(args: argparse.Namespace, templates_dir: Path) -> EstimatorConfig:
    return EstimatorConfig(network=args.network, weights=args.weights, backend=args.backend, device=args.device,
                           hypotheses=args.hypotheses, templates_dir=templates_dir,
                           confidence_model=args.confidence_model, **selection_values(args), **pipeline_values(args))


def register(commands: argparse._SubParsersAction) -> None:
    estimate = commands.add_parser("estimate", help="estimate the poses of the detections in one image")
    estimate.add_argument("--image", type=Path, required=True, help="RGB image")
    estimate.add_argument("--camera", type=Path, required=True, help='JSON with "K" or "cam_K" (3x3 or 9 numbers)')
    estimate.add_argument("--detections", type=Path, required=True, help="CNOS-style detection JSON")
    source = estimate.add_mutually_exclusive_group()
    source.add_argument("--objects", type=Path, default=None, help="objects YAML whose ids are the category_ids (default: bundled)")
    source.add_argument("--models", type=Path, default=None, help="a BOP models/ folder instead (obj_XXXXXX.ply + models_info.json)")
    estimate.add_argument("--out", type=Path, required=True, help="poses JSON to write")
    estimate.add_argument("--overlay", type=Path, default=None, help="PNG with the estimated meshes drawn")
    estimator_arguments(estimate)
    estimate.set_defaults(handler=run_estimate)

    eval_run = commands.add_parser("eval-run", help="run the estimator over a BOP dataset, write a BOP results CSV")
    eval_run.add_argument("--dataset", type=Path, required=True)
    eval_run.add_argument("--detections", type=Path, required=True, help="CNOS-style detection JSON")
    eval_run.add_argument("--out", type=Path, required=True, help="results CSV")
    eval_run.add_argument("--split", default="test")
    eval_run.add_argument("--max-images", type=int, default=None)
    eval_run.add_argument("--diagnostics", type=Path, default=None,
                          help="diagnosis against the ground truth: write per-pose stage diagnostics (JSON Lines, "
                               "one per CSV row) for `novel-pose eval --breakdown`")
    eval_run.add_argument("--oracle", default="", help="diagnosis only: stage outputs replaced by the ground truth, "
                          f"comma-separated of {', '.join(ORACLE_SWITCHES)} (needs --diagnostics)")
    eval_run.add_argument("--official-rule", action="append", default=[], choices=OFFICIAL_RULES, dest="official_rules",
                          help="measuring one departure from the official PicoPose code: apply this official rule on "
                               "top of picopose_mode ours (repeatable; docs/OFFICIAL_PICOPOSE.md)")
    eval_run.add_argument("--score", default="confidence", choices=RESULT_SCORES,
                          help="the CSV's score column (BOP ranks estimates by it): the pose confidence or the "
                               "detector's score")
    estimator_arguments(eval_run)
    eval_run.set_defaults(handler=run_eval_run)


def read_camera(path: Path) -> np.ndarray:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"camera file {path}: not found") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"camera file {path}: invalid JSON ({exc})") from exc
    values = data.get("K", data.get("cam_K")) if isinstance(data, dict) else None
    if values is None:
        raise ValueError(f'camera file {path}: needs "K" or "cam_K"')
    return validate_K(np.asarray(values, dtype=np.float64).reshape(3, 3), f"camera file {path} K")


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"image {path}: missing or not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def report_json(report: EstimationReport, library: ObjectLibrary) -> dict:
    """Poses (score: the detector's; confidence: the pose's, with its evidence), failures and timings."""
    poses = []
    for p in report.poses:
        chosen = next((h for h in p.hypotheses if np.array_equal(h.T_cam_obj, p.T_cam_obj)), p.hypotheses[-1])
        poses.append({
            "object": p.object_id, "object_id": library.get(p.object_id).id, "instance": p.instance,
            "detection_index": p.detection_index, "score": p.score, "confidence": p.confidence,
            "R": p.R.ravel().tolist(), "t_m": p.t_m.tolist(), "quaternion_xyzw": quaternion_from_matrix(p.R).tolist(),
            "source": chosen.source, "inliers": chosen.inliers, "correspondences": chosen.correspondences,
            "evidence": p.evidence,
        })
    failures = [{"detection_index": f.detection_index, "object": f.object_id, "cause": f.cause, "message": f.message}
                for f in report.failures]
    return {"poses": poses, "failures": failures, "timings_s": report.timings.seconds}


def run_estimate(args: argparse.Namespace) -> int:
    from novel_pose_ros.estimation import Estimator
    from novel_pose_ros.estimation.overlay import draw_overlay

    library = (ObjectLibrary.from_bop_models(args.models) if args.models
               else ObjectLibrary.from_yaml(args.objects or default_objects_file()))
    frame = Frame(read_rgb(args.image), read_camera(args.camera))
    bop_detections, problems = read_detections_json(args.detections)
    for problem in problems:
        LOGGER.warning("%s", problem)
    images = group_by_image(bop_detections)
    if len(images) > 1:
        raise ValueError(f"detections file {args.detections}: holds {len(images)} images; give one image's detections")
    known = [d for d in bop_detections if library.find(d.obj_id) is not None]
    unknown = len(bop_detections) - len(known)
    for d in bop_detections:
        if library.find(d.obj_id) is None:
            LOGGER.warning("detection of category %d: not in the objects file, skipped", d.obj_id)
    library = library.subset(sorted({d.obj_id for d in known}))  # onboard only what is in view
    detections = [d.to_detection(library) for d in known]
    estimator = Estimator(library, estimator_config(args, args.templates or default_templates_dir()))
    report = estimator.run(frame, detections)
    for failure in report.failures:
        LOGGER.warning("%s", failure.message)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report_json(report, library), indent=1))
    print(format_table(["object", "inst", "confidence", "det score", "t (m)", "source", "inliers"],
                       [[p["object"], p["instance"], "n/a" if p["confidence"] is None else f"{p['confidence']:.2f}",
                         f"{p['score']:.2f}", " ".join(f"{v:+.3f}" for v in p["t_m"]), p["source"],
                         f"{p['inliers']}/{p['correspondences']}"] for p in report_json(report, library)["poses"]]))
    print(f"{len(report.poses)} poses, {len(report.failures) + unknown} detections without a pose; "
          f"{report.timings.total_s * 1000:.0f} ms; poses: {args.out}")
    if args.overlay:
        labels = [(library.get(p.object_id), p.T_cam_obj, f"{p.object_id}#{p.instance}", p.confidence)
                  for p in report.poses]
        overlay = draw_overlay(frame.image, frame.K, labels, estimator.renderer)
        args.overlay.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.overlay), overlay[..., ::-1])
        print(f"overlay: {args.overlay}")
    return 0


def run_eval_run(args: argparse.Namespace) -> int:
    from novel_pose_ros.estimation.bop_runner import run_on_dataset

    dataset = BopDataset(args.dataset, args.split)
    bop_detections, problems = read_detections_json(args.detections)
    for problem in problems:
        LOGGER.warning("%s", problem)
    templates = args.templates or default_templates_dir() / dataset.root.name
    oracle = Oracle.parse(args.oracle)
    if oracle.any and args.diagnostics is None:
        raise ValueError(f"--oracle {oracle.label} needs --diagnostics (oracle results are for diagnosis only)")
    config = dataclasses.replace(estimator_config(args, templates), official_rules=tuple(args.official_rules))
    summary = run_on_dataset(dataset, bop_detections, config,
                             dataset.target_images()[: args.max_images], show_progress=True,
                             diagnose=args.diagnostics is not None, oracle=oracle, score=args.score)
    write_results_csv(args.out, summary.results)
    if args.diagnostics is not None:
        args.diagnostics.parent.mkdir(parents=True, exist_ok=True)
        args.diagnostics.write_text("".join(json.dumps(d) + "\n" for d in summary.diagnostics))
        print(f"diagnostics (oracle: {oracle.label}): {args.diagnostics}")
    print(f"{len(summary.results)} poses on {summary.images} images ({summary.failures} detections without a pose); "
          f"mean {summary.mean_seconds_per_image:.3f} s per image; results: {args.out}")
    return 0

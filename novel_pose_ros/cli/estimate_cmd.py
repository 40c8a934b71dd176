"""`novel-pose estimate` (one image) and `novel-pose eval-run` (a BOP dataset -> results CSV)."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from novel_pose_ros.bop.dataset import BopDataset
from novel_pose_ros.bop.detections import group_by_image, read_detections_json
from novel_pose_ros.bop.results import write_results_csv
from novel_pose_ros.cli.table import format_table
from novel_pose_ros.estimation import EstimatorConfig
from novel_pose_ros.estimation.config import PIPELINES
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


def _estimator_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", type=Path, default=None, help="PicoPose checkpoint (default: the shipped weights of --network; untrained if none shipped)")
    parser.add_argument("--network", default="small_cnn", choices=sorted(CONFIGS), help="PicoPose configuration")
    parser.add_argument("--backend", default="auto", choices=BACKENDS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--hypotheses", type=int, default=EstimatorConfig.hypotheses, help="templates kept after stage 1")
    parser.add_argument("--templates", type=Path, default=None, help="template cache folder")
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


def pipeline_values(args: argparse.Namespace) -> dict:
    """The EstimatorConfig values of pipeline_arguments."""
    return {"pipeline": args.pipeline, "coarse_weights": args.coarse_weights, "refiner_weights": args.refiner_weights,
            "selector_weights": args.selector_weights, "refine_iterations": args.refine_iterations}


def _estimator_config(args: argparse.Namespace, templates_dir: Path) -> EstimatorConfig:
    return EstimatorConfig(network=args.network, weights=args.weights, backend=args.backend, device=args.device,
                           hypotheses=args.hypotheses, templates_dir=templates_dir, **pipeline_values(args))


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
    _estimator_arguments(estimate)
    estimate.set_defaults(handler=run_estimate)

    eval_run = commands.add_parser("eval-run", help="run the estimator over a BOP dataset, write a BOP results CSV")
    eval_run.add_argument("--dataset", type=Path, required=True)
    eval_run.add_argument("--detections", type=Path, required=True, help="CNOS-style detection JSON")
    eval_run.add_argument("--out", type=Path, required=True, help="results CSV")
    eval_run.add_argument("--split", default="test")
    eval_run.add_argument("--max-images", type=int, default=None)
    _estimator_arguments(eval_run)
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
    poses = []
    for p in report.poses:
        best = max(p.hypotheses, key=lambda h: h.score)
        poses.append({
            "object": p.object_id, "object_id": library.get(p.object_id).id, "instance": p.instance,
            "detection_index": p.detection_index, "score": p.score, "R": p.R.ravel().tolist(), "t_m": p.t_m.tolist(),
            "quaternion_xyzw": quaternion_from_matrix(p.R).tolist(), "source": best.source, "inlier_ratio": best.score,
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
    estimator = Estimator(library, _estimator_config(args, args.templates or default_templates_dir()))
    report = estimator.run(frame, detections)
    for failure in report.failures:
        LOGGER.warning("%s", failure.message)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report_json(report, library), indent=1))
    print(format_table(["object", "inst", "score", "t (m)", "source", "inliers"],
                       [[p["object"], p["instance"], p["score"], " ".join(f"{v:+.3f}" for v in p["t_m"]), p["source"],
                         p["inlier_ratio"]] for p in report_json(report, library)["poses"]]))
    print(f"{len(report.poses)} poses, {len(report.failures) + unknown} detections without a pose; "
          f"{report.timings.total_s * 1000:.0f} ms; poses: {args.out}")
    if args.overlay:
        labels = [(library.get(p.object_id), p.T_cam_obj, f"{p.object_id}#{p.instance}") for p in report.poses]
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
    summary = run_on_dataset(dataset, bop_detections, _estimator_config(args, templates),
                             dataset.target_images()[: args.max_images], show_progress=True)
    write_results_csv(args.out, summary.results)
    print(f"{len(summary.results)} poses on {summary.images} images ({summary.failures} detections without a pose); "
          f"mean {summary.mean_seconds_per_image:.3f} s per image; results: {args.out}")
    return 0

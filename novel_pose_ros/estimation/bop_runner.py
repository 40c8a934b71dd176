"""Run the Estimator over a BOP dataset and collect BOP results (what `novel-pose eval-run` does)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from novel_pose_ros.bop.dataset import BopDataset, BopImage
from novel_pose_ros.bop.detections import BopDetection, group_by_image
from novel_pose_ros.bop.results import RESULT_SCORES, PoseResult
from novel_pose_ros.estimation.config import EstimatorConfig
from novel_pose_ros.estimation.diagnosis import Oracle
from novel_pose_ros.estimation.estimator import Estimator
from novel_pose_ros.geometry.camera import project_points
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.render import Renderer
from novel_pose_ros.types import Detection, Frame


@dataclass(frozen=True)
class BopRunSummary:
    """results: one PoseResult per pose (time = that image's estimation time); seconds: per image."""

    results: list[PoseResult]
    images: int
    failures: int
    seconds: list[float]
    diagnostics: list[dict] | None = None  # with truths: one per result, same order (estimation/diagnosis.py)

    @property
    def mean_seconds_per_image(self) -> float:
        return float(np.mean(self.seconds)) if self.seconds else 0.0


def run_on_dataset(
    dataset: BopDataset,
    detections: list[BopDetection],
    config: EstimatorConfig,
    images: list[BopImage] | None = None,
    renderer: Renderer | None = None,
    show_progress: bool = False,
    diagnose: bool = False,
    oracle: Oracle = Oracle(),
    score: str = "confidence",
) -> BopRunSummary:
    """Estimate the poses of `detections` in `images` (default: every image with targets).

    The estimator is built for the objects of those images' targets; detections of other objects
    are ignored. Onboarding is not part of the per-image times. diagnose: give the estimator each
    detection's ground truth (`gt_for_detection`) and collect its per-pose diagnostics; oracle:
    stage outputs replaced by the truth (implies diagnose). score: what the CSV's score column holds (BOP
    ranks estimates by it): "confidence" (the pose confidence, the detection score where there is none)
    or "detection" (the detector's score).
    """
    if score not in RESULT_SCORES:
        raise ValueError(f"score must be one of {RESULT_SCORES}, got '{score}'")
    diagnose = diagnose or oracle.any
    images = dataset.target_images() if images is None else images
    keys = {(i.scene_id, i.im_id) for i in images}
    library = dataset.object_library(sorted({t.obj_id for t in dataset.targets if (t.scene_id, t.im_id) in keys}))
    estimator = Estimator(library, config, renderer=renderer, show_progress=show_progress)
    per_image = group_by_image(detections)
    results, failures, seconds, diagnostics = [], 0, [], []
    for image in tqdm(images, desc="eval-run", unit="image", disable=not show_progress):
        frame = Frame(image.load_rgb(), image.K, image.load_depth_m())
        image_detections = [d.to_detection(library) for d in per_image.get((image.scene_id, image.im_id), [])
                            if library.find(d.obj_id) is not None]
        truths = [gt_for_detection(image, d, library) for d in image_detections] if diagnose else None
        start = time.perf_counter()
        report = estimator.run(frame, image_detections, truths, oracle)
        elapsed = time.perf_counter() - start
        seconds.append(elapsed)
        failures += len(report.failures)
        results += [PoseResult(image.scene_id, image.im_id, library.get(p.object_id).id,
                               p.ranking_score if score == "confidence" else p.score, p.T_cam_obj, elapsed)
                    for p in report.poses]
        if diagnose:
            for p in report.poses:
                entry = report.diagnostics.get(p.detection_index)
                T_gt = truths[p.detection_index]
                diagnostics.append({"scene_id": image.scene_id, "im_id": image.im_id,
                                    "obj_id": library.get(p.object_id).id, "oracle": oracle.label,
                                    **(entry.to_dict() if entry is not None else {}),
                                    "detection_score": p.score, "confidence": p.confidence, "evidence": p.evidence,
                                    "T_gt": None if T_gt is None else np.asarray(T_gt).ravel().tolist()})
    return BopRunSummary(results, len(images), failures, seconds, diagnostics if diagnose else None)


def gt_for_detection(image: BopImage, detection: Detection, library: ObjectLibrary) -> np.ndarray | None:
    """T_cam_obj of the GT instance of the detection's object whose projected origin is nearest the box
    centre (None when the image has no instance of that object)."""
    obj_id = library.get(detection.object_id).id
    candidates = [g.T_cam_obj for g in image.gt if g.obj_id == obj_id and g.T_cam_obj[2, 3] > 0]
    if not candidates:
        return None
    x, y, w, h = detection.bbox_xywh
    centre = np.array([x + w / 2.0, y + h / 2.0])
    origins = project_points(image.K, np.stack([T[:3, 3] for T in candidates]))
    return candidates[int(np.argmin(np.linalg.norm(origins - centre, axis=1)))]

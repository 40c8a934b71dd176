"""How good a pose confidence is: labelled samples from a BOP run, AUROC, reliability and a threshold's precision.

A sample is one estimated pose with its evidence (estimation/confidence.py), its confidence, its
detection score and its error against the GT instance the runner paired with its detection
(`bop_runner.gt_for_detection`): MSSD / diameter, symmetry-aware as BOP's MSSD. A pose is "right" at
a tolerance when MSSD < tolerance × diameter (the confidence targets 0.2; 0.1 is reported too).
Samples are JSON Lines (`write_samples` / `read_samples`), so a run's evidence can be refitted and
re-reported without estimating again.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from novel_pose_ros.bop.dataset import BopDataset
from novel_pose_ros.bop.metrics import ObjectGeometry, mssd
from novel_pose_ros.bop.results import PoseResult

TOLERANCES = (0.1, 0.2)


@dataclass(frozen=True)
class ConfidenceSample:
    scene_id: int
    im_id: int
    obj_id: int
    mssd_over_diameter: float
    evidence: dict[str, float]
    confidence: float | None
    detection_score: float

    def right(self, tolerance: float = 0.2) -> bool:
        return self.mssd_over_diameter < tolerance


def label_samples(dataset: BopDataset, results: Sequence[PoseResult], diagnostics: Sequence[dict]) -> list[ConfidenceSample]:
    """One sample per result whose diagnostics entry (same order, from a diagnosing run) has a GT pose."""
    if len(results) != len(diagnostics):
        raise ValueError(f"{len(diagnostics)} diagnostics entries for {len(results)} results")
    objects: dict[int, tuple[ObjectGeometry, float]] = {}
    samples = []
    for result, entry in zip(results, diagnostics):
        if entry.get("T_gt") is None:
            continue
        if result.obj_id not in objects:
            objects[result.obj_id] = (ObjectGeometry.of(dataset.object_library([result.obj_id]).get(result.obj_id)),
                                      dataset.diameter_m(result.obj_id))
        geometry, diameter = objects[result.obj_id]
        T_gt = np.asarray(entry["T_gt"], dtype=np.float64).reshape(4, 4)
        error = mssd(result.T_cam_obj, T_gt, geometry.hull_m, geometry.symmetries)
        samples.append(ConfidenceSample(result.scene_id, result.im_id, result.obj_id, error / diameter,
                                        dict(entry["evidence"]), entry.get("confidence"), float(entry["detection_score"])))
    return samples


def write_samples(path: str | Path, samples: Sequence[ConfidenceSample]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(json.dumps(asdict(s)) + "\n" for s in samples))


def read_samples(path: str | Path) -> list[ConfidenceSample]:
    samples = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                samples.append(ConfidenceSample(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as exc:
                raise ValueError(f"confidence samples {path}:{number}: {exc}") from None
    return samples


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve (the probability that a random right pose scores above a random wrong one,
    ties counting half); None without both classes."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # mid-ranks of tied scores (1-based)
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = 0.5 * (s + e + 1)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    mean_confidence: float | None
    observed: float | None  # share of right poses


def reliability(confidences: Sequence[float], labels: Sequence[bool], bins: int = 5) -> list[ReliabilityBin]:
    """Equal-width confidence bins on [0, 1]: mean confidence against the observed share of right poses."""
    c, y = np.asarray(confidences, dtype=np.float64), np.asarray(labels, dtype=bool)
    index = np.minimum((c * bins).astype(int), bins - 1)
    result = []
    for b in range(bins):
        inside = index == b
        n = int(inside.sum())
        result.append(ReliabilityBin(b / bins, (b + 1) / bins, n, float(c[inside].mean()) if n else None,
                                     float(y[inside].mean()) if n else None))
    return result


def precision_recall(confidences: Sequence[float], labels: Sequence[bool], threshold: float) -> tuple[float | None, float | None]:
    """(precision, recall) of keeping the poses with confidence ≥ threshold (None where undefined)."""
    c, y = np.asarray(confidences, dtype=np.float64), np.asarray(labels, dtype=bool)
    kept = c >= threshold
    precision = float(y[kept].mean()) if kept.any() else None
    recall = float(kept[y].mean()) if y.any() else None
    return precision, recall


def confidence_report(samples: Sequence[ConfidenceSample], confidences: Sequence[float], threshold: float = 0.5,
                      bins: int = 5) -> dict[str, Any]:
    """AUROC of the confidence and of the detection score at each tolerance, reliability bins (0.2 d), and the
    precision / recall of `threshold`."""
    report: dict[str, Any] = {"samples": len(samples), "threshold": threshold}
    for tolerance in TOLERANCES:
        labels = [s.right(tolerance) for s in samples]
        precision, recall = precision_recall(confidences, labels, threshold)
        report[f"{tolerance:g}d"] = {
            "right_share": float(np.mean(labels)) if samples else None,
            "auroc": auroc(confidences, labels), "auroc_detection_score": auroc([s.detection_score for s in samples], labels),
            "precision": precision, "recall": recall,
        }
    report["reliability_0.2d"] = [asdict(b) for b in reliability(confidences, [s.right(0.2) for s in samples], bins)]
    return report


def reliability_image(bins: Sequence[dict], title: str, size: int = 420) -> np.ndarray:
    """(size, size, 3) uint8 RGB reliability diagram: observed share of right poses against mean confidence
    per bin (dots sized by count), with the diagonal of perfect calibration."""
    panel = np.full((size, size, 3), 255, np.uint8)
    left, right, top, bottom = 60, size - 20, 40, size - 50
    font, black = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0)

    def point(x: float, y: float) -> tuple[int, int]:
        return int(round(left + x * (right - left))), int(round(bottom - y * (bottom - top)))

    cv2.rectangle(panel, (left, top), (right, bottom), black, 1)
    cv2.line(panel, point(0, 0), point(1, 1), (160, 160, 160), 1, cv2.LINE_AA)
    for k in range(6):
        v = k / 5
        cv2.putText(panel, f"{v:.1f}", (point(v, 0)[0] - 10, bottom + 18), font, 0.4, black, 1, cv2.LINE_AA)
        cv2.putText(panel, f"{v:.1f}", (left - 32, point(0, v)[1] + 4), font, 0.4, black, 1, cv2.LINE_AA)
    total = max(sum(b["count"] for b in bins), 1)
    for b in bins:
        if b["count"]:
            radius = max(3, int(round(18 * np.sqrt(b["count"] / total))))
            cv2.circle(panel, point(b["mean_confidence"], b["observed"]), radius, (200, 70, 40), -1, cv2.LINE_AA)
            label = str(b["count"])
            x, y = point(b["mean_confidence"], b["observed"])
            cv2.putText(panel, label, (x + radius + 2, y + 4), font, 0.35, black, 1, cv2.LINE_AA)
    cv2.putText(panel, "mean confidence", (left + 90, size - 15), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.putText(panel, "right share", (5, top - 6), font, 0.4, black, 1, cv2.LINE_AA)
    cv2.putText(panel, title, (10, 16), font, 0.45, black, 1, cv2.LINE_AA)
    return panel


def write_reliability_png(path: str | Path, bins: Sequence[dict], title: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(reliability_image(bins, title), cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
    return path

"""The pose confidence: the estimated probability that a pose is right, from what verification saw.

"Right" means MSSD < 0.2 × the object's diameter (symmetry-aware, BOP's MSSD): close enough to grasp.
Per pose the Estimator gathers evidence (`pose_evidence`, names in FEATURES):

- iou, coverage, on_evidence: the silhouette at the pose against the detection mask or box
  (verification.SilhouetteAgreement);
- iou_margin: iou minus the best IoU of a hypothesis whose rotation differs by more than
  DISTINCT_DEG (a flip that fits the mask as well as the chosen pose makes the choice a coin toss);
- consensus: the share of the hypotheses whose rotation is within DISTINCT_DEG of the chosen pose;
- log_inliers, inlier_ratio, log_correspondences: the PnP support of the chosen hypothesis;
- fallback: 1 when no PnP succeeded and the pose came from the stage-2 affine;
- log_box_px: log of the detection box's size (sqrt of its area, pixels): small objects are harder;
- edge_agreement, edge_density: the object's inner edges at the pose (rendered shaded) against the
  image's: what tells a flip inside the same outline; outline_offset, evidence_offset: how far the
  silhouette's outline lies from the evidence's and back (verification.RenderedChecks);
- template_score, template_score_gap: the coarse stage's score of the chosen hypothesis' template, and
  how far below the best-scored template's it is.

A logistic model on the standardised evidence (`ConfidenceModel`, fitted by `fit_confidence_model` on
held-out synthetic scenes with `novel-pose confidence fit`, never on the real validation sets) turns
it into the confidence. The model is a JSON file (models/pose_confidence/) with its card.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.optimize import minimize

from novel_pose_ros.estimation.verification import RenderedChecks, SilhouetteAgreement
from novel_pose_ros.geometry.se3 import rotation_angle_rad
from novel_pose_ros.paths import share_dir
from novel_pose_ros.types import PoseHypothesis

FEATURES = ("iou", "coverage", "on_evidence", "iou_margin", "consensus", "log_inliers", "inlier_ratio",
            "log_correspondences", "fallback", "log_box_px", "edge_agreement", "edge_density", "outline_offset",
            "evidence_offset", "template_score", "template_score_gap")
DISTINCT_DEG = 30.0
RIGHT_POSE_DEFINITION = "MSSD < 0.2 x diameter"


def default_confidence_model_path() -> Path:
    return share_dir() / "models" / "pose_confidence" / "pose_confidence.json"


def pose_evidence(T_cam_obj: np.ndarray, chosen: PoseHypothesis | None, agreement: SilhouetteAgreement,
                  hypotheses: Sequence[PoseHypothesis], agreements: Sequence[SilhouetteAgreement],
                  bbox_xywh: Sequence[float], checks: RenderedChecks) -> dict[str, float]:
    """The FEATURES of one pose. chosen: the hypothesis the pose came from (None when a later stage made
    it, e.g. the refiner: its PnP support is then that of the coarse pose it started from, given as chosen);
    agreement: of the pose itself; hypotheses / agreements: every verified hypothesis and its agreement;
    checks: the shaded render of the pose against the image and the evidence (verification.rendered_checks)."""
    R = np.asarray(T_cam_obj, dtype=np.float64)[:3, :3]
    distinct_deg = [np.degrees(rotation_angle_rad(R, np.asarray(h.T_cam_obj)[:3, :3])) for h in hypotheses]
    competitors = [a.iou for a, angle in zip(agreements, distinct_deg) if angle > DISTINCT_DEG]
    template_score = chosen.template_score if chosen is not None else 0.0
    inliers = chosen.inliers if chosen is not None else 0
    correspondences = chosen.correspondences if chosen is not None else 0
    w, h = float(bbox_xywh[2]), float(bbox_xywh[3])
    return {
        "iou": agreement.iou, "coverage": agreement.coverage, "on_evidence": agreement.on_evidence,
        "iou_margin": agreement.iou - max(competitors, default=0.0),
        "consensus": float(np.mean([angle <= DISTINCT_DEG for angle in distinct_deg])) if hypotheses else 0.0,
        "log_inliers": float(np.log1p(inliers)),
        "inlier_ratio": inliers / correspondences if correspondences else 0.0,
        "log_correspondences": float(np.log1p(correspondences)),
        "fallback": float(inliers == 0),
        "log_box_px": float(np.log(max(np.sqrt(max(w, 0.0) * max(h, 0.0)), 1.0))),
        "edge_agreement": checks.edge_agreement, "edge_density": checks.edge_density,
        "outline_offset": checks.outline_offset, "evidence_offset": checks.evidence_offset,
        "template_score": float(template_score),
        "template_score_gap": float(max((h.template_score for h in hypotheses), default=0.0) - template_score),
    }


@dataclass(frozen=True)
class ConfidenceModel:
    """P(right | evidence) = sigmoid(bias + Σ weight_i (x_i − mean_i) / scale_i) over `features`.

    fitted_on: what the model was fitted on (datasets, pipeline, weights, sample and positive counts) and
    its measured quality there; free-form, written to the JSON for the card."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    definition: str = RIGHT_POSE_DEFINITION
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.features) - set(FEATURES))
        if unknown:
            raise ValueError(f"confidence model: unknown feature(s) {unknown}; known: {', '.join(FEATURES)}")
        if not len(self.features) == len(self.mean) == len(self.scale) == len(self.weights):
            raise ValueError("confidence model: features, mean, scale and weights must have one entry per feature")
        if not all(s > 0 for s in self.scale):
            raise ValueError("confidence model: every scale must be > 0")

    def matrix(self, evidence: Sequence[Mapping[str, float]]) -> np.ndarray:
        """(N, F) feature matrix of evidence dicts (a missing feature is a KeyError naming it)."""
        try:
            return np.array([[float(e[name]) for name in self.features] for e in evidence], dtype=np.float64
                            ).reshape(len(evidence), len(self.features))
        except KeyError as exc:
            raise KeyError(f"pose evidence lacks the confidence feature {exc}") from None

    def predict(self, evidence: Sequence[Mapping[str, float]]) -> np.ndarray:
        """(N,) confidences in [0, 1]."""
        z = (self.matrix(evidence) - np.asarray(self.mean)) / np.asarray(self.scale)
        return _sigmoid(z @ np.asarray(self.weights) + self.bias)

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "ConfidenceModel":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"confidence model {path}: no such file (fit one with `novel-pose confidence fit`)")
        values = json.loads(path.read_text())
        try:
            return cls(tuple(values["features"]), tuple(values["mean"]), tuple(values["scale"]),
                       tuple(values["weights"]), float(values["bias"]), values.get("definition", RIGHT_POSE_DEFINITION),
                       values.get("fitted_on", {}))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"confidence model {path}: malformed ({type(exc).__name__}: {exc})") from None


def fit_confidence_model(evidence: Sequence[Mapping[str, float]], right: Sequence[bool],
                         features: Sequence[str] = FEATURES, l2: float = 1e-3,
                         fitted_on: Mapping[str, Any] | None = None) -> ConfidenceModel:
    """Logistic regression (L2 penalty `l2` on the standardised weights, L-BFGS) of `right` on the evidence."""
    y = np.asarray(right, dtype=np.float64)
    if len(y) != len(evidence) or len(y) < 10 or y.min() == y.max():
        raise ValueError(f"confidence fit: needs ≥ 10 samples of both outcomes, got {len(y)} "
                         f"({int(y.sum())} right)")
    probe = ConfidenceModel(tuple(features), (0.0,) * len(features), (1.0,) * len(features), (0.0,) * len(features), 0.0)
    X = probe.matrix(evidence)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale < 1e-9] = 1.0  # a constant feature: its weight stays 0 under the penalty
    Z = (X - mean) / scale

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:-1], params[-1]
        logits = Z @ w + b
        # log(1 + e^z) − y z, stable for large |z|
        value = np.mean(np.logaddexp(0.0, logits) - y * logits) + 0.5 * l2 * w @ w
        residual = (_sigmoid(logits) - y) / len(y)
        return float(value), np.append(Z.T @ residual + l2 * w, residual.sum())

    solution = minimize(loss, np.zeros(Z.shape[1] + 1), jac=True, method="L-BFGS-B")
    if not solution.success:
        raise RuntimeError(f"confidence fit did not converge: {solution.message}")
    w, b = solution.x[:-1], float(solution.x[-1])
    return ConfidenceModel(tuple(features), tuple(float(v) for v in mean), tuple(float(v) for v in scale),
                           tuple(float(v) for v in w), b, fitted_on=dict(fitted_on or {}))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))

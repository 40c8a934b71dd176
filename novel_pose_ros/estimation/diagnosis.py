"""Diagnosis of the PicoPose stages against a known ground truth: what each stage did, and oracle switches.

Used only for evaluation (`novel-pose eval-run --diagnostics / --oracle`), never at run time: the
ground truth T_cam_obj of each detection goes in, and per detection the stages report

- gt_view: the template view nearest the true viewing direction (the direction from the object
  origin to the camera, in the object frame; symmetries are not folded in), its angle, and its rank in
  stage 1's ordering (0 = stage 1's best template): the retrieval quality;
- which hypothesis the pose came from (its stage-1 rank, PnP or the affine fallback) and its PnP
  support (inliers of how many correspondences; every hypothesis carries its own, PoseHypothesis).

Oracle switches replace one stage's output by the truth, so the loss of each stage is measured
rather than guessed:

- template: the GT-nearest view becomes hypothesis 0 (the other hypotheses stay stage 1's);
- inplane: stage 2's in-plane rotation of every hypothesis is the true one for its template;
- depth: the final pose is slid along its viewing ray to the true distance (z of the truth).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from novel_pose_ros.geometry.camera import inplane_angle_rad
from novel_pose_ros.geometry.se3 import viewing_direction_obj

ORACLE_SWITCHES = ("template", "inplane", "depth")


@dataclass(frozen=True)
class Oracle:
    """Which stage outputs are replaced by the ground truth (all off: the estimator as it runs)."""

    template: bool = False
    inplane: bool = False
    depth: bool = False

    @classmethod
    def parse(cls, text: str | None) -> "Oracle":
        """"" / None -> no oracle; "template,depth" -> those switches."""
        names = [n.strip() for n in (text or "").split(",") if n.strip()]
        unknown = sorted(set(names) - set(ORACLE_SWITCHES))
        if unknown:
            raise ValueError(f"oracle: unknown switch(es) {unknown}; known: {', '.join(ORACLE_SWITCHES)}")
        return cls(**{n: True for n in names})

    @property
    def any(self) -> bool:
        return self.template or self.inplane or self.depth

    @property
    def label(self) -> str:
        return ",".join(n for n in ORACLE_SWITCHES if getattr(self, n)) or "none"


@dataclass(frozen=True)
class StageDiagnostics:
    """What the stages did for one detection (module docstring). Ranks are 0-based; None where unknown
    (no truth given, or the pose did not come from a ranked hypothesis)."""

    source: str
    chosen_view: int | None
    chosen_rank: int | None
    inliers: int
    correspondences: int
    inlier_ratio: float
    gt_view: int | None = None
    gt_view_rank: int | None = None
    gt_view_angle_deg: float | None = None
    silhouette_iou: float | None = None  # of the chosen pose, when the silhouette rule chose it

    def to_dict(self) -> dict:
        return asdict(self)


def nearest_template(T_true: np.ndarray, template_poses: np.ndarray) -> tuple[int, float]:
    """(view index, angle in degrees) of the template whose viewing direction is nearest the truth's.

    template_poses: (N, 4, 4) T_cam_obj of the template views."""
    directions = np.stack([viewing_direction_obj(T) for T in template_poses])
    cosines = directions @ viewing_direction_obj(T_true)
    view = int(np.argmax(cosines))
    return view, float(np.degrees(np.arccos(np.clip(cosines[view], -1.0, 1.0))))


def rank_of(view: int, ordering: np.ndarray) -> int:
    """Position of `view` in stage 1's ordering (best first)."""
    return int(np.flatnonzero(np.asarray(ordering) == view)[0])


def oracle_ordering(ordering: np.ndarray, gt_view: int) -> np.ndarray:
    """Stage 1's ordering with the GT-nearest view moved to the front."""
    ordering = np.asarray(ordering)
    return np.concatenate([[gt_view], ordering[ordering != gt_view]]).astype(ordering.dtype)


def true_cos_sin(T_true: np.ndarray, template_pose: np.ndarray) -> np.ndarray:
    """(2,) float32 (cos, sin) of the true in-plane rotation from a template view to the query."""
    angle = inplane_angle_rad(T_true, template_pose)
    return np.array([np.cos(angle), np.sin(angle)], dtype=np.float32)


def at_true_depth(T_cam_obj: np.ndarray, T_true: np.ndarray) -> np.ndarray:
    """The pose slid along its viewing ray so that its z equals the truth's (rotation unchanged)."""
    T = np.array(T_cam_obj, dtype=np.float64, copy=True)
    if T[2, 3] > 0:
        T[:3, 3] *= float(T_true[2, 3]) / T[2, 3]
    return T

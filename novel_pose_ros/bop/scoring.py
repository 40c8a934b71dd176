"""Average Recall (AR) of the BOP 2019+ pose task, from per-target pose errors.

Rule (BOP toolkit docs and Hodan et al. 2020): for each target (image, object, inst_count)
only the `inst_count` estimates with the highest scores count. For each error function and
threshold, those estimates are matched greedily in decreasing score: each goes to the
not-yet-matched valid GT instance with the smallest error strictly below the threshold.
Recall = matched GT instances / Σ inst_count. AR_MSSD averages recall over MSSD thresholds
0.05 … 0.50 × diameter, AR_MSPD over 5 … 50 px, AR_VSD over 10 τ × 10 thresholds
0.05 … 0.50; AR = mean of the available terms. A dataset row (obj_id None) pools all
targets (BOP: total matches / total targets, not a mean of object rows).

VSD needs depth: a target in an image without depth has no VSD errors; AR_VSD is then
computed over the targets that have them (`vsd_targets`), and is None (never 0) when none do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from novel_pose_ros.bop.metrics import VSD_TAUS

MSSD_THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 11))  # × diameter
MSPD_THRESHOLDS_PX = tuple(5.0 * k for k in range(1, 11))
VSD_THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 11))
TERMS = ("VSD", "MSSD", "MSPD")


@dataclass(frozen=True)
class ARThresholds:
    """Correctness thresholds: an error strictly below one counts as correct."""

    mssd: tuple[float, ...] = MSSD_THRESHOLDS  # fractions of the object diameter
    mspd_px: tuple[float, ...] = MSPD_THRESHOLDS_PX
    vsd: tuple[float, ...] = VSD_THRESHOLDS
    vsd_taus: tuple[float, ...] = VSD_TAUS  # fractions of the diameter (defines the VSD error columns)


@dataclass(frozen=True)
class TargetErrors:
    """Errors of the estimates of one target against the GT instances of its object.

    scores: (E,) scores of every estimate given for (scene_id, im_id, obj_id), any order.
    gt_valid: (G,) bool, the GT instances of obj_id in the image that count (`valid_gt_mask`).
    mssd_m: (E, G) metres; mspd_px: (E, G) pixels (already × 640 / width);
    vsd: (E, G, T) for the T taus, or None when the image has no usable depth.
    Entries of estimates beyond the top inst_count, or of invalid GTs, are never read
    (the evaluator leaves them at inf).
    """

    scene_id: int
    im_id: int
    obj_id: int
    inst_count: int
    diameter_m: float
    scores: np.ndarray
    gt_valid: np.ndarray
    mssd_m: np.ndarray
    mspd_px: np.ndarray
    vsd: np.ndarray | None = None

    def __post_init__(self) -> None:
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        valid = np.asarray(self.gt_valid, dtype=bool).reshape(-1)
        shape = (len(scores), len(valid))
        for name in ("mssd_m", "mspd_px"):
            array = np.asarray(getattr(self, name), dtype=np.float64)
            if array.shape != shape:
                raise ValueError(f"TargetErrors.{name}: expected shape {shape}, got {array.shape}")
            object.__setattr__(self, name, array)
        if self.vsd is not None:
            vsd = np.asarray(self.vsd, dtype=np.float64)
            if vsd.ndim != 3 or vsd.shape[:2] != shape:
                raise ValueError(f"TargetErrors.vsd: expected shape ({shape[0]}, {shape[1]}, T), got {vsd.shape}")
            object.__setattr__(self, "vsd", vsd)
        if self.inst_count < 1:
            raise ValueError(f"TargetErrors.inst_count must be ≥ 1, got {self.inst_count}")
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "gt_valid", valid)

    @property
    def has_vsd(self) -> bool:
        return self.vsd is not None


@dataclass(frozen=True)
class ARRow:
    """AR of one object (obj_id) or of the whole dataset (obj_id None); recalls in [0, 1].

    targets: Σ inst_count; vsd_targets: the part of it in images with depth (AR_VSD's base).
    ar_vsd is None when vsd_targets is 0; ar averages the terms named in ar_terms.
    mean_time_per_image_s: filled in by the evaluator (None when unknown).
    """

    obj_id: int | None
    targets: int
    vsd_targets: int
    ar_vsd: float | None
    ar_mssd: float
    ar_mspd: float
    ar: float
    ar_terms: tuple[str, ...]
    mean_time_per_image_s: float | None = None

    @property
    def ar_label(self) -> str:
        """"AR" when all three terms are in, else e.g. "AR (MSSD, MSPD)"."""
        return "AR" if self.ar_terms == TERMS else f"AR ({', '.join(self.ar_terms)})"


@dataclass(frozen=True)
class _Counts:
    """True positives of one group of targets: per MSSD/MSPD threshold and per (τ, VSD threshold)."""

    targets: int
    vsd_targets: int
    mssd: np.ndarray  # (len(thresholds.mssd),)
    mspd: np.ndarray  # (len(thresholds.mspd_px),)
    vsd: np.ndarray  # (len(thresholds.vsd_taus), len(thresholds.vsd)), zeros without depth


def valid_gt_mask(visib_fracts: Sequence[float | None], inst_count: int) -> np.ndarray:
    """(G,) bool: the inst_count most visible GT instances (BOP19, visib_gt_min = −1).

    Unknown visibility (no scene_gt_info.json) counts as fully visible; ties keep the
    annotation order.
    """
    visib = np.array([1.0 if v is None else float(v) for v in visib_fracts], dtype=np.float64)
    order = np.argsort(-visib, kind="stable")
    mask = np.zeros(len(visib), dtype=bool)
    mask[order[:max(int(inst_count), 0)]] = True
    return mask


def top_estimates(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` highest scores, highest first (ties keep the given order)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    return np.argsort(-scores, kind="stable")[:max(int(count), 0)]


def greedy_match(errors: np.ndarray, threshold: float, gt_valid: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Match estimates (rows, already in decreasing score) to GT instances (columns).

    errors: (E, G). Each estimate in turn takes the unmatched valid GT with the smallest
    error < threshold (the first such GT on ties); an estimate with none stays unmatched.
    Returns the (estimate, gt) pairs.
    """
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 2:
        raise ValueError(f"errors: expected (E, G), got {errors.shape}")
    available = np.ones(errors.shape[1], dtype=bool) if gt_valid is None else np.asarray(gt_valid, dtype=bool).copy()
    pairs = []
    for e, row in enumerate(errors):
        candidates = np.where(available & (row < threshold), row, np.inf)
        if candidates.size and np.isfinite(candidates.min()):
            g = int(np.argmin(candidates))
            available[g] = False
            pairs.append((e, g))
    return pairs


def target_counts(target: TargetErrors, thresholds: ARThresholds = ARThresholds()) -> _Counts:
    """Matches of one target for every threshold (and τ)."""
    top = top_estimates(target.scores, target.inst_count)
    valid = target.gt_valid

    def matches(errors: np.ndarray, threshold: float) -> int:
        return len(greedy_match(errors[top], threshold, valid))

    mssd_relative = target.mssd_m / target.diameter_m
    vsd = np.zeros((len(thresholds.vsd_taus), len(thresholds.vsd)))
    if target.vsd is not None:
        if target.vsd.shape[2] != len(thresholds.vsd_taus):
            raise ValueError(f"TargetErrors.vsd has {target.vsd.shape[2]} taus, thresholds have {len(thresholds.vsd_taus)}")
        vsd = np.array([[matches(target.vsd[:, :, t], th) for th in thresholds.vsd] for t in range(len(thresholds.vsd_taus))])
    return _Counts(
        targets=target.inst_count,
        vsd_targets=target.inst_count if target.has_vsd else 0,
        mssd=np.array([matches(mssd_relative, th) for th in thresholds.mssd], dtype=np.float64),
        mspd=np.array([matches(target.mspd_px, th) for th in thresholds.mspd_px], dtype=np.float64),
        vsd=vsd.astype(np.float64),
    )


def _row(obj_id: int | None, counts: Iterable[_Counts]) -> ARRow:
    counts = list(counts)
    targets = sum(c.targets for c in counts)
    vsd_targets = sum(c.vsd_targets for c in counts)
    if targets == 0:
        raise ValueError("an AR row needs at least one target")
    ar_mssd = float(sum(c.mssd for c in counts).mean() / targets)
    ar_mspd = float(sum(c.mspd for c in counts).mean() / targets)
    ar_vsd = float(sum(c.vsd for c in counts).mean() / vsd_targets) if vsd_targets else None
    terms = tuple(name for name, value in zip(TERMS, (ar_vsd, ar_mssd, ar_mspd)) if value is not None)
    values = [v for v in (ar_vsd, ar_mssd, ar_mspd) if v is not None]
    return ARRow(obj_id, targets, vsd_targets, ar_vsd, ar_mssd, ar_mspd, float(np.mean(values)), terms)


@dataclass(frozen=True)
class ARScores:
    """Per-object rows (by obj_id) and the dataset row."""

    objects: tuple[ARRow, ...]
    overall: ARRow


def average_recall(targets: Sequence[TargetErrors], thresholds: ARThresholds = ARThresholds()) -> ARScores:
    """AR per object and over all targets. Every target must be listed, estimated or not."""
    if not targets:
        raise ValueError("no targets to score")
    per_target = [(t.obj_id, target_counts(t, thresholds)) for t in targets]
    obj_ids = sorted({obj_id for obj_id, _ in per_target})
    rows = tuple(_row(o, (c for i, c in per_target if i == o)) for o in obj_ids)
    return ARScores(objects=rows, overall=_row(None, (c for _, c in per_target)))

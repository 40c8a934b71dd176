"""Where the accuracy goes: a per-target pose-error breakdown of BOP results.

Every valid GT instance of every target (the BOP19 rule `evaluate` applies) is paired with the
estimate of the same object in the same image with the lowest MSSD to it (an oracle pairing: two
instances may pick the same estimate; a target without an estimate is "missing", not an error).
Its error is split into rotation (symmetry-aware geodesic angle; a flip is > 90°), depth
(|z_est − z_gt| / z_gt), image plane (lateral error once the estimate is moved along its ray to
the GT depth) and MSSD / MSPD (`bop/metrics`). Rows are in metres, degrees and fractions;
aggregates name their unit (`_pct`, `_mm`, `_px`), and their shares and percentiles are over the
targets with an estimate. Non-finite values (a point behind the camera) are null in JSON.
Optional diagnostics (JSON Lines from the estimator runner, one object per results-CSV row, in
CSV order; keys in `DIAGNOSTICS_KEYS`) add retrieval, source and inlier statistics.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from novel_pose_ros.bop.dataset import M_PER_MM, BopDataset, BopImage
from novel_pose_ros.bop.evaluate import ROTATION_ATOL
from novel_pose_ros.bop.metrics import MAX_SYMMETRY_STEP_RAD, MSPD_REFERENCE_WIDTH_PX, ObjectGeometry, mspd, mssd
from novel_pose_ros.bop.results import PoseResult, read_results_csv
from novel_pose_ros.bop.scoring import valid_gt_mask
from novel_pose_ros.geometry.se3 import check_shape, is_rotation

FLIP_DEG = 90.0
# Diagnostics keys and their JSON types; the first three are required, the others may be absent or null.
DIAGNOSTICS_KEYS: dict[str, tuple[type, ...]] = {
    "scene_id": (int,), "im_id": (int,), "obj_id": (int,), "source": (str,), "chosen_rank": (int,),
    "inliers": (int,), "correspondences": (int,), "inlier_ratio": (int, float), "gt_view_rank": (int,),
    "gt_view_angle_deg": (int, float),
}
REQUIRED_DIAGNOSTICS_KEYS = ("scene_id", "im_id", "obj_id")


def symmetric_rotation_error_deg(R_est: np.ndarray, R_gt: np.ndarray, sym_transforms: np.ndarray) -> float:
    """min over S of the angle of R_est (R_gt S_R)⁻¹, degrees in [0, 180]. R: (3, 3); sym_transforms: (S, 4, 4)."""
    R_est, R_gt = check_shape("R_est", R_est, (3, 3)), check_shape("R_gt", R_gt, (3, 3))
    syms = check_shape("sym_transforms", sym_transforms, (None, 4, 4))
    relative = R_est @ np.linalg.inv(R_gt @ syms[:, :3, :3])  # (S, 3, 3); inverse as in metrics.rotation_error_deg
    cos = 0.5 * (np.trace(relative, axis1=1, axis2=2) - 1.0)
    skew = relative - np.swapaxes(relative, 1, 2)
    sin = 0.5 * np.linalg.norm(np.stack([skew[:, 2, 1], skew[:, 0, 2], skew[:, 1, 0]], axis=1), axis=1)
    return float(np.degrees(np.arctan2(sin, cos).min()))  # atan2: exact near 0° and 180°, where arccos is not


def depth_error(t_est: np.ndarray, t_gt: np.ndarray) -> float:
    """|t_est.z − t_gt.z| / t_gt.z (a fraction). t: (3,) metres, t_gt.z > 0."""
    t_est, t_gt = check_shape("t_est", np.ravel(t_est), (3,)), check_shape("t_gt", np.ravel(t_gt), (3,))
    if not t_gt[2] > 0:
        raise ValueError(f"t_gt: the object must be in front of the camera (z > 0), got z = {t_gt[2]:g} m")
    return float(abs(t_est[2] - t_gt[2]) / t_gt[2])


def plane_error_m(t_est: np.ndarray, t_gt: np.ndarray) -> float:
    """‖t_est.xy · t_gt.z / t_est.z − t_gt.xy‖, metres (inf when t_est.z ≤ 0). t: (3,) metres."""
    t_est, t_gt = check_shape("t_est", np.ravel(t_est), (3,)), check_shape("t_gt", np.ravel(t_gt), (3,))
    if not t_est[2] > 0:
        return math.inf
    return float(np.linalg.norm(t_est[:2] * (t_gt[2] / t_est[2]) - t_gt[:2]))


@dataclass(frozen=True)
class TargetBreakdown:
    """One valid GT instance (`gt_index` in its image's scene_gt list) and its best estimate.

    The error fields are None when the target is missing (no estimate). result_line: CSV
    line of the estimate; depth_error: a fraction; diagnostics: its joined diagnostics line.
    """

    scene_id: int
    im_id: int
    obj_id: int
    gt_index: int
    diameter_m: float
    result_line: int | None = None
    score: float | None = None
    rotation_error_deg: float | None = None
    depth_error: float | None = None
    plane_error_m: float | None = None
    mssd_m: float | None = None
    mspd_px: float | None = None
    diagnostics: Mapping[str, Any] | None = None

    @property
    def missing(self) -> bool:
        return self.mssd_m is None

    @property
    def flip(self) -> bool | None:
        return None if self.rotation_error_deg is None else self.rotation_error_deg > FLIP_DEG

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "diagnostics"}
        data.update(missing=self.missing, flip=self.flip,
                    mssd_per_diameter=None if self.missing else self.mssd_m / self.diameter_m,
                    diagnostics=None if self.diagnostics is None else dict(self.diagnostics))
        return data


@dataclass(frozen=True)
class DiagnosticsStats:
    """Over the best estimates with a diagnostics line. Rates/shares are fractions (None: nothing to count).

    top1/top3_rate: gt_view_rank == 0 / < 3 over the `retrieval_known` lines with a rank;
    source_shares: share of each source kind (the part before ':'); fallback_share: kinds
    containing "fallback"; chosen_rank0_share: the chosen hypothesis was stage-1's rank 0;
    flip_rate_top1_right / _wrong: flip rate when gt_view_rank == 0 / != 0.
    """

    lines: int
    retrieval_known: int
    top1_rate: float | None
    top3_rate: float | None
    source_shares: dict[str, float]
    fallback_share: float | None
    chosen_rank0_share: float | None
    chosen_rank_other_share: float | None
    inliers_p10: float | None
    inliers_p50: float | None
    inliers_p90: float | None
    flip_rate_top1_right: float | None
    flip_rate_top1_wrong: float | None


@dataclass(frozen=True)
class BreakdownStats:
    """Aggregates of one object (obj_id) or of all targets (obj_id None); percentiles/shares over the estimated targets."""

    obj_id: int | None
    targets: int
    missing: int
    rot_err_deg_p25: float | None
    rot_err_deg_p50: float | None
    rot_err_deg_p75: float | None
    rot_err_deg_p90: float | None
    flip_rate: float | None
    within_15deg: float | None
    within_30deg: float | None
    depth_err_pct_p50: float | None
    depth_err_pct_p75: float | None
    plane_err_mm_p50: float | None
    mssd_below_0_1d: float | None
    mssd_below_0_2d: float | None
    mspd_px_p50: float | None
    diagnostics: DiagnosticsStats | None = None


@dataclass(frozen=True)
class Breakdown:
    """The breakdown of one results file: per-object and overall aggregates, and the per-target rows."""

    dataset_root: str
    split: str
    results_file: str | None
    diagnostics_file: str | None
    results_given: int
    results_skipped: int  # non-finite or non-rotation poses
    objects: tuple[BreakdownStats, ...]
    overall: BreakdownStats
    rows: tuple[TargetBreakdown, ...]

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in ("dataset_root", "split", "results_file", "diagnostics_file",
                                              "results_given", "results_skipped")}
        data["settings"] = {"flip_deg": FLIP_DEG, "within_deg": [15.0, 30.0], "mssd_fractions_of_diameter": [0.1, 0.2]}
        data.update(overall=asdict(self.overall), objects=[asdict(s) for s in self.objects],
                    targets=[r.to_dict() for r in self.rows])
        return _finite_or_null(data)

    def to_json(self, indent: int = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value.item() if isinstance(value, np.generic) else value


# --- diagnostics ---------------------------------------------------------------------------

def read_diagnostics(path: str | Path) -> list[dict]:
    """The entries of a diagnostics JSON Lines file (blank lines skipped), each with its file line as "line"."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"diagnostics file {path}: not found")
    entries = []
    with path.open() as f:
        for line_no, text in enumerate(f, start=1):
            if not text.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                entry = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from exc
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(entry).__name__}")
            for key, kinds in DIAGNOSTICS_KEYS.items():
                value = entry.get(key)
                if value is None and key in REQUIRED_DIAGNOSTICS_KEYS:
                    raise ValueError(f"{where}: missing key '{key}'")
                if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
                    expected = " or ".join(k.__name__ for k in kinds)
                    raise ValueError(f"{where}: '{key}' must be {expected} or null, got {value!r}")
            entries.append({**entry, "line": line_no})
    return entries


def csv_data_lines(path: str | Path) -> list[int]:
    """Line numbers of a results CSV's data rows, good or bad (what read_results_csv reads: no header, no blank rows)."""
    with Path(path).open(newline="") as f:
        return [n for n, row in enumerate(csv.reader(f), start=1)
                if row and any(c.strip() for c in row) and not (n == 1 and row[0].strip() == "scene_id")]


def join_diagnostics(results: Sequence[PoseResult], diagnostics: Sequence[Mapping[str, Any]],
                     data_lines: Sequence[int] | None = None, diagnostics_file: str | Path | None = None) -> list[Mapping]:
    """The diagnostics entry of each result, in the order of `results`.

    data_lines: the CSV line of every data row (`csv_data_lines`): entry k belongs to the
    k-th row, so rows that failed to parse still use up their entry. Without it, results
    and entries pair one to one. Raises ValueError when the counts differ.
    """
    where = diagnostics_file or "<diagnostics>"
    rows = len(data_lines) if data_lines is not None else len(results)
    if len(diagnostics) != rows:
        raise ValueError(f"diagnostics {where}: {len(diagnostics)} lines for {rows} results rows (one per row, in order)")
    if data_lines is None:
        return list(diagnostics)
    index = {line: k for k, line in enumerate(data_lines)}
    missing = [r.line for r in results if r.line not in index]
    if missing:
        raise ValueError(f"diagnostics {where}: results lines {missing[:5]} are not data rows of the results file")
    return [diagnostics[index[r.line]] for r in results]


def _check_pair(result: PoseResult, entry: Mapping[str, Any], results_file: str | None, diagnostics_file: str | None) -> None:
    ids = (result.scene_id, result.im_id, result.obj_id)
    theirs = tuple(entry.get(k) for k in REQUIRED_DIAGNOSTICS_KEYS)
    if theirs != ids:
        raise ValueError(f"diagnostics {diagnostics_file or '<diagnostics>'}:{entry.get('line', '?')}: scene/im/obj {theirs} "
                         f"does not match results {results_file or '<results>'}:{result.line} {ids}")


# --- the breakdown -------------------------------------------------------------------------

def _image_width_px(image: BopImage) -> int:
    try:
        with Image.open(image.image_path) as im:
            return int(im.size[0])
    except (OSError, ValueError):
        return int(MSPD_REFERENCE_WIDTH_PX)


def compute_breakdown(dataset: BopDataset, results: Sequence[PoseResult],
                      diagnostics: Sequence[Mapping[str, Any]] | None = None, *, results_file: str | Path | None = None,
                      diagnostics_file: str | Path | None = None,
                      max_symmetry_step_rad: float = MAX_SYMMETRY_STEP_RAD) -> Breakdown:
    """The breakdown of `results` (metres) on `dataset`'s targets.

    diagnostics: one entry per result, same order (`join_diagnostics`); ValueError names the
    diagnostics line whose scene/im/obj differ from its result's. Raises ValueError when the
    dataset has no targets.
    """
    if not dataset.targets:
        raise ValueError(f"BOP dataset {dataset.root}: no evaluation targets in {dataset.split_dir}")
    results_file = None if results_file is None else str(results_file)
    diagnostics_file = None if diagnostics_file is None else str(diagnostics_file)
    if diagnostics is not None:
        if len(diagnostics) != len(results):
            raise ValueError(f"diagnostics: {len(diagnostics)} entries for {len(results)} results")
        for result, entry in zip(results, diagnostics):
            _check_pair(result, entry, results_file, diagnostics_file)
    by_key: dict[tuple[int, int, int], list[int]] = {}
    skipped = 0
    for i, r in enumerate(results):
        T = np.asarray(r.T_cam_obj, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)) or not is_rotation(T[:3, :3], atol=ROTATION_ATOL):
            skipped += 1
            continue
        by_key.setdefault((r.scene_id, r.im_id, r.obj_id), []).append(i)

    caches: dict[int, tuple[ObjectGeometry, float]] = {}
    rows: list[TargetBreakdown] = []
    for target in sorted(dataset.targets, key=lambda t: (t.scene_id, t.im_id, t.obj_id)):
        if target.obj_id not in caches:
            caches[target.obj_id] = (ObjectGeometry.of(dataset.object_library([target.obj_id]).get(target.obj_id),
                                                       max_symmetry_step_rad), dataset.diameter_m(target.obj_id))
        geometry, diameter = caches[target.obj_id]
        points, hull, syms = geometry.points_m, geometry.hull_m, geometry.symmetries
        image = dataset.image(target.scene_id, target.im_id)
        gt_indices = [i for i, g in enumerate(image.gt) if g.obj_id == target.obj_id]
        valid = valid_gt_mask([image.gt[i].visib_fract for i in gt_indices], target.inst_count)
        candidates = by_key.get((target.scene_id, target.im_id, target.obj_id), [])
        width = _image_width_px(image) if candidates else 0
        for g in np.flatnonzero(valid):
            base = dict(scene_id=target.scene_id, im_id=target.im_id, obj_id=target.obj_id, gt_index=gt_indices[g],
                        diameter_m=diameter)
            if not candidates:
                rows.append(TargetBreakdown(**base))
                continue
            T_gt = image.gt[gt_indices[g]].T_cam_obj
            errors = [mssd(results[i].T_cam_obj, T_gt, hull, syms) for i in candidates]
            best = candidates[int(np.argmin(errors))]
            T_est = np.asarray(results[best].T_cam_obj, dtype=np.float64)
            rows.append(TargetBreakdown(
                **base, result_line=results[best].line, score=float(results[best].score),
                rotation_error_deg=symmetric_rotation_error_deg(T_est[:3, :3], T_gt[:3, :3], syms),
                depth_error=depth_error(T_est[:3, 3], T_gt[:3, 3]), plane_error_m=plane_error_m(T_est[:3, 3], T_gt[:3, 3]),
                mssd_m=float(min(errors)), mspd_px=mspd(T_est, T_gt, points, syms, image.K, width),
                diagnostics=None if diagnostics is None else diagnostics[best]))

    with_diagnostics = diagnostics is not None
    objects = tuple(_stats(o, [r for r in rows if r.obj_id == o], with_diagnostics) for o in sorted({r.obj_id for r in rows}))
    return Breakdown(str(dataset.root), dataset.split_dir.name, results_file, diagnostics_file, len(results), skipped,
                     objects, _stats(None, rows, with_diagnostics), tuple(rows))


def breakdown_results_file(dataset: BopDataset, results_path: str | Path,
                           diagnostics_path: str | Path | None = None) -> Breakdown:
    """Read a results CSV (bad rows are left out, as `evaluate` does) and optional diagnostics, and break them down."""
    results, _ = read_results_csv(results_path)
    diagnostics = None
    if diagnostics_path is not None:
        diagnostics = join_diagnostics(results, read_diagnostics(diagnostics_path), csv_data_lines(results_path),
                                       diagnostics_path)
    return compute_breakdown(dataset, results, diagnostics, results_file=results_path, diagnostics_file=diagnostics_path)


def _percentile(values: Sequence[float], q: float) -> float | None:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return None
    value = float(np.percentile(array, q))
    return value if not math.isnan(value) else float(np.percentile(array, q, method="higher"))  # inf − inf


def _share(flags: Sequence[bool]) -> float | None:
    return float(np.mean(flags)) if len(flags) else None


def _stats(obj_id: int | None, rows: Sequence[TargetBreakdown], with_diagnostics: bool) -> BreakdownStats:
    done = [r for r in rows if not r.missing]
    rot = [r.rotation_error_deg for r in done]
    depth_pct = [100.0 * r.depth_error for r in done]
    return BreakdownStats(
        obj_id, len(rows), len(rows) - len(done), *(_percentile(rot, q) for q in (25, 50, 75, 90)),
        _share([e > FLIP_DEG for e in rot]), _share([e <= 15.0 for e in rot]), _share([e <= 30.0 for e in rot]),
        _percentile(depth_pct, 50), _percentile(depth_pct, 75), _percentile([r.plane_error_m / M_PER_MM for r in done], 50),
        _share([r.mssd_m < 0.1 * r.diameter_m for r in done]), _share([r.mssd_m < 0.2 * r.diameter_m for r in done]),
        _percentile([r.mspd_px for r in done], 50),
        _diagnostics_stats(done) if with_diagnostics else None)


def _diagnostics_stats(done: Sequence[TargetBreakdown]) -> DiagnosticsStats:
    joined = [(r, r.diagnostics) for r in done if r.diagnostics is not None]
    ranked = [(r, d["gt_view_rank"]) for r, d in joined if d.get("gt_view_rank") is not None]
    kinds = [str(d["source"]).split(":")[0] for _, d in joined if d.get("source") is not None]
    chosen = [d["chosen_rank"] for _, d in joined if d.get("chosen_rank") is not None]
    inliers = [d["inliers"] for _, d in joined if d.get("inliers") is not None]
    rank0 = _share([c == 0 for c in chosen])
    return DiagnosticsStats(
        len(joined), len(ranked), _share([k == 0 for _, k in ranked]), _share([k < 3 for _, k in ranked]),
        {kind: kinds.count(kind) / len(kinds) for kind in sorted(set(kinds))}, _share(["fallback" in k for k in kinds]),
        rank0, None if rank0 is None else 1.0 - rank0, *(_percentile(inliers, q) for q in (10, 50, 90)),
        _share([r.flip for r, k in ranked if k == 0]), _share([r.flip for r, k in ranked if k != 0]))


# --- outputs -------------------------------------------------------------------------------

"""Evaluate pose results on a BOP dataset: validate each result, compute its errors, score AR.

Nothing stops at a bad result: each one that cannot be evaluated becomes an InputProblem
naming the results file and line, and the rest is evaluated. Errors follow
`bop/metrics.py` (metres, pixels); AR follows `bop/scoring.py`. An image without depth has
no VSD; a scene with a depth folder that lacks an image's depth file gives a problem too.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from novel_pose_ros.bop.dataset import BopDataset, BopImage, Target
from novel_pose_ros.bop.metrics import (
    BOP_RENDER_PIXEL_OFFSET_PX,
    MAX_SYMMETRY_STEP_RAD,
    MSPD_REFERENCE_WIDTH_PX,
    VSD_DELTA_M,
    ObjectGeometry,
    mspd,
    mssd,
    render_depth_m,
    vsd,
)
from novel_pose_ros.bop.results import InputProblem, PoseResult, read_results_csv
from novel_pose_ros.bop.scoring import ARRow, ARThresholds, TargetErrors, average_recall, top_estimates, valid_gt_mask
from novel_pose_ros.geometry.se3 import is_rotation
from novel_pose_ros.types import ObjectModel

TargetKey = tuple[int, int, int]  # (scene_id, im_id, obj_id)
# Real BOP annotations are not exactly orthonormal (LM-O test scene 2 image 3, object 8:
# |RᵀR − I| = 1.9e-3, det − 1 = 2.9e-3): accept such R, reject anything further off.
ROTATION_ATOL = 1e-2


@dataclass(frozen=True)
class EvalSettings:
    """BOP19 defaults. vsd_delta_m: visibility tolerance (0.005 for ITODD)."""

    thresholds: ARThresholds = ARThresholds()
    vsd_delta_m: float = VSD_DELTA_M
    max_symmetry_step_rad: float = MAX_SYMMETRY_STEP_RAD
    render_pixel_offset_px: float = BOP_RENDER_PIXEL_OFFSET_PX  # see metrics.render_depth_m

    def __post_init__(self) -> None:
        if not (self.vsd_delta_m > 0 and self.max_symmetry_step_rad > 0):
            raise ValueError(f"EvalSettings: vsd_delta_m and max_symmetry_step_rad must be positive, got {self}")


@dataclass(frozen=True)
class EvalReport:
    """The outcome of one evaluation.

    objects: one AR row per object with targets; overall: the dataset row (all targets).
    results_given: results passed in (after CSV parsing); results_on_targets: those for an
    (image, object) target (only the top inst_count by score count in AR);
    results_not_on_targets: valid results for an object without a target in its image
    (ignored, as BOP does). images: images with targets; images_with_depth: those with
    usable depth (VSD). mean_time_per_image_s: over images whose results give a time ≥ 0.
    problems: every skipped result or missing file, with where and why.
    """

    dataset_root: str
    split: str
    results_file: str | None
    renderer: str | None
    objects: tuple[ARRow, ...]
    overall: ARRow
    results_given: int
    results_on_targets: int
    results_not_on_targets: int
    images: int
    images_with_depth: int
    mean_time_per_image_s: float | None
    problems: tuple[InputProblem, ...]
    settings: EvalSettings = field(default_factory=EvalSettings)

    @property
    def evaluated(self) -> bool:
        """True when at least one result was evaluated against a target."""
        return self.results_on_targets > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (rows carry their `ar_label`)."""
        def row(r: ARRow) -> dict[str, Any]:
            return {**asdict(r), "ar_terms": list(r.ar_terms), "ar_label": r.ar_label}

        data = {f: getattr(self, f) for f in (
            "dataset_root", "split", "results_file", "renderer", "results_given", "results_on_targets",
            "results_not_on_targets", "images", "images_with_depth", "mean_time_per_image_s")}
        data["overall"] = row(self.overall)
        data["objects"] = [row(r) for r in self.objects]
        data["problems"] = [{"where": p.where, "reason": p.reason} for p in self.problems]
        data["settings"] = asdict(self.settings)
        return data

    def to_json(self, indent: int = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def _check_result(result: PoseResult, dataset: BopDataset, known_obj_ids: set[int]) -> str | None:
    """Why `result` cannot be evaluated, or None."""
    T = np.asarray(result.T_cam_obj, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        return "non-finite value in R or t" if T.shape == (4, 4) else f"pose: expected shape (4, 4), got {T.shape}"
    if not is_rotation(T[:3, :3], atol=ROTATION_ATOL):
        return f"R is not a rotation matrix (|RᵀR − I| or |det R − 1| above {ROTATION_ATOL:g})"
    if not np.isfinite(result.score):
        return "non-finite score"
    if not np.isfinite(result.time_s):
        return "non-finite time"
    if result.im_id not in dataset.scenes.get(result.scene_id, {}):
        return f"missing image: scene {result.scene_id} image {result.im_id} is not in {dataset.split_dir}"
    if result.obj_id not in known_obj_ids:
        known = ", ".join(str(i) for i in sorted(known_obj_ids))
        return f"unknown obj_id {result.obj_id} (the dataset's models: {known})"
    return None


def _problem_order(problem: InputProblem, results_file: str | None) -> tuple[int, int]:
    """Problems of the results file first, by line; then the others in the order found."""
    prefix = f"{results_file or '<results>'}:"
    line = problem.where[len(prefix):]
    return (0, int(line)) if problem.where.startswith(prefix) and line.isdigit() else (1, 0)


def _image_width(image: BopImage, depth_m: np.ndarray | None) -> int | None:
    if depth_m is not None:
        return int(depth_m.shape[1])
    try:
        with Image.open(image.image_path) as im:
            return int(im.size[0])
    except (OSError, ValueError):
        return None


class _Evaluator:
    def __init__(self, dataset: BopDataset, renderer, settings: EvalSettings, results_file: str | None) -> None:
        self.dataset = dataset
        self.renderer = renderer
        self.settings = settings
        self.results_file = results_file
        self.problems: list[InputProblem] = []
        self._objects: dict[int, ObjectGeometry] = {}

    def where(self, result: PoseResult) -> str:
        return f"{self.results_file or '<results>'}:{result.line}"

    def object_cache(self, obj_id: int) -> ObjectGeometry:
        if obj_id not in self._objects:
            self._objects[obj_id] = ObjectGeometry.of(self.dataset.object_library([obj_id]).get(obj_id),
                                                      self.settings.max_symmetry_step_rad)
        return self._objects[obj_id]

    def load_depth(self, image: BopImage, needed: bool) -> tuple[bool, np.ndarray | None]:
        """(has depth, depth in metres if loaded). Loads only when `needed`."""
        if image.depth_path is None:
            if image.depth_expected:
                self.problems.append(InputProblem(
                    str(self.dataset.split_dir / f"{image.scene_id:06d}" / "depth" / f"{image.im_id:06d}.png"),
                    "depth image missing: no VSD for this image"))
            return False, None
        if not needed:
            return True, None
        try:
            return True, image.load_depth_m()
        except (FileNotFoundError, OSError, ValueError) as exc:
            self.problems.append(InputProblem(str(image.depth_path), f"{exc}: no VSD for this image"))
            return False, None

    def target_errors(self, image: BopImage, target: Target, estimates: list[PoseResult],
                      depth_m: np.ndarray | None, has_depth: bool, width: int, gt_depths: dict[int, np.ndarray]) -> TargetErrors:
        gt_indices = [i for i, g in enumerate(image.gt) if g.obj_id == target.obj_id]
        valid = valid_gt_mask([image.gt[i].visib_fract for i in gt_indices], target.inst_count)
        shape = (len(estimates), len(gt_indices))
        taus = self.settings.thresholds.vsd_taus
        errors_mssd, errors_mspd = np.full(shape, np.inf), np.full(shape, np.inf)
        errors_vsd = np.full(shape + (len(taus),), np.inf) if has_depth else None
        scores = np.array([r.score for r in estimates], dtype=np.float64)
        diameter = self.dataset.diameter_m(target.obj_id)
        top = top_estimates(scores, target.inst_count)
        if len(top):
            cache = self.object_cache(target.obj_id)
            for e in top:
                T_est = np.asarray(estimates[e].T_cam_obj, dtype=np.float64)
                depth_est = None
                for g in np.flatnonzero(valid):
                    T_gt = image.gt[gt_indices[g]].T_cam_obj
                    errors_mssd[e, g] = mssd(T_est, T_gt, cache.hull_m, cache.symmetries)
                    errors_mspd[e, g] = mspd(T_est, T_gt, cache.points_m, cache.symmetries, image.K, width)
                    if errors_vsd is None or depth_m is None:
                        continue
                    if depth_est is None:
                        depth_est = self.render(cache.obj, T_est, image.K, depth_m.shape)
                    if gt_indices[g] not in gt_depths:
                        gt_depths[gt_indices[g]] = self.render(cache.obj, T_gt, image.K, depth_m.shape)
                    errors_vsd[e, g] = vsd(depth_est, gt_depths[gt_indices[g]], depth_m, image.K, diameter, taus,
                                           self.settings.vsd_delta_m)
        return TargetErrors(target.scene_id, target.im_id, target.obj_id, target.inst_count, diameter,
                            scores, valid, errors_mssd, errors_mspd, errors_vsd)

    def render(self, obj: ObjectModel, T_cam_obj: np.ndarray, K: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """(H, W) depth of obj alone, shape = (H, W) of the test depth."""
        if self.renderer is None:
            from novel_pose_ros.render import create_renderer

            self.renderer = create_renderer("auto")
        height, width = shape
        return render_depth_m(self.renderer, obj, T_cam_obj, K, width, height, self.settings.render_pixel_offset_px)


def evaluate(
    dataset: BopDataset,
    results: Sequence[PoseResult],
    renderer=None,
    *,
    problems: Sequence[InputProblem] = (),
    results_file: str | Path | None = None,
    settings: EvalSettings = EvalSettings(),
) -> EvalReport:
    """Evaluate `results` (metres) on every target of `dataset`.

    renderer: a Renderer for the VSD depth renders (created with create_renderer("auto")
    when some image has depth and none is given). problems: those found while reading the
    results (kept first in the report). results_file names the file in new problems
    (`file:line`, from PoseResult.line). Raises ValueError when the dataset has no targets.
    """
    if not dataset.targets:
        raise ValueError(f"BOP dataset {dataset.root}: no evaluation targets in {dataset.split_dir}")
    results_file = None if results_file is None else str(results_file)
    evaluator = _Evaluator(dataset, renderer, settings, results_file)
    evaluator.problems.extend(problems)
    targets = {(t.scene_id, t.im_id, t.obj_id): t for t in dataset.targets}
    known_obj_ids = {int(k) for k in dataset.models_info}

    by_target: dict[TargetKey, list[PoseResult]] = {}
    image_times: dict[tuple[int, int], tuple[float, str]] = {}
    not_on_targets = 0
    for result in results:
        reason = _check_result(result, dataset, known_obj_ids)
        if reason is not None:
            evaluator.problems.append(InputProblem(evaluator.where(result), reason))
            continue
        image_key = (result.scene_id, result.im_id)
        first = image_times.setdefault(image_key, (float(result.time_s), evaluator.where(result)))
        if not np.isclose(first[0], result.time_s, rtol=1e-6, atol=1e-6):
            evaluator.problems.append(InputProblem(evaluator.where(result), (
                f"time {result.time_s:g} s differs from {first[0]:g} s at {first[1]} for the same image "
                "(BOP wants one time per image); the first is used")))
        key = (result.scene_id, result.im_id, result.obj_id)
        if key in targets:
            by_target.setdefault(key, []).append(result)
        else:
            not_on_targets += 1

    targets_by_image: dict[tuple[int, int], list[Target]] = {}
    for target in dataset.targets:
        targets_by_image.setdefault((target.scene_id, target.im_id), []).append(target)
    all_errors: list[TargetErrors] = []
    images_with_depth = 0
    for image in dataset.target_images():
        image_targets = targets_by_image[(image.scene_id, image.im_id)]
        estimated = any((t.scene_id, t.im_id, t.obj_id) in by_target for t in image_targets)
        has_depth, depth_m = evaluator.load_depth(image, needed=estimated)
        images_with_depth += int(has_depth)
        width = MSPD_REFERENCE_WIDTH_PX
        if estimated:
            measured = _image_width(image, depth_m)
            if measured is None:
                evaluator.problems.append(InputProblem(
                    str(image.image_path), f"cannot read the image size; MSPD assumes a width of {MSPD_REFERENCE_WIDTH_PX:g} px"))
            width = measured or width
        gt_depths: dict[int, np.ndarray] = {}
        for target in image_targets:
            estimates = by_target.get((target.scene_id, target.im_id, target.obj_id), [])
            all_errors.append(evaluator.target_errors(image, target, estimates, depth_m, has_depth, int(width), gt_depths))

    scores = average_recall(all_errors, settings.thresholds)
    known_times = {k: v[0] for k, v in image_times.items() if v[0] >= 0}

    def mean_time(obj_id: int | None) -> float | None:
        keys = {(t.scene_id, t.im_id) for t in dataset.targets if obj_id is None or t.obj_id == obj_id}
        values = [known_times[k] for k in keys if k in known_times]
        return float(np.mean(values)) if values else None

    all_times = list(known_times.values())
    return EvalReport(
        dataset_root=str(dataset.root),
        split=dataset.split_dir.name,
        results_file=results_file,
        renderer=getattr(evaluator.renderer, "name", None),
        objects=tuple(replace(row, mean_time_per_image_s=mean_time(row.obj_id)) for row in scores.objects),
        overall=replace(scores.overall, mean_time_per_image_s=float(np.mean(all_times)) if all_times else None),
        results_given=len(results),
        results_on_targets=sum(len(v) for v in by_target.values()),
        results_not_on_targets=not_on_targets,
        images=len(dataset.target_images()),
        images_with_depth=images_with_depth,
        mean_time_per_image_s=float(np.mean(all_times)) if all_times else None,
        problems=tuple(sorted(evaluator.problems, key=lambda p: _problem_order(p, results_file))),
        settings=settings,
    )


def evaluate_results_file(
    dataset: BopDataset, results_path: str | Path, renderer=None, settings: EvalSettings = EvalSettings()
) -> EvalReport:
    """Read a BOP results CSV (bad lines become problems) and evaluate it."""
    results, problems = read_results_csv(results_path)
    return evaluate(dataset, results, renderer, problems=problems, results_file=results_path, settings=settings)

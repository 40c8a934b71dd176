"""PicoPose's three stages on one frame's query crops, batched over detections × hypotheses.

Stage 1 scores every template of a detection's object with the query's last backbone map
and keeps the top `templates_considered`; stage 2 regresses a 2D affine per (query, template) pair, and
with a detection mask the `hypotheses` templates whose mask, carried into the query crop by that affine,
best overlaps the detection mask go on (stage 1's order alone without a mask); stage 3
predicts dense flow + certainty on the 64×64 grid, which becomes 2D–3D correspondences and
a pose through EPnP + RANSAC per hypothesis. Among hypotheses with at least `min_inliers` inliers,
the one of highest inlier ratio (PicoPose) or count wins here, and with the silhouette rule the
Estimator re-decides among them by rendering (verification.py); when no PnP succeeds, the stage-2
affine of the best-scored template gives the pose.

`rules` (official_picopose.OFFICIAL_RULES; all of them under picopose_mode official) follow the official
code where ours departs from it: stage-1 scoring, float32 template features, template centre, unclipped
scale, correspondence gather and fallback pose (estimation/official_picopose.py).
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from novel_pose_ros.estimation.config import EstimatorConfig
from novel_pose_ros.estimation.correspondences import (
    affine_fallback_pose,
    affine_to_pixel_centres,
    dense_correspondences,
    targets_from_flow,
)
from novel_pose_ros.estimation.correspondences import Correspondences
from novel_pose_ros.estimation.crops import QueryCrop
from novel_pose_ros.estimation.depth_correspondences import DepthImage, pose_from_rgbd_correspondences
from novel_pose_ros.estimation.diagnosis import (
    Oracle,
    StageDiagnostics,
    nearest_template,
    oracle_ordering,
    rank_of,
    true_cos_sin,
)
from novel_pose_ros.estimation.official_picopose import (
    OFFICIAL_RULES,
    as_3x3,
    official_correspondences,
    official_crop_matrix,
    official_fallback_pose,
    official_grid_pixels,
    official_stage1_scores,
    official_template_centres,
)
from novel_pose_ros.estimation.template_bank import TemplateBank, patch_grid_mask
from novel_pose_ros.estimation.template_features import TemplateFeatures, load_or_compute_features, unit_patches
from novel_pose_ros.estimation.verification import SilhouetteAgreement, warped_template_iou
from novel_pose_ros.networks.picopose.affine_regressor import AffinePrediction, affine_from_prediction
from novel_pose_ros.networks.picopose.config import PATCH_GRID
from novel_pose_ros.networks.picopose.flow_decoder import initial_flow
from novel_pose_ros.networks.picopose.preprocessing import to_network_input
from novel_pose_ros.runtime import InferenceBackend, run_in_chunks
from novel_pose_ros.types import PoseHypothesis

# Guards against degenerate stage-2 scales (e.g. from untrained weights); real ones are near 1
# because both crops are normalised to the object's box.
SCALE_RANGE = (0.1, 10.0)


@dataclass(frozen=True)
class ObjectTemplates:
    """What the stages need of one object: its template bank and cached template features.

    object_patches (P, C): the unit patch vectors of every template's object patches, template after
    template (our stage 1 reads only these); first_patch (N,): row of each template's first object patch
    (a template with none starts where the next one does); centres (N, 2) float32: the template centre
    stage 2's affine is built around (ours: the projected origin in the network's corner convention;
    official: `tem_M · K · t / t_z`).
    """

    bank: TemplateBank
    features: TemplateFeatures
    official_centre: bool = False
    object_patches: np.ndarray = field(init=False, repr=False)
    first_patch: np.ndarray = field(init=False, repr=False)
    centres: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        centres = (official_template_centres(self.bank.T_cam_obj, self.bank.K, self.bank.M_crop_img)
                   if self.official_centre else self.bank.centre_crop_px + 0.5)  # ours: integer-centred -> corner origin
        object.__setattr__(self, "centres", np.asarray(centres, dtype=np.float32))
        on_object = self.bank.patch_mask.reshape(len(self.bank), -1) > 0
        counts = on_object.sum(axis=1)
        object.__setattr__(self, "object_patches", np.ascontiguousarray(self.features.unit_patches[on_object]))
        object.__setattr__(self, "first_patch", np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64))


@dataclass(frozen=True)
class DetectionOutcome:
    """The chosen pose of one query crop and every hypothesis considered; agreements: the silhouette
    agreement of each of the first len(agreements) hypotheses, once verified (estimation/verification.py)."""

    detection_index: int
    T_cam_obj: np.ndarray
    source: str  # "pnp" or "affine_fallback"
    inlier_ratio: float
    hypotheses: tuple[PoseHypothesis, ...]
    diagnostics: StageDiagnostics | None = None
    agreements: tuple[SilhouetteAgreement, ...] = ()


def score_templates(query_unit: np.ndarray, query_patch_mask: np.ndarray, templates: ObjectTemplates) -> np.ndarray:
    """Stage 1: (N,) template scores = Σ over masked query patches of the best cosine similarity
    with the template's object patches, / 256.

    query_unit: (256, C) unit patch vectors; query_patch_mask: (256,) 0/1. Template patches off the
    object are ignored (PicoPose takes all of them; background patches of a black render only add
    spurious matches), and so are query patches outside the mask, which add nothing to a score: one
    2-D GEMM of the object patches with the masked query patches, then a max per template.
    """
    n = len(templates.bank)
    rows = query_patch_mask > 0
    if not rows.any():
        return np.zeros(n)
    sim = templates.object_patches @ query_unit[rows].T  # (P, Q)
    best = np.full((n, int(rows.sum())), -1.0, dtype=sim.dtype)  # a template without object patches
    has_patches = np.diff(np.append(templates.first_patch, len(sim))) > 0
    if has_patches.any():
        best[has_patches] = np.maximum.reduceat(sim, templates.first_patch[has_patches], axis=0)
    return (best * query_patch_mask[rows]).sum(axis=1) / query_unit.shape[0]


class PicoPoseStages:
    """Runs the stages for a frame with a given inference backend."""

    def __init__(self, backend: InferenceBackend, config: EstimatorConfig, rules: frozenset[str] = frozenset()) -> None:
        unknown = set(rules) - set(OFFICIAL_RULES)
        if unknown:
            raise ValueError(f"unknown official rules {sorted(unknown)} (known: {', '.join(OFFICIAL_RULES)})")
        self.backend = backend
        self.config = config
        self.rules = frozenset(rules)
        self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="pnp")
        # the mask pre-selection is ours: the official rules' template centre puts the affine in other coordinates
        self.templates_considered = (config.hypotheses if "template_centre" in self.rules
                                     else max(config.templates_considered, config.hypotheses))

    def templates(self, bank: TemplateBank, folder: Path) -> ObjectTemplates:
        """Onboarding: the bank and its template features (cached in the template folder, per weights)."""
        features = load_or_compute_features(bank, folder, self.backend, self.config.network, self.config.max_batch,
                                            float32="float32_features" in self.rules)
        return ObjectTemplates(bank, features, "template_centre" in self.rules)

    def run(
        self, crops: list[QueryCrop], objects: dict[str, ObjectTemplates], K: np.ndarray, timings: dict[str, float],
        truths: list[np.ndarray | None] | None = None, oracle: Oracle = Oracle(), depth: DepthImage | None = None,
    ) -> list[DetectionOutcome]:
        """Outcomes for every crop (same order); per-stage wall time is added to `timings`. depth: the frame's
        cleaned depth, to solve correspondences with valid depth by a 3D–3D fit (depth_correspondences.py).

        truths: for diagnosis only (estimation/diagnosis.py), the true T_cam_obj of each crop (or None):
        the outcomes then carry the GT-nearest template's stage-1 rank, and `oracle` may replace stage
        outputs by the truth."""
        if not crops:
            return []
        cfg = self.config
        truths = truths if truths is not None else [None] * len(crops)
        tick = time.perf_counter()
        maps = run_in_chunks(self.backend, "backbone", {"image": to_network_input(np.stack([c.rgb for c in crops]))}, cfg.max_batch)
        tick = lap(timings, "backbone", tick)
        # the DPT head's query features belong to stage 3 (as in PicoPose), so they count there
        query_feats = run_in_chunks(self.backend, "dpt", {"map1": maps[1], "map2": maps[2], "map3": maps[3]}, cfg.max_batch)
        tick = lap(timings, "stage3", tick)

        # Stage 1: top-N templates per detection.
        query_units = unit_patches(maps[3])
        pairs: list[tuple[int, int, float]] = []  # (crop slot, template view, stage-1 score)
        gt_views: list[tuple[int, int, float] | None] = []  # (view, stage-1 rank, angle °) per crop
        for slot, crop in enumerate(crops):
            mask = (patch_grid_mask(crop.mask, PATCH_GRID).reshape(-1) if crop.mask is not None
                    else np.ones(PATCH_GRID * PATCH_GRID, np.float32))
            templates = objects[crop.object_name]
            scores = (official_stage1_scores(query_units[slot], mask, templates.features.unit_patches)
                      if "stage1" in self.rules else score_templates(query_units[slot], mask, templates))
            ordering = np.argsort(-scores, kind="stable")
            gt_views.append(None)
            if truths[slot] is not None:
                view, angle = nearest_template(truths[slot], objects[crop.object_name].bank.T_cam_obj)
                gt_views[slot] = (view, rank_of(view, ordering), angle)
                if oracle.template:
                    ordering = oracle_ordering(ordering, view)
            pairs += [(slot, int(view), float(scores[view])) for view in ordering[: self.templates_considered]]
        tick = lap(timings, "stage1", tick)

        # Stage 2: one affine per pair.
        slots = np.array([p[0] for p in pairs])
        banks = [objects[crops[s].object_name] for s, _, _ in pairs]
        views = [v for _, v, _ in pairs]
        template_map3 = np.stack([b.features.map3[v] for b, v in zip(banks, views)])
        mask16 = np.stack([b.bank.patch_mask[v] for b, v in zip(banks, views)])
        translation, scale, cos_sin = run_in_chunks(self.backend, "affine", {
            "query_map": maps[3][slots], "template_map": template_map3, "template_patch_mask": mask16}, cfg.max_batch)
        centres = np.stack([b.centres[v] for b, v in zip(banks, views)])
        if oracle.inplane:
            cos_sin = cos_sin.copy()
            for i, (slot, view, _) in enumerate(pairs):
                if truths[slot] is not None:
                    cos_sin[i] = true_cos_sin(truths[slot], banks[i].bank.T_cam_obj[view])
        if "no_scale_clip" not in self.rules:
            scale = np.clip(scale, *SCALE_RANGE)
        # with depth, stage 1's own best go on: the mask pre-selection cost AR there (synthetic Kinect 0.589 -> 0.571)
        if self.templates_considered > cfg.hypotheses and depth is None:
            affines = affine_from_prediction(AffinePrediction(*(torch.from_numpy(a) for a in (translation, scale, cos_sin))),
                                             torch.from_numpy(centres.astype(np.float32))).numpy()
            keep = self._preselect(crops, pairs, banks, affines, oracle.template)
            translation, scale, cos_sin, centres, mask16, slots = (a[keep] for a in (translation, scale, cos_sin, centres,
                                                                                    mask16, slots))
            pairs, banks, views = ([seq[i] for i in keep] for seq in (pairs, banks, views))
        turns = cfg.inplane_hypotheses
        if turns > 1:  # every pair also with its in-plane angle turned by k·360°/turns (k = 1 … turns − 1)
            expand, k = np.repeat(np.arange(len(pairs)), turns), np.tile(np.arange(turns), len(pairs))
            cos_sin = turned_cos_sin(cos_sin[expand], 2.0 * np.pi * k / turns)
            translation, scale, centres, mask16, slots = (a[expand] for a in (translation, scale, centres, mask16, slots))
            pairs, banks, views = ([seq[i] for i in expand] for seq in (pairs, banks, views))
        prediction = AffinePrediction(torch.from_numpy(translation), torch.from_numpy(scale), torch.from_numpy(cos_sin))
        affines = affine_from_prediction(prediction, torch.from_numpy(centres.astype(np.float32)))
        flow0, certainty0 = initial_flow(affines, torch.from_numpy(mask16))
        tick = lap(timings, "stage2", tick)

        # Stage 3: dense flow for every pair.
        template_feats = {n: np.stack([getattr(b.features, f"feat{n}")[v] for b, v in zip(banks, views)]) for n in (16, 32, 64)}
        inputs = {f"template_feat{n}": template_feats[n] for n in (16, 32, 64)}
        inputs.update({f"query_feat{n}": query_feats[i][slots] for i, n in enumerate((16, 32, 64))})
        inputs.update({"init_flow": flow0.numpy(), "init_certainty": certainty0.numpy()})
        flows, certainty_logits = run_in_chunks(self.backend, "flow", inputs, cfg.max_batch)
        certainties = 1.0 / (1.0 + np.exp(-certainty_logits[:, 0]))
        tick = lap(timings, "stage3", tick)

        official_gather = "correspondences" in self.rules
        grid_pixels = {}  # official gather: each crop's dense grid in the image, made once per crop
        if official_gather:
            for slot in sorted(set(slots.tolist())):
                grid_pixels[slot] = official_grid_pixels(crops[slot].M_crop_img, flows.shape[-1], crops[slot].rgb.shape[0])

        def solve(i: int):
            targets, bank, view = targets_from_flow(flows[i]), banks[i].bank, pairs[i][1]
            if official_gather:
                corr = Correspondences(*official_correspondences(targets, certainties[i], bank.official_points_obj[view],
                                                                 grid_pixels[slots[i]], cfg.certainty_threshold))
            else:
                corr = dense_correspondences(targets, certainties[i], bank, view, crops[slots[i]].M_crop_img,
                                             cfg.certainty_threshold)
            # without depth this is exactly the EPnP + RANSAC of pose_from_correspondences
            return pose_from_rgbd_correspondences(corr, K, depth, cfg.pnp_reprojection_px, cfg.pnp_iterations,
                                                  cfg.depth_fit_threshold_m, cfg.min_inliers), len(corr.pixels)

        # OpenCV releases the GIL, so the hypotheses' RANSAC runs use every core
        results = list(self._pool.map(solve, range(len(pairs))))
        outcomes = [self._choose(slot, crop, pairs, banks, affines.numpy(), results, K, gt_views[slot], turns)
                    for slot, crop in enumerate(crops)]
        lap(timings, "pnp", tick)
        return outcomes

    def _preselect(self, crops: list[QueryCrop], pairs: list[tuple[int, int, float]], banks: list[ObjectTemplates],
                   affines: np.ndarray, keep_first: bool) -> list[int]:
        """Indices of the pairs that go on to stage 3, in stage-1 order: per crop with a detection mask, the
        `hypotheses` pairs whose template mask, carried into the query crop by the pair's stage-2 affine, overlaps
        the mask best (verification.warped_template_iou; ties: stage 1's order); without a mask, stage 1's best.
        keep_first: the crop's first pair always stays (the template oracle's GT-nearest view)."""
        count, keep = self.config.hypotheses, []
        for slot, crop in enumerate(crops):
            indices = [i for i, p in enumerate(pairs) if p[0] == slot]
            if crop.mask is None or len(indices) <= count:
                keep += indices[:count]
                continue
            ious = [warped_template_iou(banks[i].bank.mask[pairs[i][1]], affine_to_pixel_centres(affines[i]), crop.mask)
                    for i in indices]
            ranked = sorted(range(len(indices)), key=lambda j: (-ious[j], j))
            chosen = set(ranked[:count])
            if keep_first and 0 not in chosen:
                chosen.discard(ranked[count - 1])
                chosen.add(0)
            keep += [indices[j] for j in sorted(chosen)]
        return keep

    def _choose(self, slot, crop, pairs, banks, affines, results, K, gt_view, turns) -> DetectionOutcome:
        """The best PnP hypothesis by `hypothesis_key` among those with at least `min_inliers` inliers;
        with none, the stage-2 affine of stage 1's best template. `turns` in-plane variants per template."""
        hypotheses, best = [], None  # best: (key, index into pairs, template rank, source)
        indices = [i for i, p in enumerate(pairs) if p[0] == slot]
        for position, i in enumerate(indices):
            view, (result, count) = pairs[i][1], results[i]
            turn = position % turns
            source = f"{result.method}:view{view}" + (f"+turn{360 * turn // turns}" if turn else "")
            if result.success and len(result.inliers) >= self.config.min_inliers:
                hypotheses.append(PoseHypothesis(result.T_cam_obj, result.inlier_ratio, source, len(result.inliers), count,
                                                 pairs[i][2]))
                key = self.hypothesis_key(result)
                if best is None or key > best[0]:
                    best = (key, i, position // turns, source)
        truth = dict(zip(("gt_view", "gt_view_rank", "gt_view_angle_deg"), gt_view)) if gt_view else {}
        if best is not None:
            (result, count), rank, source = results[best[1]], best[2], best[3]
            view = pairs[best[1]][1]
            diagnostics = StageDiagnostics(source, view, rank, len(result.inliers), count,
                                           result.inlier_ratio, **truth)
            return DetectionOutcome(crop.detection_index, result.T_cam_obj, "pnp", result.inlier_ratio,
                                    tuple(hypotheses), diagnostics)
        first = indices[0]  # stage 1's best template
        view = pairs[first][1]
        T = self._fallback_pose(affines[first], banks[first].bank, view, crop, K)
        result, count = results[first]
        hypotheses.append(PoseHypothesis(T, 0.0, f"affine_fallback:view{view}", 0, count, pairs[first][2]))
        diagnostics = StageDiagnostics(f"affine_fallback:view{view}", view, 0, len(result.inliers), count, 0.0, **truth)
        return DetectionOutcome(crop.detection_index, T, "affine_fallback", 0.0, tuple(hypotheses), diagnostics)

    def _fallback_pose(self, affine: np.ndarray, bank: TemplateBank, view: int, crop: QueryCrop, K: np.ndarray) -> np.ndarray:
        """The pose of a stage-2 affine (network corner convention) alone: ours, or the official
        pose_recovery_2d_prediction (whose affine is in official crop coordinates, as its centres are)."""
        if "fallback_pose" in self.rules:
            return official_fallback_pose(as_3x3(affine), as_3x3(official_crop_matrix(crop.M_crop_img)), K,
                                          as_3x3(official_crop_matrix(bank.M_crop_img[view])), bank.K, bank.T_cam_obj[view])
        return affine_fallback_pose(affine_to_pixel_centres(affine), bank, view, crop.M_crop_img, K)

    def hypothesis_key(self, result) -> tuple[float, ...]:
        """What ranks PnP hypotheses (larger wins): PicoPose's inlier ratio, or the inlier count (also the
        pre-choice of the silhouette rule, which the Estimator then re-decides by rendering)."""
        if self.config.hypothesis_rule == "inlier_ratio":
            return (result.inlier_ratio, len(result.inliers))
        return (len(result.inliers), result.inlier_ratio)


def turned_cos_sin(cos_sin: np.ndarray, angle_rad: np.ndarray) -> np.ndarray:
    """(M, 2) float32 (cos, sin) of the angles of `cos_sin` (M, 2) plus angle_rad (M,)."""
    c, s = cos_sin[:, 0], cos_sin[:, 1]
    return np.stack([c * np.cos(angle_rad) - s * np.sin(angle_rad), s * np.cos(angle_rad) + c * np.sin(angle_rad)],
                    axis=1).astype(np.float32)


def lap(timings: dict[str, float], name: str, since: float) -> float:
    now = time.perf_counter()
    timings[name] = timings.get(name, 0.0) + now - since
    return now

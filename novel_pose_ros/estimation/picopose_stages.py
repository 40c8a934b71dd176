"""PicoPose's three stages on one frame's query crops, batched over detections × hypotheses.

Stage 1 scores every template of a detection's object with the query's last backbone map
and keeps the top N; stage 2 regresses a 2D affine per (query, template) pair; stage 3
predicts dense flow + certainty on the 64×64 grid, which becomes 2D–3D correspondences and
a pose through EPnP + RANSAC per hypothesis. The hypothesis with the highest inlier ratio
wins; when no PnP succeeds, the stage-2 affine of the best-scored template gives the pose.
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
    pose_from_correspondences,
    targets_from_flow,
)
from novel_pose_ros.estimation.crops import QueryCrop
from novel_pose_ros.estimation.template_bank import TemplateBank, patch_grid_mask
from novel_pose_ros.estimation.template_features import TemplateFeatures, load_or_compute_features, unit_patches
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
    template (stage 1 reads only these); first_patch (N,): row of each template's first object patch
    (a template with none starts where the next one does).
    """

    bank: TemplateBank
    features: TemplateFeatures
    object_patches: np.ndarray = field(init=False, repr=False)
    first_patch: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        on_object = self.bank.patch_mask.reshape(len(self.bank), -1) > 0
        counts = on_object.sum(axis=1)
        object.__setattr__(self, "object_patches", np.ascontiguousarray(self.features.unit_patches[on_object]))
        object.__setattr__(self, "first_patch", np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64))


@dataclass(frozen=True)
class DetectionOutcome:
    """The chosen pose of one query crop and every hypothesis considered."""

    detection_index: int
    T_cam_obj: np.ndarray
    source: str  # "pnp" or "affine_fallback"
    inlier_ratio: float
    hypotheses: tuple[PoseHypothesis, ...]


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

    def __init__(self, backend: InferenceBackend, config: EstimatorConfig) -> None:
        self.backend = backend
        self.config = config
        self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="pnp")

    def templates(self, bank: TemplateBank, folder: Path) -> ObjectTemplates:
        """Onboarding: the bank and its template features (cached in the template folder, per weights)."""
        return ObjectTemplates(bank, load_or_compute_features(bank, folder, self.backend, self.config.network,
                                                              self.config.max_batch))

    def run(
        self, crops: list[QueryCrop], objects: dict[str, ObjectTemplates], K: np.ndarray, timings: dict[str, float]
    ) -> list[DetectionOutcome]:
        """Outcomes for every crop (same order); per-stage wall time is added to `timings`."""
        if not crops:
            return []
        cfg = self.config
        tick = time.perf_counter()
        maps = run_in_chunks(self.backend, "backbone", {"image": to_network_input(np.stack([c.rgb for c in crops]))}, cfg.max_batch)
        tick = lap(timings, "backbone", tick)
        # the DPT head's query features belong to stage 3 (as in PicoPose), so they count there
        query_feats = run_in_chunks(self.backend, "dpt", {"map1": maps[1], "map2": maps[2], "map3": maps[3]}, cfg.max_batch)
        tick = lap(timings, "stage3", tick)

        # Stage 1: top-N templates per detection.
        query_units = unit_patches(maps[3])
        pairs: list[tuple[int, int, float]] = []  # (crop slot, template view, stage-1 score)
        for slot, crop in enumerate(crops):
            mask = (patch_grid_mask(crop.mask, PATCH_GRID).reshape(-1) if crop.mask is not None
                    else np.ones(PATCH_GRID * PATCH_GRID, np.float32))
            scores = score_templates(query_units[slot], mask, objects[crop.object_name])
            top = np.argsort(-scores, kind="stable")[: cfg.hypotheses]
            pairs += [(slot, int(view), float(scores[view])) for view in top]
        tick = lap(timings, "stage1", tick)

        # Stage 2: one affine per pair.
        slots = np.array([p[0] for p in pairs])
        banks = [objects[crops[s].object_name] for s, _, _ in pairs]
        views = [v for _, v, _ in pairs]
        template_map3 = np.stack([b.features.map3[v] for b, v in zip(banks, views)])
        mask16 = np.stack([b.bank.patch_mask[v] for b, v in zip(banks, views)])
        translation, scale, cos_sin = run_in_chunks(self.backend, "affine", {
            "query_map": maps[3][slots], "template_map": template_map3, "template_patch_mask": mask16}, cfg.max_batch)
        centres = np.stack([b.bank.centre_crop_px[v] for b, v in zip(banks, views)]) + 0.5  # network: corner origin
        prediction = AffinePrediction(torch.from_numpy(translation), torch.from_numpy(np.clip(scale, *SCALE_RANGE)),
                                      torch.from_numpy(cos_sin))
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

        def solve(i: int):
            corr = dense_correspondences(targets_from_flow(flows[i]), certainties[i], banks[i].bank, pairs[i][1],
                                         crops[slots[i]].M_crop_img, cfg.certainty_threshold)
            return pose_from_correspondences(corr, K, cfg.pnp_reprojection_px, cfg.pnp_iterations)

        # OpenCV releases the GIL, so the hypotheses' RANSAC runs use every core
        results = list(self._pool.map(solve, range(len(pairs))))
        outcomes = [self._choose(slot, crop, pairs, banks, affines.numpy(), results, K)
                    for slot, crop in enumerate(crops)]
        lap(timings, "pnp", tick)
        return outcomes

    def _choose(self, slot, crop, pairs, banks, affines, results, K) -> DetectionOutcome:
        hypotheses, best = [], None
        indices = [i for i, p in enumerate(pairs) if p[0] == slot]
        for i in indices:
            view, result = pairs[i][1], results[i]
            if result.success:
                hypotheses.append(PoseHypothesis(result.T_cam_obj, result.inlier_ratio, f"pnp:view{view}"))
                if best is None or result.inlier_ratio > best[1]:
                    best = (result.T_cam_obj, result.inlier_ratio)
        if best is not None:
            return DetectionOutcome(crop.detection_index, best[0], "pnp", best[1], tuple(hypotheses))
        first = indices[0]  # stage 1's best template
        view = pairs[first][1]
        T = affine_fallback_pose(affine_to_pixel_centres(affines[first]), banks[first].bank, view, crop.M_crop_img, K)
        hypotheses.append(PoseHypothesis(T, 0.0, f"affine_fallback:view{view}"))
        return DetectionOutcome(crop.detection_index, T, "affine_fallback", 0.0, tuple(hypotheses))


def lap(timings: dict[str, float], name: str, since: float) -> float:
    now = time.perf_counter()
    timings[name] = timings.get(name, 0.0) + now - since
    return now

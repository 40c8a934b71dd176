"""Co-op's coarse stage on one frame's query crops: every template scored by patch classification, PnP
from the best ones.

The "encoder" graph turns each query crop into 256 patch tokens (the templates' tokens are computed
once, at onboarding); the "match" graph gives, for each (query, template) pair, per query patch the
class over the template's 256 patches + "no match" and the in-patch offset (networks/coop/coarse_net.py).
A template's score is Co-op's S_t: the sum over query patches not classified "no match" of their
highest class probability (query patches outside the detection mask are left out, as PicoPose's
stage 1 does). The `hypotheses` best templates each give a pose: their matched patches become 2D–3D
correspondences (query patch centre in the image ↔ the template's object point under the matched
template pixel) solved by EPnP + RANSAC. The best-scored template whose PnP succeeds wins; when none
does, a similarity fitted to the best template's matches (or the identity: both crops frame the
object's box) gives the pose through correspondences.affine_fallback_pose.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from novel_pose_ros.estimation.config import EstimatorConfig
from novel_pose_ros.estimation.correspondences import (
    Correspondences,
    affine_fallback_pose,
    crop_pixels_to_cells,
)
from novel_pose_ros.estimation.crops import QueryCrop
from novel_pose_ros.estimation.depth_correspondences import DepthImage, pose_from_rgbd_correspondences
from novel_pose_ros.estimation.picopose_stages import DetectionOutcome, lap
from novel_pose_ros.estimation.template_bank import TemplateBank, patch_grid_mask
from novel_pose_ros.geometry.crop import invert_affine, transform_pixels
from novel_pose_ros.networks.coop.coarse_config import NUM_PATCHES
from novel_pose_ros.networks.coop.coarse_net import matches, patch_centres_px, template_scores
from novel_pose_ros.networks.picopose.config import IMAGE_SIZE, PATCH_GRID
from novel_pose_ros.networks.picopose.preprocessing import to_network_input
from novel_pose_ros.runtime import InferenceBackend, run_in_chunks
from novel_pose_ros.types import PoseHypothesis

# RANSAC inlier threshold in query-crop pixels (scaled to the image by the crop's zoom): the coarse
# correspondences are patch centres matched to within a fraction of a 14-px patch, so PicoPose's 2 px
# (for its 3.5-px flow cells) would reject most of them.
RANSAC_THRESHOLD_CROP_PX = 7.0
MIN_SIMILARITY_MATCHES = 3


@dataclass(frozen=True)
class CoarseTemplates:
    """One object's templates for the coarse stage: the bank (crops, 3D points on the 64×64 grid) and
    the encoder tokens of every template crop, (N, 256, D) float32."""

    bank: TemplateBank
    tokens: np.ndarray


@dataclass(frozen=True)
class PatchMatches:
    """The matched query patches of one (query, template) pair: query_xy (M, 2) query-crop pixels of the
    patch centres, template_xy (M, 2) template-crop pixels, probability (M,)."""

    query_xy: np.ndarray
    template_xy: np.ndarray
    probability: np.ndarray


def patch_matches(logits: np.ndarray, offsets: np.ndarray, query_patch_mask: np.ndarray) -> PatchMatches:
    """Matches of one pair (networks/coop/coarse_net.matches): logits (256, 257), offsets (256, 2) patch
    units, query_patch_mask (256,) 0/1."""
    index, template_xy, probability = matches(torch.from_numpy(logits), torch.from_numpy(offsets),
                                              torch.from_numpy(query_patch_mask))
    return PatchMatches(patch_centres_px()[index].numpy().astype(np.float64), template_xy.numpy().astype(np.float64),
                        probability.numpy())


def template_points(matches: PatchMatches, bank: TemplateBank, view: int) -> tuple[np.ndarray, np.ndarray]:
    """Object points under the matched template pixels (the nearest cell of the bank's 3D grid) and which
    matches have one (the pixel may land just off the object)."""
    grid = bank.points_obj.shape[1]
    cells = np.floor(crop_pixels_to_cells(matches.template_xy, grid, IMAGE_SIZE)).astype(np.int64)
    inside = np.all((cells >= 0) & (cells < grid), axis=1)
    cells = np.clip(cells, 0, grid - 1)
    valid = inside & bank.points_valid[view][cells[:, 1], cells[:, 0]]
    return bank.points_obj[view][cells[:, 1], cells[:, 0]].astype(np.float64), valid


class CoopCoarseStage:
    """Runs the coarse stage for a frame with a back end holding the "encoder" and "match" graphs."""

    def __init__(self, backend: InferenceBackend, config: EstimatorConfig) -> None:
        self.backend = backend
        self.config = config
        self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="coop-pnp")

    def templates(self, bank: TemplateBank, folder: Path | None = None) -> CoarseTemplates:
        """Onboarding: the encoder tokens of every template crop (computed, not cached: 42 encoder runs)."""
        tokens = run_in_chunks(self.backend, "encoder", {"image": to_network_input(bank.rgb)}, self.config.max_batch)[0]
        return CoarseTemplates(bank, tokens)

    def run(self, crops: list[QueryCrop], objects: dict[str, CoarseTemplates], K: np.ndarray,
            timings: dict[str, float], depth: DepthImage | None = None) -> list[DetectionOutcome]:
        """Outcomes for every crop (same order); wall time per stage is added to `timings`. depth: the frame's
        cleaned depth: matches with valid depth are solved by a 3D–3D fit (Co-op's RGB-D Kabsch) where it has
        the support."""
        if not crops:
            return []
        cfg = self.config
        tick = time.perf_counter()
        query_tokens = run_in_chunks(self.backend, "encoder", {"image": to_network_input(np.stack([c.rgb for c in crops]))},
                                     cfg.max_batch)[0]
        tick = lap(timings, "encoder", tick)
        scored = []
        for slot, crop in enumerate(crops):
            templates = objects[crop.object_name]
            n = len(templates.tokens)
            logits, offsets = run_in_chunks(self.backend, "match", {
                "query_tokens": np.repeat(query_tokens[slot:slot + 1], n, axis=0),
                "template_tokens": templates.tokens}, cfg.max_batch)
            mask = (patch_grid_mask(crop.mask, PATCH_GRID).reshape(-1) if crop.mask is not None
                    else np.ones(NUM_PATCHES, np.float32))
            scores = template_scores(torch.from_numpy(logits), torch.from_numpy(mask)).numpy()
            top = np.argsort(-scores, kind="stable")[: cfg.hypotheses]
            scored.append([(int(v), float(scores[v]), patch_matches(logits[v], offsets[v], mask)) for v in top])
        tick = lap(timings, "match", tick)
        outcomes = list(self._pool.map(lambda item: self._solve(*item, K, depth), zip(crops, scored, [
            objects[c.object_name].bank for c in crops])))
        lap(timings, "pnp", tick)
        return outcomes

    def _solve(self, crop: QueryCrop, top: list[tuple[int, float, PatchMatches]], bank: TemplateBank,
               K: np.ndarray, depth: DepthImage | None = None) -> DetectionOutcome:
        cfg = self.config
        to_image = invert_affine(crop.M_crop_img)
        zoom = float(np.sqrt(abs(np.linalg.det(to_image[:, :2]))))  # image px per crop px
        hypotheses, best = [], None
        for view, score, found in top:
            points, valid = template_points(found, bank, view)
            if valid.sum() < 4:
                continue
            correspondences = Correspondences(points[valid], transform_pixels(to_image, found.query_xy[valid]))
            # without depth this is exactly the EPnP + RANSAC of pose_from_correspondences
            result = pose_from_rgbd_correspondences(correspondences, K, depth, RANSAC_THRESHOLD_CROP_PX * zoom,
                                                    cfg.pnp_iterations, cfg.depth_fit_threshold_m, cfg.min_inliers)
            if result.success:
                source = f"coop:view{view}" + ("+rigid" if result.method == "rigid" else "")
                hypotheses.append(PoseHypothesis(result.T_cam_obj, score / NUM_PATCHES, source,
                                                 len(result.inliers), int(valid.sum()), score / NUM_PATCHES))
                if best is None:  # templates come best-scored first
                    best = (result.T_cam_obj, result.inlier_ratio)
        if best is not None:
            return DetectionOutcome(crop.detection_index, best[0], "coop_pnp", best[1], tuple(hypotheses))
        view, score, found = top[0]
        T = affine_fallback_pose(similarity(found), bank, view, crop.M_crop_img, K)
        hypotheses.append(PoseHypothesis(T, 0.0, f"coop_similarity_fallback:view{view}"))
        return DetectionOutcome(crop.detection_index, T, "coop_similarity_fallback", 0.0, tuple(hypotheses))


def similarity(matches: PatchMatches) -> np.ndarray:
    """2×3 similarity template crop → query crop fitted to the matches (RANSAC), the identity with too few."""
    if len(matches.query_xy) >= MIN_SIMILARITY_MATCHES:
        A, _ = cv2.estimateAffinePartial2D(matches.template_xy.astype(np.float32), matches.query_xy.astype(np.float32),
                                           method=cv2.RANSAC, ransacReprojThreshold=RANSAC_THRESHOLD_CROP_PX)
        if A is not None and np.all(np.isfinite(A)):
            return A
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

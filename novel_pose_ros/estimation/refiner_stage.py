"""The Co-op refiner at run time: render at the current pose, compare with the query, solve the pose.

Per iteration and for all detections of a frame at once: the window around the object projected
at the current pose (estimation/refiner_geometry.py), the render of the object alone drawn straight
into that window, the query crop through the same window, one batch of the "refiner" graph
(networks/coop/refiner_net.py), then the weighted Levenberg–Marquardt PnP (geometry/lm_pnp.py) of
the rendered grid points (lifted with the rendered depth) to their predicted query pixels, with
W = certainty × sensitivity × (1 − exp(−R/b)). A detection whose render is empty (pose off
screen or behind the camera) or whose solve fails keeps its pose, with the reason.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch

from novel_pose_ros.estimation.refiner_geometry import flow_to_pixels, lift_grid, window_view
from novel_pose_ros.estimation.template_bank import patch_grid_mask
from novel_pose_ros.geometry.lm_pnp import correspondence_weights, lm_pnp
from novel_pose_ros.networks.coop.refiner_net import REFINER_CROP
from novel_pose_ros.networks.picopose.preprocessing import to_network_input
from novel_pose_ros.render import Renderer
from novel_pose_ros.runtime import InferenceBackend, run_in_chunks
from novel_pose_ros.types import Frame, ObjectModel

MIN_WEIGHTED_CELLS = 6  # LM-PnP needs a few well-weighted correspondences to be determined


@dataclass(frozen=True)
class RefinerSettings:
    """iterations: render-and-compare rounds; window_margin: window enlargement per side (× box size);
    flow_radius_cells: R of the flow probability 1 − exp(−R/b), in 4-px cells; lm_iterations /
    gn_iterations: Levenberg–Marquardt then Gauss–Newton steps of the PnP; max_batch: network batch."""

    iterations: int = 1
    window_margin: float = 0.2
    flow_radius_cells: float = 0.5
    lm_iterations: int = 3
    gn_iterations: int = 7
    max_batch: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.iterations <= 10:
            raise ValueError(f"refiner iterations must be in [1, 10], got {self.iterations}")
        if not (0.0 <= self.window_margin <= 1.0 and self.flow_radius_cells > 0):
            raise ValueError("refiner window_margin must be in [0, 1] and flow_radius_cells positive")
        if self.lm_iterations < 0 or self.gn_iterations < 0 or self.lm_iterations + self.gn_iterations < 1:
            raise ValueError("refiner lm_iterations and gn_iterations must be ≥ 0, at least one step in all")


@dataclass(frozen=True)
class RefinedPose:
    """T_cam_obj after refinement (the input pose when `failure` is set); weight: mean correspondence
    weight of the last round (the refiner's own confidence, in [0, 1]); rounds: rounds that moved the pose.
    A round that fails after one that succeeded keeps the earlier result (no failure)."""

    T_cam_obj: np.ndarray
    weight: float
    failure: str | None = None
    rounds: int = 0


@dataclass(frozen=True)
class RefinerInput:
    """One detection's round: query and render crops (256, 256, 3) uint8, render mask on 16×16, grid points
    (64, 64, 3) in the object frame and their validity (64, 64), the crop camera and the pose rendered."""

    query: np.ndarray
    render: np.ndarray
    mask16: np.ndarray
    points: np.ndarray
    valid: np.ndarray
    K_crop: np.ndarray
    T_cam_obj: np.ndarray


class RefinerStage:
    def __init__(self, backend: InferenceBackend, renderer: Renderer, settings: RefinerSettings | None = None) -> None:
        self.backend = backend
        self.renderer = renderer
        self.settings = settings or RefinerSettings()

    def refine(self, frame: Frame, objects: list[ObjectModel], poses: list[np.ndarray],
               timings: dict[str, float] | None = None) -> list[RefinedPose]:
        """Refined poses of `objects` (same order) from their initial `poses` (4×4, camera frame)."""
        start = time.perf_counter()
        results = [RefinedPose(np.asarray(T, dtype=np.float64), 0.0, None) for T in poses]
        for _ in range(self.settings.iterations):
            results = self._round(frame, objects, results)
        if timings is not None:
            timings["refine"] = timings.get("refine", 0.0) + time.perf_counter() - start
        return results

    def _round(self, frame: Frame, objects: list[ObjectModel], current: list[RefinedPose]) -> list[RefinedPose]:
        s = self.settings
        prepared, results = [], list(current)
        for i, (obj, pose) in enumerate(zip(objects, current)):
            try:
                prepared.append((i, self._prepare(frame, obj, pose.T_cam_obj)))
            except ValueError as exc:
                results[i] = pose if pose.rounds else RefinedPose(pose.T_cam_obj, 0.0, str(exc))
        if not prepared:
            return results
        items = [p for _, p in prepared]
        outputs = run_in_chunks(self.backend, "refiner", {
            "query": to_network_input(np.stack([p.query for p in items]), REFINER_CROP),
            "render": to_network_input(np.stack([p.render for p in items]), REFINER_CROP),
            "render_mask16": np.stack([p.mask16 for p in items])}, s.max_batch)
        solved = solve_poses(items, *outputs, s)
        for (i, _), pose in zip(prepared, solved):
            before = current[i]
            if pose.failure is None:
                results[i] = dataclasses.replace(pose, rounds=before.rounds + 1)
            else:
                results[i] = before if before.rounds else pose
        return results

    def _prepare(self, frame: Frame, obj: ObjectModel, T: np.ndarray) -> RefinerInput:
        view = window_view(self.renderer, frame.image, frame.K, obj, T, self.settings.window_margin)
        points, valid = lift_grid(view.render.depth_m, view.K_crop, T)
        if not valid.any():
            raise ValueError("the object renders to nothing at the current pose")
        return RefinerInput(view.query, view.render.rgb, patch_grid_mask(view.render.depth_m > 0, 16), points, valid,
                            view.K_crop, T)


def refiner_pose_solve(flow: torch.Tensor, log_b: torch.Tensor, certainty: torch.Tensor, sensitivity: torch.Tensor,
                       points_obj: torch.Tensor, points_valid: torch.Tensor, K_crop: torch.Tensor, T_init: torch.Tensor,
                       flow_radius_cells: float, lm_iterations: int, gn_iterations: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The refiner outputs (refiner_net.py shapes, batch B) → (T_cam_obj [B, 4, 4] float64 from the weighted LM-PnP
    of the grid points [B, 64, 64, 3] to their predicted crop pixels, weights W [B, 64, 64], 0 off the render).
    Differentiable: training runs it under autograd, the stage under no_grad."""
    B = flow.shape[0]
    weights = correspondence_weights(certainty[:, 0], sensitivity[:, 0], torch.exp(log_b[:, 0]),
                                     flow_radius_cells) * points_valid
    pixels = flow_to_pixels(flow)
    T = lm_pnp(points_obj.reshape(B, -1, 3), pixels.reshape(B, -1, 2).double(), weights.reshape(B, -1).double(),
               K_crop, T_init, lm_iterations=lm_iterations, gn_iterations=gn_iterations)
    return T, weights


def solve_poses(items: list[RefinerInput], flow: np.ndarray, log_b: np.ndarray, certainty: np.ndarray,
                sensitivity: np.ndarray, settings: RefinerSettings) -> list[RefinedPose]:
    """One LM-PnP per item (batched) from the refiner outputs (refiner_net.py shapes, batch = items)."""
    n = len(items)
    as_double = [torch.from_numpy(a).double() for a in (flow, log_b, certainty, sensitivity)]
    valid = np.stack([item.valid for item in items])
    with torch.no_grad():
        solved, weights = refiner_pose_solve(
            *as_double, torch.from_numpy(np.stack([item.points for item in items])), torch.from_numpy(valid),
            torch.from_numpy(np.stack([item.K_crop for item in items])),
            torch.from_numpy(np.stack([item.T_cam_obj for item in items])),
            settings.flow_radius_cells, settings.lm_iterations, settings.gn_iterations)
    solved, flat, valid = solved.numpy(), weights.reshape(n, -1).numpy(), valid.reshape(n, -1)
    results = []
    for k, item in enumerate(items):
        mean_weight = float(flat[k][valid[k]].mean())
        if int((flat[k] > 0.05).sum()) < MIN_WEIGHTED_CELLS:
            results.append(RefinedPose(item.T_cam_obj, mean_weight, "too few confident correspondences"))
        elif not np.all(np.isfinite(solved[k])) or solved[k][2, 3] <= 0:
            results.append(RefinedPose(item.T_cam_obj, 0.0, "LM-PnP diverged"))
        else:
            results.append(RefinedPose(solved[k], mean_weight, None))
    return results

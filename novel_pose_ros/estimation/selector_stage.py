"""Co-op's pose selection at run time: score every refined hypothesis of a detection against the query, keep the best.

Each hypothesis is rendered through its own window (estimation/refiner_geometry.window_view: the
window the refiner would use at that pose), the query is cropped through the same window, and the
"selector" graph (networks/coop/selector_net.py) gives one logit per (query, render) pair: > 0 means
"within 5° and (1, 1, 5) cm of the truth". All hypotheses of all detections of a frame go in one
batch (chunked by max_batch). A hypothesis that renders to nothing, or whose object is behind the
camera, gets score −inf and is never chosen over one that rendered.
"""
from __future__ import annotations

import time

import numpy as np

from novel_pose_ros.estimation.refiner_geometry import window_view
from novel_pose_ros.estimation.template_bank import patch_grid_mask
from novel_pose_ros.networks.coop.selector_net import SELECTOR_CROP, SELECTOR_GRID
from novel_pose_ros.networks.picopose.preprocessing import to_network_input
from novel_pose_ros.render import Renderer
from novel_pose_ros.runtime import InferenceBackend, run_in_chunks
from novel_pose_ros.types import Frame, ObjectModel


class SelectorStage:
    def __init__(self, backend: InferenceBackend, renderer: Renderer, window_margin: float = 0.2,
                 max_batch: int = 8) -> None:
        self.backend = backend
        self.renderer = renderer
        self.window_margin = float(window_margin)
        self.max_batch = int(max_batch)

    def scores(self, frame: Frame, objects: list[ObjectModel], hypotheses: list[list[np.ndarray]],
               timings: dict[str, float] | None = None) -> list[np.ndarray]:
        """Per detection (objects[i] with its candidate poses hypotheses[i], 4×4 each) the selector logits
        (len(hypotheses[i]),), −inf where the hypothesis could not be rendered."""
        start = time.perf_counter()
        result = [np.full(len(poses), -np.inf) for poses in hypotheses]
        slots, queries, renders, masks = [], [], [], []
        for i, (obj, poses) in enumerate(zip(objects, hypotheses)):
            for j, T in enumerate(poses):
                try:
                    view = window_view(self.renderer, frame.image, frame.K, obj, T, self.window_margin)
                except ValueError:  # behind the camera
                    continue
                mask = view.render.depth_m > 0
                if not mask.any():
                    continue
                slots.append((i, j))
                queries.append(view.query)
                renders.append(view.render.rgb)
                masks.append(patch_grid_mask(mask, SELECTOR_GRID))
        if slots:
            (logits,) = run_in_chunks(self.backend, "selector", {
                "query": to_network_input(np.stack(queries), SELECTOR_CROP),
                "render": to_network_input(np.stack(renders), SELECTOR_CROP),
                "render_mask16": np.stack(masks).astype(np.float32)}, self.max_batch)
            for (i, j), logit in zip(slots, logits):
                result[i][j] = float(logit)
        if timings is not None:
            timings["select"] = timings.get("select", 0.0) + time.perf_counter() - start
        return result

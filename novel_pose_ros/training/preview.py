"""A contact sheet of training pairs: query crop | template, with GT correspondences drawn (level 16)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from novel_pose_ros.networks.picopose.config import PATCH_PX
from novel_pose_ros.training.pairs import PairSampler, TrainingPair


def pair_tile(pair: TrainingPair, every: int = 5) -> np.ndarray:
    """(224, 448, 3) uint8 RGB: the query and the template side by side, matching dots in matching colours."""
    query, template = pair.query_rgb.copy(), pair.template_rgb.copy()
    rows, cols = np.nonzero(pair.valid[16])
    for h, w in list(zip(rows, cols))[::every]:
        colour = tuple(int(c) for c in np.random.default_rng(int(h) * 16 + int(w)).integers(40, 256, 3))
        target = np.array([w + pair.flow[16][0, h, w], h + pair.flow[16][1, h, w]]) * PATCH_PX
        cv2.circle(template, (int((w + 0.5) * PATCH_PX), int((h + 0.5) * PATCH_PX)), 3, colour, -1)
        cv2.circle(query, (int(target[0]), int(target[1])), 3, colour, -1)
    template_kind = "grey" if pair.grey_template else "own"
    label = f"{pair.object_name[-18:]} v{pair.view} {template_kind} {'box' if pair.box_only else 'mask'}"
    cv2.putText(query, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
    return np.hstack([query, template])


def write_preview(sampler: PairSampler, path: str | Path, count: int = 12, seed: int = 0, columns: int = 3) -> Path:
    pairs = sampler.sample(np.random.default_rng(seed), count)
    tiles = [pair_tile(p) for p in pairs]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    sheet = np.vstack([np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet[..., ::-1])
    return path

"""Network features of every template, computed once per object and weights, cached next to the templates.

Per template we keep what the per-frame stages read: the last backbone map (stage 1 scoring
and stage 2) and the DPT head's three outputs (stage 3). They are stored as float16 in
`<template folder>/features/<network>-<weights id>.npz` (half the disk and load time; our default), or as
float32 in `...-f32.npz` as the official PicoPose code keeps them (`picopose_mode: official`), keyed by
the weights id and the template set's key, and recomputed when either changes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from novel_pose_ros.estimation.template_bank import TemplateBank
from novel_pose_ros.networks.picopose.preprocessing import to_network_input
from novel_pose_ros.runtime import InferenceBackend, run_in_chunks

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class TemplateFeatures:
    """map3: (N, C, 16, 16); unit_patches: (N, 256, C) L2-normalised map3 patches (stage 1);
    feat16 / feat32 / feat64: (N, F, n, n) DPT outputs. All float32 in memory."""

    map3: np.ndarray
    unit_patches: np.ndarray
    feat16: np.ndarray
    feat32: np.ndarray
    feat64: np.ndarray


def unit_patches(map3: np.ndarray) -> np.ndarray:
    """(B, C, G, G) -> (B, G·G, C) patch vectors of unit length (row-major patches)."""
    patches = np.ascontiguousarray(map3.reshape(map3.shape[0], map3.shape[1], -1).transpose(0, 2, 1))
    return patches / np.maximum(np.linalg.norm(patches, axis=-1, keepdims=True), 1e-12)


def _features(arrays: dict[str, np.ndarray]) -> TemplateFeatures:
    f32 = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
    return TemplateFeatures(f32["map3"], unit_patches(f32["map3"]), f32["feat16"], f32["feat32"], f32["feat64"])


def compute_template_features(bank: TemplateBank, backend: InferenceBackend, max_batch: int) -> dict[str, np.ndarray]:
    maps = run_in_chunks(backend, "backbone", {"image": to_network_input(bank.rgb)}, max_batch)
    feats = run_in_chunks(backend, "dpt", {"map1": maps[1], "map2": maps[2], "map3": maps[3]}, max_batch)
    return {"map3": maps[3], "feat16": feats[0], "feat32": feats[1], "feat64": feats[2]}


def load_or_compute_features(
    bank: TemplateBank, folder: Path, backend: InferenceBackend, network: str, max_batch: int,
    float32: bool = False,
) -> TemplateFeatures:
    """Cached features of `bank` for these weights, computed (and saved) when missing or stale; stored as
    float16 unless `float32`."""
    dtype = np.float32 if float32 else np.float16
    path = Path(folder) / "features" / f"{network}-{backend.weights_id[:24]}{'-f32' if float32 else ''}.npz"
    if path.is_file():
        try:
            with np.load(path) as cached:
                if str(cached["template_key"]) == bank.key and str(cached["weights_id"]) == backend.weights_id:
                    return _features({k: cached[k] for k in ("map3", "feat16", "feat32", "feat64")})
            LOGGER.info("template features %s: stale (templates or weights changed), recomputing", path)
        except (OSError, KeyError, ValueError) as exc:
            LOGGER.warning("template features %s unreadable (%s), recomputing", path, exc)
    arrays = compute_template_features(bank, backend, max_batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, template_key=bank.key, weights_id=backend.weights_id,
             **{k: v.astype(dtype) for k, v in arrays.items()})
    tmp.replace(path)  # never leave a half-written cache behind
    # Use what was saved, so a fresh and a cached run give identical results.
    return _features({k: v.astype(dtype) for k, v in arrays.items()})

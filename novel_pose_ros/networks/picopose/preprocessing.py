"""Network input of PicoPose: a uint8 RGB crop → BGR, CLIP-normalised float32 NCHW.

The official code reverses the channels to BGR, divides by 255 and then applies the
CLIP mean/std *in their published (R, G, B) order to the B, G, R channels* (METHODS.md).
The trained weights expect exactly that, so we reproduce it. Every config (ViT or CNN)
takes this same input; the CNN backbone converts to its own normalisation inside.
"""
from __future__ import annotations

import numpy as np

from novel_pose_ros.networks.picopose.config import IMAGE_SIZE

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # applied to channels (B, G, R) in this order
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CHANNEL_ORDER = "BGR"

NORMALISATION = {
    "input": f"uint8 RGB crop {IMAGE_SIZE}x{IMAGE_SIZE}, channels reversed to {CHANNEL_ORDER}",
    "channel_order": CHANNEL_ORDER,
    "scale": 1.0 / 255.0,
    "mean": list(CLIP_MEAN),
    "std": list(CLIP_STD),
    "formula": "x[c] = (bgr[c] / 255 - mean[c]) / std[c], c = 0 (B), 1 (G), 2 (R); layout NCHW float32",
}


def to_network_input(rgb_crops: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """uint8 RGB crops [S, S, 3] or [N, S, S, 3] → float32 [N, 3, S, S] (BGR, CLIP-normalised);
    S = `size`: 224 for PicoPose, 256 for the Co-op refiner and selector."""
    crops = np.asarray(rgb_crops)
    if crops.ndim == 3:
        crops = crops[None]
    if crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
        raise ValueError(f"RGB crops: expected shape ({size}, {size}, 3) or (N, {size}, {size}, 3), got {crops.shape}")
    if crops.dtype != np.uint8:
        raise ValueError(f"RGB crops: expected dtype uint8, got {crops.dtype}")
    bgr = crops[..., ::-1].astype(np.float32) / np.float32(255.0)
    normalised = (bgr - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    return np.ascontiguousarray(normalised.transpose(0, 3, 1, 2))


def from_network_input(x: np.ndarray) -> np.ndarray:
    """Inverse of `to_network_input` (for visualisation): float32 [N, 3, 224, 224] → uint8 RGB [N, 224, 224, 3]."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or x.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"network input: expected shape (N, 3, {IMAGE_SIZE}, {IMAGE_SIZE}), got {x.shape}")
    bgr = x.transpose(0, 2, 3, 1) * np.asarray(CLIP_STD, np.float32) + np.asarray(CLIP_MEAN, np.float32)
    return np.clip(np.rint(bgr[..., ::-1] * 255.0), 0, 255).astype(np.uint8)

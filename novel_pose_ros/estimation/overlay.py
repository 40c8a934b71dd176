"""Debug overlay: the estimated meshes' contours drawn on the image, with object names, coloured by confidence."""
from __future__ import annotations

import colorsys
from typing import Sequence

import cv2
import numpy as np

from novel_pose_ros.render import Renderer
from novel_pose_ros.types import ObjectModel


def instance_colour(index: int) -> tuple[int, int, int]:
    """A distinct bright RGB colour per instance index (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.9, 1.0)
    return int(255 * r), int(255 * g), int(255 * b)


def confidence_colour(confidence: float) -> tuple[int, int, int]:
    """RGB from red (0: surely wrong) through yellow (0.5) to green (1: surely right)."""
    r, g, b = colorsys.hsv_to_rgb(float(np.clip(confidence, 0.0, 1.0)) / 3.0, 0.9, 1.0)
    return int(255 * r), int(255 * g), int(255 * b)


def draw_overlay(
    image_rgb: np.ndarray,
    K: np.ndarray,
    instances: Sequence[tuple[ObjectModel, np.ndarray, str, float | None]],
    renderer: Renderer,
    fill_alpha: float = 0.25,
) -> np.ndarray:
    """(H, W, 3) uint8 RGB copy of `image_rgb` with each (object, T_cam_obj, label, confidence) drawn:
    a translucent fill and the outline of its silhouette, and the label (with the confidence) at its top.
    The colour is the confidence's (`confidence_colour`), or one per instance where it is None."""
    out = image_rgb.copy()
    height, width = out.shape[:2]
    for index, (obj, T_cam_obj, label, confidence) in enumerate(instances):
        mask = renderer.render([(obj, T_cam_obj)], K, width, height).mask
        if not mask.any():
            continue  # outside the image (a wild estimate): nothing to draw
        colour = instance_colour(index) if confidence is None else confidence_colour(confidence)
        label = label if confidence is None else f"{label} {confidence:.2f}"
        out[mask] = ((1 - fill_alpha) * out[mask] + fill_alpha * np.array(colour)).astype(np.uint8)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, colour, 2, cv2.LINE_AA)
        ys, xs = np.nonzero(mask)
        top = int(ys.min())
        x = int(np.clip(xs[ys == top].mean() - 4 * len(label), 0, max(width - 8 * len(label), 0)))
        y = max(top - 6, 14)
        cv2.putText(out, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return out

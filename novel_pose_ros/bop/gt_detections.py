"""Detections from ground truth, for BOP datasets without a detector's output.

Visible mask of a GT instance: all GT objects of the image are rendered together (so
they occlude each other) and the instance keeps the pixels it wins. Where the image has
depth, a pixel must also pass BOP's visibility test (bop_toolkit `visibility.py`,
mode bop19, δ = 15 mm as in `calc_gt_info.py`): rendered depth − sensor depth ≤ δ, or
sensor depth 0 (invalid). The test is one-sided on purpose: something unannotated in
front of the object makes the sensor *nearer* than the render, which is an occlusion;
a sensor *farther* than the render cannot hide the object (it is a GT or calibration
error, e.g. the 16 mm drill of ycbv_real image 629), and a pixel without a reading
carries no evidence of occlusion. Like BOP, the difference is taken between distances
along the pixel's ray (z × ray length per unit z), not between camera z values.

Noise, for robustness studies (all seeded per image, so results do not depend on which
other images are processed):
- box_noise: each edge of the tight box of the visible mask moves by N(0, box_noise × box
  width) horizontally / × box height vertically; the box is clipped to the image. The
  mask stays the exact visible mask.
- drop: each true detection is left out with this probability.
- false_positives: the expected number (Poisson) of wrong-class detections per image:
  an object id of the dataset absent from the image's GT (any id if all are present), a
  random box of 5–40 % of the image size inside the image, an ellipse mask inscribed in
  it, score U(0.05, 0.5). True detections score 1.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from novel_pose_ros.bop.dataset import BopDataset, BopImage
from novel_pose_ros.bop.detections import BopDetection
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.render import Renderer

VISIBILITY_DELTA_M = 0.015  # BOP's δ for GT visibility (calc_gt_info.py)
FALSE_POSITIVE_SIZE = (0.05, 0.4)  # box side as a fraction of the image side
FALSE_POSITIVE_SCORE = (0.05, 0.5)


def ray_length_per_z(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W) float32: distance from the camera centre per metre of camera z, for each pixel's ray."""
    K = np.asarray(K, dtype=np.float64)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    y = (v - K[1, 2]) / K[1, 1]
    x = (u - K[0, 2] - K[0, 1] * y) / K[0, 0]
    return np.sqrt(1.0 + x * x + y * y).astype(np.float32)


def visible_masks(labels: np.ndarray, rendered_depth_m: np.ndarray, sensor_depth_m: np.ndarray | None,
                  count: int, K: np.ndarray, delta_m: float = VISIBILITY_DELTA_M) -> list[np.ndarray]:
    """Per instance (H, W) bool: the pixels instance i (label i + 1) wins in the render, and, when
    sensor depth is given, where (rendered − sensor distance) ≤ delta_m or the sensor has no reading."""
    visible = labels > 0
    if sensor_depth_m is not None:
        if sensor_depth_m.shape != labels.shape:
            raise ValueError(f"sensor depth: expected shape {labels.shape}, got {sensor_depth_m.shape}")
        ray = ray_length_per_z(K, labels.shape[1], labels.shape[0])
        visible &= (sensor_depth_m == 0) | ((rendered_depth_m - sensor_depth_m) * ray <= delta_m)
    winners = np.where(visible, labels, 0)
    return [winners == i + 1 for i in range(count)]


def jitter_box(box: tuple[int, int, int, int], box_noise: float, noise: np.ndarray, width: int,
               height: int) -> tuple[float, float, float, float]:
    """Move the edges of (x, y, w, h) by `noise` (4 standard normals) × box_noise × the box size; clip to the image."""
    x, y, w, h = (float(v) for v in box)
    x1, x2 = sorted((x + box_noise * w * noise[0], x + w + box_noise * w * noise[2]))
    y1, y2 = sorted((y + box_noise * h * noise[1], y + h + box_noise * h * noise[3]))
    x1, x2 = min(max(x1, 0.0), width - 1.0), min(max(x2, 1.0), float(width))
    y1, y2 = min(max(y1, 0.0), height - 1.0), min(max(y2, 1.0), float(height))
    return float(x1), float(y1), float(max(x2 - x1, 1.0)), float(max(y2 - y1, 1.0))


def _false_positive(image: BopImage, obj_id: int, rng: np.random.Generator, width: int, height: int) -> BopDetection:
    w = int(max(1, round(width * rng.uniform(*FALSE_POSITIVE_SIZE))))
    h = int(max(1, round(height * rng.uniform(*FALSE_POSITIVE_SIZE))))
    x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    v, u = np.mgrid[0:h, 0:w]
    mask = np.zeros((height, width), bool)
    mask[y:y + h, x:x + w] = ((u - (w - 1) / 2) / (w / 2)) ** 2 + ((v - (h - 1) / 2) / (h / 2)) ** 2 <= 1.0
    return BopDetection(image.scene_id, image.im_id, obj_id, (float(x), float(y), float(w), float(h)),
                        float(rng.uniform(*FALSE_POSITIVE_SCORE)), mask)


def _check_options(box_noise: float, drop: float, false_positives: float, seed: int) -> None:
    if int(seed) < 0:
        raise ValueError(f"seed must be ≥ 0, got {seed}")
    if not (np.isfinite(box_noise) and box_noise >= 0):
        raise ValueError(f"box_noise must be finite and ≥ 0, got {box_noise}")
    if not 0 <= drop <= 1:
        raise ValueError(f"drop must be a probability in [0, 1], got {drop}")
    if not (np.isfinite(false_positives) and false_positives >= 0):
        raise ValueError(f"false_positives must be finite and ≥ 0 (expected count per image), got {false_positives}")


def iter_detections_from_gt(dataset: BopDataset, renderer: Renderer, box_noise: float = 0.0, drop: float = 0.0,
                            false_positives: float = 0.0, seed: int = 0, delta_m: float = VISIBILITY_DELTA_M,
                            only_target_images: bool = False) -> Iterator[list[BopDetection]]:
    """Per image of the dataset (scene, then image order; only images with targets if asked), its detections.

    See the module docstring for the masks and the options.
    """
    _check_options(box_noise, drop, false_positives, seed)
    images = dataset.target_images() if only_target_images else list(dataset.images())
    gt_ids = sorted({inst.obj_id for image in images for inst in image.gt})
    library = dataset.object_library(gt_ids) if gt_ids else ObjectLibrary([])
    all_ids = sorted(int(k) for k in dataset.models_info)
    for image in images:
        rng = np.random.default_rng([int(seed), image.scene_id, image.im_id])
        height, width = image.load_rgb().shape[:2]
        detections: list[BopDetection] = []
        if image.gt:
            render = renderer.render([(library.get(g.obj_id), g.T_cam_obj) for g in image.gt], image.K, width, height)
            masks = visible_masks(render.labels, render.depth_m, image.load_depth_m(), len(image.gt), image.K, delta_m)
            for inst, mask in zip(image.gt, masks):
                dropped, noise = rng.random() < drop, rng.standard_normal(4)  # drawn for every instance
                box = box_from_mask(mask)
                if box is None or dropped:
                    continue
                detections.append(BopDetection(image.scene_id, image.im_id, inst.obj_id,
                                               jitter_box(box, box_noise, noise, width, height), 1.0, mask))
        present = {inst.obj_id for inst in image.gt}
        candidates = [i for i in all_ids if i not in present] or all_ids
        for _ in range(int(rng.poisson(false_positives)) if candidates else 0):
            detections.append(_false_positive(image, int(rng.choice(candidates)), rng, width, height))
        yield detections


def detections_from_gt(dataset: BopDataset, renderer: Renderer, box_noise: float = 0.0, drop: float = 0.0,
                       false_positives: float = 0.0, seed: int = 0, only_target_images: bool = False) -> list[BopDetection]:
    """Detections of every image (or every target image) of `dataset` from its GT (module docstring), in image order."""
    per_image = iter_detections_from_gt(dataset, renderer, box_noise, drop, false_positives, seed,
                                        only_target_images=only_target_images)
    return [d for image_detections in per_image for d in image_detections]

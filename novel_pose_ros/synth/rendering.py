"""Render one synthetic image: objects + support plane + background, and the per-instance annotations.

The objects are rendered together (they occlude each other) and the plane alone; the two
are composited per pixel by their metric depth, which keeps the objects' depth buffer
fitted to the objects (a plane metres wide would otherwise stretch it) and the depth exact.
The camera is above the plane and every object lies on or above it, so the plane never
hides an object; the comparison resolves contact pixels in favour of the object.

Per instance: `mask` is its silhouette rendered alone (in the image), `mask_visib` the
pixels where it wins in the composite; both come from the same projection of the same
triangles, so mask ⊇ mask_visib. `bbox_obj` is the silhouette's box, extended beyond
the image like BOP's calc_gt_info (which renders a 3× larger image) when it is cut.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from novel_pose_ros.bop.dataset import bop_box
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.render import Lighting, Renderer
from novel_pose_ros.types import ObjectModel

NO_BOX = (-1, -1, -1, -1)  # BOP's box of an empty mask


@dataclass(frozen=True)
class RenderedImage:
    """rgb: (H, W, 3) uint8 before sensor noise; depth_m: (H, W) float32 camera z, 0 = background;
    masks, masks_visib: per instance (H, W) bool; bbox_obj: per instance (x, y, w, h) pixels,
    possibly reaching outside the image, NO_BOX when the object is not in view."""

    rgb: np.ndarray
    depth_m: np.ndarray
    masks: tuple[np.ndarray, ...]
    masks_visib: tuple[np.ndarray, ...]
    bbox_obj: tuple[tuple[int, int, int, int], ...]


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def silhouette_box(renderer: Renderer, obj: ObjectModel, T_cam_obj: np.ndarray, K: np.ndarray,
                   width: int, height: int, mask: np.ndarray) -> tuple[int, int, int, int]:
    """Box of the object's whole silhouette; cut silhouettes are re-rendered in a 3×-wide frame (as BOP does)."""
    if not _touches_border(mask):
        box = box_from_mask(mask)
        return NO_BOX if box is None else box
    K_large = np.array(K, dtype=np.float64)
    K_large[0, 2] += width
    K_large[1, 2] += height
    large = renderer.render([(obj, T_cam_obj)], K_large, 3 * width, 3 * height).labels > 0
    box = box_from_mask(large)
    return NO_BOX if box is None else (box[0] - width, box[1] - height, box[2], box[3])


def render_scene_image(renderer: Renderer, instances: Sequence[tuple[ObjectModel, np.ndarray]],
                       plane: tuple[ObjectModel, np.ndarray], K: np.ndarray, width: int, height: int,
                       lighting: Lighting, background: np.ndarray) -> RenderedImage:
    """Render the instances (object, T_cam_obj) on the plane (plane model, T_cam_plane) over `background`."""
    if background.shape != (height, width, 3):
        raise ValueError(f"background: expected shape {(height, width, 3)}, got {background.shape}")
    objects = renderer.render(instances, K, width, height, lighting)
    floor = renderer.render([plane], K, width, height, lighting)
    in_front = (objects.labels > 0) & ((floor.depth_m == 0) | (objects.depth_m <= floor.depth_m))
    labels = np.where(in_front, objects.labels, 0)
    depth = np.where(in_front, objects.depth_m, floor.depth_m).astype(np.float32)
    rgb = np.where(in_front[..., None], objects.rgb, np.where((floor.depth_m > 0)[..., None], floor.rgb, background))
    masks, masks_visib, boxes = [], [], []
    for index, (obj, T) in enumerate(instances):
        alone = renderer.render([(obj, T)], K, width, height).labels > 0
        masks.append(alone)
        masks_visib.append(labels == index + 1)
        boxes.append(silhouette_box(renderer, obj, T, K, width, height, alone))
    return RenderedImage(np.ascontiguousarray(rgb, dtype=np.uint8), depth, tuple(masks), tuple(masks_visib), tuple(boxes))


def gt_info_entry(mask: np.ndarray, mask_visib: np.ndarray, bbox_obj: tuple[int, int, int, int],
                  depth_valid: np.ndarray) -> dict:
    """One scene_gt_info.json entry (BOP keys); px counts are inside the image, as in BOP."""
    px_all, px_visib = int(mask.sum()), int(mask_visib.sum())
    box_visib = box_from_mask(mask_visib) if px_visib else None
    return {
        "bbox_obj": list(bop_box(bbox_obj)) if bbox_obj != NO_BOX else list(NO_BOX),
        "bbox_visib": list(bop_box(box_visib)) if box_visib else list(NO_BOX),
        "px_count_all": px_all,
        "px_count_valid": int((mask & depth_valid).sum()),
        "px_count_visib": px_visib,
        "visib_fract": float(px_visib / px_all) if px_all else 0.0,
    }

"""Render-and-compare verification of pose hypotheses: the object's silhouette at a pose against the detection.

The dense stage gives hundreds of PnP inliers to a flipped pose as readily as to the right one (its flow
field is smooth whatever the initial affine), so PnP support cannot tell them apart (measured on real
LM-O, docs/ACCURACY.md). The detection mask can: the object rendered at a wrong pose covers other
pixels. The silhouette is rendered in the query crop's own camera (K moved by the crop transform), at
the crop's resolution, and compared with the crop's detection mask (or the detection box when there
is no mask) by IoU. An occluded object loses IoU at every hypothesis alike, so the ranking stands.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np

from novel_pose_ros.estimation.crops import QueryCrop
from novel_pose_ros.geometry.crop import transform_pixels
from novel_pose_ros.render import Renderer
from novel_pose_ros.types import Detection, ObjectModel, PoseHypothesis

_VIEW = re.compile(r"view(\d+)")


def crop_camera(K: np.ndarray, M_crop_img: np.ndarray) -> np.ndarray:
    """(3, 3) intrinsics of the crop: image pixels -> crop pixels (M is a scale and a shift) after K."""
    return np.vstack([M_crop_img, [0.0, 0.0, 1.0]]) @ np.asarray(K, dtype=np.float64)


def evidence_mask(crop: QueryCrop, detection: Detection) -> np.ndarray:
    """(S, S) bool: the crop's detection mask, or the detection box drawn in the crop when there is none."""
    if crop.mask is not None:
        return crop.mask
    size = crop.rgb.shape[0]
    x, y, w, h = detection.bbox_xywh
    (x0, y0), (x1, y1) = transform_pixels(crop.M_crop_img, np.array([[x, y], [x + w, y + h]], dtype=np.float64))
    mask = np.zeros((size, size), bool)
    mask[max(int(np.floor(y0)), 0):max(int(np.ceil(y1)), 0), max(int(np.floor(x0)), 0):max(int(np.ceil(x1)), 0)] = True
    return mask


def silhouette_ious(renderer: Renderer, obj: ObjectModel, poses: list[np.ndarray], K: np.ndarray,
                    crop: QueryCrop, evidence: np.ndarray) -> np.ndarray:
    """(H,) IoU of the object's silhouette at each pose (crop camera) with the evidence mask."""
    size = evidence.shape[0]
    K_crop = crop_camera(K, crop.M_crop_img)
    ious = np.zeros(len(poses))
    for i, T in enumerate(poses):
        if not (np.all(np.isfinite(T)) and T[2, 3] > 0):
            continue
        silhouette = renderer.render([(obj, T)], K_crop, size, size).mask
        union = np.logical_or(silhouette, evidence).sum()
        ious[i] = np.logical_and(silhouette, evidence).sum() / union if union else 0.0
    return ious


def choose_by_silhouette(outcome, renderer: Renderer, obj: ObjectModel, K: np.ndarray, crop: QueryCrop,
                         detection: Detection):
    """The outcome with its pose replaced by the hypothesis of best silhouette IoU (ties: the earlier, i.e.
    stage 1's better template); every hypothesis keeps its IoU as its score. Diagnostics follow the choice."""
    if not outcome.hypotheses:
        return outcome
    ious = silhouette_ious(renderer, obj, [h.T_cam_obj for h in outcome.hypotheses], K, crop,
                           evidence_mask(crop, detection))
    best = int(np.argmax(ious))
    chosen = outcome.hypotheses[best]
    hypotheses = tuple(PoseHypothesis(h.T_cam_obj, float(iou), h.source) for h, iou in zip(outcome.hypotheses, ious))
    diagnostics = outcome.diagnostics
    if diagnostics is not None:
        views = [int(m.group(1)) for h in outcome.hypotheses if (m := _VIEW.search(h.source))]
        order = list(dict.fromkeys(views))  # template views in stage-1 order
        match = _VIEW.search(chosen.source)
        view = int(match.group(1)) if match else None
        inliers, count = diagnostics.hypothesis_support[best] if diagnostics.hypothesis_support else (0, 0)
        diagnostics = dataclasses.replace(diagnostics, source=chosen.source, chosen_view=view,
                                          chosen_rank=order.index(view) if view in order else None,
                                          inliers=inliers, correspondences=count,
                                          inlier_ratio=inliers / count if count else 0.0,
                                          silhouette_iou=float(ious[best]))
    return dataclasses.replace(outcome, T_cam_obj=chosen.T_cam_obj, source=chosen.source.split(":")[0],
                               hypotheses=hypotheses, diagnostics=diagnostics)


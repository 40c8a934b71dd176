"""Render-and-compare verification of pose hypotheses: the object's silhouette at a pose against the detection.

The dense stage gives hundreds of PnP inliers to a flipped pose as readily as to the right one (its flow
field is smooth whatever the initial affine), so PnP support cannot tell them apart (measured on real
LM-O, docs/ACCURACY.md). The detection mask can: the object rendered at a wrong pose covers other
pixels. The silhouette is rendered in the query crop's own camera (K moved by the crop transform), at
the crop's resolution, and compared with the crop's detection mask (or the detection box when there
is no mask). IoU ranks the hypotheses (an occluded object loses IoU at every hypothesis alike, so the
ranking stands); IoU, the share of the evidence the silhouette covers and the share of the silhouette
on the evidence are also features of the pose confidence (estimation/confidence.py).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import cv2
import numpy as np

from novel_pose_ros.estimation.crops import QueryCrop
from novel_pose_ros.geometry.crop import transform_pixels
from novel_pose_ros.render import AMBIENT_ONLY, Lighting, Renderer, RenderResult
from novel_pose_ros.types import Detection, ObjectModel

_VIEW = re.compile(r"view(\d+)")
EDGE_BLUR_SIGMA_PX = 1.5  # both images are blurred so that edges a pixel or two apart still agree
MODEL_EDGE_MIN = 8.0  # grey levels per pixel: a rendered gradient weaker than this is no model edge
IMAGE_EDGE_FULL = 24.0  # grey levels per pixel: an image gradient this strong counts as a full edge
INTERIOR_ERODE_PX = 3  # the outline is the silhouette IoU's business: edges inside the silhouette only


@dataclass(frozen=True)
class SilhouetteAgreement:
    """How the silhouette S of the object at one pose agrees with the evidence E (mask or box), in the crop.

    iou = |S∩E| / |S∪E|; coverage = |S∩E| / |E| (the evidence explained: near 1 for the right pose even
    when the object is occluded); on_evidence = |S∩E| / |S| (low when the pose puts the object where the
    detection is not, or when it is occluded). All 0 for a pose behind the camera or off the crop."""

    iou: float = 0.0
    coverage: float = 0.0
    on_evidence: float = 0.0


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


def render_in_crop(renderer: Renderer, obj: ObjectModel, T: np.ndarray, K: np.ndarray, crop: QueryCrop,
                   lighting: Lighting = AMBIENT_ONLY) -> RenderResult | None:
    """The object at pose T rendered in the crop camera at the crop's size; None for a pose that is not
    finite or is behind the camera."""
    if not (np.all(np.isfinite(T)) and T[2, 3] > 0):
        return None
    size = crop.rgb.shape[0]
    return renderer.render([(obj, T)], crop_camera(K, crop.M_crop_img), size, size, lighting)


def agreement_of(silhouette: np.ndarray, evidence: np.ndarray) -> SilhouetteAgreement:
    """The agreement of a rendered silhouette with the evidence (both (S, S) bool)."""
    both, silhouette_px, evidence_px = (int(np.count_nonzero(m)) for m in (silhouette & evidence, silhouette, evidence))
    union = silhouette_px + evidence_px - both
    return SilhouetteAgreement(both / union if union else 0.0, both / evidence_px if evidence_px else 0.0,
                               both / silhouette_px if silhouette_px else 0.0)


def warped_template_iou(template_mask: np.ndarray, A_query_template: np.ndarray, query_mask: np.ndarray) -> float:
    """IoU of a template's mask carried into the query crop by stage 2's affine (integer-centred pixels,
    correspondences.affine_to_pixel_centres) with the query crop's detection mask: the silhouette the hypothesis
    predicts before any stage-3 flow or PnP, at no render's cost (estimation/picopose_stages.py pre-selection)."""
    size = query_mask.shape[1], query_mask.shape[0]
    warped = cv2.warpAffine(template_mask.astype(np.uint8), np.asarray(A_query_template, dtype=np.float64), size,
                            flags=cv2.INTER_NEAREST) > 0
    return agreement_of(warped, query_mask).iou


def silhouette_agreements(renderer: Renderer, obj: ObjectModel, poses: list[np.ndarray], K: np.ndarray,
                          crop: QueryCrop, evidence: np.ndarray) -> list[SilhouetteAgreement]:
    """One agreement per pose: the object rendered at it in the crop camera against the evidence mask."""
    agreements = []
    for T in poses:
        render = render_in_crop(renderer, obj, T, K, crop)
        agreements.append(SilhouetteAgreement() if render is None else agreement_of(render.mask, evidence))
    return agreements


def choose_by_silhouette(outcome, agreements: list[SilhouetteAgreement]):
    """The outcome with its pose replaced by the hypothesis of best silhouette IoU (ties: the earlier, i.e.
    stage 1's better template); `agreements` holds one per hypothesis. Diagnostics follow the choice."""
    if not outcome.hypotheses:
        return outcome
    ious = [a.iou for a in agreements]
    best = int(np.argmax(ious))
    chosen = outcome.hypotheses[best]
    diagnostics = outcome.diagnostics
    if diagnostics is not None:
        views = [int(m.group(1)) for h in outcome.hypotheses if (m := _VIEW.search(h.source))]
        order = list(dict.fromkeys(views))  # template views in stage-1 order
        match = _VIEW.search(chosen.source)
        view = int(match.group(1)) if match else None
        diagnostics = dataclasses.replace(diagnostics, source=chosen.source, chosen_view=view,
                                          chosen_rank=order.index(view) if view in order else None,
                                          inliers=chosen.inliers, correspondences=chosen.correspondences,
                                          inlier_ratio=chosen.inliers / chosen.correspondences
                                          if chosen.correspondences else 0.0,
                                          silhouette_iou=float(ious[best]))
    return dataclasses.replace(outcome, T_cam_obj=chosen.T_cam_obj, source=chosen.source.split(":")[0],
                               diagnostics=diagnostics)


def _gradients(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    blurred = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), EDGE_BLUR_SIGMA_PX)
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3) / 8.0  # grey levels per pixel
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return gx, gy


@dataclass(frozen=True)
class RenderedChecks:
    """What one shaded render of the final pose tells (`rendered_checks`).

    edge_agreement: on the object's model edges inside the silhouette (eroded, and on the evidence), the
    mean of |cos| of the angle between the rendered and the image gradient times the image edge strength
    (≤ 1): near 1 where the image shows the inner edges the pose predicts, lower for a pose flipped inside
    the same outline; edge_density: the mean image edge strength over that interior (what agreement is at
    random orientations × 2/π); both 0 when the pose predicts no inner edge there.
    outline_offset / evidence_offset: median distance from the silhouette's outline to the evidence's, and
    back, over the evidence's size (sqrt of its area): medians, so an occluder's edge moves them little."""

    edge_agreement: float = 0.0
    edge_density: float = 0.0
    outline_offset: float = 1.0
    evidence_offset: float = 1.0


def rendered_checks(render: RenderResult | None, crop: QueryCrop, evidence: np.ndarray) -> RenderedChecks:
    """A shaded render of the pose in the crop camera (`render_in_crop(..., SHADED)`: creases, texture and
    colour edges) against the crop's image and the evidence mask (RenderedChecks)."""
    if render is None or not render.mask.any() or not evidence.any():
        return RenderedChecks()
    scale = float(np.sqrt(evidence.sum()))
    outline_offset = _median_outline_distance(render.mask, evidence) / scale
    evidence_offset = _median_outline_distance(evidence, render.mask) / scale
    interior = cv2.erode(render.mask.astype(np.uint8), np.ones((2 * INTERIOR_ERODE_PX + 1,) * 2, np.uint8)) > 0
    interior &= evidence
    rx, ry = _gradients(cv2.cvtColor(render.rgb, cv2.COLOR_RGB2GRAY))
    model_strength = np.hypot(rx, ry)
    edges = interior & (model_strength > MODEL_EDGE_MIN)
    if not edges.any():
        return RenderedChecks(0.0, 0.0, outline_offset, evidence_offset)
    ix, iy = _gradients(cv2.cvtColor(crop.rgb, cv2.COLOR_RGB2GRAY))
    image_strength = np.hypot(ix, iy)
    strength = np.minimum(image_strength / IMAGE_EDGE_FULL, 1.0)
    cosine = np.abs(rx * ix + ry * iy) / np.maximum(model_strength * image_strength, 1e-6)
    return RenderedChecks(float((cosine * strength)[edges].mean()), float(strength[interior].mean()),
                          outline_offset, evidence_offset)


def _outline(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: the mask's pixels with a 4-neighbour outside it."""
    inner = cv2.erode(mask.astype(np.uint8), np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8),
                      borderType=cv2.BORDER_REPLICATE) > 0
    return mask & ~inner


def _median_outline_distance(source: np.ndarray, target: np.ndarray) -> float:
    """Median distance (pixels) from the outline pixels of `source` to the nearest outline pixel of `target`."""
    source_outline, target_outline = _outline(source), _outline(target)
    if not source_outline.any() or not target_outline.any():
        return float(np.hypot(*source.shape))
    distance = cv2.distanceTransform((~target_outline).astype(np.uint8), cv2.DIST_L2, 3)
    return float(np.median(distance[source_outline]))

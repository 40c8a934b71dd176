"""Co-op coarse-matcher training pairs: PicoPose's cluttered scenes, a template view, the per-patch truth.

`CoarsePairSampler` reuses PairSampler's scenes, query crops (the estimator's crop, around the mask
or a jittered box) and choice of visible instances; only `make_pair` differs. The template is one of
the `nearest_templates` views of `template_level` closest to the query's view (as at run time: the
best of the 42 level-0 views is up to ~20° off) or, with far_template_probability, any view of the
level: most of its query patches are then "no match", which is what makes a wrong template score low.
It shows the instance's appearance or, with grey_template_probability, its grey geometry. The truth is
networks/coop/coarse_truth.py's (query → template patch class + in-patch offset). `collate_coarse`
stacks pairs into a CoarseBatch, the collation given to training/batches.py's BatchStream.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from novel_pose_ros.geometry.icosphere import viewpoint_directions
from novel_pose_ros.networks.coop.coarse_truth import coarse_truth
from novel_pose_ros.render import Renderer
from novel_pose_ros.training.augment import augment_rgb
from novel_pose_ros.training.batches import DeviceBatch, network_input_tensor, stacked_tensor
from novel_pose_ros.training.config import DataConfig
from novel_pose_ros.training.objects import ObjectPool
from novel_pose_ros.training.pairs import PairSampler, SceneImage
from novel_pose_ros.training.template_views import nearest_views


@dataclass(frozen=True)
class CoarsePair:
    """query_rgb, template_rgb (224, 224, 3) uint8 (the query augmented); target_class (256,) int64
    (template patch 0..255 or 256 = no match); target_offset (256, 2) float32 (patch units). The rest
    describes the pair (tests, debugging)."""

    query_rgb: np.ndarray
    template_rgb: np.ndarray
    target_class: np.ndarray
    target_offset: np.ndarray
    object_name: str
    view: int
    far_template: bool
    grey_template: bool
    box_only: bool
    T_cam_obj: np.ndarray


class CoarsePairSampler(PairSampler):
    """PairSampler whose pairs are CoarsePairs (module docstring)."""

    def __init__(self, pool: ObjectPool, config: DataConfig, renderer: Renderer | None = None,
                 far_template_probability: float = 0.1) -> None:
        super().__init__(pool, config, renderer)
        self.far_template_probability = float(far_template_probability)

    def make_pair(self, image: SceneImage, index: int, rng: np.random.Generator) -> CoarsePair | None:
        cfg = self.config
        shown, base, T_q = image.instances[index]
        made = self.query_crop(image, index, rng)
        if made is None:
            return None
        crop, box_only = made
        template_obj, grey = self.template_object(shown, base, rng)
        far = bool(rng.random() < self.far_template_probability)
        if far:
            view = int(rng.integers(len(viewpoint_directions(cfg.template_level))))
        else:
            view = int(rng.choice(nearest_views(T_q, cfg.template_level, cfg.nearest_templates)))
        template = self.views.view(template_obj, view)
        tolerance = cfg.visibility_tolerance(base.diameter_m)
        truth = coarse_truth(image.depth_m, image.labels, index + 1, image.K, crop.M_crop_img, T_q, template.depth_m,
                             template.mask, template.K, template.M_crop_img, template.T_cam_obj, tolerance)
        if not far and not truth.matched.any():
            return None
        return CoarsePair(query_rgb=augment_rgb(crop.rgb, rng, cfg.augment), template_rgb=template.rgb,
                          target_class=truth.target_class, target_offset=truth.target_offset, object_name=base.name,
                          view=view, far_template=far, grey_template=grey, box_only=box_only,
                          T_cam_obj=np.asarray(T_q, dtype=np.float64))


@dataclass
class CoarseBatch(DeviceBatch):
    """B coarse pairs as tensors: query, template [B, 3, 224, 224] float32 network input
    (preprocessing.to_network_input); target_class [B, 256] int64; target_offset [B, 256, 2] float32."""

    query: torch.Tensor
    template: torch.Tensor
    target_class: torch.Tensor
    target_offset: torch.Tensor

    def __len__(self) -> int:
        return int(self.query.shape[0])


def collate_coarse(pairs: list[CoarsePair]) -> CoarseBatch:
    """Stack CoarsePairs into a CoarseBatch (CPU tensors)."""
    if not pairs:
        raise ValueError("collate_coarse: no pairs")
    return CoarseBatch(
        query=network_input_tensor([p.query_rgb for p in pairs]),
        template=network_input_tensor([p.template_rgb for p in pairs]),
        target_class=stacked_tensor([p.target_class for p in pairs], np.int64),
        target_offset=stacked_tensor([p.target_offset for p in pairs], np.float32))

"""Template views for training, rendered on demand with the estimator's exact recipe and cached.

A training pair needs one template view of its object: one of the `nearest` icosphere views
(TemplateSettings.level, PicoPose: level 1 = 162 views) closest to the query's viewing
direction. The view is rendered as `templates/build.py` renders a whole set (same K, image
size, distance, lighting rule, mask-box square crop) and cropped and lifted by
`estimation/template_bank.build_template_bank`, so training sees exactly what the estimator
sees. Views are kept in an LRU cache: one object's templates serve many pairs.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from novel_pose_ros.estimation.template_bank import TemplateBank, build_template_bank, patch_grid_mask
from novel_pose_ros.geometry.crop import box_from_mask, crop_transform, square_box_around, warp_crop
from novel_pose_ros.geometry.icosphere import viewpoint_directions
from novel_pose_ros.geometry.se3 import look_at_T_cam_obj, viewing_direction_obj
from novel_pose_ros.networks.picopose.config import FLOW_SIZES, PATCH_GRID
from novel_pose_ros.render import Renderer
from novel_pose_ros.templates import TemplateSet, TemplateSettings, TemplateView
from novel_pose_ros.types import ObjectModel


@dataclass(frozen=True)
class TemplateCrop:
    """One template view as the networks see it.

    rgb (S, S, 3) uint8; mask (S, S) bool; depth_m (S, S) float32 metres (0 off the object; nearest
    sampling, for the Co-op coarse ground truth); centre_crop_px (2,) projected object origin in crop pixels
    (integer-centred); T_cam_obj (4, 4); K (3, 3); M_crop_img (2, 3);
    points_obj[n] (n, n, 3) object point at each cell centre of the n×n grid, n in FLOW_SIZES,
    with points_valid[n] (n, n) bool (the cell centre lies on the object).
    """

    object_name: str
    view: int
    rgb: np.ndarray
    mask: np.ndarray
    depth_m: np.ndarray
    centre_crop_px: np.ndarray
    T_cam_obj: np.ndarray
    K: np.ndarray
    M_crop_img: np.ndarray
    points_obj: dict[int, np.ndarray]
    points_valid: dict[int, np.ndarray]

    def bank(self, grid: int = FLOW_SIZES[-1]) -> TemplateBank:
        """This view as a one-view TemplateBank on the `grid`×`grid` grid (for estimation functions)."""
        return TemplateBank(
            object_name=self.object_name, key="training", rgb=self.rgb[None], mask=self.mask[None],
            patch_mask=patch_grid_mask(self.mask, PATCH_GRID)[None], centre_crop_px=self.centre_crop_px[None],
            points_obj=self.points_obj[grid][None], points_valid=self.points_valid[grid][None],
            T_cam_obj=self.T_cam_obj[None], K=self.K, M_crop_img=self.M_crop_img[None])


def nearest_views(T_cam_obj: np.ndarray, level: int, count: int) -> np.ndarray:
    """Indices of the `count` icosphere views whose direction is closest to the query's viewing direction.

    The direction is the one from the object origin to the camera, in the object frame."""
    return np.argsort(-(viewpoint_directions(level) @ viewing_direction_obj(T_cam_obj)), kind="stable")[:count]


class TemplateViews:
    """Renders and caches TemplateCrops. One renderer, one TemplateSettings, an LRU of `cache_size` views."""

    def __init__(self, renderer: Renderer, settings: TemplateSettings, cache_size: int = 512) -> None:
        self.renderer = renderer
        self.settings = settings
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[tuple[str, str, int], TemplateCrop] = OrderedDict()
        self.rendered = 0

    def view(self, obj: ObjectModel, view: int) -> TemplateCrop:
        key = (obj.content_hash, obj.name, int(view))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        crop = self._render(obj, int(view))
        self._cache[key] = crop
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return crop

    def _render(self, obj: ObjectModel, view: int) -> TemplateCrop:
        s = self.settings
        T_cam_obj = look_at_T_cam_obj(viewpoint_directions(s.level)[view] * s.distance_m(obj))  # = template_poses(...)[view]
        result = self.renderer.render([(obj, T_cam_obj)], s.K_array, s.width, s.height, s.lighting_for(obj))
        box = box_from_mask(result.mask)
        if box is None:
            raise RuntimeError(f"object '{obj.name}': template view {view} rendered empty")
        crop_box = square_box_around(box, s.width, s.height)
        one = TemplateSet(object_name=obj.name, object_id=obj.id, key="training", K=s.K_array,
                          crop_size_px=s.crop_size_px, level=s.level, folder=Path("<memory>"),
                          views=(TemplateView(view, result.rgb, result.depth_m, result.mask, T_cam_obj, crop_box,
                                              crop_transform(crop_box, s.crop_size_px)),))
        banks = {n: build_template_bank(one, PATCH_GRID, n) for n in FLOW_SIZES}
        first = banks[FLOW_SIZES[-1]]
        self.rendered += 1
        return TemplateCrop(
            object_name=obj.name, view=view, rgb=first.rgb[0], mask=first.mask[0],
            depth_m=warp_crop(result.depth_m, first.M_crop_img[0], s.crop_size_px, nearest=True).astype(np.float32),
            centre_crop_px=first.centre_crop_px[0],
            T_cam_obj=T_cam_obj, K=s.K_array, M_crop_img=first.M_crop_img[0],
            points_obj={n: b.points_obj[0] for n, b in banks.items()},
            points_valid={n: b.points_valid[0] for n, b in banks.items()})

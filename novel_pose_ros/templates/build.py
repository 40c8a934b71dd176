"""Render an object's template views and keep them in the on-disk cache.

A rebuild happens only when the cache key (mesh content + settings) differs
from the one in the folder's manifest, or when forced.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm import tqdm

from novel_pose_ros.geometry.crop import box_from_mask, crop_transform, square_box_around
from novel_pose_ros.geometry.icosphere import template_poses
from novel_pose_ros.render import Renderer, create_renderer
from novel_pose_ros.templates.settings import TemplateSettings
from novel_pose_ros.templates.store import (
    TemplateView,
    depth_scale_for,
    read_manifest,
    write_template_set,
)
from novel_pose_ros.types import ObjectModel

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildReport:
    """What `ensure_templates` did for one object and why."""

    object_name: str
    folder: Path
    key: str
    rebuilt: bool
    reason: str
    seconds: float
    view_count: int
    render_s: float = 0.0
    write_s: float = 0.0


def render_template_views(
    obj: ObjectModel, settings: TemplateSettings, renderer: Renderer, progress: tqdm | None = None
) -> list[TemplateView]:
    """Render every icosphere view of `obj` with its mask-based square crop transform."""
    K = settings.K_array
    views = []
    lighting = settings.lighting_for(obj)
    for view_id, T_cam_obj in enumerate(template_poses(settings.level, settings.distance_m(obj))):
        result = renderer.render([(obj, T_cam_obj)], K, settings.width, settings.height, lighting)
        box = box_from_mask(result.mask)
        if box is None:
            raise RuntimeError(f"object '{obj.name}': template view {view_id} rendered empty (mesh behind the camera?)")
        crop_box = square_box_around(box, settings.width, settings.height)
        views.append(TemplateView(
            view_id=view_id,
            rgb=result.rgb,
            depth_m=result.depth_m,
            mask=result.mask,
            T_cam_obj=T_cam_obj,
            crop_box=crop_box,
            M_crop_img=crop_transform(crop_box, settings.crop_size_px),
        ))
        if progress is not None:
            progress.update(1)
    return views


def _rebuild_reason(folder: Path, key: str, force: bool) -> str | None:
    """Why the folder must be (re)built, or None when it is up to date."""
    if force:
        return "forced"
    manifest = read_manifest(folder)
    if manifest is None:
        return "no templates yet"
    if manifest.get("key") != key:
        return f"mesh or settings changed (key {str(manifest.get('key'))[:12]} -> {key[:12]})"
    missing = [
        f"{sub}/{i:06d}.png" for i in range(len(manifest.get("views", []))) for sub in ("rgb", "depth", "mask")
        if not (folder / sub / f"{i:06d}.png").is_file()
    ]
    if missing:
        return f"{len(missing)} image files missing (e.g. {missing[0]})"
    return None


def ensure_templates(
    obj: ObjectModel,
    cache_dir: str | Path,
    settings: TemplateSettings,
    renderer: Renderer,
    force: bool = False,
    show_progress: bool = True,
) -> BuildReport:
    """Build `obj`'s templates under `cache_dir/<name>` unless an up-to-date set is already there."""
    start = time.perf_counter()
    folder = Path(cache_dir) / obj.name
    key = settings.cache_key(obj)
    reason = _rebuild_reason(folder, key, force)
    if reason is None:
        return BuildReport(obj.name, folder, key, False, "up to date", time.perf_counter() - start, 0)
    LOGGER.info("templates for '%s': building (%s)", obj.name, reason)
    with tqdm(total=len(template_poses(settings.level, 1.0)), desc=f"templates {obj.name}", unit="view",
              disable=not show_progress, leave=False) as bar:
        views = render_template_views(obj, settings, renderer, bar)
    render_s = time.perf_counter() - start
    manifest = {
        "key": key,
        "object_name": obj.name,
        "object_id": obj.id,
        "mesh_path": str(obj.mesh_path),
        "content_hash": obj.content_hash,
        "settings": asdict(settings),
        "lighting": asdict(settings.lighting_for(obj)),
        "renderer": renderer.name,
        "K": settings.K_array.tolist(),
        "width": settings.width,
        "height": settings.height,
    }
    max_depth = max(float(np.max(v.depth_m)) for v in views)
    write_template_set(folder, manifest, views, depth_scale_for(max_depth))
    total_s = time.perf_counter() - start
    return BuildReport(obj.name, folder, key, True, reason, total_s, len(views), render_s, total_s - render_s)


def ensure_library_templates(
    objects: Iterable[ObjectModel],
    cache_dir: str | Path,
    settings: TemplateSettings,
    renderer: Renderer | None = None,
    force: bool = False,
    show_progress: bool = True,
) -> list[BuildReport]:
    """`ensure_templates` for every object, sharing one renderer."""
    renderer = renderer or create_renderer("auto")
    return [ensure_templates(obj, cache_dir, settings, renderer, force, show_progress) for obj in objects]

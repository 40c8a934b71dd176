"""Template rendering settings (PicoPose conventions) and the cache key they produce."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from novel_pose_ros.geometry.icosphere import LEVEL_VIEW_COUNTS
from novel_pose_ros.render.base import AMBIENT_ONLY, SHADED, Lighting
from novel_pose_ros.types import ObjectModel

# Bump when the on-disk layout or the rendering changes, so old caches rebuild.
TEMPLATE_FORMAT_VERSION = 1
# LINEMOD intrinsics at 640×480, used by PicoPose for every template.
LINEMOD_K = ((572.4114, 0.0, 320.0), (0.0, 573.57043, 240.0), (0.0, 0.0, 1.0))


@dataclass(frozen=True)
class TemplateSettings:
    """How templates are rendered.

    level: icosphere level (0 = 42 views, 1 = 162, 2 = 642).
    distance_factor: camera distance = factor × the mesh's bounding-box diagonal.
    crop_size_px: side of the square network crop (224 for PicoPose).
    shade_geometry_only: light geometry-only meshes with a headlight. PicoPose
        renders with ambient light only; on a mesh without colours that gives a
        flat silhouette, so such meshes get shading (render/base.py).
    """

    level: int = 0
    width: int = 640
    height: int = 480
    K: tuple[tuple[float, float, float], ...] = LINEMOD_K
    distance_factor: float = 2.0
    crop_size_px: int = 224
    shade_geometry_only: bool = True

    def __post_init__(self) -> None:
        if self.level not in LEVEL_VIEW_COUNTS:
            raise ValueError(f"TemplateSettings.level must be one of {sorted(LEVEL_VIEW_COUNTS)}, got {self.level}")
        if self.width <= 0 or self.height <= 0 or self.crop_size_px <= 0:
            raise ValueError(f"TemplateSettings: sizes must be positive ({self.width}x{self.height}, crop {self.crop_size_px})")
        if not np.isfinite(self.distance_factor) or self.distance_factor <= 0:
            raise ValueError(f"TemplateSettings.distance_factor must be positive, got {self.distance_factor}")
        object.__setattr__(self, "K", tuple(tuple(float(v) for v in row) for row in self.K))

    @property
    def K_array(self) -> np.ndarray:
        return np.array(self.K, dtype=np.float64)

    def lighting_for(self, obj: ObjectModel) -> Lighting:
        return SHADED if (self.shade_geometry_only and not obj.has_appearance) else AMBIENT_ONLY

    def distance_m(self, obj: ObjectModel) -> float:
        return self.distance_factor * float(np.linalg.norm(obj.extents_m))

    def cache_key(self, obj: ObjectModel) -> str:
        """sha256 of the mesh content (file, texture, units, origin) + these settings + the format version."""
        payload = {
            "format": TEMPLATE_FORMAT_VERSION,
            "object": obj.content_hash,
            "settings": asdict(self),
            "lighting": asdict(self.lighting_for(obj)),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

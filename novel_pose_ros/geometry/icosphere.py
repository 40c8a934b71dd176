"""Template viewpoints on a subdivided icosahedron.

Level 0 = 42 views (icosahedron subdivided once), level 1 = 162, level 2 = 642,
as in PicoPose. Each subdivision keeps the previous vertices, so level 0 is an
exact subset of level 1; `level_subset_indices` gives that mapping.
Our vertex order is our own (trimesh's), not the order of PicoPose's
pre-computed pose files.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import trimesh

from novel_pose_ros.geometry.se3 import look_at_T_cam_obj

LEVEL_VIEW_COUNTS = {0: 42, 1: 162, 2: 642}


@lru_cache(maxsize=None)
def _unit_vertices(level: int) -> np.ndarray:
    sphere = trimesh.creation.icosphere(subdivisions=level + 1, radius=1.0)
    vertices = np.asarray(sphere.vertices, dtype=np.float64)
    vertices /= np.linalg.norm(vertices, axis=1, keepdims=True)
    vertices.setflags(write=False)
    return vertices


def viewpoint_directions(level: int) -> np.ndarray:
    """Unit directions (N, 3) from the object origin to each camera, in the object frame."""
    if level not in LEVEL_VIEW_COUNTS:
        raise ValueError(f"icosphere level must be one of {sorted(LEVEL_VIEW_COUNTS)}, got {level}")
    directions = _unit_vertices(level)
    if len(directions) != LEVEL_VIEW_COUNTS[level]:
        raise RuntimeError(f"icosphere level {level}: expected {LEVEL_VIEW_COUNTS[level]} vertices, got {len(directions)}")
    return directions


def level_subset_indices(coarse_level: int, fine_level: int) -> np.ndarray:
    """Indices into the fine level's views of each coarse-level view (exact same directions)."""
    if fine_level <= coarse_level:
        raise ValueError(f"fine_level ({fine_level}) must be greater than coarse_level ({coarse_level})")
    coarse = viewpoint_directions(coarse_level)
    fine = viewpoint_directions(fine_level)
    nearest = np.argmax(coarse @ fine.T, axis=1)
    gap = np.linalg.norm(fine[nearest] - coarse, axis=1).max()
    if gap > 1e-9:
        raise RuntimeError(f"level {coarse_level} is not a subset of level {fine_level} (max gap {gap:.3g})")
    return nearest


def template_poses(level: int, distance_m: float) -> np.ndarray:
    """T_cam_obj (N, 4, 4) of cameras on the sphere of radius `distance_m`, looking at the origin.

    Every pose has translation (0, 0, distance_m): the object origin lies on the optical axis.
    """
    if not np.isfinite(distance_m) or distance_m <= 0:
        raise ValueError(f"distance_m must be positive, got {distance_m}")
    return np.stack([look_at_T_cam_obj(d * distance_m) for d in viewpoint_directions(level)])

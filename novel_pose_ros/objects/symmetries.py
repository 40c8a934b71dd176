"""Symmetries from BOP `models_info.json` entries or from our YAML, converted to metres.

Both sources use the same layout: `symmetries_discrete` / `discrete` is a list of
4×4 transforms (16 numbers, row-major) with translations in the mesh's units;
`symmetries_continuous` / `continuous` is a list of {axis: [3], offset: [3]},
offsets in the mesh's units.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from novel_pose_ros.types import Symmetries


def symmetries_from_entries(
    discrete: list[Any] | None,
    continuous: list[dict[str, Any]] | None,
    scale_to_m: float,
    source: str,
) -> Symmetries:
    """Build Symmetries from raw lists (units of the mesh file); `source` names the origin in errors."""
    try:
        discrete_T = np.array([np.asarray(d, dtype=np.float64).reshape(4, 4) for d in (discrete or [])]).reshape(-1, 4, 4)
        axes = np.array([np.asarray(c["axis"], dtype=np.float64).reshape(3) for c in (continuous or [])]).reshape(-1, 3)
        offsets = np.array([np.asarray(c.get("offset", [0, 0, 0]), dtype=np.float64).reshape(3) for c in (continuous or [])]).reshape(-1, 3)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{source}: malformed symmetries ({exc})") from exc
    discrete_T = discrete_T.copy()
    discrete_T[:, :3, 3] *= scale_to_m
    try:
        return Symmetries(discrete=discrete_T, continuous_axes=axes, continuous_offsets_m=offsets * scale_to_m)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc


def shift_origin(symmetries: Symmetries, new_origin_m: np.ndarray) -> Symmetries:
    """Express symmetries in a frame whose origin is the old frame's point `new_origin_m`.

    With x' = x − c, a symmetry x -> R x + t becomes x' -> R x' + (R c + t − c);
    an axis through offset o passes through o − c.
    """
    c = np.asarray(new_origin_m, dtype=np.float64).reshape(3)
    discrete = np.array(symmetries.discrete, dtype=np.float64)
    if len(discrete):
        discrete[:, :3, 3] += discrete[:, :3, :3] @ c - c
    return Symmetries(
        discrete=discrete,
        continuous_axes=symmetries.continuous_axes,
        continuous_offsets_m=symmetries.continuous_offsets_m - c,
    )

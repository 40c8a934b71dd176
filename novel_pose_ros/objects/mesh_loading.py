"""Load one object's mesh (PLY/OBJ/STL via trimesh) into an ObjectModel in metres."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import cdist

from novel_pose_ros.objects.symmetries import shift_origin, symmetries_from_entries
from novel_pose_ros.types import ObjectModel

LOGGER = logging.getLogger(__name__)

UNIT_SCALES_TO_M = {"m": 1.0, "mm": 0.001}
UNIT_CHOICES = ("auto", "m", "mm")
ORIGIN_CHOICES = ("keep", "center_bbox")
SUPPORTED_SUFFIXES = (".ply", ".obj", ".stl")
# A mesh whose diameter exceeds this many "units" cannot be in metres for the
# objects a robot grasps: auto-detection then reads it as millimetres.
AUTO_MM_DIAMETER_THRESHOLD = 10.0


class MeshError(ValueError):
    """A mesh file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"mesh {path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def max_pairwise_distance(points: np.ndarray) -> float:
    """Largest distance between two points, exact: searched over the convex hull's vertices."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        return 0.0
    try:
        candidates = points[ConvexHull(points).vertices] if len(points) > 64 else points
    except QhullError:  # flat point sets have no 3D hull: search all points
        candidates = points
    best = 0.0
    for start in range(0, len(candidates), 2048):  # chunks keep memory bounded for large hulls
        best = max(best, float(cdist(candidates[start:start + 2048], candidates).max()))
    return best


def _read_mesh(path: Path) -> trimesh.Trimesh:
    if not path.is_file():
        raise MeshError(path, "file not found")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise MeshError(path, f"unsupported format '{path.suffix}' (use one of {', '.join(SUPPORTED_SUFFIXES)})")
    try:
        # process=False keeps vertices as written (BOP metrics use the model's vertices).
        loaded = trimesh.load(str(path), force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for corrupt files
        raise MeshError(path, f"cannot be parsed ({type(exc).__name__}: {exc})") from exc
    if not isinstance(loaded, trimesh.Trimesh):
        raise MeshError(path, f"does not contain a triangle mesh (got {type(loaded).__name__})")
    return loaded


def _check_geometry(mesh: trimesh.Trimesh, path: Path) -> None:
    if len(mesh.faces) == 0:
        raise MeshError(path, "has no faces (a point cloud is not a mesh)")
    if not np.all(np.isfinite(mesh.vertices)):
        bad = int((~np.isfinite(mesh.vertices).all(axis=1)).sum())
        raise MeshError(path, f"has {bad} vertices with non-finite coordinates")
    if np.any(mesh.faces >= len(mesh.vertices)) or np.any(mesh.faces < 0):
        raise MeshError(path, "has faces that index missing vertices")
    if float(np.max(mesh.extents)) <= 0:
        raise MeshError(path, "has zero extent (all vertices coincide)")


def _content_hash(path: Path, mesh: trimesh.Trimesh, settings: str) -> str:
    digest = hashlib.sha256(path.read_bytes())
    material = getattr(mesh.visual, "material", None)
    image = getattr(material, "image", None) if material is not None else None
    if image is not None:  # the texture is part of what templates look like
        digest.update(np.asarray(image).tobytes())
    digest.update(settings.encode())
    return digest.hexdigest()


def resolve_scale_to_m(units: str, raw_diameter: float, path: Path) -> float:
    """Metres per mesh unit for units 'm' | 'mm' | 'auto' (auto: diameter > 10 units means mm)."""
    if units not in UNIT_CHOICES:
        raise MeshError(path, f"units must be one of {UNIT_CHOICES}, got '{units}'")
    if units != "auto":
        return UNIT_SCALES_TO_M[units]
    if raw_diameter > AUTO_MM_DIAMETER_THRESHOLD:
        LOGGER.warning(
            "mesh %s: diameter %.4g units > %g, reading it as millimetres (set units: mm to silence this)",
            path, raw_diameter, AUTO_MM_DIAMETER_THRESHOLD,
        )
        return UNIT_SCALES_TO_M["mm"]
    return UNIT_SCALES_TO_M["m"]


def load_object(
    path: str | Path,
    object_id: int,
    name: str | None = None,
    units: str = "auto",
    origin: str = "keep",
    symmetries: dict[str, Any] | None = None,
) -> ObjectModel:
    """Load a mesh file into an ObjectModel in metres.

    units: 'm', 'mm' or 'auto'. origin: 'keep' (the file's origin) or
    'center_bbox' (move the bounding-box centre to the origin; the offset is
    logged and kept in `origin_offset_m`). `symmetries` = {"discrete": [16 numbers,
    row-major], "continuous": [{axis, offset}]} in the mesh file's units and frame
    (BOP models_info layout); they are converted and moved along with the origin.
    Raises MeshError naming the file for any unusable mesh.
    """
    path = Path(path).expanduser().resolve()
    if origin not in ORIGIN_CHOICES:
        raise MeshError(path, f"origin must be one of {ORIGIN_CHOICES}, got '{origin}'")
    mesh = _read_mesh(path)
    _check_geometry(mesh, path)

    raw_diameter = max_pairwise_distance(mesh.vertices)
    scale = resolve_scale_to_m(units, raw_diameter, path)
    mesh = mesh.copy()
    if scale != 1.0:
        mesh.apply_scale(scale)

    symmetry_spec = symmetries or {}
    symmetries_m = symmetries_from_entries(
        symmetry_spec.get("discrete"), symmetry_spec.get("continuous"), scale, f"mesh {path}"
    )
    offset = np.zeros(3)
    if origin == "center_bbox":
        offset = np.asarray(mesh.bounds, dtype=np.float64).mean(axis=0)
        mesh.apply_translation(-offset)
        symmetries_m = shift_origin(symmetries_m, offset)
        LOGGER.info("mesh %s: origin moved to its bounding-box centre, offset %s m", path, np.round(offset, 6).tolist())

    settings = f"units={scale};origin={origin}"
    return ObjectModel(
        id=int(object_id),
        name=name or path.stem,
        mesh=mesh,
        diameter_m=raw_diameter * scale,
        symmetries=symmetries_m,
        mesh_path=path,
        mesh_scale_to_m=scale,
        origin_offset_m=offset,
        content_hash=_content_hash(path, mesh, settings),
    )

"""Random scene layouts (objects on or above a support plane), camera poses and intrinsics.

World frame: the support plane is z = 0, z up. Resting objects take one of trimesh's
stable poses of their convex hull (`trimesh.poses.compute_stable_poses`: a hull face
is a resting face when the centre of mass projects inside it; its probability is the
solid angle, seen from the centre of mass, of the hull faces that topple onto it), drawn
with those probabilities, and with the centre of mass taken
as the hull's centroid: meshes from CAD files are often not watertight, and a
uniformly filled hull is a fair guess for the mass of a graspable object. The pose is
then turned about the vertical by a random yaw and dropped so its lowest point touches
z = 0. Floating objects get a uniformly random rotation and a height above the plane.
Instances never interpenetrate (their world-axis-aligned boxes are disjoint) but are
packed tightly, so most views show occlusions. Conventions: docs/CONVENTIONS.md.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import trimesh

from novel_pose_ros.geometry.se3 import look_at_T_cam_obj, make_T, random_rotation, rotation_from_axis_angle
from novel_pose_ros.synth.settings import SynthSettings
from novel_pose_ros.types import ObjectModel

LOGGER = logging.getLogger(__name__)
Z_AXIS = np.array([0.0, 0.0, 1.0])
PLACEMENT_ATTEMPTS = 200
CLEARANCE_M = 1e-3  # gap kept between the boxes of two instances


@dataclass(frozen=True)
class PlacedObject:
    """One instance of a scene: T_world_obj (4×4, metres) in the plane's frame (plane z = 0, z up)."""

    obj: ObjectModel
    T_world_obj: np.ndarray
    resting: bool


@dataclass(frozen=True)
class SceneLayout:
    """The instances of a scene and the sphere (centre_world, radius_m) enclosing them."""

    objects: tuple[PlacedObject, ...]
    center_world: np.ndarray
    radius_m: float


class StablePoses:
    """Resting poses per object (rotations whose convex hull rests on z = 0), computed once per mesh."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def hull_vertices(self, obj: ObjectModel) -> np.ndarray:
        return self._entry(obj)[2]

    def sample(self, obj: ObjectModel, rng: np.random.Generator) -> np.ndarray:
        """A 3×3 rotation of a resting pose, drawn with the poses' probabilities."""
        rotations, probabilities, _ = self._entry(obj)
        return rotations[rng.choice(len(rotations), p=probabilities)]

    def _entry(self, obj: ObjectModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = f"{obj.content_hash}:{obj.name}"
        if key not in self._cache:
            self._cache[key] = _stable_rotations(obj)
        return self._cache[key]


def _stable_rotations(obj: ObjectModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vertices = np.asarray(obj.mesh.vertices, dtype=np.float64)
    try:
        hull = obj.mesh.convex_hull
        transforms, probabilities = trimesh.poses.compute_stable_poses(hull, center_mass=hull.center_mass)
        hull_vertices = np.asarray(hull.vertices, dtype=np.float64)
    except Exception as exc:  # flat or degenerate meshes have no 3D hull
        LOGGER.warning("object %s: no stable poses (%s); it rests in its own frame", obj.name, exc)
        transforms, probabilities, hull_vertices = np.eye(4)[None], np.ones(1), vertices
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(transforms) == 0 or not np.isfinite(probabilities).all() or probabilities.sum() <= 0:
        transforms, probabilities = np.eye(4)[None], np.ones(1)
    rotations = np.asarray(transforms, dtype=np.float64)[:, :3, :3]
    return rotations, probabilities / probabilities.sum(), hull_vertices


def _box(points: np.ndarray) -> np.ndarray:
    return np.stack([points.min(axis=0), points.max(axis=0)])


def _overlaps(box: np.ndarray, others: list[np.ndarray]) -> bool:
    return any(np.all(box[0] < o[1] + CLEARANCE_M) and np.all(o[0] < box[1] + CLEARANCE_M) for o in others)


def sample_layout(objects: list[ObjectModel], rng: np.random.Generator, settings: SynthSettings,
                  stable: StablePoses) -> SceneLayout:
    """Place `objects` (one instance each, in order) on or above the plane around the origin.

    Positions are drawn in a disc of radius 0.3 × sqrt(Σ diameter²), smaller than the objects'
    summed footprints, so instances crowd each other; the disc widens by 30 % every 40 failed
    draws. An instance
    that still finds no free spot after PLACEMENT_ATTEMPTS draws is left out (logged).
    """
    if not objects:
        raise ValueError("sample_layout: needs at least one object")
    region_m = 0.3 * float(np.sqrt(sum(o.diameter_m ** 2 for o in objects)))
    placed: list[PlacedObject] = []
    boxes: list[np.ndarray] = []
    points_world: list[np.ndarray] = []
    for obj in objects:
        hull = stable.hull_vertices(obj)
        for attempt in range(PLACEMENT_ATTEMPTS):
            if attempt and attempt % 40 == 0:
                region_m *= 1.3
            resting = rng.random() >= settings.in_air_probability
            if resting:
                R = rotation_from_axis_angle(Z_AXIS, rng.uniform(0.0, 2 * np.pi)) @ stable.sample(obj, rng)
                lift = 0.0
            else:
                R = random_rotation(rng)
                lift = rng.uniform(*settings.in_air_height_m)
            radius, angle = region_m * np.sqrt(rng.random()), rng.uniform(0.0, 2 * np.pi)
            rotated = hull @ R.T
            t = np.array([radius * np.cos(angle), radius * np.sin(angle), lift - rotated[:, 2].min()])
            box = _box(rotated + t)
            if not _overlaps(box, boxes):
                placed.append(PlacedObject(obj, make_T(R, t), resting))
                boxes.append(box)
                points_world.append(rotated + t)
                break
        else:
            LOGGER.debug("object %s: no free spot after %d draws; left out of this scene", obj.name, PLACEMENT_ATTEMPTS)
    if not placed:
        raise ValueError("sample_layout: no object could be placed")
    points = np.concatenate(points_world)
    center = _box(points).mean(axis=0)
    return SceneLayout(tuple(placed), center, float(np.linalg.norm(points - center, axis=1).max()))


def sample_intrinsics(rng: np.random.Generator, settings: SynthSettings) -> np.ndarray:
    """K around the nominal one: focal ± focal_jitter, principal point ± principal_jitter × size."""
    f = settings.focal_px * rng.uniform(1 - settings.focal_jitter, 1 + settings.focal_jitter)
    fy = f * rng.uniform(0.99, 1.01)  # slightly non-square pixels
    cx = (settings.width - 1) / 2 + settings.width * rng.uniform(-settings.principal_jitter, settings.principal_jitter)
    cy = (settings.height - 1) / 2 + settings.height * rng.uniform(-settings.principal_jitter, settings.principal_jitter)
    return np.array([[f, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def half_fov_rad(K: np.ndarray, width: int, height: int) -> float:
    """The smallest angle between the optical axis and an image border."""
    fx, cx, fy, cy = K[0, 0], K[0, 2], K[1, 1], K[1, 2]
    margins = (cx + 0.5) / fx, (width - 0.5 - cx) / fx, (cy + 0.5) / fy, (height - 0.5 - cy) / fy
    return float(np.arctan(min(margins)))


def sample_camera(rng: np.random.Generator, layout: SceneLayout, K: np.ndarray, settings: SynthSettings) -> np.ndarray:
    """T_cam_world of an OpenCV camera above the plane looking at (near) the scene centre.

    Elevation and azimuth are uniform; the distance is distance_factor × the distance at
    which the scene's bounding sphere fills the image's narrowest half field of view
    (never inside that sphere); the look-at point is jittered and the camera rolled.
    Raises ValueError when the scene is too large for the depth PNG's range.
    """
    elevation = rng.uniform(*settings.elevation_rad)
    azimuth = rng.uniform(0.0, 2 * np.pi)
    fit_m = layout.radius_m / np.sin(half_fov_rad(K, settings.width, settings.height))
    distance = max(fit_m * rng.uniform(*settings.distance_factor), 1.2 * layout.radius_m)
    if distance + layout.radius_m > settings.max_depth_m:
        raise ValueError(f"scene of radius {layout.radius_m:.2f} m seen from {distance:.2f} m exceeds the "
                         f"{settings.max_depth_m:.2f} m a uint16 depth holds at depth_scale {settings.depth_scale_mm} mm")
    target = layout.center_world.copy()
    target[:2] += rng.normal(0.0, 0.15 * layout.radius_m, size=2)
    direction = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    T_cam_target = look_at_T_cam_obj(distance * direction, up_obj=Z_AXIS)
    T_target_world = make_T(np.eye(3), -target)
    roll = make_T(rotation_from_axis_angle(Z_AXIS, rng.uniform(-settings.roll_rad, settings.roll_rad)), np.zeros(3))
    return roll @ T_cam_target @ T_target_world

"""What every renderer takes and returns, and the per-object arrays both back ends draw.

Camera: OpenCV convention (x right, y down, z forward), pixel centres at integer
coordinates, intrinsics K. Depth is the metric camera z (float32 metres, 0 = no
surface). Shading: albedo × (ambient + headlight · |n·v|), where the headlight
sits at the camera centre; PicoPose templates use ambient light only, while
geometry-only meshes need the headlight or they would render as flat silhouettes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from novel_pose_ros.geometry.camera import validate_K
from novel_pose_ros.geometry.se3 import check_shape
from novel_pose_ros.types import ObjectModel

FALLBACK_GREY = 0.7  # albedo of meshes without colours or texture
MIN_NEAR_M = 1e-4


@dataclass(frozen=True)
class Lighting:
    """Intensities of ambient, headlight and one directional light; colours saturate at 1.

    light_direction_cam: unit vector towards the directional light, camera frame.
    """

    ambient: float = 1.0
    headlight: float = 0.0
    directional: float = 0.0
    light_direction_cam: tuple[float, float, float] = (0.0, 0.0, -1.0)

    def __post_init__(self) -> None:
        values = (self.ambient, self.headlight, self.directional)
        if not all(np.isfinite(v) and v >= 0 for v in values):
            raise ValueError(f"Lighting: intensities must be finite and ≥ 0, got {self}")
        direction = np.asarray(self.light_direction_cam, dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(direction)) if direction.size == 3 else 0.0
        if not np.isfinite(norm) or norm == 0:
            raise ValueError(f"Lighting.light_direction_cam must be a non-zero 3-vector, got {self.light_direction_cam}")
        object.__setattr__(self, "light_direction_cam", tuple(float(v) for v in direction / norm))


AMBIENT_ONLY = Lighting(ambient=1.0, headlight=0.0)
SHADED = Lighting(ambient=0.35, headlight=0.65)


@dataclass(frozen=True)
class RenderResult:
    """rgb: (H, W, 3) uint8; depth_m: (H, W) float32 camera z, 0 = background;
    labels: (H, W) int32, 0 = background, i + 1 = the i-th rendered instance."""

    rgb: np.ndarray
    depth_m: np.ndarray
    labels: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: any object rendered."""
        return self.labels > 0


Instance = tuple[ObjectModel, np.ndarray]  # (object, T_cam_obj 4×4 in metres)


class Renderer(Protocol):
    """Offscreen renderer of posed meshes."""

    name: str

    def render(
        self,
        instances: Sequence[Instance],
        K: np.ndarray,
        width: int,
        height: int,
        lighting: Lighting = AMBIENT_ONLY,
    ) -> RenderResult:
        """Render all instances together (they occlude each other) into one image."""
        ...


@dataclass(frozen=True)
class MeshArrays:
    """Un-indexed triangle soup of one object, 3 vertices per face (face colours need this).

    positions/normals: (3F, 3) float32 object frame; colors: (3F, 3) float32 albedo in [0, 1];
    uv: (3F, 2) float32 or None; texture: (h, w, 3) uint8 (row 0 = top of the image) or None.
    """

    positions: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    uv: np.ndarray | None
    texture: np.ndarray | None


def texture_image(obj: ObjectModel) -> np.ndarray | None:
    """The object's UV texture as (h, w, 3) uint8 RGB, or None."""
    if obj.mesh.visual.kind != "texture":
        return None
    material = obj.mesh.visual.material
    image = getattr(material, "image", None) or getattr(material, "baseColorTexture", None)
    if image is None or getattr(obj.mesh.visual, "uv", None) is None:
        return None
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def mesh_arrays(obj: ObjectModel) -> MeshArrays:
    """Flatten an object's mesh and appearance for drawing."""
    mesh = obj.mesh
    faces = np.asarray(mesh.faces, dtype=np.int64)
    positions = np.asarray(mesh.vertices, dtype=np.float32)[faces].reshape(-1, 3)
    normals = np.asarray(mesh.vertex_normals, dtype=np.float32)[faces].reshape(-1, 3)
    visual = mesh.visual
    texture = texture_image(obj)
    uv = None
    if texture is not None:
        uv = np.asarray(visual.uv, dtype=np.float32)[faces].reshape(-1, 2)
        colors = np.ones((len(positions), 3), dtype=np.float32)
    elif visual.kind == "vertex":
        colors = (np.asarray(visual.vertex_colors)[:, :3].astype(np.float32) / 255.0)[faces].reshape(-1, 3)
    elif visual.kind == "face":
        colors = np.repeat(np.asarray(visual.face_colors)[:, :3].astype(np.float32) / 255.0, 3, axis=0)
    else:
        colors = np.full((len(positions), 3), FALLBACK_GREY, dtype=np.float32)
    return MeshArrays(positions=positions, normals=normals, colors=colors, uv=uv, texture=texture)


def check_render_args(instances: Sequence[Instance], K: np.ndarray, width: int, height: int) -> np.ndarray:
    """Validate common arguments; returns K as float64."""
    K = validate_K(K)
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    for i, (_, T) in enumerate(instances):
        T = check_shape(f"instances[{i}] T_cam_obj", T, (4, 4))
        if not np.all(np.isfinite(T)):
            raise ValueError(f"instances[{i}] T_cam_obj: contains non-finite values")
    return K


def clip_range_m(instances: Sequence[Instance]) -> tuple[float, float]:
    """Near and far planes that enclose every instance's bounding sphere (with margin).

    Fitting them to the scene keeps the 24-bit depth buffer precise for visibility
    whatever the object size (metric depth itself comes from an R32F attachment).
    """
    near, far = np.inf, 0.0
    for obj, T in instances:
        bounds = np.asarray(obj.mesh.bounds, dtype=np.float64)
        radius = 0.5 * float(np.linalg.norm(bounds[1] - bounds[0]))
        z = float((np.asarray(T, dtype=np.float64) @ np.append(bounds.mean(axis=0), 1.0))[2])
        near, far = min(near, z - radius), max(far, z + radius)
    if not instances or far <= MIN_NEAR_M:
        return MIN_NEAR_M, 1.0  # nothing in front of the camera
    return max(0.5 * near, MIN_NEAR_M), 1.5 * far


def projection_matrix(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """OpenGL clip-space projection of OpenCV camera points, row-major 4×4.

    Window x = fx·X/Z + s·Y/Z + cx + 0.5, so the GL sample at window x = u + 0.5
    sees exactly OpenCV pixel u (integer-centred). Window y is mapped the same
    way without a flip, so GL framebuffer row r (counted from the bottom, as
    glReadPixels returns it) is image row v = r: no flip on read-back.
    """
    fx, s, cx = K[0, 0], K[0, 1], K[0, 2]
    fy, cy = K[1, 1], K[1, 2]
    return np.array([
        [2 * fx / width, 2 * s / width, 2 * (cx + 0.5) / width - 1, 0],
        [0, 2 * fy / height, 2 * (cy + 0.5) / height - 1, 0],
        [0, 0, (far + near) / (far - near), -2 * far * near / (far - near)],
        [0, 0, 1, 0],
    ], dtype=np.float64)

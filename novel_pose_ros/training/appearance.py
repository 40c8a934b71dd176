"""Random appearances for training objects (domain randomisation of colour and texture).

Real objects have colours and textures their geometry-only CAD meshes lack (the ycbv_real
test meshes render shaded grey, shared/design/DATA.md), so training shows the same object as
  - its own appearance: a mesh's UV texture, or plain grey for a geometry-only mesh;
  - a random appearance: smooth vertex-colour fields, per-part (normal-binned) face colours,
    one plain colour, or a procedural texture (synth/backgrounds.py) mapped by box projection;
  - plain grey geometry (`geometry_only`): what a template of a geometry-only mesh shows.
Every variant is a new ObjectModel with the same geometry and name and its own content hash
(the renderer caches meshes by hash), drawn from a seeded Generator.
"""
from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import trimesh
from PIL import Image

from novel_pose_ros.synth.backgrounds import procedural_texture, random_colour
from novel_pose_ros.types import ObjectModel

VARIANT_KINDS = ("vertex_field", "face_parts", "plain", "texture")
VARIANT_WEIGHTS = (0.3, 0.2, 0.15, 0.35)
TEXTURE_PX = 128


def _variant(obj: ObjectModel, mesh: trimesh.Trimesh, tag: str) -> ObjectModel:
    digest = hashlib.sha256(f"{obj.content_hash}:{tag}".encode()).hexdigest()
    return replace(obj, mesh=mesh, content_hash=digest)


def _to_uint8(colours: np.ndarray) -> np.ndarray:
    rgb = np.clip(np.rint(colours * 255.0), 0, 255).astype(np.uint8)
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)


def geometry_only(obj: ObjectModel) -> ObjectModel:
    """The object without colours or texture (renders grey; its templates are shaded)."""
    if not obj.has_appearance:
        return obj
    mesh = trimesh.Trimesh(np.asarray(obj.mesh.vertices), np.asarray(obj.mesh.faces), process=False)
    return _variant(obj, mesh, "geometry_only")


def _vertex_field(obj: ObjectModel, rng: np.random.Generator) -> trimesh.Trimesh:
    """2-4 random colours blended by smooth random waves over the object (wavelengths ~ its size)."""
    vertices = np.asarray(obj.mesh.vertices, dtype=np.float64)
    count = int(rng.integers(2, 5))
    colours = np.stack([random_colour(rng) for _ in range(count)])
    frequencies = rng.normal(size=(count, 3)) * rng.uniform(0.5, 3.0) / max(obj.diameter_m, 1e-6)
    phases = rng.uniform(0, 2 * np.pi, size=count)
    logits = np.sin(2 * np.pi * vertices @ frequencies.T + phases) * rng.uniform(2.0, 8.0)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    mesh = trimesh.Trimesh(vertices, np.asarray(obj.mesh.faces), process=False)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=_to_uint8(weights @ colours))
    return mesh


def _face_parts(obj: ObjectModel, rng: np.random.Generator) -> trimesh.Trimesh:
    """Faces grouped by the direction of their normal (6-26 bins), one random colour per group."""
    mesh = trimesh.Trimesh(np.asarray(obj.mesh.vertices), np.asarray(obj.mesh.faces), process=False)
    bins = rng.normal(size=(int(rng.integers(6, 27)), 3))
    bins /= np.linalg.norm(bins, axis=1, keepdims=True)
    group = np.argmax(np.asarray(mesh.face_normals) @ bins.T, axis=1)
    palette = np.stack([random_colour(rng) for _ in range(len(bins))])
    mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=_to_uint8(palette[group]))
    return mesh


def _plain(obj: ObjectModel, rng: np.random.Generator) -> trimesh.Trimesh:
    mesh = trimesh.Trimesh(np.asarray(obj.mesh.vertices), np.asarray(obj.mesh.faces), process=False)
    colour = _to_uint8(random_colour(rng)[None])
    mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=np.repeat(colour, len(mesh.faces), axis=0))
    return mesh


def _box_textured(obj: ObjectModel, rng: np.random.Generator, texture: np.ndarray | None = None) -> trimesh.Trimesh:
    """A procedural periodic texture (or the given image), projected on each face along its dominant normal axis."""
    faces = np.asarray(obj.mesh.faces)
    corners = np.asarray(obj.mesh.vertices, dtype=np.float64)[faces]  # (F, 3, 3): one vertex per face corner
    axis = np.argmax(np.abs(np.asarray(obj.mesh.face_normals)), axis=1)
    keep = np.array([[1, 2], [0, 2], [0, 1]])[axis]  # the two coordinates across the dominant axis
    uv_faces = np.take_along_axis(corners, keep[:, None, :], axis=2)
    tile_m = max(obj.diameter_m, 1e-6) * rng.uniform(0.25, 1.5)
    uv = (uv_faces.reshape(-1, 2) / tile_m + rng.random(2)).astype(np.float64)
    image = Image.fromarray(procedural_texture(rng, TEXTURE_PX) if texture is None else texture)
    normals = np.asarray(obj.mesh.vertex_normals)[faces].reshape(-1, 3)  # keep smooth shading
    mesh = trimesh.Trimesh(corners.reshape(-1, 3), np.arange(3 * len(faces)).reshape(-1, 3), vertex_normals=normals,
                           process=False)
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, image=image)
    return mesh


_BUILDERS = {"vertex_field": _vertex_field, "face_parts": _face_parts, "plain": _plain, "texture": _box_textured}


def random_appearance(obj: ObjectModel, rng: np.random.Generator, kind: str | None = None,
                      texture: np.ndarray | None = None) -> ObjectModel:
    """A random-appearance variant of `obj` (kind drawn with VARIANT_WEIGHTS unless given).

    texture: an (h, w, 3) uint8 image (e.g. a photograph) to project on the object: kind "texture"."""
    if texture is not None:
        if kind not in (None, "texture"):
            raise ValueError(f"random_appearance: a texture image needs kind 'texture', got '{kind}'")
        kind = "texture"
    if kind is None:
        kind = VARIANT_KINDS[int(rng.choice(len(VARIANT_KINDS), p=VARIANT_WEIGHTS))]
    if kind not in _BUILDERS:
        raise ValueError(f"appearance kind must be one of {VARIANT_KINDS}, got '{kind}'")
    seed = int(rng.integers(2**62))
    if texture is None:
        return _variant(obj, _BUILDERS[kind](obj, np.random.default_rng(seed)), f"{kind}:{seed}")
    texture = np.ascontiguousarray(texture, dtype=np.uint8)
    tag = f"{kind}:{seed}:{hashlib.sha256(texture.tobytes()).hexdigest()[:16]}"  # the image is part of the look
    return _variant(obj, _box_textured(obj, np.random.default_rng(seed), texture), tag)

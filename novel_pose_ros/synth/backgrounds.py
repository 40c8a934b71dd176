"""Procedural textures (solid, gradient, stripes, checkers, 1/f noise) and the textured support plane.

Every texture is a function of periodic coordinates (u, v) ∈ [0, 1)², so it tiles without
seams when the plane repeats it (GL_REPEAT). The background behind the plane (pixels no
geometry covers, depth 0) is a texture of the same family drawn for the whole image.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import trimesh
from PIL import Image

from novel_pose_ros.types import ObjectModel, Symmetries

TEXTURE_KINDS = ("solid", "gradient", "stripes", "checkers", "noise")
PLANE_CELLS = 8  # the plane is a grid of 8×8 quads, so renderers that drop triangles behind the camera keep the rest


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """(3,) RGB in [0, 1]: a random hue-ish colour mixed with a random grey (saturation varies)."""
    colour, grey = rng.random(3), rng.random()
    mix = rng.random()
    return mix * colour + (1.0 - mix) * grey


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a * (1.0 - t[..., None]) + b * t[..., None]


def _fractal_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Periodic 1/f^β noise in [0, 1] (filtered white noise, β random: blotches to fine grain)."""
    beta = rng.uniform(1.0, 3.0)
    spectrum = np.fft.rfft2(rng.standard_normal(size=(size, size), dtype=np.float32))
    f = np.sqrt(np.fft.fftfreq(size)[:, None] ** 2 + np.fft.rfftfreq(size)[None, :] ** 2)
    f[0, 0] = 1.0
    field = np.fft.irfft2(spectrum / f ** (beta / 2), s=(size, size))
    low, high = np.percentile(field, [1, 99])
    return np.clip((field - low) / max(high - low, 1e-12), 0.0, 1.0).astype(np.float32)


def procedural_texture(rng: np.random.Generator, size: int, kind: str | None = None) -> np.ndarray:
    """(size, size, 3) uint8 RGB periodic texture of a random (or the given) kind."""
    kind = kind or TEXTURE_KINDS[rng.integers(len(TEXTURE_KINDS))]
    if kind not in TEXTURE_KINDS:
        raise ValueError(f"texture kind must be one of {TEXTURE_KINDS}, got '{kind}'")
    v, u = (np.mgrid[0:size, 0:size] / np.float32(size)).astype(np.float32)
    a, b = random_colour(rng).astype(np.float32), random_colour(rng).astype(np.float32)
    k1, k2 = (int(k) for k in rng.integers(-4, 5, size=2))
    if k1 == 0 and k2 == 0:
        k1 = 1
    if kind == "solid":
        image = np.broadcast_to(a, (size, size, 3)).copy()
    elif kind == "gradient":  # a triangle wave along an integer direction: periodic
        image = _mix(a, b, 1.0 - np.abs(2.0 * ((k1 * u + k2 * v) % 1.0) - 1.0))
    elif kind == "stripes":
        phase = (rng.integers(1, 6) * (k1 * u + k2 * v)) % 1.0
        soft = rng.random() < 0.5
        t = 0.5 + 0.5 * np.sin(2 * np.pi * phase) if soft else (phase < rng.uniform(0.2, 0.8)).astype(np.float32)
        image = _mix(a, b, t)
    elif kind == "checkers":
        cells = 2 * int(rng.integers(1, 9))  # even: the parity pattern wraps around
        s1, s2 = k1 * u + k2 * v, -k2 * u + k1 * v
        image = _mix(a, b, ((np.floor(cells * s1) + np.floor(cells * s2)) % 2).astype(np.float32))
    else:
        image = _mix(a, b, _fractal_noise(rng, size))
        if rng.random() < 0.5:
            image = _mix(image, random_colour(rng).astype(np.float32), 0.5 * _fractal_noise(rng, size) ** 2)
    if kind != "noise" and rng.random() < 0.5:  # grain or stains over the pattern
        image = image * (1.0 - float(rng.uniform(0.05, 0.35)) * _fractal_noise(rng, size))[..., None]
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def random_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8 RGB: a procedural texture drawn at half resolution (a quarter of the
    cost; the background is out of focus anyway), upsampled and cropped to the image."""
    side = max(width, height)
    texture = procedural_texture(rng, max(side // 2, 8))
    return np.ascontiguousarray(cv2.resize(texture, (side, side), interpolation=cv2.INTER_LINEAR)[:height, :width])


def support_plane(texture: np.ndarray, half_size_m: float, tile_m: float) -> ObjectModel:
    """The square z = 0 plane of side 2 × half_size_m around the origin, with `texture` repeated every tile_m.

    An ObjectModel built in memory (mesh_path is a placeholder); its content hash covers the
    texture and the geometry so the renderer's mesh cache tells planes apart.
    """
    texture = np.ascontiguousarray(texture, dtype=np.uint8)
    if texture.ndim != 3 or texture.shape[2] != 3:
        raise ValueError(f"support_plane: texture must be (h, w, 3) uint8, got {texture.shape}")
    if not (half_size_m > 0 and tile_m > 0):
        raise ValueError(f"support_plane: sizes must be positive, got half size {half_size_m} m, tile {tile_m} m")
    ticks = np.linspace(-half_size_m, half_size_m, PLANE_CELLS + 1)
    x, y = np.meshgrid(ticks, ticks)
    vertices = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    n = PLANE_CELLS + 1
    corner = (np.arange(PLANE_CELLS)[:, None] * n + np.arange(PLANE_CELLS)[None, :]).ravel()
    faces = np.concatenate([np.stack([corner, corner + 1, corner + n + 1], 1), np.stack([corner, corner + n + 1, corner + n], 1)])
    uv = (vertices[:, :2] + half_size_m) / tile_m
    visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(texture))
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, visual=visual, process=False)
    digest = hashlib.sha256(texture.tobytes())
    digest.update(np.array([half_size_m, tile_m], dtype=np.float64).tobytes())
    return ObjectModel(
        id=0, name="support_plane", mesh=mesh, diameter_m=float(2 * np.sqrt(2) * half_size_m), symmetries=Symmetries(),
        mesh_path=Path("<synthetic support plane>"), mesh_scale_to_m=1.0, origin_offset_m=np.zeros(3),
        content_hash=digest.hexdigest(),
    )

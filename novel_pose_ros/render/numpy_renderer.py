"""Reference z-buffer rasteriser in NumPy: the tests' ground truth and the fallback without EGL.

It follows the same conventions as the GL back end (render/base.py): a pixel is
covered when its integer centre lies inside the projected triangle, depth is
the perspective-correct camera z, attributes are interpolated perspective-correctly
and shaded after visibility is resolved. Slow (a Python loop over triangles), exact.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from novel_pose_ros.render.base import (
    AMBIENT_ONLY,
    Instance,
    Lighting,
    MeshArrays,
    RenderResult,
    check_render_args,
    clip_range_m,
    mesh_arrays,
)


def _edge(ax, ay, bx, by, px, py):
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


class NumpyRenderer:
    """CPU reference renderer with the Renderer interface."""

    name = "numpy"

    def __init__(self) -> None:
        self._arrays: dict[str, MeshArrays] = {}

    def _mesh(self, obj) -> MeshArrays:
        key = f"{obj.content_hash}:{obj.name}"
        if key not in self._arrays:
            self._arrays[key] = mesh_arrays(obj)
        return self._arrays[key]

    def render(
        self,
        instances: Sequence[Instance],
        K: np.ndarray,
        width: int,
        height: int,
        lighting: Lighting = AMBIENT_ONLY,
    ) -> RenderResult:
        K = check_render_args(instances, K, width, height)
        width, height = int(width), int(height)
        zbuf = np.full((height, width), np.inf)
        owner = np.full((height, width, 2), -1, dtype=np.int64)  # (instance, face) per pixel
        bary = np.zeros((height, width, 3))
        posed = []
        near, _ = clip_range_m(instances)
        for index, (obj, T) in enumerate(instances):
            arrays = self._mesh(obj)
            T = np.asarray(T, dtype=np.float64)
            points = arrays.positions.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
            posed.append((arrays, points, T))
            self._rasterise(index, points, K, near, zbuf, owner, bary)
        labels = np.where(owner[..., 0] >= 0, owner[..., 0] + 1, 0).astype(np.int32)
        depth = np.where(labels > 0, zbuf, 0.0).astype(np.float32)
        rgb = self._shade(posed, owner, bary, lighting, height, width)
        return RenderResult(rgb=rgb, depth_m=depth, labels=labels)

    @staticmethod
    def _rasterise(index, points, K, near, zbuf, owner, bary) -> None:
        height, width = zbuf.shape
        z = points[:, 2]
        u = (K[0, 0] * points[:, 0] + K[0, 1] * points[:, 1]) / z + K[0, 2]
        v = K[1, 1] * points[:, 1] / z + K[1, 2]
        for face in range(len(points) // 3):
            i = 3 * face
            z0, z1, z2 = z[i:i + 3]
            if min(z0, z1, z2) <= near:
                continue  # GL clips such triangles; whole-triangle rejection is enough for a reference
            u0, u1, u2 = u[i:i + 3]
            v0, v1, v2 = v[i:i + 3]
            area = _edge(u0, v0, u1, v1, u2, v2)
            if abs(area) < 1e-12:
                continue
            umin, umax = max(int(np.ceil(min(u0, u1, u2))), 0), min(int(np.floor(max(u0, u1, u2))), width - 1)
            vmin, vmax = max(int(np.ceil(min(v0, v1, v2))), 0), min(int(np.floor(max(v0, v1, v2))), height - 1)
            if umin > umax or vmin > vmax:
                continue
            px, py = np.meshgrid(np.arange(umin, umax + 1, dtype=np.float64), np.arange(vmin, vmax + 1, dtype=np.float64))
            w0 = _edge(u1, v1, u2, v2, px, py) / area
            w1 = _edge(u2, v2, u0, v0, px, py) / area
            w2 = 1.0 - w0 - w1
            inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
            if not inside.any():
                continue
            inv_z = w0 / z0 + w1 / z1 + w2 / z2
            depth = 1.0 / np.where(inside, inv_z, 1.0)
            window = zbuf[vmin:vmax + 1, umin:umax + 1]
            closer = inside & (depth < window)
            if not closer.any():
                continue
            window[closer] = depth[closer]
            owner[vmin:vmax + 1, umin:umax + 1][closer] = (index, face)
            perspective = np.stack([w0 / z0, w1 / z1, w2 / z2], axis=-1) * depth[..., None]
            bary[vmin:vmax + 1, umin:umax + 1][closer] = perspective[closer]

    @staticmethod
    def _shade(posed, owner, bary, lighting: Lighting, height: int, width: int) -> np.ndarray:
        rgb = np.zeros((height, width, 3), dtype=np.float64)
        for index, (arrays, points, T) in enumerate(posed):
            sel = owner[..., 0] == index
            if not sel.any():
                continue
            corners = 3 * owner[..., 1][sel][:, None] + np.arange(3)  # (P, 3) vertex rows
            b = bary[sel][..., None]  # (P, 3, 1)
            position = (points[corners] * b).sum(axis=1)
            normal = ((arrays.normals[corners].astype(np.float64) @ T[:3, :3].T) * b).sum(axis=1)
            if arrays.texture is not None:
                albedo = _sample_bilinear(arrays.texture, (arrays.uv[corners].astype(np.float64) * b).sum(axis=1))
            else:
                albedo = (arrays.colors[corners].astype(np.float64) * b).sum(axis=1)
            n_len = np.linalg.norm(normal, axis=1, keepdims=True)
            view = -position / np.linalg.norm(position, axis=1, keepdims=True)
            n = np.where(n_len > 0, normal / np.maximum(n_len, 1e-12), view)
            n = np.where((n * view).sum(axis=1, keepdims=True) < 0, -n, n)  # face the camera
            shade = (lighting.ambient + lighting.headlight * (n * view).sum(axis=1)
                     + lighting.directional * np.maximum(n @ np.asarray(lighting.light_direction_cam), 0.0))
            rgb[sel] = albedo * shade[:, None]
        return np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def _sample_bilinear(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """GL_LINEAR with GL_REPEAT on a texture whose row 0 is the image top (UV v = 0 is the bottom)."""
    h, w = texture.shape[:2]
    x = uv[:, 0] * w - 0.5
    y = (1.0 - uv[:, 1]) * h - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    tex = texture.astype(np.float64) / 255.0

    def at(xi, yi):
        return tex[np.mod(yi, h), np.mod(xi, w)]

    top = at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx
    bottom = at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx
    return top * (1 - fy) + bottom * fy

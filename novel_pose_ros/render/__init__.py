"""Offscreen mesh rendering (RGB, metric depth, instance labels) behind one interface.

`create_renderer("auto")` returns the moderngl EGL renderer, or the NumPy
reference rasteriser (with a warning) when no EGL context can be created.
Back ends are imported only when asked for.
"""
from __future__ import annotations

import logging

from novel_pose_ros.render.base import AMBIENT_ONLY, SHADED, Lighting, Renderer, RenderResult

LOGGER = logging.getLogger(__name__)
BACKENDS = ("auto", "gl", "numpy")

__all__ = ["AMBIENT_ONLY", "SHADED", "Lighting", "Renderer", "RenderResult", "create_renderer"]


def create_renderer(backend: str = "auto") -> Renderer:
    """A renderer: 'gl' (moderngl + EGL), 'numpy' (reference), or 'auto' (gl, else numpy)."""
    if backend not in BACKENDS:
        raise ValueError(f"renderer backend must be one of {BACKENDS}, got '{backend}'")
    if backend in ("gl", "auto"):
        try:
            from novel_pose_ros.render.gl_renderer import GLRenderer

            return GLRenderer()
        except Exception as exc:  # no libEGL, no moderngl, no GL 3.3 driver, ...
            if backend == "gl":
                raise RuntimeError(f"cannot create the moderngl EGL renderer: {exc}") from exc
            LOGGER.warning(
                "no EGL OpenGL context (%s); falling back to the NumPy rasteriser, which is much slower. "
                "Install libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri.", exc,
            )
    from novel_pose_ros.render.numpy_renderer import NumpyRenderer

    return NumpyRenderer()

"""moderngl renderer on a headless EGL context (NVIDIA driver on a GPU, Mesa llvmpipe otherwise).

Exactness (checked against an analytic box in the tests): the projection comes
from K (render/base.py), the fragment shader writes the metric camera z into an
R32F attachment (not a linearised 24-bit depth buffer) and MSAA is off.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from typing import Sequence

import numpy as np

from novel_pose_ros.render.base import (
    AMBIENT_ONLY,
    Instance,
    Lighting,
    RenderResult,
    check_render_args,
    clip_range_m,
    mesh_arrays,
    projection_matrix,
)
from novel_pose_ros.types import ObjectModel

LOGGER = logging.getLogger(__name__)
MAX_CACHED_MESHES = 64
MAX_CACHED_FRAMEBUFFERS = 4

VERTEX_SHADER = """
#version 330
uniform mat4 T_cam_obj;
uniform mat4 projection;
in vec3 in_position;
in vec3 in_normal;
in vec3 in_color;
in vec2 in_uv;
out vec3 v_position_cam;
out vec3 v_normal_cam;
out vec3 v_color;
out vec2 v_uv;
void main() {
    vec4 p = T_cam_obj * vec4(in_position, 1.0);
    v_position_cam = p.xyz;
    v_normal_cam = mat3(T_cam_obj) * in_normal;
    v_color = in_color;
    v_uv = in_uv;
    gl_Position = projection * p;
}
"""

FRAGMENT_SHADER = """
#version 330
uniform float ambient;
uniform float headlight;
uniform float directional;
uniform vec3 light_direction_cam;
uniform bool use_texture;
uniform float instance_label;
uniform sampler2D albedo_texture;
in vec3 v_position_cam;
in vec3 v_normal_cam;
in vec3 v_color;
in vec2 v_uv;
layout(location = 0) out vec4 out_color;
layout(location = 1) out vec2 out_depth_label;
void main() {
    vec3 albedo = use_texture ? texture(albedo_texture, v_uv).rgb : v_color;
    float n_len = length(v_normal_cam);
    vec3 view = normalize(-v_position_cam);
    // Normals are flipped towards the camera: meshes with inconsistently oriented
    // normals still shade correctly.
    vec3 n = n_len > 0.0 ? v_normal_cam / n_len : view;
    n = dot(n, view) < 0.0 ? -n : n;
    float shade = ambient + headlight * dot(n, view) + directional * max(dot(n, light_direction_cam), 0.0);
    out_color = vec4(clamp(albedo * shade, 0.0, 1.0), 1.0);
    out_depth_label = vec2(v_position_cam.z, instance_label);
}
"""


class GLRenderer:
    """Renderer on an offscreen EGL OpenGL 3.3 context; meshes are uploaded once and cached."""

    def __init__(self) -> None:
        import moderngl  # imported here so the NumPy back end works without it

        self._moderngl = moderngl
        self.ctx = moderngl.create_standalone_context(backend="egl")
        self.gl_renderer = str(self.ctx.info.get("GL_RENDERER", "unknown"))
        self.name = f"gl ({self.gl_renderer})"
        LOGGER.info("renderer: moderngl EGL, GL_RENDERER = %s", self.gl_renderer)
        if "llvmpipe" in self.gl_renderer.lower() and _nvidia_gpu_present():
            LOGGER.warning(
                "renderer: an NVIDIA GPU is present but EGL uses the CPU (llvmpipe); rendering will be slow. "
                "In containers set NVIDIA_DRIVER_CAPABILITIES to include 'graphics'."
            )
        with self.ctx:
            self.program = self.ctx.program(vertex_shader=VERTEX_SHADER, fragment_shader=FRAGMENT_SHADER)
        self._meshes: OrderedDict[str, tuple] = OrderedDict()
        self._framebuffers: OrderedDict[tuple[int, int], object] = OrderedDict()

    def _framebuffer(self, width: int, height: int):
        key = (width, height)
        if key in self._framebuffers:
            self._framebuffers.move_to_end(key)
        else:
            self._framebuffers[key] = self.ctx.framebuffer(
                color_attachments=[
                    self.ctx.renderbuffer((width, height), components=4, dtype="f1"),
                    self.ctx.renderbuffer((width, height), components=2, dtype="f4"),
                ],
                depth_attachment=self.ctx.depth_renderbuffer((width, height)),
            )
            while len(self._framebuffers) > MAX_CACHED_FRAMEBUFFERS:
                _, old = self._framebuffers.popitem(last=False)
                for attachment in (*old.color_attachments, old.depth_attachment):
                    attachment.release()
                old.release()
        return self._framebuffers[key]

    def _mesh(self, obj: ObjectModel):
        key = f"{obj.content_hash}:{obj.name}"
        if key in self._meshes:
            self._meshes.move_to_end(key)
            return self._meshes[key]
        arrays = mesh_arrays(obj)
        uv = arrays.uv if arrays.uv is not None else np.zeros((len(arrays.positions), 2), np.float32)
        interleaved = np.hstack([arrays.positions, arrays.normals, arrays.colors, uv]).astype("f4")
        vbo = self.ctx.buffer(interleaved.tobytes())
        vao = self.ctx.vertex_array(
            self.program, [(vbo, "3f 3f 3f 2f", "in_position", "in_normal", "in_color", "in_uv")]
        )
        texture = None
        if arrays.texture is not None:
            # GL textures start at the bottom row; UV v = 0 is the image's bottom too.
            texture = self.ctx.texture(arrays.texture.shape[1::-1], 3, np.flipud(arrays.texture).tobytes())
            texture.filter = (self._moderngl.LINEAR, self._moderngl.LINEAR)
        entry = (vao, vbo, texture)
        self._meshes[key] = entry
        while len(self._meshes) > MAX_CACHED_MESHES:
            _, (old_vao, old_vbo, old_tex) = self._meshes.popitem(last=False)
            old_vao.release()
            old_vbo.release()
            if old_tex is not None:
                old_tex.release()
        return entry

    def render(
        self,
        instances: Sequence[Instance],
        K: np.ndarray,
        width: int,
        height: int,
        lighting: Lighting = AMBIENT_ONLY,
    ) -> RenderResult:
        K = check_render_args(instances, K, width, height)
        # Several renderers may live in one process (each with its own context): make ours current.
        with self.ctx:
            return self._render(instances, K, int(width), int(height), lighting)

    def _render(self, instances: Sequence[Instance], K: np.ndarray, width: int, height: int, lighting: Lighting) -> RenderResult:
        fbo = self._framebuffer(width, height)
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        self.ctx.enable(self._moderngl.DEPTH_TEST)
        self.ctx.disable(self._moderngl.CULL_FACE)
        # GL matrices are column-major: upload transposes of our row-major matrices.
        self.program["projection"].write(projection_matrix(K, width, height, *clip_range_m(instances)).T.astype("f4").tobytes())
        self.program["ambient"].value = float(lighting.ambient)
        self.program["headlight"].value = float(lighting.headlight)
        self.program["directional"].value = float(lighting.directional)
        self.program["light_direction_cam"].value = lighting.light_direction_cam
        for index, (obj, T_cam_obj) in enumerate(instances):
            vao, _, texture = self._mesh(obj)
            self.program["T_cam_obj"].write(np.asarray(T_cam_obj, dtype=np.float64).T.astype("f4").tobytes())
            self.program["instance_label"].value = float(index + 1)
            self.program["use_texture"].value = texture is not None
            if texture is not None:
                texture.use(location=0)
                self.program["albedo_texture"].value = 0
            vao.render(self._moderngl.TRIANGLES)
        rgba = np.frombuffer(fbo.read(components=4, attachment=0, dtype="f1"), np.uint8).reshape(height, width, 4)
        depth_label = np.frombuffer(fbo.read(components=2, attachment=1, dtype="f4"), np.float32).reshape(height, width, 2)
        labels = np.rint(depth_label[..., 1]).astype(np.int32)
        depth = np.where(labels > 0, depth_label[..., 0], 0.0).astype(np.float32)
        return RenderResult(rgb=np.ascontiguousarray(rgba[..., :3]), depth_m=depth, labels=labels)

    def release(self) -> None:
        """Free GL resources (the context is released too)."""
        with self.ctx:
            for vao, vbo, texture in self._meshes.values():
                vao.release()
                vbo.release()
                if texture is not None:
                    texture.release()
            self._meshes.clear()
            self._framebuffers.clear()
        self.ctx.release()


def _nvidia_gpu_present() -> bool:
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia/version")

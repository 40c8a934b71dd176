"""Writing a synthetic dataset in BOP format: models/, scene folders, CNOS-style detections.

Models: `models/obj_XXXXXX.ply` in millimetres (binary, BOP's vertex layout: x y z
nx ny nz [red green blue] [texture_u texture_v]), a texture PNG named by
`comment TextureFile` for UV-textured objects, and `models_info.json` (diameter, min_*,
size_* and symmetries in mm). Face colours become vertex colours (each face gets its
own three vertices): BOP readers only know vertex colours; such a model shades flat.
The normals written are the ones trimesh computes for the written mesh, which is what
trimesh (5.2) uses on loading anyway: it ignores the file's nx ny nz.

Scenes: `<split>/<scene:06d>/{rgb/*.png, depth/*.png (uint16 × depth_scale mm),
mask/ and mask_visib/{im:06d}_{gt:06d}.png, scene_camera.json, scene_gt.json,
scene_gt_info.json}`.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import trimesh

from novel_pose_ros.bop.dataset import M_PER_MM, scene_camera_entry, scene_gt_entry, write_json
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.render.base import texture_image
from novel_pose_ros.types import ObjectModel

UINT16_MAX = 65535


def _ply_bytes(vertices_mm: np.ndarray, normals: np.ndarray, faces: np.ndarray, colors: np.ndarray | None,
               uv: np.ndarray | None, texture_file: str | None) -> bytes:
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if uv is not None:
        fields += [("texture_u", "<f4"), ("texture_v", "<f4")]
    vertex = np.zeros(len(vertices_mm), dtype=fields)
    for i, axis in enumerate("xyz"):
        vertex[axis] = vertices_mm[:, i]
        vertex["n" + axis] = normals[:, i]
    if colors is not None:
        for i, channel in enumerate(("red", "green", "blue")):
            vertex[channel] = colors[:, i]
    if uv is not None:
        vertex["texture_u"], vertex["texture_v"] = uv[:, 0], uv[:, 1]
    face = np.zeros(len(faces), dtype=[("count", "u1"), ("index", "<i4", (3,))])
    face["count"], face["index"] = 3, faces
    ply_type = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", "comment written by novel_pose_ros.synth (units: mm)"]
    if texture_file:
        header.append(f"comment TextureFile {texture_file}")
    header.append(f"element vertex {len(vertex)}")
    header += [f"property {ply_type[dtype]} {name}" for name, dtype in fields]
    header += [f"element face {len(face)}", "property list uchar int vertex_indices", "end_header"]
    return ("\n".join(header) + "\n").encode("ascii") + vertex.tobytes() + face.tobytes()


def write_model(obj: ObjectModel, models_dir: Path) -> Path:
    """Write obj's mesh (metres in the library) as models_dir/obj_XXXXXX.ply in mm, keeping its appearance."""
    mesh = obj.mesh
    faces = np.asarray(mesh.faces, dtype=np.int64)
    vertices = np.asarray(mesh.vertices, dtype=np.float64) / M_PER_MM
    normals = np.asarray(mesh.vertex_normals, dtype=np.float64)
    colors = uv = texture_file = None
    texture = texture_image(obj)
    if texture is not None:
        uv = np.asarray(mesh.visual.uv, dtype=np.float64)
        texture_file = f"obj_{obj.id:06d}.png"
        cv2.imwrite(str(models_dir / texture_file), texture[..., ::-1])
    elif mesh.visual.kind == "vertex":
        colors = np.asarray(mesh.visual.vertex_colors)[:, :3]
    elif mesh.visual.kind == "face":
        corners = faces.ravel()
        vertices, normals = vertices[corners], normals[corners]
        colors = np.repeat(np.asarray(mesh.visual.face_colors)[:, :3], 3, axis=0)
        faces = np.arange(len(corners)).reshape(-1, 3)
        normals = np.asarray(trimesh.Trimesh(vertices, faces, process=False).vertex_normals, dtype=np.float64)
    path = models_dir / f"obj_{obj.id:06d}.ply"
    path.write_bytes(_ply_bytes(vertices, normals, faces, colors, uv, texture_file))
    return path


def models_info_entry(obj: ObjectModel) -> dict:
    """BOP models_info entry in mm: diameter, bounding box, symmetries (only when the object has them)."""
    bounds_mm = np.asarray(obj.mesh.bounds, dtype=np.float64) / M_PER_MM
    entry = {"diameter": float(obj.diameter_m / M_PER_MM)}
    for i, axis in enumerate("xyz"):
        entry[f"min_{axis}"] = float(bounds_mm[0, i])
        entry[f"size_{axis}"] = float(bounds_mm[1, i] - bounds_mm[0, i])
    symmetries = obj.symmetries
    if len(symmetries.discrete):
        discrete = np.array(symmetries.discrete, dtype=np.float64)
        discrete[:, :3, 3] /= M_PER_MM
        entry["symmetries_discrete"] = [S.ravel().tolist() for S in discrete]
    if len(symmetries.continuous_axes):
        entry["symmetries_continuous"] = [
            {"axis": a.tolist(), "offset": (o / M_PER_MM).tolist()}
            for a, o in zip(symmetries.continuous_axes, symmetries.continuous_offsets_m)
        ]
    return entry


def write_models(library: ObjectLibrary, models_dir: Path) -> None:
    """models_dir/obj_XXXXXX.ply (+ texture PNGs) and models_info.json for every library object."""
    models_dir.mkdir(parents=True, exist_ok=True)
    info = {}
    for obj in sorted(library, key=lambda o: o.id):
        if obj.id < 0:
            raise ValueError(f"object {obj.name}: BOP object ids must be ≥ 0, got {obj.id}")
        write_model(obj, models_dir)
        info[str(obj.id)] = models_info_entry(obj)
    write_json(models_dir / "models_info.json", info)


def depth_to_uint16(depth_m: np.ndarray, depth_scale_mm: float) -> np.ndarray:
    """Depth in BOP units (round to nearest); values beyond the uint16 range become 0 (invalid)."""
    units = np.rint(np.asarray(depth_m, dtype=np.float64) / (depth_scale_mm * M_PER_MM))
    return np.where(units <= UINT16_MAX, units, 0).astype(np.uint16)


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")


class SceneWriter:
    """Writes one scene folder image by image; `close()` writes its three JSON files."""

    def __init__(self, scene_dir: Path, depth_scale_mm: float) -> None:
        self.scene_dir = scene_dir
        self.depth_scale_mm = depth_scale_mm
        for folder in ("rgb", "depth", "mask", "mask_visib"):
            (scene_dir / folder).mkdir(parents=True, exist_ok=True)
        self.cameras: dict[str, dict] = {}
        self.gts: dict[str, list] = {}
        self.infos: dict[str, list] = {}

    def add_image(self, im_id: int, K: np.ndarray, rgb: np.ndarray, depth_units: np.ndarray,
                  gt: list[tuple[int, np.ndarray]], masks: tuple[np.ndarray, ...],
                  masks_visib: tuple[np.ndarray, ...], infos: list[dict]) -> None:
        """rgb (H, W, 3) uint8 RGB; depth_units from depth_to_uint16; gt: (obj_id, T_cam_obj) per instance."""
        name = f"{im_id:06d}"
        _write_png(self.scene_dir / "rgb" / f"{name}.png", np.ascontiguousarray(rgb[..., ::-1]))
        _write_png(self.scene_dir / "depth" / f"{name}.png", depth_units)
        for gt_index, (mask, mask_visib) in enumerate(zip(masks, masks_visib)):
            _write_png(self.scene_dir / "mask" / f"{name}_{gt_index:06d}.png", mask.astype(np.uint8) * 255)
            _write_png(self.scene_dir / "mask_visib" / f"{name}_{gt_index:06d}.png", mask_visib.astype(np.uint8) * 255)
        self.cameras[str(im_id)] = scene_camera_entry(K, self.depth_scale_mm)
        self.gts[str(im_id)] = [scene_gt_entry(obj_id, T) for obj_id, T in gt]
        self.infos[str(im_id)] = infos

    def close(self) -> None:
        write_json(self.scene_dir / "scene_camera.json", self.cameras)
        write_json(self.scene_dir / "scene_gt.json", self.gts)
        write_json(self.scene_dir / "scene_gt_info.json", self.infos)

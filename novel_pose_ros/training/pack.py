"""A compact copy of the training meshes, for a GPU machine that receives only the working tree (64 MiB in all).

    manifest = build_pack(".gpu_pack", PackSettings(max_faces=1500))   # from the user cache (fetch-meshes)
    novel-pose train pack --out .gpu_pack [--source DIR] [--max-faces N] [--photo-px N] [--overwrite]

A pack has training/meshes.py's layout (manifest.json, licences/, meshes/, photos/), so
`novel-pose train --meshes DIR` reads it unchanged, and every object keeps its name, id and split:
the validation split is the same held-out objects. What is reduced, and why:

  geometry-only meshes  above max_faces faces: welded (STL files repeat every vertex per face, which
                        leaves quadric decimation nothing to collapse), then decimated to max_faces by
                        fast-simplification (through trimesh). Every one is written as a binary PLY with
                        float32 vertices and 16-bit indices when they fit (13 instead of 19 bytes per
                        face), flat as meshes/<name>.ply: a folder per object would add 4 KiB of
                        apparent size each (du -b, what the carry check counts), 4 MiB for 1000 objects.
  textured meshes       copied whole (decimation would drop their UV map); their textures above
                        texture_px become JPEGs of that size (the material's map_Kd rewritten).
  photos                JPEGs, longer side at most photo_px (never shorter than PhotoBank's minimum).
  left out              wheels/ (the download cache) and stable_poses/ (keyed by mesh content: the
                        decimated meshes get theirs on first use, as any new mesh does).

A decimated mesh keeps the source's frame (not re-centred), so a pose means the same in both; its
faces, extents and diameter in the manifest are the decimated mesh's. The manifest's "pack" section
records the source, the settings and each decimated object's former face count.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
import trimesh

from novel_pose_ros.objects.mesh_loading import max_pairwise_distance
from novel_pose_ros.training.meshes import (
    MANIFEST,
    MeshEntry,
    MeshManifest,
    default_meshes_dir,
    load_manifest,
    write_manifest,
)
from novel_pose_ros.training.photos import MIN_PHOTO_SIDE_PX, PHOTO_SUFFIXES, photos_dir

LOGGER = logging.getLogger(__name__)
PACK_FORMAT = 1
UINT16_VERTICES = 1 << 16  # face indices fit in 16 bits below this many vertices


@dataclass(frozen=True)
class PackSettings:
    """max_faces: geometry-only meshes above it are decimated to it; photo_px / texture_px: longest side of
    photographs / mesh textures; jpeg_quality: of every image the pack re-encodes."""

    max_faces: int = 1500
    photo_px: int = 512
    texture_px: int = 512
    jpeg_quality: int = 85

    def __post_init__(self) -> None:
        if self.max_faces < 4:
            raise ValueError(f"pack: max_faces must be ≥ 4 (a tetrahedron), got {self.max_faces}")
        if self.photo_px < MIN_PHOTO_SIDE_PX or self.texture_px < 16:
            raise ValueError(f"pack: photo_px must be ≥ {MIN_PHOTO_SIDE_PX} (PhotoBank skips smaller photographs) "
                             f"and texture_px ≥ 16, got {self.photo_px}, {self.texture_px}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"pack: jpeg_quality must be in [1, 100], got {self.jpeg_quality}")


# --- meshes --------------------------------------------------------------------------------------------

def decimate(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """The welded mesh, decimated to at most `max_faces` faces (unchanged geometry when it has no more)."""
    welded = trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), process=False)
    welded.merge_vertices()
    if len(welded.faces) <= max_faces:
        return welded
    simple = welded.simplify_quadric_decimation(face_count=max_faces)
    if len(simple.faces) == 0 or len(simple.faces) > max_faces:
        raise ValueError(f"decimation to {max_faces} faces gave {len(simple.faces)}")
    return trimesh.Trimesh(np.asarray(simple.vertices), np.asarray(simple.faces), process=False)


def write_compact_ply(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """Binary little-endian PLY: float32 x y z, triangles with uint16 indices when they fit (else uint32)."""
    vertices = np.asarray(vertices, dtype="<f4")
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"write_compact_ply: expected vertices (N, 3) and faces (M, 3), got {vertices.shape}, "
                         f"{faces.shape}")
    small = len(vertices) < UINT16_VERTICES
    header = ("ply\nformat binary_little_endian 1.0\ncomment novel_pose_ros training pack\n"
              f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
              f"element face {len(faces)}\nproperty list uchar {'ushort' if small else 'uint'} vertex_indices\n"
              "end_header\n")
    rows = np.zeros(len(faces), dtype=[("count", "u1"), ("indices", "<u2" if small else "<u4", (3,))])
    rows["count"] = 3
    rows["indices"] = faces
    path.write_bytes(header.encode("ascii") + vertices.tobytes() + rows.tobytes())
    return path


def _pack_geometry(entry: MeshEntry, source: Path, out: Path, settings: PackSettings) -> tuple[MeshEntry, int | None]:
    """A geometry-only mesh as meshes/<name>.ply → (its entry, the former face count when decimated)."""
    mesh = trimesh.load(str(source / entry.mesh), force="mesh", process=False)
    before = len(mesh.faces)
    target = Path("meshes") / f"{entry.name}.ply"
    if before <= settings.max_faces:  # the same faces and vertices (float32, as fetch-meshes writes them)
        write_compact_ply(out / target, mesh.vertices, mesh.faces)
        return dataclasses.replace(entry, mesh=target.as_posix()), None
    small = decimate(mesh, settings.max_faces)
    write_compact_ply(out / target, small.vertices, small.faces)
    vertices = np.asarray(small.vertices, dtype=np.float32).astype(np.float64)  # as a reader sees the file
    packed = dataclasses.replace(
        entry, mesh=target.as_posix(), faces=int(len(small.faces)),
        extents_m=tuple(float(e) for e in vertices.max(axis=0) - vertices.min(axis=0)),
        diameter_m=float(max_pairwise_distance(vertices)))
    return packed, before


def downsize_image(source: Path, target_dir: Path, max_px: int, quality: int,
                   min_side_px: int = 1) -> tuple[Path, bool]:
    """Write `source` into target_dir, its longer side at most `max_px` (its shorter side kept ≥ min_side_px):
    a resized image becomes `<stem>.jpg`; one already small enough becomes a JPEG only when that is smaller
    than the file, else it is copied. Returns (written file, resized)."""
    bgr = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"image {source}: unreadable")
    h, w = bgr.shape[:2]
    scale = min(1.0, max_px / max(h, w))
    scale = min(1.0, max(scale, min_side_px / min(h, w)))
    resized = scale < 1.0
    if resized:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"image {source}: JPEG encoding failed")
    if resized or jpeg.nbytes < source.stat().st_size:
        target = target_dir / f"{source.stem}.jpg"
        if target.exists():
            raise ValueError(f"image {source}: {target.name} exists already (two images of one stem)")
        target.write_bytes(jpeg.tobytes())
    else:
        target = target_dir / source.name
        shutil.copyfile(source, target)
    return target, resized


def _pack_textured(entry: MeshEntry, source: Path, out: Path, settings: PackSettings) -> tuple[MeshEntry, int]:
    """A textured mesh's folder, its textures downsized and its materials pointed at them → (entry, resized)."""
    src_dir = (source / entry.mesh).parent
    dst_dir = out / "meshes" / entry.name
    dst_dir.mkdir(parents=True)
    renamed, resized = {}, 0
    materials = sorted(src_dir.glob("*.mtl"))
    textures = {line.split()[-1] for mtl in materials for line in mtl.read_text(errors="replace").splitlines()
                if line.strip().startswith("map_Kd") and len(line.split()) > 1}
    for path in sorted(src_dir.iterdir()):
        if path.name in textures:
            written, was_resized = downsize_image(path, dst_dir, settings.texture_px, settings.jpeg_quality)
            renamed[path.name] = written.name
            resized += int(was_resized)
        elif path.suffix != ".mtl" and path.is_file():
            shutil.copyfile(path, dst_dir / path.name)
    for mtl in materials:
        lines = []
        for line in mtl.read_text(errors="replace").splitlines():
            parts = line.split()
            if line.strip().startswith("map_Kd") and len(parts) > 1 and parts[-1] in renamed:
                line = " ".join(parts[:-1] + [renamed[parts[-1]]])
            lines.append(line)
        (dst_dir / mtl.name).write_text("\n".join(lines) + "\n")
    mesh = Path("meshes") / entry.name / Path(entry.mesh).name
    return dataclasses.replace(entry, mesh=mesh.as_posix()), resized


# --- photographs ---------------------------------------------------------------------------------------

def _pack_photos(source: Path, target: Path, settings: PackSettings) -> tuple[int, int]:
    """Every photograph of `source` as a JPEG of at most photo_px, and its manifest with the new file names
    (each entry keeps wheel, member and licence) → (photos, resized)."""
    target.mkdir(parents=True)
    entries = json.loads((source / "manifest.json").read_text()) if (source / "manifest.json").is_file() else []
    by_file = {e["file"]: e for e in entries}
    written, count, resized = [], 0, 0
    for path in sorted(p for p in source.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES):
        out, was_resized = downsize_image(path, target, settings.photo_px, settings.jpeg_quality, MIN_PHOTO_SIDE_PX)
        count, resized = count + 1, resized + int(was_resized)
        written.append({**by_file.get(path.name, {}), "file": out.name, "packed_from": path.name})
    (target / "manifest.json").write_text(json.dumps(written, indent=1))
    return count, resized


# --- the pack ------------------------------------------------------------------------------------------

def tree_bytes(root: Path) -> int:
    """Apparent size of a folder as `du -sb` counts it: every file's and every folder's own size."""
    root = Path(root)
    total = root.stat().st_size
    for folder, dirs, files in os.walk(root):
        total += sum((Path(folder) / name).lstat().st_size for name in dirs + files)
    return total


def build_pack(out_dir: str | Path, settings: PackSettings = PackSettings(), source_dir: str | Path | None = None,
               overwrite: bool = False, show_progress: bool = True) -> MeshManifest:
    """Write the pack of `source_dir` (default: the user cache of fetch-meshes) into `out_dir`; returns its
    manifest. Built in `.<name>.partial` beside out_dir and renamed at the end, so an interrupted build never
    looks like a pack."""
    from tqdm import tqdm

    source = load_manifest(source_dir or default_meshes_dir())
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (pass overwrite / --overwrite to replace it)")
    if out == source.root or source.root in out.parents:
        raise ValueError(f"pack: {out} is the source folder or inside it")
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "meshes").mkdir(parents=True)
    if (source.root / "licences").is_dir():
        shutil.copytree(source.root / "licences", partial / "licences")
    entries, decimated, kept_whole, textures_resized = [], {}, [], 0
    for entry in tqdm(source.objects, desc="pack meshes", unit="mesh", disable=not show_progress):
        if entry.textured:
            packed, resized = _pack_textured(entry, source.root, partial, settings)
            textures_resized += resized
            if entry.faces > settings.max_faces:
                kept_whole.append(entry.name)
        else:
            packed, before = _pack_geometry(entry, source.root, partial, settings)
            if before is not None:
                decimated[entry.name] = before
        entries.append(packed)
    photos, photos_resized = 0, 0
    if photos_dir(source.root).is_dir():
        photos, photos_resized = _pack_photos(photos_dir(source.root), photos_dir(partial), settings)
    pack = {"format": PACK_FORMAT, "source": str(source.root), "settings": dataclasses.asdict(settings),
            "decimation": f"quadric edge collapse, fast-simplification {metadata.version('fast-simplification')} "
                          f"(trimesh {trimesh.__version__} simplify_quadric_decimation), on the welded mesh",
            "faces_before": int(sum(e.faces for e in source.objects)),
            "faces_after": int(sum(e.faces for e in entries)),
            "decimated": decimated, "textured_kept_whole": kept_whole, "textures_resized": textures_resized,
            "photos": photos, "photos_resized": photos_resized, "left_out": ["wheels/", "stable_poses/"]}
    write_manifest(partial, entries, source.sources, source.excluded, {"pack": pack})
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    manifest = load_manifest(out)
    LOGGER.info("pack %s: %d objects, faces %d → %d, %d photographs, %.1f MiB", out, len(entries),
                pack["faces_before"], pack["faces_after"], photos, tree_bytes(out) / 2 ** 20)
    return manifest


def pack_info(folder: str | Path) -> dict | None:
    """The "pack" section of a training-mesh folder's manifest (None: a full fetch-meshes folder)."""
    return json.loads((Path(folder) / MANIFEST).read_text()).get("pack")

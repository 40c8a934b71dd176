"""The objects a sampler draws from: a manifest split loaded lazily, or objects given directly (tests).

Objects are drawn by group: pybullet's ~900 procedural "random" objects would otherwise fill
almost every scene, while the YCB scans are the most object-like shapes. `group_weights` gives
each group's share of draws (a group without objects gives its share to the others).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from novel_pose_ros.synth.scene_sampling import StablePoses
from novel_pose_ros.training.meshes import MeshManifest
from novel_pose_ros.types import ObjectModel

LOGGER = logging.getLogger(__name__)


class ObjectPool:
    """Index → ObjectModel. Manifest objects load on first use (a mesh file read, its diameter
    computed) and stay loaded; a training process touches each object many times."""

    def __init__(self, names: Sequence[str], manifest: MeshManifest | None = None,
                 objects: Sequence[ObjectModel] | None = None, group_weights: dict[str, float] | None = None) -> None:
        self.names = list(names)
        if len(set(self.names)) != len(self.names):
            raise ValueError("ObjectPool: object names must be unique")
        self.manifest = manifest
        self._loaded: dict[str, ObjectModel] = {o.name: o for o in (objects or [])}
        missing = [n for n in self.names if n not in self._loaded]
        if missing and manifest is None:
            raise ValueError(f"ObjectPool: no manifest to load {missing[:3]} from")
        if manifest is not None:
            for name in missing:
                manifest.entry(name)  # KeyError naming the unknown object now, not in a worker later
        self.probabilities = draw_probabilities(self.names, group_weights or {})

    @classmethod
    def from_objects(cls, objects: Sequence[ObjectModel]) -> "ObjectPool":
        return cls([o.name for o in objects], objects=objects)

    @classmethod
    def from_manifest(cls, manifest: MeshManifest, split: str, names: Sequence[str] = (),
                      group_weights: dict[str, float] | None = None) -> "ObjectPool":
        """The objects of `split`, or only `names` (which must all belong to that split)."""
        in_split = manifest.names(split)
        if names:
            wrong = sorted(set(names) - set(in_split))
            if wrong:
                raise ValueError(f"objects {wrong[:5]} are not in the '{split}' split of {manifest.root}")
            in_split = [n for n in in_split if n in set(names)]
        if not in_split:
            raise ValueError(f"no '{split}' objects in {manifest.root}")
        return cls(in_split, manifest=manifest, group_weights=group_weights)

    def __len__(self) -> int:
        return len(self.names)

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """`count` object indices (with replacement) by the group weights."""
        return rng.choice(len(self.names), size=count, p=self.probabilities)

    def get(self, index: int) -> ObjectModel:
        name = self.names[index]
        obj = self._loaded.get(name)
        if obj is None:
            obj = self.manifest.load_object(name)
            self._loaded[name] = obj
        return obj


def object_group(name: str) -> str:
    """'random' (pybullet's procedural objects), 'ycb' or 'named' (every other model)."""
    if name.startswith("pybullet_random_"):
        return "random"
    return "ycb" if name.startswith("ycb_") else "named"


def draw_probabilities(names: Sequence[str], group_weights: dict[str, float]) -> np.ndarray:
    """Per-object draw probability: each group's weight (1 when not given) shared equally by its objects."""
    groups = [object_group(n) for n in names]
    present = sorted(set(groups))
    weights = {g: float(group_weights.get(g, 1.0)) for g in present}
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"group weights must be ≥ 0 with a positive sum over {present}, got {group_weights}")
    sizes = {g: groups.count(g) for g in present}
    p = np.array([weights[g] / sizes[g] for g in groups], dtype=np.float64)
    return p / p.sum()


class StoredStablePoses(StablePoses):
    """StablePoses whose per-object results (~0.3 s of trimesh work each) are also kept on disk in `folder`
    (`<name>-<content hash>.npz`), so every data process of every run computes them once per mesh only."""

    def __init__(self, folder: str | Path | None) -> None:
        super().__init__()
        self.folder = Path(folder) if folder is not None else None

    def _entry(self, obj: ObjectModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = f"{obj.content_hash}:{obj.name}"
        if key in self._cache or self.folder is None:
            return super()._entry(obj)
        path = self.folder / f"{obj.name}-{obj.content_hash[:16]}.npz"
        try:
            with np.load(path) as data:
                self._cache[key] = (data["rotations"], data["probabilities"], data["hull_vertices"])
                return self._cache[key]
        except (OSError, KeyError, ValueError):
            pass
        entry = super()._entry(obj)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f"{path.stem}.{np.random.randint(1 << 30)}.tmp.npz")
            np.savez(temporary, rotations=entry[0], probabilities=entry[1], hull_vertices=entry[2])
            temporary.replace(path)  # atomic: concurrent workers never read a half-written file
        except OSError as exc:
            LOGGER.debug("cannot store stable poses of %s in %s: %s", obj.name, self.folder, exc)
        return entry

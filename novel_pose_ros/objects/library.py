"""The object library: every object the estimator knows, from `config/objects.yaml` or a BOP models folder.

YAML layout (paths relative to the YAML file):

    models_info: path/to/models_info.json   # optional, BOP symmetries by id
    objects:
      - id: 1                 # integer, unique (the BOP obj_id when evaluating on BOP data)
        name: toy_block       # unique string, used in ROS topics, TF frames and messages
        mesh: ../meshes/toy_block.ply
        units: m              # m | mm | auto
        origin: keep          # keep | center_bbox
        symmetries: none      # none | models_info | {discrete: [[16]], continuous: [{axis, offset}]}
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Iterator

from novel_pose_ros.objects.mesh_loading import UNIT_SCALES_TO_M, load_object
from novel_pose_ros.types import ObjectModel
from novel_pose_ros.yaml_files import read_yaml

LOGGER = logging.getLogger(__name__)
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # must be valid in ROS topic and TF frame names
OBJECT_KEYS = {"id", "name", "mesh", "units", "origin", "symmetries"}


class ObjectLibrary:
    """Objects by name and by integer id (one mapping between the two)."""

    def __init__(self, objects: list[ObjectModel]) -> None:
        self._by_name: dict[str, ObjectModel] = {}
        self._by_id: dict[int, ObjectModel] = {}
        for obj in objects:
            if obj.name in self._by_name:
                raise ValueError(f"object name '{obj.name}' is used twice")
            if obj.id in self._by_id:
                raise ValueError(f"object id {obj.id} is used twice ('{self._by_id[obj.id].name}' and '{obj.name}')")
            self._by_name[obj.name] = obj
            self._by_id[obj.id] = obj

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self) -> Iterator[ObjectModel]:
        return iter(self._by_name.values())

    def __contains__(self, key: object) -> bool:
        return self.find(key) is not None  # type: ignore[arg-type]

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def find(self, key: str | int) -> ObjectModel | None:
        """The object named `key`, or with integer id `key` (also given as a digit string), else None."""
        if isinstance(key, str):
            if key in self._by_name:
                return self._by_name[key]
            return self._by_id.get(int(key)) if key.strip().isdigit() else None
        return self._by_id.get(int(key))

    def subset(self, keys: list[str | int]) -> "ObjectLibrary":
        """The objects named (or numbered) by `keys`, in library order; KeyError for an unknown key."""
        wanted = {self.get(k).name for k in keys}
        return ObjectLibrary([obj for obj in self if obj.name in wanted])

    def get(self, key: str | int) -> ObjectModel:
        """Like `find`, but raises KeyError listing the known objects."""
        obj = self.find(key)
        if obj is None:
            raise KeyError(f"unknown object '{key}' (known: {', '.join(self.names) or 'none'})")
        return obj

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ObjectLibrary":
        """Load every object listed in an objects YAML file."""
        path = Path(path).expanduser().resolve()
        config = read_yaml(path, "objects file")
        entries = config.get("objects")
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"objects file {path}: needs a non-empty 'objects' list")
        models_info = _read_models_info(path.parent / config["models_info"]) if config.get("models_info") else {}
        return cls([_object_from_entry(entry, i, path, models_info) for i, entry in enumerate(entries)])

    @classmethod
    def from_bop_models(cls, models_dir: str | Path, object_ids: list[int] | None = None) -> "ObjectLibrary":
        """Objects of a BOP `models/` folder (obj_XXXXXX.ply in mm, symmetries from models_info.json).

        Names are `obj_XXXXXX`, ids the BOP obj_ids.
        """
        models_dir = Path(models_dir).expanduser().resolve()
        models_info = _read_models_info(models_dir / "models_info.json")
        ids = sorted(int(k) for k in models_info) if object_ids is None else list(object_ids)
        objects = []
        for obj_id in ids:
            entry = models_info.get(str(obj_id), {})
            objects.append(load_object(
                models_dir / f"obj_{obj_id:06d}.ply", object_id=obj_id, name=f"obj_{obj_id:06d}", units="mm",
                symmetries={"discrete": entry.get("symmetries_discrete"), "continuous": entry.get("symmetries_continuous")},
            ))
        return cls(objects)


def _read_models_info(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"models_info {path}: not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"models_info {path}: invalid JSON ({exc})") from exc


def _object_from_entry(entry: Any, index: int, yaml_path: Path, models_info: dict[str, Any]) -> ObjectModel:
    where = f"objects file {yaml_path}, object #{index}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(entry).__name__}")
    unknown = set(entry) - OBJECT_KEYS
    missing = {"id", "name", "mesh"} - set(entry)
    if unknown or missing:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} / missing keys {sorted(missing)}")
    name = str(entry["name"])
    if not NAME_PATTERN.match(name):
        raise ValueError(f"{where}: name '{name}' must start with a letter and use only letters, digits and '_'")
    try:
        object_id = int(entry["id"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: id must be an integer, got {entry['id']!r}") from exc
    units = str(entry.get("units", "auto"))
    obj = load_object(
        yaml_path.parent / str(entry["mesh"]),
        object_id=object_id,
        name=name,
        units=units,
        origin=str(entry.get("origin", "keep")),
        symmetries=_symmetry_spec(entry.get("symmetries", "none"), object_id, models_info, where),
    )
    check_plausible_size(obj, units, where)
    return obj


# What a robot's camera can pose at all: a declared unit that puts an object outside this range is
# almost always the wrong unit (a mesh in mm declared `units: m` is 1000x too large, and vice versa).
PLAUSIBLE_DIAMETER_M = (0.005, 3.0)


def check_plausible_size(obj: ObjectModel, units: str, where: str) -> None:
    """ValueError naming the measured size and the unit that would make it plausible, if any."""
    low, high = PLAUSIBLE_DIAMETER_M
    if low <= obj.diameter_m <= high:
        return
    raw = obj.diameter_m / obj.mesh_scale_to_m
    fits = [u for u, scale in UNIT_SCALES_TO_M.items() if low <= raw * scale <= high]
    suggestion = (f"with units: {fits[0]} it would be {raw * UNIT_SCALES_TO_M[fits[0]]:.3g} m: set units: {fits[0]}"
                  if fits else "no unit makes it plausible: check the mesh file")
    raise ValueError(f"{where} ('{obj.name}', {obj.mesh_path.name}): with units: {units} the object is "
                     f"{obj.diameter_m:.4g} m across, outside the plausible {low * 1000:.0f} mm to {high:.0f} m; "
                     f"{suggestion}")


def _symmetry_spec(value: Any, object_id: int, models_info: dict[str, Any], where: str) -> dict[str, Any]:
    if value in (None, "none"):
        return {}
    if value == "models_info":
        if str(object_id) not in models_info:
            raise ValueError(f"{where}: symmetries: models_info, but models_info has no entry for id {object_id}")
        entry = models_info[str(object_id)]
        return {"discrete": entry.get("symmetries_discrete"), "continuous": entry.get("symmetries_continuous")}
    if isinstance(value, dict) and set(value) <= {"discrete", "continuous"}:
        return value
    raise ValueError(f"{where}: symmetries must be none, models_info or {{discrete, continuous}}, got {value!r}")

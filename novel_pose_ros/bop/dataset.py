"""Reading and writing BOP-format datasets (https://github.com/thodan/bop_toolkit, docs/bop_datasets_format.md).

Units: BOP files hold millimetres (cam_t_m2c, models, depth × depth_scale); the
core holds metres. The conversion happens here and nowhere else.

Layout: <root>/models/{obj_XXXXXX.ply, models_info.json}, <root>/<split>/<scene:06d>/
{scene_camera.json, scene_gt.json, scene_gt_info.json?, rgb|gray/, depth/, mask/, mask_visib/},
<root>/test_targets_bop19.json (optional).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from novel_pose_ros.geometry.camera import validate_K
from novel_pose_ros.geometry.se3 import make_T
from novel_pose_ros.objects import ObjectLibrary

LOGGER = logging.getLogger(__name__)
M_PER_MM = 1e-3
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif")


@dataclass(frozen=True)
class GtInstance:
    """One annotated object instance. T_cam_obj in metres; the visibility fields come from
    scene_gt_info.json (None when the dataset has none); boxes are BOP's (x, y, w, h) with
    w = x_max − x_min (see `bop_box`)."""

    obj_id: int
    T_cam_obj: np.ndarray
    bbox_obj: tuple[int, int, int, int] | None = None
    bbox_visib: tuple[int, int, int, int] | None = None
    px_count_all: int | None = None
    px_count_visib: int | None = None
    visib_fract: float | None = None


@dataclass(frozen=True)
class Target:
    """An evaluation target: estimate `inst_count` instances of obj_id in the image."""

    scene_id: int
    im_id: int
    obj_id: int
    inst_count: int


@dataclass(frozen=True)
class BopImage:
    """One image of a scene with its camera and annotations (paths are read lazily)."""

    scene_id: int
    im_id: int
    K: np.ndarray
    depth_scale_mm: float
    image_path: Path
    depth_path: Path | None
    gt: tuple[GtInstance, ...]
    depth_expected: bool = False  # the scene has a depth/ folder, whether or not this image's file exists

    def load_rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB (grey images are replicated to three channels)."""
        image = cv2.imread(str(self.image_path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise FileNotFoundError(f"image {self.image_path}: missing or unreadable")
        if image.dtype != np.uint8:
            image = cv2.convertScaleAbs(image, alpha=255.0 / max(float(image.max()), 1.0))
        if image.ndim == 2:
            return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        return cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)

    def load_depth_m(self) -> np.ndarray | None:
        """(H, W) float32 metres (0 = invalid), or None when the dataset has no depth for this image."""
        if self.depth_path is None:
            return None
        depth = cv2.imread(str(self.depth_path), cv2.IMREAD_UNCHANGED)
        if depth is None:
            raise FileNotFoundError(f"depth image {self.depth_path}: missing or unreadable")
        return (depth.astype(np.float32) * np.float32(self.depth_scale_mm * M_PER_MM)).astype(np.float32)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path}: not found") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from exc


def _find_image(folder: Path, im_id: int) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        candidate = folder / f"{im_id:06d}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def pose_from_gt_entry(entry: dict) -> np.ndarray:
    """T_cam_obj (metres) of a scene_gt.json entry."""
    R = np.asarray(entry["cam_R_m2c"], dtype=np.float64).reshape(3, 3)
    t = np.asarray(entry["cam_t_m2c"], dtype=np.float64).reshape(3) * M_PER_MM
    return make_T(R, t)


def bop_box(box_xywh: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """BOP's box for a pixel box (x, y, w, h) with w = pixel count: the BOP toolkit stores
    x_max − x_min, one less (COCO and CNOS files keep the pixel count)."""
    x, y, w, h = box_xywh
    return int(x), int(y), int(w) - 1, int(h) - 1


def _gt_instance(entry: dict, info: dict | None, where: str) -> GtInstance:
    try:
        T_cam_obj = pose_from_gt_entry(entry)
        obj_id = int(entry["obj_id"])
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{where}: malformed ground-truth entry ({exc})") from exc
    info = info or {}
    box = lambda key: tuple(int(v) for v in info[key]) if key in info else None  # noqa: E731
    return GtInstance(
        obj_id=obj_id,
        T_cam_obj=T_cam_obj,
        bbox_obj=box("bbox_obj"),
        bbox_visib=box("bbox_visib"),
        px_count_all=info.get("px_count_all"),
        px_count_visib=info.get("px_count_visib"),
        visib_fract=info.get("visib_fract"),
    )


def read_scene(scene_dir: Path) -> dict[int, BopImage]:
    """All images of one scene folder, keyed by im_id."""
    scene_id = int(scene_dir.name)
    cameras = _read_json(scene_dir / "scene_camera.json")
    gts = _read_json(scene_dir / "scene_gt.json") if (scene_dir / "scene_gt.json").is_file() else {}
    infos = _read_json(scene_dir / "scene_gt_info.json") if (scene_dir / "scene_gt_info.json").is_file() else {}
    image_folder = scene_dir / "rgb" if (scene_dir / "rgb").is_dir() else scene_dir / "gray"
    images = {}
    for key, camera in cameras.items():
        im_id = int(key)
        where = f"{scene_dir / 'scene_camera.json'} image {im_id}"
        try:
            K = validate_K(np.asarray(camera["cam_K"], dtype=np.float64).reshape(3, 3), f"{where} cam_K")
        except KeyError as exc:
            raise ValueError(f"{where}: no cam_K") from exc
        image_path = _find_image(image_folder, im_id) or image_folder / f"{im_id:06d}.png"
        depth_path = _find_image(scene_dir / "depth", im_id)
        entries = gts.get(key, [])
        info_entries = infos.get(key, [None] * len(entries))
        gt = tuple(_gt_instance(e, i, f"{scene_dir / 'scene_gt.json'} image {im_id} #{n}")
                   for n, (e, i) in enumerate(zip(entries, info_entries)))
        images[im_id] = BopImage(scene_id, im_id, K, float(camera.get("depth_scale", 1.0)), image_path, depth_path, gt,
                                 depth_expected=(scene_dir / "depth").is_dir())
    return images


class BopDataset:
    """A BOP dataset split: scenes, images, ground truth, targets and the object models."""

    def __init__(self, root: str | Path, split: str = "test") -> None:
        self.root = Path(root).expanduser().resolve()
        self.split_dir = self.root / split
        if not self.split_dir.is_dir():
            raise FileNotFoundError(f"BOP dataset {self.root}: no '{split}' folder")
        self.models_dir = self.root / "models"
        scene_dirs = sorted(p for p in self.split_dir.iterdir() if p.is_dir() and p.name.isdigit())
        if not scene_dirs:
            raise FileNotFoundError(f"BOP dataset {self.root}: no scene folders in {self.split_dir}")
        self.scenes: dict[int, dict[int, BopImage]] = {int(p.name): read_scene(p) for p in scene_dirs}
        self.targets_path = self._find_targets_file()
        self.targets = self._read_targets() if self.targets_path else self._targets_from_gt()
        self._models_info: dict[str, Any] | None = None

    def _find_targets_file(self) -> Path | None:
        candidates = sorted(self.root.glob("*targets*bop19*.json"))
        return candidates[0] if candidates else None

    def _read_targets(self) -> list[Target]:
        entries = _read_json(self.targets_path)
        targets = []
        for n, e in enumerate(entries):
            try:
                target = Target(int(e["scene_id"]), int(e["im_id"]), int(e["obj_id"]), int(e["inst_count"]))
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"{self.targets_path}: entry #{n} is malformed ({exc})") from exc
            if target.scene_id in self.scenes and target.im_id in self.scenes[target.scene_id]:
                targets.append(target)  # target lists cover whole datasets; keep those we have images for
        return targets

    def _targets_from_gt(self) -> list[Target]:
        """Without a targets file every annotated instance is a target (BOP's bop19 default)."""
        targets = []
        for image in self.images():
            counts: dict[int, int] = {}
            for inst in image.gt:
                counts[inst.obj_id] = counts.get(inst.obj_id, 0) + 1
            targets += [Target(image.scene_id, image.im_id, o, c) for o, c in sorted(counts.items())]
        return targets

    def images(self) -> Iterator[BopImage]:
        """Every image, by scene then image id."""
        for scene_id in sorted(self.scenes):
            for im_id in sorted(self.scenes[scene_id]):
                yield self.scenes[scene_id][im_id]

    def image(self, scene_id: int, im_id: int) -> BopImage:
        try:
            return self.scenes[scene_id][im_id]
        except KeyError as exc:
            raise KeyError(f"BOP dataset {self.root}: no image scene {scene_id} im {im_id}") from exc

    def target_images(self) -> list[BopImage]:
        """Images that have at least one target, in order."""
        keys = sorted({(t.scene_id, t.im_id) for t in self.targets})
        return [self.scenes[s][i] for s, i in keys]

    @property
    def has_depth(self) -> bool:
        return all(image.depth_path is not None for image in self.target_images())

    @property
    def models_info(self) -> dict[str, Any]:
        if self._models_info is None:
            self._models_info = _read_json(self.models_dir / "models_info.json")
        return self._models_info

    def object_library(self, object_ids: list[int] | None = None) -> ObjectLibrary:
        """The dataset's models (mm, symmetries from models_info) as an ObjectLibrary named obj_XXXXXX."""
        return ObjectLibrary.from_bop_models(self.models_dir, object_ids)

    def diameter_m(self, obj_id: int) -> float:
        """models_info's diameter of an object (what BOP normalises by), metres; the mesh's when models_info
        lacks it."""
        entry = self.models_info.get(str(obj_id), {})
        if "diameter" in entry:
            return float(entry["diameter"]) * M_PER_MM
        return self.object_library([obj_id]).get(obj_id).diameter_m


# --- writing (used by the synthetic scene generator) ---------------------------------------

def scene_camera_entry(K: np.ndarray, depth_scale_mm: float) -> dict[str, Any]:
    return {"cam_K": np.asarray(K, dtype=np.float64).ravel().tolist(), "depth_scale": float(depth_scale_mm)}


def scene_gt_entry(obj_id: int, T_cam_obj: np.ndarray) -> dict[str, Any]:
    T = np.asarray(T_cam_obj, dtype=np.float64)
    return {"cam_R_m2c": T[:3, :3].ravel().tolist(), "cam_t_m2c": (T[:3, 3] / M_PER_MM).tolist(), "obj_id": int(obj_id)}


def as_stored_in_scene_gt(T_cam_obj: np.ndarray) -> np.ndarray:
    """The pose exactly as it reads back from scene_gt.json (the mm conversion rounds in the last bits)."""
    return pose_from_gt_entry(scene_gt_entry(0, T_cam_obj))


def write_json(path: Path, data: Any) -> None:
    """Write JSON the way BOP files look (sorted integer keys, compact rows)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def write_targets(path: Path, targets: list[Target]) -> None:
    write_json(path, [{"im_id": t.im_id, "inst_count": t.inst_count, "obj_id": t.obj_id, "scene_id": t.scene_id} for t in targets])

"""On-disk template sets: one folder per object under a cache directory.

Layout of `<cache_dir>/<object_name>/`:

    manifest.json      key, settings, K, image size, depth scale, per view: icosphere
                       index, T_cam_obj (metres), crop box and 2×3 crop transform
    rgb/000000.png     RGB render (black background)
    depth/000000.png   uint16 depth; value × depth_scale_mm = millimetres, 0 = background
    mask/000000.png    object mask (0 / 255)

The manifest is written last, so a folder without one (an interrupted build) is never read as valid.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from novel_pose_ros.geometry.crop import SquareBox

MANIFEST = "manifest.json"
M_PER_MM = 1e-3


@dataclass(frozen=True)
class TemplateView:
    """One rendered view. rgb (H, W, 3) uint8; depth_m (H, W) float32 metres (0 = background);
    mask (H, W) bool; T_cam_obj (4, 4); crop_box and M_crop_img (2, 3) map it into the network crop."""

    view_id: int
    rgb: np.ndarray
    depth_m: np.ndarray
    mask: np.ndarray
    T_cam_obj: np.ndarray
    crop_box: SquareBox
    M_crop_img: np.ndarray


@dataclass(frozen=True)
class TemplateSet:
    """All views of one object, with the template K and the key they were built under."""

    object_name: str
    object_id: int
    key: str
    K: np.ndarray
    crop_size_px: int
    level: int
    views: tuple[TemplateView, ...]
    folder: Path

    def __len__(self) -> int:
        return len(self.views)

    @property
    def T_cam_obj(self) -> np.ndarray:
        """(N, 4, 4) poses of all views."""
        return np.stack([v.T_cam_obj for v in self.views])


def _image_name(view_index: int) -> str:
    return f"{view_index:06d}.png"


def read_manifest(folder: Path) -> dict | None:
    """The manifest of a template folder, or None if absent or unreadable."""
    path = Path(folder) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def depth_scale_for(max_depth_m: float) -> float:
    """Finest millimetre scale (0.1 mm, else 1 mm) whose uint16 range holds `max_depth_m`."""
    return 0.1 if max_depth_m / M_PER_MM / 0.1 < 65535 else 1.0


def write_template_set(folder: Path, manifest: dict, views: list[TemplateView], depth_scale_mm: float) -> None:
    """Write images and then the manifest (views' metadata is appended to `manifest`)."""
    folder = Path(folder)
    for sub in ("rgb", "depth", "mask"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)  # an interrupted rewrite must not look valid
    png_fast = [cv2.IMWRITE_PNG_COMPRESSION, 1]

    def write_view(index_view: tuple[int, TemplateView]) -> None:
        index, view = index_view
        depth_units = np.rint(view.depth_m / M_PER_MM / depth_scale_mm).astype(np.uint16)
        ok = cv2.imwrite(str(folder / "rgb" / _image_name(index)), view.rgb[..., ::-1], png_fast)
        ok &= cv2.imwrite(str(folder / "depth" / _image_name(index)), depth_units, png_fast)
        ok &= cv2.imwrite(str(folder / "mask" / _image_name(index)), view.mask.astype(np.uint8) * 255, png_fast)
        if not ok:
            raise OSError(f"cannot write template images for view {index} into {folder}")

    with ThreadPoolExecutor(max_workers=4) as pool:  # PNG encoding releases the GIL
        list(pool.map(write_view, enumerate(views)))
    manifest = dict(manifest)
    manifest["depth_scale_mm"] = depth_scale_mm
    manifest["views"] = [
        {
            "view_id": int(v.view_id),
            "T_cam_obj": np.asarray(v.T_cam_obj).tolist(),
            "crop_box": [v.crop_box.x1, v.crop_box.y1, v.crop_box.side],
            "M_crop_img": np.asarray(v.M_crop_img).tolist(),
        }
        for v in views
    ]
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))


def load_template_set(folder: str | Path) -> TemplateSet:
    """Read a template folder written by `write_template_set`; errors name the missing file."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise FileNotFoundError(f"template folder {folder}: no readable {MANIFEST} (build templates first)")
    scale_m = manifest["depth_scale_mm"] * M_PER_MM

    def read(sub: str, index: int, flags: int) -> np.ndarray:
        path = folder / sub / _image_name(index)
        image = cv2.imread(str(path), flags)
        if image is None:
            raise FileNotFoundError(f"template image {path}: missing or unreadable")
        return image

    views = []
    for index, entry in enumerate(manifest["views"]):
        x1, y1, side = entry["crop_box"]
        views.append(TemplateView(
            view_id=int(entry["view_id"]),
            rgb=read("rgb", index, cv2.IMREAD_COLOR)[..., ::-1].copy(),
            depth_m=read("depth", index, cv2.IMREAD_UNCHANGED).astype(np.float32) * np.float32(scale_m),
            mask=read("mask", index, cv2.IMREAD_GRAYSCALE) > 127,
            T_cam_obj=np.asarray(entry["T_cam_obj"], dtype=np.float64),
            crop_box=SquareBox(int(x1), int(y1), int(side)),
            M_crop_img=np.asarray(entry["M_crop_img"], dtype=np.float64),
        ))
    return TemplateSet(
        object_name=manifest["object_name"],
        object_id=int(manifest["object_id"]),
        key=manifest["key"],
        K=np.asarray(manifest["K"], dtype=np.float64),
        crop_size_px=int(manifest["settings"]["crop_size_px"]),
        level=int(manifest["settings"]["level"]),
        views=tuple(views),
        folder=folder,
    )

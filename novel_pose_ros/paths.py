"""Where the package's data lives: config/, meshes/, models/ and the user cache.

Three layouts are supported: the source tree (editable install), an ament/colcon
install (share/novel_pose_ros found through the ament index) and a pip install
(<prefix>/share/novel_pose_ros).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "novel_pose_ros"


def share_dir() -> Path:
    """Folder holding config/, meshes/, models/ and launch/."""
    source_root = Path(__file__).resolve().parents[1]
    if (source_root / "package.xml").is_file() and (source_root / "config").is_dir():
        return source_root
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            return Path(get_package_share_directory(PACKAGE))
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    candidate = Path(sys.prefix) / "share" / PACKAGE
    if candidate.is_dir():
        return candidate
    raise FileNotFoundError(f"cannot find the {PACKAGE} share folder (looked in {source_root}, the ament index and {candidate})")


def default_objects_file() -> Path:
    return share_dir() / "config" / "objects.yaml"


def cache_dir() -> Path:
    """User cache root ($NOVEL_POSE_CACHE, else $XDG_CACHE_HOME/novel_pose_ros, else ~/.cache/novel_pose_ros)."""
    if os.environ.get("NOVEL_POSE_CACHE"):
        return Path(os.environ["NOVEL_POSE_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser()
    return base / PACKAGE


def default_templates_dir() -> Path:
    return cache_dir() / "templates"

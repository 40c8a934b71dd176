"""Paths to bundled and shared data, and skip helpers, importable by every test module."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
BUNDLED_OBJECTS = REPO_ROOT / "config" / "objects.yaml"
MESHES = REPO_ROOT / "meshes"


def shared_data(relative: str) -> Path:
    """Path under ../shared/data, or skip the test saying that folder is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"needs {path} (../shared/data is not present on this machine)")
    return path

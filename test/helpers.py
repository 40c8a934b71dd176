"""Paths to bundled and shared data, skip helpers and network inputs, importable by every test module."""
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


def toy_block_objects_yaml(folder: Path) -> Path:
    """An objects YAML in `folder` with the bundled toy block alone (id 2): quick to onboard."""
    path = Path(folder) / "objects.yaml"
    path.write_text(f"objects:\n  - {{id: 2, name: toy_block, mesh: {MESHES / 'toy_block.ply'}, units: m}}\n")
    return path


def picopose_graph_inputs(batch: int, seed: int = 3) -> dict:
    """{graph: {input name: float32 array}} of the small PicoPose network's graphs, for back-end parity."""
    from novel_pose_ros.networks.picopose.config import get_config
    from novel_pose_ros.networks.picopose.export import example_inputs
    from novel_pose_ros.networks.picopose.picopose_net import build_network

    net = build_network(get_config("small"))
    return {g: {n: t.numpy() for n, t in tensors.items()} for g, tensors in example_inputs(net, batch, seed).items()}

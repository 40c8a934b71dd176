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


TOY_BLOCK = (2, "toy_block", "toy_block.ply")  # (id, name, bundled mesh file) of an objects file entry


def bundled_objects_yaml(folder: Path, entries=(TOY_BLOCK,)) -> Path:
    """folder/objects.yaml naming bundled meshes (in metres): entries of (id, name, file in meshes/)."""
    path = Path(folder) / "objects.yaml"
    path.write_text("objects:\n" + "".join(f"  - {{id: {i}, name: {name}, mesh: {MESHES / mesh}, units: m}}\n"
                                            for i, name, mesh in entries))
    return path


def toy_block_objects_yaml(folder: Path) -> Path:
    """An objects YAML in `folder` with the bundled toy block alone (id 2): quick to onboard."""
    return bundled_objects_yaml(folder)


def picopose_graph_inputs(batch: int, seed: int = 3) -> dict:
    """{graph: {input name: float32 array}} of the small PicoPose network's graphs, for back-end parity."""
    from novel_pose_ros.networks.picopose.config import get_config
    from novel_pose_ros.networks.picopose.export import example_inputs
    from novel_pose_ros.networks.picopose.picopose_net import build_network

    net = build_network(get_config("small"))
    return {g: {n: t.numpy() for n, t in tensors.items()} for g, tensors in example_inputs(net, batch, seed).items()}

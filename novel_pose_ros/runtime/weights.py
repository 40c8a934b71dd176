"""Which PicoPose weights to run: a checkpoint file, the shipped default, or untrained weights.

`resolve_checkpoint` picks the shipped model (models/picopose_<network>/) when no checkpoint is
given and one is shipped for that network; otherwise the network runs untrained (plumbing checks
only, said loudly). `load_network` returns the network and a weights id (sha256 of the checkpoint
file, or `untrained-<config>-seed<n>`); caches of template features and exported ONNX graphs are
keyed by that id, so they never mix weights.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import torch

from novel_pose_ros.networks.picopose.checkpoint import load_weights, read_checkpoint
from novel_pose_ros.networks.picopose.config import PicoPoseConfig, get_config
from novel_pose_ros.hashing import file_sha256
from novel_pose_ros.networks.picopose.export import export_onnx, load_sidecar
from novel_pose_ros.networks.picopose.picopose_net import PicoPoseNet, build_network
from novel_pose_ros.paths import cache_dir, share_dir

LOGGER = logging.getLogger(__name__)


def shipped_model_dir(network: str) -> Path:
    return share_dir() / "models" / f"picopose_{network}"


def resolve_checkpoint(network: str, checkpoint: str | Path | None) -> Path | None:
    """The checkpoint to load: the one given, else the shipped one for `network` if any, else None (untrained)."""
    if checkpoint is not None:
        return Path(checkpoint).expanduser()
    shipped = shipped_model_dir(network) / f"picopose_{network}.ckpt"
    return shipped if shipped.is_file() else None


def config_of_checkpoint(contents, fallback: str) -> PicoPoseConfig:
    """The config stored in one of our checkpoints (`novel_pose.config_values`), else the named fallback
    (official checkpoints carry no config of ours)."""
    ours = contents.metadata.get("novel_pose")
    if isinstance(ours, dict) and isinstance(ours.get("config_values"), dict):
        return PicoPoseConfig.from_dict(ours["config_values"])
    return get_config(fallback)


def is_official_checkpoint(path: str | Path) -> bool:
    """True for a checkpoint without our `novel_pose` metadata: the official code's (or another foreign) file."""
    return not isinstance(read_checkpoint(path).metadata.get("novel_pose"), dict)


def load_network(config_name: str, checkpoint: str | Path | None, seed: int = 0) -> tuple[PicoPoseNet, str]:
    """(network in eval mode on CPU, weights id). checkpoint=None builds untrained weights from `seed`."""
    if checkpoint is None:
        torch.manual_seed(seed)
        net = build_network(get_config(config_name))
        LOGGER.warning("PicoPose '%s' runs with UNTRAINED random weights (seed %d): poses will be meaningless",
                       config_name, seed)
        return net, f"untrained-{config_name}-seed{seed}"
    path = Path(checkpoint).expanduser()
    contents = read_checkpoint(path)
    net = build_network(config_of_checkpoint(contents, config_name))
    load_weights(net, contents)
    return net.eval(), file_sha256(path)


def ensure_onnx(net: PicoPoseNet, weights_id: str, root: str | Path | None = None) -> Path:
    """Sidecar path of this PicoPose network's ONNX export in the cache (exported when absent or stale)."""
    name = net.config.name
    return cached_export("picopose", f"picopose_{name}.json", f"{name}-{weights_id[:24]}", weights_id,
                         lambda folder: export_onnx(net, folder, weights_id), root)


def cached_export(network: str, sidecar_name: str, folder_name: str, weights_id: str, export: Callable[[Path], Path],
                  root: str | Path | None = None) -> Path:
    """Sidecar of an export (PicoPose or Co-op `network`) made from the weights `weights_id`:
    `<root or cache>/onnx/folder_name/sidecar_name`, written by `export(folder)` when absent, stale or damaged.
    ONNX graphs are never shipped (the checkpoints are the one copy of the weights): the first run of new
    weights exports them (logged, with the time it took: seconds for small_cnn, minutes for official). Caches
    never mix weights."""
    folder = Path(root or cache_dir() / "onnx") / folder_name
    sidecar = folder / sidecar_name
    if sidecar.is_file():
        try:
            if load_sidecar(sidecar, network).get("weights_sha256") == weights_id:
                return sidecar
        except (ValueError, FileNotFoundError) as exc:
            LOGGER.warning("ONNX cache %s is unusable (%s): exporting again", folder, exc)
    LOGGER.info("first use of these %s weights (%s): exporting their ONNX graphs into %s (once; later runs "
                   "reuse them)", network, weights_id[:12], folder)
    started = time.perf_counter()
    sidecar = export(folder)
    LOGGER.info("ONNX export of %s done in %.1f s", sidecar_name, time.perf_counter() - started)
    return sidecar

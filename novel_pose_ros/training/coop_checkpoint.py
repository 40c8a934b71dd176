"""Co-op network checkpoints (refiner, coarse matcher, selector): the weights file the estimator loads.

Weights file (`.ckpt`, readable with torch.load(weights_only=True)):
    {"state_dict": {"network.<name>": tensor}, "global_step": int,
     "novel_pose": {"network": kind, "config": name, "config_values": <config>.to_dict(),
                    "format": 1, "train_config": {...}, ...}}
kind is "coop_refiner", "coop_coarse" or "coop_selector" (NETWORK_KINDS). `load_coop_checkpoint`
rebuilds the network from config_values and loads it strictly; its weights id is the file's sha256
(caches of exported graphs are keyed by it, as PicoPose's). Resumable training checkpoints are
training/checkpoints.py's, given `save_coop_weights` / `load_coop_weights` as the weights writer/reader.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import torch
from torch import nn

from novel_pose_ros.hashing import file_sha256

NETWORK_PREFIX = "network."
FORMAT = 1


class NetworkKind(NamedTuple):
    config_from_dict: Callable[[dict], object]
    build: Callable[[object], nn.Module]


def _kinds() -> dict[str, NetworkKind]:
    from novel_pose_ros.networks.coop.coarse_config import CoopCoarseConfig
    from novel_pose_ros.networks.coop.coarse_net import CoopCoarseNet
    from novel_pose_ros.networks.coop.refiner_net import CoopRefinerConfig, CoopRefinerNet
    from novel_pose_ros.networks.coop.selector_net import CoopSelectorConfig, CoopSelectorNet

    return {"coop_refiner": NetworkKind(CoopRefinerConfig.from_dict, CoopRefinerNet),
            "coop_coarse": NetworkKind(CoopCoarseConfig.from_dict, CoopCoarseNet),
            "coop_selector": NetworkKind(CoopSelectorConfig.from_dict, CoopSelectorNet)}


NETWORK_KINDS = ("coop_refiner", "coop_coarse", "coop_selector")


def kind_of(net: nn.Module) -> str:
    """The NETWORK_KINDS entry of a Co-op network instance."""
    for kind, spec in _kinds().items():
        if isinstance(net, spec.build):
            return kind
    raise TypeError(f"{type(net).__name__} is not a Co-op network ({', '.join(NETWORK_KINDS)})")


def save_coop_weights(net: nn.Module, path: str | Path, global_step: int = 0, extra: dict | None = None) -> Path:
    """Write the network's weights and config (module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "state_dict": {NETWORK_PREFIX + k: v.detach().cpu() for k, v in net.state_dict().items()},
        "global_step": int(global_step),
        "novel_pose": {"network": kind_of(net), "config": net.config.name, "config_values": net.config.to_dict(),
                       "format": FORMAT, **(extra or {})},
    }, path)
    return path


def read_coop_checkpoint(path: str | Path, kind: str) -> tuple[object, dict[str, torch.Tensor], dict]:
    """(config, state dict without prefix, the `novel_pose` metadata) of a `kind` weights file."""
    if kind not in NETWORK_KINDS:
        raise ValueError(f"unknown Co-op network kind {kind!r} (known: {', '.join(NETWORK_KINDS)})")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} checkpoint {path} does not exist")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    meta = raw.get("novel_pose") if isinstance(raw, dict) else None
    if not (isinstance(meta, dict) and meta.get("network") == kind and isinstance(meta.get("config_values"), dict)):
        found = meta.get("network") if isinstance(meta, dict) else None
        raise ValueError(f"{path} is not a {kind} checkpoint (its novel_pose.network is {found!r}; a PicoPose "
                         "checkpoint has none)")
    state = {k[len(NETWORK_PREFIX):] if k.startswith(NETWORK_PREFIX) else k: v for k, v in raw["state_dict"].items()}
    return _kinds()[kind].config_from_dict(meta["config_values"]), state, meta


def load_coop_weights(net: nn.Module, path: str | Path) -> dict:
    """Load a weights file into `net` strictly (its config must equal net.config); returns the metadata."""
    config, state, meta = read_coop_checkpoint(path, kind_of(net))
    if config != net.config:
        raise ValueError(f"{path}: config {config} differs from the network's {net.config}")
    net.load_state_dict(state, strict=True)
    return meta


def load_coop_checkpoint(path: str | Path, kind: str) -> tuple[nn.Module, str]:
    """(network rebuilt from the file's config, loaded strictly, in eval mode on CPU; sha256 of the file)."""
    config, state, _ = read_coop_checkpoint(path, kind)
    net = _kinds()[kind].build(config)
    net.load_state_dict(state, strict=True)
    return net.eval(), file_sha256(path)

"""Co-op refiner checkpoints: the weights file the estimator loads, and resumable training checkpoints.

Weights file (`.ckpt`, readable with torch.load(weights_only=True)):
    {"state_dict": {"network.<name>": tensor}, "global_step": int,
     "novel_pose": {"network": "coop_refiner", "config": name, "config_values": CoopRefinerConfig.to_dict(),
                    "format": 1, "train_config": {...}}}
`load_refiner_checkpoint` rebuilds the network from config_values and loads it strictly; its weights
id is the file's sha256 (caches of exported graphs are keyed by it, as PicoPose's).
Training checkpoints are training/checkpoints.py's, given `save_refiner_weights` / `load_refiner_weights`
(`step_XXXXXXX.ckpt` = the weights file above, `step_XXXXXXX.state.pt` = optimiser, step, RNG states, config).
"""
from __future__ import annotations

from pathlib import Path

import torch

from novel_pose_ros.networks.coop.refiner_net import CoopRefinerConfig, CoopRefinerNet
from novel_pose_ros.hashing import file_sha256

NETWORK_PREFIX = "network."
NETWORK_KIND = "coop_refiner"
FORMAT = 1


def save_refiner_weights(net: CoopRefinerNet, path: str | Path, global_step: int = 0, extra: dict | None = None) -> Path:
    """Write the refiner's weights and config (module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "state_dict": {NETWORK_PREFIX + k: v.detach().cpu() for k, v in net.state_dict().items()},
        "global_step": int(global_step),
        "novel_pose": {"network": NETWORK_KIND, "config": net.config.name, "config_values": net.config.to_dict(),
                       "format": FORMAT, **(extra or {})},
    }, path)
    return path


def read_refiner_checkpoint(path: str | Path) -> tuple[CoopRefinerConfig, dict[str, torch.Tensor], dict]:
    """(config, state dict without prefix, the `novel_pose` metadata) of a refiner weights file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"refiner checkpoint {path} does not exist")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    meta = raw.get("novel_pose") if isinstance(raw, dict) else None
    if not (isinstance(meta, dict) and meta.get("network") == NETWORK_KIND and isinstance(meta.get("config_values"), dict)):
        raise ValueError(f"{path} is not a Co-op refiner checkpoint (no novel_pose.network = '{NETWORK_KIND}' "
                         "with config_values): a PicoPose checkpoint?")
    state = {k[len(NETWORK_PREFIX):] if k.startswith(NETWORK_PREFIX) else k: v for k, v in raw["state_dict"].items()}
    return CoopRefinerConfig.from_dict(meta["config_values"]), state, meta


def load_refiner_weights(net: CoopRefinerNet, path: str | Path) -> dict:
    """Load a weights file into `net` strictly (its config must equal net.config); returns the metadata."""
    config, state, meta = read_refiner_checkpoint(path)
    if config != net.config:
        raise ValueError(f"{path}: refiner config {config} differs from the network's {net.config}")
    net.load_state_dict(state, strict=True)
    return meta


def load_refiner_checkpoint(path: str | Path) -> tuple[CoopRefinerNet, str]:
    """(refiner network rebuilt from the file's config, loaded strictly, in eval mode on CPU; sha256 of the file)."""
    config, state, _ = read_refiner_checkpoint(path)
    net = CoopRefinerNet(config)
    net.load_state_dict(state, strict=True)
    return net.eval(), file_sha256(path)

"""Resumable training checkpoints.

Each checkpoint is two files in `<out_dir>/checkpoints/`:
  step_0001000.ckpt        the weights, in the official Lightning layout (networks/picopose/checkpoint.py):
                           what `--weights` of estimate / eval-run and the export take
  step_0001000.state.pt    optimiser state, step, RNG states (torch, NumPy's global), the training config
`latest.json` names the newest pair; only the newest `keep` pairs are kept. The weights are written
first and `latest.json` last, so an interrupted save never becomes the resume point. The data stream
and the stage-3 noise are functions of the step (training/batches.py), so a resumed run continues
with exactly the batches it would have seen.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn


LATEST = "latest.json"


@dataclass(frozen=True)
class CheckpointPaths:
    weights: Path
    state: Path


def checkpoint_paths(folder: Path, step: int) -> CheckpointPaths:
    return CheckpointPaths(folder / f"step_{step:07d}.ckpt", folder / f"step_{step:07d}.state.pt")


def save_training_checkpoint(folder: str | Path, step: int, net: nn.Module, optimizer: torch.optim.Optimizer,
                             config: dict, keep: int, save_weights: Callable[[nn.Module, Path, int, dict], object]
                             ) -> CheckpointPaths:
    """Write the checkpoint of `step` (steps done) and drop the oldest beyond `keep`. save_weights(net, path,
    step, extra) writes the weights file in the network's own format (PicoPose: Lightning layout)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = checkpoint_paths(folder, step)
    save_weights(net, paths.weights, step, {"train_config": config})
    torch.save({
        "step": int(step),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": json.dumps(_numpy_state()),
        "config": json.dumps(config),
    }, paths.state)
    (folder / LATEST).write_text(json.dumps({"step": int(step), "weights": paths.weights.name,
                                             "state": paths.state.name}))
    for old in sorted(folder.glob("step_*.ckpt"))[:-keep]:
        old_state = old.with_name(old.name.replace(".ckpt", ".state.pt"))
        old.unlink(missing_ok=True)
        old_state.unlink(missing_ok=True)
    return paths


def latest_checkpoint(folder: str | Path) -> CheckpointPaths | None:
    path = Path(folder) / LATEST
    if not path.is_file():
        return None
    entry = json.loads(path.read_text())
    paths = CheckpointPaths(Path(folder) / entry["weights"], Path(folder) / entry["state"])
    if not (paths.weights.is_file() and paths.state.is_file()):
        raise FileNotFoundError(f"{path} names {paths.weights.name} / {paths.state.name}, which are missing")
    return paths


def load_training_checkpoint(paths: CheckpointPaths, net: nn.Module, optimizer: torch.optim.Optimizer | None,
                             read_weights: Callable[[nn.Module, Path], object]) -> dict:
    """Load weights (strict, with `read_weights`), optimiser state and RNG states; returns {"step", "config"}."""
    read_weights(net, paths.weights)
    state = torch.load(paths.state, map_location="cpu", weights_only=True)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    _set_numpy_state(json.loads(state["numpy_rng"]))
    return {"step": int(state["step"]), "config": json.loads(state["config"])}


def _numpy_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}


def _set_numpy_state(state: dict) -> None:
    np.random.set_state((state["name"], np.asarray(state["keys"], dtype=np.uint32), state["pos"], state["has_gauss"],
                         state["cached"]))

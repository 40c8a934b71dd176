"""PicoPose checkpoints: read, strict load, save in the official Lightning layout, inspect.

Official checkpoints are PyTorch Lightning `.ckpt` files: `{"state_dict": {"network.<name>": tensor},
"epoch", "global_step", "pytorch-lightning_version", ...}` with <name> as in PicoPoseNet.state_dict().
The first official code release named the children backbone / regressor / dpt / decoder; those
names are mapped (LEGACY_PREFIXES). A bare state dict (with or without `network.`) is accepted too.

Loading is always strict: any missing, unexpected or shape-mismatched entry is an error that lists
them. Files are read with torch.load(weights_only=True) unless the caller trusts the file.
"""
from __future__ import annotations

import pickle
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from novel_pose_ros.networks.picopose.config import PicoPoseConfig
from novel_pose_ros.networks.picopose.picopose_net import PicoPoseNet, build_network

NETWORK_PREFIX = "network."
LEGACY_PREFIXES = (
    ("backbone.", "feature_extractor."),
    ("regressor.", "affine_regressor."),
    ("dpt.", "offset_regressor.dpt_head."),
    ("decoder.", "offset_regressor.flow_decoder."),
)
# Written into saved checkpoints so that the official code (pytorch-lightning 1.8.1) can load them.
LIGHTNING_VERSION = "1.8.1"
BN_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class CheckpointContents:
    """A checkpoint's tensors under PicoPoseNet names, and what else the file held.

    layout: "lightning" (a dict with "state_dict") or "state_dict" (tensors at the top level).
    prefixes: the name prefixes found and stripped/mapped, e.g. ("network.",).
    metadata: the file's other top-level entries (Lightning: epoch, global_step, versions, ...).
    """

    state_dict: dict[str, torch.Tensor]
    layout: str
    prefixes: tuple[str, ...]
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class KeyComparison:
    """Differences between a state dict and the one a config builds. Entries are (name, detail)."""

    missing: list[tuple[str, str]]
    unexpected: list[tuple[str, str]]
    mismatched: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int = 10) -> str:
        lines = []
        for title, entries in (("missing", self.missing), ("unexpected", self.unexpected),
                               ("shape mismatch", self.mismatched)):
            if entries:
                lines.append(f"{len(entries)} {title}:")
                lines += [f"  {name}  {detail}" for name, detail in entries[:limit]]
                if len(entries) > limit:
                    lines.append(f"  ... and {len(entries) - limit} more")
        return "\n".join(lines) if lines else "all entries match"


def normalise_names(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """Strip `network.` and map the first release's prefixes → (state dict under PicoPoseNet names, prefixes seen)."""
    out: dict[str, torch.Tensor] = {}
    seen: list[str] = []
    for name, tensor in state_dict.items():
        key = name
        if key.startswith(NETWORK_PREFIX):
            key = key[len(NETWORK_PREFIX):]
            if NETWORK_PREFIX not in seen:
                seen.append(NETWORK_PREFIX)
        for old, new in LEGACY_PREFIXES:
            if key.startswith(old):
                key = new + key[len(old):]
                if old not in seen:
                    seen.append(old)
                break
        if key in out:
            raise ValueError(f"checkpoint names {name!r} and another entry both map to {key!r}")
        out[key] = tensor
    return out, tuple(seen)


def read_checkpoint(path: str | Path, allow_pickle: bool = False) -> CheckpointContents:
    """Read a Lightning checkpoint or a bare state dict from `path` (memory-mapped, on CPU).

    allow_pickle: unpickle arbitrary Python objects (only for files you trust); otherwise a file
    holding such objects (e.g. OmegaConf hyper-parameters) is refused with a ValueError saying so.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    raw = _torch_load(path, allow_pickle)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a dict (Lightning checkpoint or state dict), got {type(raw).__name__}")
    if "state_dict" in raw and isinstance(raw["state_dict"], dict):
        layout, tensors = "lightning", raw["state_dict"]
        metadata = {k: v for k, v in raw.items() if k != "state_dict"}
    else:
        layout, tensors, metadata = "state_dict", raw, {}
    bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{path}: state dict entries that are not tensors: {bad[:5]}")
    state_dict, prefixes = normalise_names(tensors)
    return CheckpointContents(state_dict, layout, prefixes, metadata)


def _torch_load(path: Path, allow_pickle: bool):
    """torch.load on CPU, memory-mapped when the file is in the zip format (every file since torch 1.6)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_pickle, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        first = str(exc).splitlines()[0]
        if "weights_only" not in str(exc):
            raise ValueError(f"{path}: not a PyTorch checkpoint ({first})") from None
        raise ValueError(f"{path}: holds Python objects that safe loading refuses ({first}); "
                         "if you trust this file, load it with allow_pickle=True (CLI: --trust-pickle)") from None
    except Exception as exc:  # torch.load fails in many ways on a file that is not a checkpoint
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: not a PyTorch checkpoint ({detail})") from None


def expected_entries(config: PicoPoseConfig) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Name → (shape, dtype) of every state-dict entry of the network `config` builds (meta device, no memory)."""
    return {k: (tuple(v.shape), v.dtype) for k, v in build_network(config, "meta").state_dict().items()}


def compare_state_dict(state_dict: dict[str, torch.Tensor], config: PicoPoseConfig) -> KeyComparison:
    expected = expected_entries(config)
    missing = [(k, f"expected {list(shape)}") for k, (shape, _) in expected.items() if k not in state_dict]
    unexpected = [(k, f"{list(v.shape)}") for k, v in state_dict.items() if k not in expected]
    mismatched = [(k, f"expected {list(expected[k][0])}, got {list(v.shape)}") for k, v in state_dict.items()
                  if k in expected and tuple(v.shape) != expected[k][0]]
    return KeyComparison(missing, unexpected, mismatched)


def load_weights(net: PicoPoseNet, source: str | Path | CheckpointContents,
                 allow_pickle: bool = False) -> CheckpointContents:
    """Load a checkpoint into `net` strictly; ValueError listing every difference otherwise."""
    contents = source if isinstance(source, CheckpointContents) else read_checkpoint(source, allow_pickle)
    comparison = compare_state_dict(contents.state_dict, net.config)
    if not comparison.ok:
        raise ValueError(f"checkpoint does not match PicoPose config {net.config.name!r}:\n{comparison.describe()}")
    net.load_state_dict(contents.state_dict, strict=True)
    return contents


def save_checkpoint(net: PicoPoseNet, path: str | Path, epoch: int = 0, global_step: int = 0,
                    extra: dict | None = None) -> Path:
    """Save in the official Lightning layout ("network." prefix) plus a `novel_pose` entry with the config
    (name and values: PicoPoseConfig.from_dict rebuilds it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "state_dict": {NETWORK_PREFIX + k: v.detach().cpu() for k, v in net.state_dict().items()},
        "epoch": int(epoch),
        "global_step": int(global_step),
        "pytorch-lightning_version": LIGHTNING_VERSION,
        "novel_pose": {"network": "picopose", "config": net.config.name, "config_values": net.config.to_dict(),
                       "format": 1, **(extra or {})},
    }
    torch.save(checkpoint, path)
    return path


def _module_of(name: str) -> str:
    parts = name.split(".")
    depth = 2 if parts[0] in ("feature_extractor", "offset_regressor") else 1
    return ".".join(parts[:depth])


def inspect_checkpoint(path: str | Path, config: PicoPoseConfig | None = None, allow_pickle: bool = False) -> dict:
    """Summary of a checkpoint: entries, parameters per module, dtypes, metadata, and the match to `config`."""
    contents = read_checkpoint(path, allow_pickle)
    per_module: Counter = Counter()
    for name, tensor in contents.state_dict.items():
        if not name.endswith(BN_BUFFER_SUFFIXES):
            per_module[_module_of(name)] += tensor.numel()
    report = {
        "file": str(path),
        "layout": contents.layout,
        "prefixes": list(contents.prefixes),
        "entries": len(contents.state_dict),
        "parameters": sum(per_module.values()),
        "parameters_per_module": dict(per_module),
        "dtypes": dict(Counter(str(t.dtype).replace("torch.", "") for t in contents.state_dict.values())),
        "metadata": {k: (v if isinstance(v, (int, float, str, bool)) or v is None else _summary(v))
                     for k, v in contents.metadata.items()},
    }
    if config is not None:
        comparison = compare_state_dict(contents.state_dict, config)
        report["config"] = config.name
        report["matches_config"] = comparison.ok
        report["missing"] = comparison.missing
        report["unexpected"] = comparison.unexpected
        report["mismatched"] = comparison.mismatched
    return report


def _summary(value) -> str:
    if isinstance(value, dict):
        keys = list(value)
        return f"dict with {len(keys)} entries" + (f" ({', '.join(map(str, keys[:6]))})" if keys else "")
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {len(value)}"
    if isinstance(value, torch.Tensor):
        return f"tensor {list(value.shape)} {value.dtype}"
    return type(value).__name__

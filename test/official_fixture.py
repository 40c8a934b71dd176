"""The official-PicoPose parity fixture (../shared/data/picopose_official): its weights recipe and its arrays.

The fixture holds the official network's outputs for deterministic pseudo-random weights that are
regenerated here from the published recipe (parity/README.md, "Weights") and the 603-entry key list,
so no weights file is shipped. The recipe is written from that table, not taken from the fixture's code.
"""
from __future__ import annotations

import hashlib
import json
import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from helpers import shared_data

FIXTURE = "picopose_official"


def _normal(scale: float, offset: float = 0.0):
    return lambda shape, g: offset + scale * torch.randn(shape, generator=g, dtype=torch.float32)


# Entry leaf name (text after the last ".") → how its values are drawn; 1-D norm weights and the
# fan-in-scaled rest are told apart by shape below. Each rule is one draw from the entry's own generator.
_LEAF_RULES = {
    "running_mean": _normal(0.1),
    "running_var": lambda shape, g: 0.5 + torch.rand(shape, generator=g, dtype=torch.float32),
    "cls_token": _normal(0.5),
    "pos_embed": _normal(0.5),
    "mask_token": _normal(0.5),
    "gamma": _normal(0.1, 1.0),
    "bias": _normal(0.05),
}


def recipe_entry(key: str, shape: tuple[int, ...], dtype: str) -> torch.Tensor:
    """One state-dict entry of the recipe; seeded by crc32(key), so entries do not depend on each other."""
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        if dtype != "int64":
            raise ValueError(f"{key}: expected an int64 counter, the key list says {dtype}")
        return torch.zeros(shape, dtype=torch.int64)
    if dtype != "float32":
        raise ValueError(f"{key}: the recipe draws float32 only, the key list says {dtype}")
    g = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    if leaf in _LEAF_RULES:
        return _LEAF_RULES[leaf](shape, g)
    if leaf == "weight" and len(shape) == 1:  # LayerNorm / GroupNorm / BatchNorm affine
        return _normal(0.1, 1.0)(shape, g)
    if len(shape) >= 2:  # conv, conv-transpose, linear: unit-variance outputs for unit-variance inputs
        return torch.randn(shape, generator=g, dtype=torch.float32) / math.sqrt(math.prod(shape[1:]))
    raise ValueError(f"the recipe has no rule for {key} {list(shape)}")


def recipe_state_dict() -> dict[str, torch.Tensor]:
    """All 603 entries of the key list (state_dict.json), in sorted key order (the order the checksum uses)."""
    key_list = json.loads(shared_data(f"{FIXTURE}/state_dict.json").read_text())["state_dict"]
    shapes = {key: (tuple(shape), dtype) for key, shape, dtype in key_list}
    return {key: recipe_entry(key, *shapes[key]) for key in sorted(shapes)}


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 of the entries' raw bytes concatenated in sorted key order (as meta.json: little-endian,
    numpy's native order on the machines we run on)."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        digest.update(state_dict[key].contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class OfficialFixture:
    """inputs.npz, official_outputs.npz and meta.json of parity/ (array shapes: parity/README.md)."""

    inputs: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]
    meta: dict

    @property
    def topk_ids(self) -> np.ndarray:
        """[B, hypotheses] template index of hypothesis k for query b (the official stage-1 top 5)."""
        return self.reference["stage1_topk_id"]


def load_fixture() -> OfficialFixture:
    """The parity fixture, or a skip saying that ../shared/data/picopose_official is absent."""
    folder = shared_data(f"{FIXTURE}/parity")
    with np.load(folder / "inputs.npz") as inputs, np.load(folder / "official_outputs.npz") as reference:
        return OfficialFixture(dict(inputs), dict(reference), json.loads((folder / "meta.json").read_text()))

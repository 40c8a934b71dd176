"""Float16 storage of weights checkpoints (PicoPose and Co-op): half the bytes, loaded as float32.

The shipped checkpoints are stored this way so that the working tree stays small enough to travel
to a lent GPU machine (issue 19). Loading needs nothing special: `load_state_dict` copies each
float16 tensor into the network's float32 parameter. What changes is the weights' rounding only
(relative 2^-11 per weight; the effect on outputs and AR is measured in docs/PERFORMANCE.md).

Integer tensors (BatchNorm's num_batches_tracked), tensors that float16 cannot hold to 2^-10 of their
largest value, and every non-tensor entry are kept as they are.
The file keeps its layout (Lightning layout for PicoPose, so the official code can still load it);
`novel_pose.storage_dtype` records the change, and `novel_pose.float32_sha256` the file it came from.
"""
from __future__ import annotations

from pathlib import Path

import torch

from novel_pose_ros.hashing import file_sha256

STORAGE_KEY = "storage_dtype"
# A tensor whose float16 copy is off by more than this share of its largest value stays float32: that
# happens only to tensors of tiny values (float16's subnormal range, below 6.1e-5), which are small.
MAX_RELATIVE_ROUNDING = 2.0 ** -10


def _halved(tensor: torch.Tensor) -> torch.Tensor:
    if not tensor.is_floating_point():
        return tensor
    finite_max = float(torch.finfo(torch.float16).max)
    if tensor.numel() and float(tensor.abs().max()) > finite_max:
        raise ValueError(f"a weight of magnitude {float(tensor.abs().max()):.3g} does not fit in float16 "
                         f"(max {finite_max:.0f})")
    return tensor.detach().to(torch.float16)


def store_half(source: str | Path, target: str | Path) -> dict:
    """Write `target`: `source` (a weights checkpoint with a top-level "state_dict") with its float tensors as
    float16 (but those of MAX_RELATIVE_ROUNDING). Returns {"tensors", "halved", "bytes_before", "bytes_after", "max_relative_rounding"} (the largest
    per-tensor rounding relative to that tensor's largest magnitude)."""
    source, target = Path(source), Path(target)
    raw = torch.load(source, map_location="cpu", weights_only=True)
    if not (isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict)):
        raise ValueError(f"{source}: expected a checkpoint with a 'state_dict' entry (PicoPose or Co-op weights)")
    halved, rounding = 0, 0.0
    state = {}
    for name, tensor in raw["state_dict"].items():
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"{source}: state dict entry {name!r} is not a tensor")
        state[name] = tensor
        if not tensor.is_floating_point() or not tensor.numel():
            continue
        half = _halved(tensor)
        error = float((half.float() - tensor.float()).abs().max()) / (float(tensor.abs().max()) or 1.0)
        if error > MAX_RELATIVE_ROUNDING:  # values in float16's subnormal range (e.g. LayerScale 1e-5): keep
            continue
        state[name] = half
        halved += 1
        rounding = max(rounding, error)
    meta = dict(raw.get("novel_pose") or {})
    meta[STORAGE_KEY] = "float16"
    meta.setdefault("float32_sha256", file_sha256(source))
    out = {**raw, "state_dict": state, "novel_pose": meta}
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, target)
    return {"tensors": len(state), "halved": halved, "bytes_before": source.stat().st_size,
            "bytes_after": target.stat().st_size, "max_relative_rounding": rounding}


def storage_dtype(metadata: dict) -> str:
    """"float16" for a checkpoint written by store_half, else "float32"."""
    ours = metadata.get("novel_pose") if isinstance(metadata, dict) else None
    return str(ours.get(STORAGE_KEY, "float32")) if isinstance(ours, dict) else "float32"

"""Single-process or multi-process (torchrun) training: which rank, which device, which backend.

Under `torchrun --nproc_per_node N` (environment WORLD_SIZE > 1) the process group uses gloo on
CPU and nccl on CUDA; each rank draws its own batches (training/batches.py seeds by rank).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, TypeVar

import numpy as np
import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_true(self, flag: bool) -> bool:
        """True when `flag` is true on every rank (one decision for all, e.g. to skip a step)."""
        if not self.enabled:
            return bool(flag)
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item() > 0.5)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Average a tensor over ranks (identity in a single process)."""
        if not self.enabled:
            return values
        values = values.to(self.device).clone()
        dist.all_reduce(values)
        return values.cpu() / self.world_size


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    return device


def setup_distributed(device: str) -> Distributed:
    """Join the torchrun process group when there is one; otherwise a single process on `device`."""
    kind = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(0, 1, 0, torch.device(kind))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if kind == "cuda":
        torch.cuda.set_device(local_rank)
        target = torch.device("cuda", local_rank)
    else:
        target = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if kind == "cuda" else "gloo", timeout=timedelta(hours=2))
    return Distributed(rank, world, local_rank, target)


def teardown_distributed(state: Distributed) -> None:
    if state.enabled and dist.is_initialized():
        dist.destroy_process_group()


def run_distributed(device: str, threads: int, seed: int, body: Callable[[Distributed], T]) -> T:
    """Set up the process group (torchrun) or a single process, torch threads and the global seeds (torch,
    NumPy), run `body(dist)`, and tear the group down however it ends: every trainer starts this way."""
    state = setup_distributed(device)
    try:
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        np.random.seed(seed)
        return body(state)
    finally:
        teardown_distributed(state)

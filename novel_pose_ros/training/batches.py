"""Batches of training pairs as tensors, and the stream of batches a training process consumes.

Batch `step` of process `rank` is made from `np.random.default_rng([seed, rank, step])` alone, so the
stream does not depend on the number of data workers and a resumed run sees exactly the batches an
uninterrupted run would have seen. With W workers, worker w makes steps start + w, start + w + W, ...;
the DataLoader hands them back in step order.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from novel_pose_ros.networks.picopose.config import FLOW_SIZES, IMAGE_SIZE
from novel_pose_ros.networks.picopose.preprocessing import to_network_input
from novel_pose_ros.training.pairs import PairSampler, TrainingPair


class DeviceBatch:
    """Mixin of the batch dataclasses: every field is a tensor, moved together by `to`."""

    def to(self, device: torch.device | str):
        return type(self)(**{f.name: getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)})


@dataclass
class TrainingBatch(DeviceBatch):
    """B pairs. query, template: [B, 3, 224, 224] network input (preprocessing.to_network_input);
    template_mask [B, 224, 224] float; template_centre [B, 2]; translation [B, 2]; scale [B];
    cos_sin [B, 2]; affine [B, 2, 3]; flow{16,32,64} [B, 2, n, n]; valid{16,32,64} [B, n, n] bool;
    infonce_template, infonce_query [B, P] int64 (−1 padded)."""

    query: torch.Tensor
    template: torch.Tensor
    template_mask: torch.Tensor
    template_centre: torch.Tensor
    translation: torch.Tensor
    scale: torch.Tensor
    cos_sin: torch.Tensor
    affine: torch.Tensor
    flow16: torch.Tensor
    flow32: torch.Tensor
    flow64: torch.Tensor
    valid16: torch.Tensor
    valid32: torch.Tensor
    valid64: torch.Tensor
    infonce_template: torch.Tensor
    infonce_query: torch.Tensor

    def __len__(self) -> int:
        return int(self.query.shape[0])

    def flow(self, n: int) -> torch.Tensor:
        return getattr(self, f"flow{n}")

    def valid(self, n: int) -> torch.Tensor:
        return getattr(self, f"valid{n}")


def stacked_tensor(arrays, dtype=np.float32) -> torch.Tensor:
    """The arrays stacked on a new first axis as one CPU tensor of `dtype` (the collate functions' unit)."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays), dtype=dtype))


def network_input_tensor(rgb_crops, size: int = IMAGE_SIZE) -> torch.Tensor:
    """uint8 RGB crops of side `size` stacked and preprocessed as the networks take them (to_network_input)."""
    return torch.from_numpy(to_network_input(np.stack(rgb_crops), size))


def collate(pairs: list[TrainingPair]) -> TrainingBatch:
    """Stack pairs into a TrainingBatch (CPU tensors)."""
    if not pairs:
        raise ValueError("collate: no pairs")
    per_level = {}
    for n in FLOW_SIZES:
        per_level[f"flow{n}"] = stacked_tensor([p.flow[n] for p in pairs])
        per_level[f"valid{n}"] = stacked_tensor([p.valid[n] for p in pairs], bool)
    return TrainingBatch(
        query=network_input_tensor([p.query_rgb for p in pairs]),
        template=network_input_tensor([p.template_rgb for p in pairs]),
        template_mask=stacked_tensor([p.template_mask for p in pairs]),
        template_centre=stacked_tensor([p.template_centre for p in pairs]),
        translation=stacked_tensor([p.translation for p in pairs]),
        scale=stacked_tensor([p.scale for p in pairs]),
        cos_sin=stacked_tensor([p.cos_sin for p in pairs]),
        affine=stacked_tensor([p.affine for p in pairs]),
        infonce_template=stacked_tensor([p.infonce_template for p in pairs], np.int64),
        infonce_query=stacked_tensor([p.infonce_query for p in pairs], np.int64),
        **per_level,
    )


def batch_rng(seed: int, rank: int, step: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(rank), int(step)])


class BatchStream(IterableDataset):
    """(step, batch) for steps in [start_step, end_step): `collate_fn` of the pairs the sampler draws
    (PicoPose's TrainingBatch by default; the Co-op refiner passes its own). The sampler is built by
    `make_sampler` inside each worker process (a renderer's GL context must be created in the process
    that uses it); collate_fn must be picklable (a module-level function) for spawned workers."""

    def __init__(self, make_sampler: Callable[[], PairSampler], batch_size: int, seed: int, rank: int,
                 start_step: int, end_step: int, collate_fn: Callable[[list], DeviceBatch] | None = None) -> None:
        super().__init__()
        self.make_sampler = make_sampler
        self.collate_fn = collate_fn or collate
        self.batch_size = int(batch_size)
        self.seed, self.rank = int(seed), int(rank)
        self.start_step, self.end_step = int(start_step), int(end_step)

    def __iter__(self) -> Iterator[tuple[int, DeviceBatch]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        sampler = self.make_sampler()
        for step in range(self.start_step + worker, self.end_step, workers):
            pairs = sampler.sample(batch_rng(self.seed, self.rank, step), self.batch_size)
            yield step, self.collate_fn(pairs)


def batch_loader(stream: BatchStream, num_workers: int, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over the stream: workers are spawned (not forked: no GL state is inherited);
    pin_memory for CUDA training."""
    options = dict(batch_size=None, num_workers=int(num_workers), pin_memory=bool(pin_memory))
    if num_workers > 0:
        options.update(multiprocessing_context="spawn", prefetch_factor=2, persistent_workers=False)
    return DataLoader(stream, **options)

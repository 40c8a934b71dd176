"""What the Co-op trainers (refiner, coarse matcher, selector) share on top of training/loop.py.

    CoopTrainingRun   samplers over the manifest's train / validation splits (or the ones given: tests),
                      Co-op weights files (training/coop_checkpoint.py), the batch stream with the trainer's
                      collation, fixed validation batches built once and a validation record per check.
    manifest_pool     the object pool of one manifest split, as every trainer draws it.

A subclass gives: build_sampler(config, split) and collate(items) (static), curve_panels (the panels of
curves.png), validation_count(), validation_record(model, batches, device) -> {val_*: float}, and the
TrainingRun hooks that differ (build_network, training_model, step_loss, progress).
"""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Callable

from torch import nn

from novel_pose_ros.training.batches import BatchStream
from novel_pose_ros.training.config import DataConfig
from novel_pose_ros.training.coop_checkpoint import load_coop_weights, save_coop_weights
from novel_pose_ros.training.distributed import Distributed
from novel_pose_ros.training.logs import JsonLog, Panel, write_curves
from novel_pose_ros.training.loop import TrainingRun
from novel_pose_ros.training.meshes import default_meshes_dir, load_manifest
from novel_pose_ros.training.objects import ObjectPool
from novel_pose_ros.training.validation import validation_batches

LOGGER = logging.getLogger(__name__)


def manifest_pool(data: DataConfig, split: str) -> ObjectPool:
    """The objects of the manifest's `split` (data.objects restricts the train split only)."""
    manifest = load_manifest(data.meshes_dir or default_meshes_dir())
    return ObjectPool.from_manifest(manifest, split, data.objects if split == "train" else (), data.group_weights)


class CoopTrainingRun(TrainingRun):
    """See the module docstring. make_sampler / make_val_sampler default to build_sampler on the manifest's
    train / validation splits (functools.partial: picklable for spawned data workers)."""

    build_sampler: Callable = None
    collate: Callable = None
    curve_panels: tuple[Panel, ...] = ()

    def __init__(self, config, resume: bool = False, make_sampler: Callable[[], object] | None = None,
                 make_val_sampler: Callable[[], object] | None = None, show_progress: bool = True) -> None:
        super().__init__(config, resume, show_progress)
        self.make_sampler = make_sampler or partial(type(self).build_sampler, config, "train")
        self.make_val_sampler = make_val_sampler or partial(type(self).build_sampler, config, "validation")
        self._val_batches: list | None = None

    def load_weights(self, net: nn.Module, path: Path) -> object:
        return load_coop_weights(net, path)

    def save_weights(self, net: nn.Module, path: Path, step: int, extra: dict) -> object:
        return save_coop_weights(net, path, step, extra)

    def batch_stream(self, start: int, rank: int) -> BatchStream:
        run = self.config.run
        return BatchStream(self.make_sampler, run.batch_size, run.seed, rank, start, run.steps, type(self).collate)

    def plot(self, records: list[dict]) -> None:
        write_curves(records, self.out_dir / "curves.png", self.curve_panels)

    def validate(self, step: int, model: nn.Module, last_checkpoint: Path | None, dist: Distributed,
                 log: JsonLog) -> None:
        count = self.validation_count()
        if not count:
            return
        if self._val_batches is None:
            cfg = self.config
            self._val_batches = validation_batches(self.make_val_sampler(), count, cfg.run.batch_size,
                                                   cfg.validation.seed, type(self).collate)
        record = {"kind": "validation", "step": step, **self.validation_record(model, self._val_batches, dist.device)}
        log.write(record)
        self.plot(log.read())
        LOGGER.info("validation at step %d: %s", step, {k: round(v, 4) for k, v in record.items() if isinstance(v, float)})

    # --- hooks --------------------------------------------------------------------------------------
    def validation_count(self) -> int:
        """Validation items (pairs or groups) per check; 0 turns validation off."""
        return int(self.config.validation.pairs)

    def validation_record(self, model: nn.Module, batches: list, device) -> dict[str, float]:
        raise NotImplementedError


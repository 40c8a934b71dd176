"""PicoPose training: `train(config)` (what `novel-pose train --config ...` runs).

The loop is training/loop.py's (optimiser, schedule, logs, checkpoints, DDP); this module gives it the
rendered pairs (training/pairs.py, in data worker processes), the training forward with the noisy
stage-3 start (training/model.py), the losses (training/losses.py) and the held-out validation
(losses and AR, training/validation.py). Outputs in run.out_dir: config.yaml, train_log.jsonl,
curves.png, checkpoints/, validation/.
"""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from novel_pose_ros.networks.picopose.checkpoint import load_weights, save_checkpoint
from novel_pose_ros.networks.picopose.cnn_backbone import CNNFeatureExtractor, load_imagenet_weights
from novel_pose_ros.networks.picopose.picopose_net import PicoPoseNet
from novel_pose_ros.training.batches import BatchStream
from novel_pose_ros.training.config import DataConfig, TrainConfig
from novel_pose_ros.training.distributed import Distributed
from novel_pose_ros.training.logs import JsonLog, plot_curves
from novel_pose_ros.training.loop import TrainingRun, TrainSummary
from novel_pose_ros.training.losses import LOSS_TERMS, total_loss
from novel_pose_ros.training.meshes import default_meshes_dir, load_manifest
from novel_pose_ros.training.model import TrainingModel, noisy_affine
from novel_pose_ros.training.objects import ObjectPool
from novel_pose_ros.training.pairs import PairSampler
from novel_pose_ros.training.validation import (
    choose_ar_objects,
    ensure_ar_dataset,
    validation_ar,
    validation_batches,
    validation_losses,
)

__all__ = ["Trainer", "TrainSummary", "build_sampler", "build_training_network", "step_generator", "train"]
LOGGER = logging.getLogger(__name__)
SHORT = {"infonce": "nce", "translation": "tr", "scale": "sc", "inplane": "rot", "flow64": "f64", "cert64": "c64"}


def build_sampler(data: DataConfig, split: str) -> PairSampler:
    """A sampler over the manifest's `split` (picklable through functools.partial for spawned workers)."""
    manifest = load_manifest(data.meshes_dir or default_meshes_dir())
    names = data.objects if split == "train" else ()
    return PairSampler(ObjectPool.from_manifest(manifest, split, names, data.group_weights), data)


def build_training_network(config: TrainConfig) -> PicoPoseNet:
    """The network of `config`, its CNN backbone initialised from ImageNet when pretrained_backbone."""
    net = PicoPoseNet(config.network_config())
    if config.pretrained_backbone and isinstance(net.feature_extractor, CNNFeatureExtractor):
        load_imagenet_weights(net.feature_extractor)
    return net


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The stage-3 noise of a step: a function of (seed, rank, step) only."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, rank, step, 3]).generate_state(1)[0]))


class Trainer(TrainingRun):
    """One PicoPose training run. make_sampler / make_val_sampler default to the manifest's train / validation
    splits. The loop is training/loop.py's; this class gives it the network, the stage-3 noise and the losses."""

    loss_terms = LOSS_TERMS
    progress_label = "train"

    def __init__(self, config: TrainConfig, resume: bool = False,
                 make_sampler: Callable[[], PairSampler] | None = None,
                 make_val_sampler: Callable[[], PairSampler] | None = None, show_progress: bool = True) -> None:
        super().__init__(config, resume, show_progress)
        self.make_sampler = make_sampler or partial(build_sampler, config.data, "train")
        self.make_val_sampler = make_val_sampler or partial(build_sampler, config.data, "validation")
        self._val_sampler: PairSampler | None = None
        self._val_batches = None

    def build_network(self, from_weights: bool) -> PicoPoseNet:
        return build_training_network(self.config)

    def load_weights(self, net: PicoPoseNet, path: Path) -> object:
        return load_weights(net, path)

    def save_weights(self, net: PicoPoseNet, path: Path, step: int, extra: dict) -> object:
        return save_checkpoint(net, path, epoch=0, global_step=step, extra=extra)

    def training_model(self, net: PicoPoseNet) -> TrainingModel:
        return TrainingModel(net)

    def batch_stream(self, start: int, rank: int) -> BatchStream:
        run = self.config.run
        return BatchStream(self.make_sampler, run.batch_size, run.seed, rank, start, run.steps)

    def step_loss(self, trained, batch, step: int, dist: Distributed):
        cfg = self.config
        init = noisy_affine(batch.translation, batch.scale, batch.cos_sin, batch.template_centre, cfg.noise,
                            step_generator(cfg.run.seed, dist.rank, step))
        return total_loss(trained(batch.query, batch.template, batch.template_mask, init), batch, cfg.loss)

    def progress(self, record: dict) -> dict[str, str]:
        return {"loss": f"{record['loss']:.3f}", **{s: f"{record[k]:.3f}" for k, s in SHORT.items()}}

    def plot(self, records: list[dict]) -> None:
        plot_curves(records, self.out_dir / "curves.png")

    def validate(self, step: int, model: TrainingModel, last_checkpoint: Path | None, dist: Distributed,
                 log: JsonLog) -> None:
        self._validate(step, model, last_checkpoint, dist, log)

    def _validate(self, step: int, model: TrainingModel, weights: Path | None, dist: Distributed, log: JsonLog) -> None:
        cfg = self.config
        if self._val_sampler is None:
            self._val_sampler = self.make_val_sampler()
            self._val_batches = validation_batches(self._val_sampler, cfg.validation.pairs, cfg.run.batch_size,
                                                   cfg.validation.seed)
        record = {"kind": "validation", "step": step, **validation_losses(model, self._val_batches, cfg, dist.device)}
        if cfg.validation.ar and weights is not None:
            try:
                record.update({f"{k}": v for k, v in self._validation_ar(weights, dist).items()})
            except Exception as exc:  # a failed AR run must not end a long training run
                LOGGER.warning("validation AR at step %d failed: %s: %s", step, type(exc).__name__, exc)
                record["ar_error"] = f"{type(exc).__name__}: {exc}"
        log.write(record)
        plot_curves(log.read(), self.out_dir / "curves.png")
        LOGGER.info("validation at step %d: %s", step, {k: round(v, 4) for k, v in record.items()
                                                         if isinstance(v, float)})

    def _validation_ar(self, weights: Path, dist: Distributed) -> dict[str, float]:
        from novel_pose_ros.objects import ObjectLibrary

        cfg = self.config.validation
        pool = self._val_sampler.pool
        names = choose_ar_objects(pool.names, cfg.ar_objects, cfg.seed)
        library = ObjectLibrary([pool.get(pool.names.index(n)) for n in names])
        folder = self.out_dir / "validation"
        dataset = ensure_ar_dataset(folder / "dataset", library, cfg.ar_scenes, cfg.ar_images_per_scene, cfg.seed,
                                    self._val_sampler.renderer)
        return validation_ar(dataset, weights, self.config, folder, self._val_sampler.renderer, dist.device.type)


def train(config: TrainConfig, resume: bool = False, show_progress: bool = True) -> TrainSummary:
    return Trainer(config, resume, show_progress=show_progress).run()

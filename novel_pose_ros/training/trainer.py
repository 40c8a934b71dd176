"""The training loop: `train(config)` (what `novel-pose train --config ...` runs).

Per step: a batch of rendered pairs (training/batches.py, in data worker processes), the training
forward (training/model.py), the losses (training/losses.py), AdamW with the warm-up + cosine
schedule (training/optim.py). Every `log_every` steps a JSON-lines record and the curve PNG, every
`checkpoint_every` a resumable checkpoint, every `validation.every_steps` the held-out validation.
Under torchrun each rank trains on its own batches and gradients are averaged (DDP); rank 0 logs,
saves and validates. Outputs in run.out_dir: config.yaml, train_log.jsonl, curves.png,
checkpoints/, validation/.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml
from tqdm import tqdm

from novel_pose_ros.networks.picopose.checkpoint import load_weights
from novel_pose_ros.networks.picopose.cnn_backbone import CNNFeatureExtractor, load_imagenet_weights
from novel_pose_ros.networks.picopose.picopose_net import PicoPoseNet
from novel_pose_ros.training.batches import BatchStream, batch_loader
from novel_pose_ros.training.checkpoints import latest_checkpoint, load_training_checkpoint, save_training_checkpoint
from novel_pose_ros.training.config import DataConfig, TrainConfig
from novel_pose_ros.training.distributed import Distributed, run_distributed
from novel_pose_ros.training.logs import JsonLog, TrainMeter, plot_curves
from novel_pose_ros.training.losses import LOSS_TERMS, total_loss
from novel_pose_ros.training.meshes import default_meshes_dir, load_manifest
from novel_pose_ros.training.model import TrainingModel, backbone_batchnorm_eval, noisy_affine
from novel_pose_ros.training.objects import ObjectPool
from novel_pose_ros.training.optim import apply_update, build_optimizer, set_learning_rates
from novel_pose_ros.training.pairs import PairSampler
from novel_pose_ros.training.validation import (
    choose_ar_objects,
    ensure_ar_dataset,
    validation_ar,
    validation_batches,
    validation_losses,
)

LOGGER = logging.getLogger(__name__)
SHORT = {"infonce": "nce", "translation": "tr", "scale": "sc", "inplane": "rot", "flow64": "f64", "cert64": "c64"}


@dataclass(frozen=True)
class TrainSummary:
    out_dir: Path
    start_step: int
    steps_done: int
    last_checkpoint: Path | None
    records: list[dict]
    rank: int = 0


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


class Trainer:
    """One training run. make_sampler / make_val_sampler default to the manifest's train / validation splits."""

    def __init__(self, config: TrainConfig, resume: bool = False,
                 make_sampler: Callable[[], PairSampler] | None = None,
                 make_val_sampler: Callable[[], PairSampler] | None = None, show_progress: bool = True) -> None:
        self.config = config
        self.resume = resume
        self.make_sampler = make_sampler or partial(build_sampler, config.data, "train")
        self.make_val_sampler = make_val_sampler or partial(build_sampler, config.data, "validation")
        self.show_progress = show_progress
        self.out_dir = Path(config.run.out_dir).expanduser().resolve()
        self._val_sampler: PairSampler | None = None
        self._val_batches = None

    def run(self) -> TrainSummary:
        run = self.config.run
        return run_distributed(run.device, run.threads, run.seed, self._run)

    def _run(self, dist: Distributed) -> TrainSummary:
        cfg, run = self.config, self.config.run
        net = build_training_network(cfg).to(dist.device)
        optimizer = build_optimizer(net, cfg.optim)
        checkpoints = self.out_dir / "checkpoints"
        start = 0
        if self.resume:
            paths = latest_checkpoint(checkpoints)
            if paths is None:
                raise FileNotFoundError(f"--resume: no checkpoint in {checkpoints}")
            start = load_training_checkpoint(paths, net, optimizer)["step"]
            LOGGER.info("resuming from %s at step %d", paths.weights.name, start)
        elif run.init_weights is not None:
            load_weights(net, Path(run.init_weights).expanduser())
            net.to(dist.device)
            LOGGER.info("starting from the weights of %s (new schedule)", run.init_weights)
        model = TrainingModel(net)
        # the DPT head reads backbone maps 1-3 only (as the official one), so map 0's adapter gets no gradient
        trained = (torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if dist.enabled
                   else model)
        log = JsonLog(self.out_dir / "train_log.jsonl")
        if dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            if self.resume:
                log.truncate_after(start)
            elif log.path.exists():
                log.path.unlink()
        stream = BatchStream(self.make_sampler, run.batch_size, run.seed, dist.rank, start, run.steps)
        meter = TrainMeter(LOSS_TERMS)
        last_ckpt = None
        model.train()
        if cfg.optim.freeze_backbone_bn:
            backbone_batchnorm_eval(net)
        bar = tqdm(total=run.steps, initial=start, desc="train", unit="step",
                   disable=not (self.show_progress and dist.is_main))
        tick = time.perf_counter()
        for step, batch in batch_loader(stream, run.num_workers, pin_memory=dist.device.type == "cuda"):
            got, data_from = time.perf_counter(), tick
            batch = batch.to(dist.device)
            lr = set_learning_rates(optimizer, step, run.steps, cfg.optim)
            init = noisy_affine(batch.translation, batch.scale, batch.cos_sin, batch.template_centre, cfg.noise,
                                step_generator(run.seed, dist.rank, step))
            outputs = trained(batch.query, batch.template, batch.template_mask, init)
            total, terms = total_loss(outputs, batch, cfg.loss)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            values = [float(total.detach())] + [float(terms[k].detach()) for k in LOSS_TERMS]
            stepped = apply_update(net, optimizer, values, cfg.optim, dist)
            tick = time.perf_counter()
            meter.add(values, stepped, got - data_from, tick - got)
            done = step + 1
            bar.update(1)
            if done % run.log_every == 0 or done == run.steps:
                record = meter.record(done, lr, dist)
                bar.set_postfix({"loss": f"{record['loss']:.3f}", **{s: f"{record[k]:.3f}" for k, s in SHORT.items()}})
                if dist.is_main:
                    log.write(record)
                    plot_curves(log.read(), self.out_dir / "curves.png")
            validate = done % cfg.validation.every_steps == 0 or done == run.steps
            if done % run.checkpoint_every == 0 or done == run.steps or validate:
                if dist.is_main:
                    last_ckpt = save_training_checkpoint(checkpoints, done, net, optimizer, cfg.to_dict(),
                                                         run.keep_checkpoints).weights
                dist.barrier()
            if validate:
                if dist.is_main:
                    self._validate(done, model, last_ckpt, dist, log)
                    if cfg.optim.freeze_backbone_bn:
                        backbone_batchnorm_eval(net)
                dist.barrier()
            tick = time.perf_counter()
        bar.close()
        return TrainSummary(self.out_dir, start, run.steps, last_ckpt, log.read() if dist.is_main else [], dist.rank)

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

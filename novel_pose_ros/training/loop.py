"""The training loop every trainer shares (PicoPose: training/trainer.py; Co-op refiner: refiner_trainer.py).

Per step: a batch from the trainer's stream (data worker processes), the trainer's forward and loss,
AdamW with the warm-up + cosine schedule and gradient clipping (training/optim.py; a non-finite loss
skips the step on every rank). Every `log_every` steps a JSON-lines record and the curves, every
`checkpoint_every` a resumable checkpoint, every `validation.every_steps` the trainer's validation.
With `run.max_minutes`, the run ends at the first step done after that much wall time of the loop (from
its start, data workers' start-up included): that step is the last, logged, checkpointed and validated
as `run.steps` would be, with a {"kind": "stop"} record saying so. The final validation's own time is not
part of the limit: its size (validation pairs, AR objects and images) bounds it.
Under torchrun each rank trains on its own batches and gradients are averaged (DDP); rank 0 logs,
saves and validates. A subclass fills in the hooks below; `run()` does the rest.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn
from tqdm import tqdm

from novel_pose_ros.training.batches import BatchStream, batch_loader
from novel_pose_ros.training.checkpoints import latest_checkpoint, load_training_checkpoint, save_training_checkpoint
from novel_pose_ros.training.distributed import Distributed, run_distributed
from novel_pose_ros.training.logs import JsonLog, TrainMeter
from novel_pose_ros.training.model import backbone_batchnorm_eval
from novel_pose_ros.training.optim import apply_update, build_optimizer, set_learning_rates

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSummary:
    out_dir: Path
    start_step: int
    steps_done: int
    last_checkpoint: Path | None
    records: list[dict]
    rank: int = 0


def past_time_limit(started: float, max_minutes: float | None, dist: Distributed) -> bool:
    """Whether `max_minutes` of wall time have passed since `started` (perf_counter), one answer for every rank:
    one rank past it stops them all after the same step (no collective call without a limit)."""
    if max_minutes is None:
        return False
    return not dist.all_true(time.perf_counter() - started < 60.0 * max_minutes)


class TrainingRun:
    """One training run of `config` (with .run, .optim, .validation and to_dict()); out_dir = config.run.out_dir.

    Hooks: loss_terms and progress_label; build_network(from_weights), load_weights(net, path),
    save_weights(net, path, step, extra); training_model(net) (the module DDP wraps); batch_stream(start, rank);
    step_loss(trained, batch, step, dist) -> (total, terms); progress(record) (the bar's postfix);
    plot(records); validate(step, model, last_checkpoint, dist, log) (rank 0; writes its own record).
    """

    loss_terms: tuple[str, ...] = ()
    progress_label = "train"

    def __init__(self, config, resume: bool = False, show_progress: bool = True) -> None:
        self.config = config
        self.resume = resume
        self.show_progress = show_progress
        self.out_dir = Path(config.run.out_dir).expanduser().resolve()

    def run(self) -> TrainSummary:
        run = self.config.run
        return run_distributed(run.device, run.threads, run.seed, self._run)

    def _run(self, dist: Distributed) -> TrainSummary:
        cfg, run = self.config, self.config.run
        checkpoints = self.out_dir / "checkpoints"
        paths = latest_checkpoint(checkpoints) if self.resume else None
        if self.resume and paths is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {checkpoints}")
        net = self.build_network(from_weights=paths is not None or run.init_weights is not None).to(dist.device)
        optimizer = build_optimizer(net, cfg.optim)
        start = 0
        if paths is not None:
            start = load_training_checkpoint(paths, net, optimizer, self.load_weights)["step"]
            LOGGER.info("resuming from %s at step %d", paths.weights.name, start)
        elif run.init_weights is not None:
            self.load_weights(net, Path(run.init_weights).expanduser())
            net.to(dist.device)
            LOGGER.info("starting from the weights of %s (new schedule)", run.init_weights)
        model = self.training_model(net)
        # modules without gradient in some steps (e.g. PicoPose's map-0 adapter) need find_unused_parameters
        trained = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if dist.enabled else model
        log = JsonLog(self.out_dir / "train_log.jsonl")
        if dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            if self.resume:
                log.truncate_after(start)
            elif log.path.exists():
                log.path.unlink()
        stream = self.batch_stream(start, dist.rank)
        meter, last_ckpt = TrainMeter(self.loss_terms), None
        model.train()
        if cfg.optim.freeze_backbone_bn:
            backbone_batchnorm_eval(net)
        bar = tqdm(total=run.steps, initial=start, desc=self.progress_label, unit="step",
                   disable=not (self.show_progress and dist.is_main))
        tick = started = time.perf_counter()
        done = start
        for step, batch in batch_loader(stream, run.num_workers, pin_memory=dist.device.type == "cuda"):
            got, data_from = time.perf_counter(), tick
            batch = batch.to(dist.device)
            lr = set_learning_rates(optimizer, step, run.steps, cfg.optim)
            total, terms = self.step_loss(trained, batch, step, dist)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            values = [float(total.detach())] + [float(terms[k].detach()) for k in self.loss_terms]
            stepped = apply_update(net, optimizer, values, cfg.optim, dist)
            tick = time.perf_counter()
            meter.add(values, stepped, got - data_from, tick - got)
            done = step + 1
            bar.update(1)
            out_of_time = past_time_limit(started, run.max_minutes, dist)
            last = done == run.steps or out_of_time
            if done % run.log_every == 0 or last:
                record = meter.record(done, lr, dist)
                bar.set_postfix(self.progress(record))
                if dist.is_main:
                    log.write(record)
                    self.plot(log.read())
            if out_of_time and dist.is_main:
                log.write({"kind": "stop", "step": done, "reason": "max_minutes", "max_minutes": run.max_minutes,
                           "train_minutes": (time.perf_counter() - started) / 60.0})
                LOGGER.info("time limit of %.3g min reached after step %d: final checkpoint and validation",
                            run.max_minutes, done)
            validate = done % cfg.validation.every_steps == 0 or last
            if done % run.checkpoint_every == 0 or last or validate:
                if dist.is_main:
                    last_ckpt = save_training_checkpoint(checkpoints, done, net, optimizer, cfg.to_dict(),
                                                         run.keep_checkpoints, self.save_weights).weights
                dist.barrier()
            if validate:
                if dist.is_main:
                    self.validate(done, model, last_ckpt, dist, log)
                    if cfg.optim.freeze_backbone_bn:  # validation puts the model in eval mode
                        backbone_batchnorm_eval(net)
                dist.barrier()
            if out_of_time:
                break  # leaving the loop shuts the data workers down
            tick = time.perf_counter()
        bar.close()
        return TrainSummary(self.out_dir, start, done, last_ckpt, log.read() if dist.is_main else [], dist.rank)

    # --- hooks --------------------------------------------------------------------------------------
    def build_network(self, from_weights: bool) -> nn.Module:
        raise NotImplementedError

    def load_weights(self, net: nn.Module, path: Path) -> object:
        raise NotImplementedError

    def save_weights(self, net: nn.Module, path: Path, step: int, extra: dict) -> object:
        raise NotImplementedError

    def training_model(self, net: nn.Module) -> nn.Module:
        raise NotImplementedError

    def batch_stream(self, start: int, rank: int) -> BatchStream:
        raise NotImplementedError

    def step_loss(self, trained: nn.Module, batch, step: int, dist: Distributed) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def progress(self, record: dict) -> dict[str, str]:
        return {"loss": f"{record['loss']:.3f}"}

    def plot(self, records: list[dict]) -> None:
        raise NotImplementedError

    def validate(self, step: int, model: nn.Module, last_checkpoint: Path | None, dist: Distributed,
                 log: JsonLog) -> None:
        raise NotImplementedError

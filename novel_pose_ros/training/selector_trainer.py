"""Co-op selector training: `train_coop(config)` of training/coop_config.py runs it.

Per step: run.batch_size groups of 1 + negatives hypotheses (training/selector_pairs.py, in data
worker processes), each (query crop, render) pair through its own refiner window; the network's
logit per pair; BCE against the labels (networks/coop/selector_loss.py); AdamW with warm-up +
cosine and gradient clipping: the loop of training/loop.py.

The backbone starts from the PicoPose weights of the selector's PicoPose config (the shipped
small_cnn ones by default) and, with freeze_backbone (the default), stays FROZEN: its parameters
have requires_grad False (so the optimiser does not hold them: training/optim.py skips them), the
backbone stays in eval mode (BatchNorm statistics, dropout) when the model is put in train mode,
and autograd records nothing in it (neither its inputs nor its weights need a gradient: the same as
running it under torch.no_grad()), so a step costs the two backbone forwards and the decoder's
forward and backward only.

Logs (JSON lines, curves.png), resumable checkpoints (training/coop_checkpoint.py weights files,
kind "coop_selector") and held-out validation: val_bce, val_accuracy and val_top1 (fraction of groups
whose positive has the highest logit: what selection needs) on fixed groups of the "validation"
objects. Outputs in run.out_dir: config.yaml, train_log.jsonl, curves.png, checkpoints/.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from novel_pose_ros.networks.coop.selector_loss import selector_loss
from novel_pose_ros.networks.coop.picopose_backbone import freeze, keep_frozen_eval
from novel_pose_ros.networks.coop.selector_net import CoopSelectorNet
from novel_pose_ros.training.coop_run import CoopTrainingRun, manifest_pool
from novel_pose_ros.training.distributed import Distributed
from novel_pose_ros.training.logs import Panel
from novel_pose_ros.training.selector_config import SelectorTrainConfig
from novel_pose_ros.training.selector_pairs import SelectorBatch, SelectorPairSampler, collate_selector

LOGGER = logging.getLogger(__name__)
LOSS_TERMS = ("bce", "accuracy", "top1")
CURVE_PANELS = (
    Panel((("bce", (255, 255, 255)), ("val_bce", (0, 255, 255))), "BCE (log10)", log_scale=True),
    Panel((("accuracy", (200, 200, 120)), ("top1", (80, 255, 120)), ("val_accuracy", (255, 200, 60)),
           ("val_top1", (60, 60, 255))), "pair accuracy, group top-1 (positive scored highest)"))


def build_selector_sampler(config: SelectorTrainConfig, split: str) -> SelectorPairSampler:
    """A selector sampler over the manifest's `split`."""
    return SelectorPairSampler(manifest_pool(config.data, split), config.data, negatives=config.negatives, window_margin=config.window_margin)


def build_selector_network(config: SelectorTrainConfig) -> CoopSelectorNet:
    """The selector of `config`; its backbone from PicoPose weights when init_from_picopose, frozen
    when freeze_backbone."""
    from novel_pose_ros.runtime.weights import load_network, resolve_checkpoint

    net = CoopSelectorNet(config.network_config())
    if config.init_from_picopose:
        name = net.config.picopose
        checkpoint = resolve_checkpoint(name, config.picopose_weights)
        if checkpoint is None:
            raise FileNotFoundError(f"init_from_picopose: no PicoPose '{name}' weights shipped; set picopose_weights")
        picopose, _ = load_network(name, checkpoint)
        count = net.load_backbone_from(picopose.state_dict())
        LOGGER.info("selector backbone initialised from %s (%d tensors)", checkpoint, count)
    elif config.freeze_backbone:
        LOGGER.warning("selector: the frozen backbone keeps its RANDOM initialisation (init_from_picopose false)")
    if config.freeze_backbone:
        freeze(net.feature_extractor)
    return net


class SelectorTrainingModel(nn.Module):
    """The network on a SelectorBatch (the module wrapped by DDP); `train()` leaves a frozen backbone in eval mode."""

    def __init__(self, net: CoopSelectorNet) -> None:
        super().__init__()
        self.net = net

    def train(self, mode: bool = True) -> "SelectorTrainingModel":
        super().train(mode)
        keep_frozen_eval(self.net)
        return self

    def forward(self, batch: SelectorBatch) -> torch.Tensor:
        """logits [G·N]."""
        return self.net(batch.query, batch.render, batch.render_mask16)


def group_top1(logits: torch.Tensor, labels: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Fraction of groups whose positive (label 1) has the highest logit of its group (a tie counts as
    chosen); logits, labels, group [B] (group: 0 .. G − 1). A group without a positive counts as a miss."""
    G = int(group.max()) + 1
    logits = logits.detach()
    minus_inf = torch.full((G,), float("-inf"), dtype=logits.dtype, device=logits.device)
    best = minus_inf.scatter_reduce(0, group, logits, reduce="amax")
    positive = minus_inf.scatter_reduce(0, group, torch.where(labels > 0.5, logits, minus_inf[group]), reduce="amax")
    return ((positive >= best) & torch.isfinite(positive)).to(logits.dtype).mean()


def compute_loss(logits: torch.Tensor, batch: SelectorBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(BCE, {bce, accuracy, top1}) of the logits [G·N] of a batch."""
    terms = selector_loss(logits, batch.labels)
    terms["top1"] = group_top1(logits, batch.labels, batch.group)
    return terms.pop("total"), terms


@torch.no_grad()
def validate_selector(model: SelectorTrainingModel, batches: list[SelectorBatch], device: torch.device) -> dict[str, float]:
    """val_bce and val_accuracy (means over pairs), val_top1 (mean over groups), in eval mode (the
    model's mode is restored)."""
    was_training = model.training
    model.eval()
    bce = accuracy = top1 = 0.0
    pairs = groups = 0
    for batch in batches:
        batch = batch.to(device)
        _, terms = compute_loss(model(batch), batch)
        bce += float(terms["bce"]) * len(batch)
        accuracy += float(terms["accuracy"]) * len(batch)
        top1 += float(terms["top1"]) * batch.groups
        pairs, groups = pairs + len(batch), groups + batch.groups
    model.train(was_training)
    if not pairs:
        return {}
    return {"val_loss": bce / pairs, "val_bce": bce / pairs, "val_accuracy": accuracy / pairs, "val_top1": top1 / groups}


class SelectorTrainer(CoopTrainingRun):
    """One selector training run (training/coop_run.py on training/loop.py's loop)."""

    loss_terms = LOSS_TERMS
    progress_label = "train selector"
    build_sampler = staticmethod(build_selector_sampler)
    collate = staticmethod(collate_selector)
    curve_panels = CURVE_PANELS

    def build_network(self, from_weights: bool) -> CoopSelectorNet:
        """From the PicoPose weights, unless selector weights (resume, init_weights) are loaded next;
        the backbone frozen either way with freeze_backbone (before the optimiser is built)."""
        if not from_weights:
            return build_selector_network(self.config)
        net = CoopSelectorNet(self.config.network_config())
        if self.config.freeze_backbone:
            freeze(net.feature_extractor)
        return net

    def training_model(self, net: CoopSelectorNet) -> SelectorTrainingModel:
        return SelectorTrainingModel(net)

    def step_loss(self, trained, batch: SelectorBatch, step: int, dist: Distributed):
        return compute_loss(trained(batch), batch)

    def progress(self, record: dict) -> dict[str, str]:
        return {k: f"{record[k]:.3f}" for k in ("loss", "accuracy", "top1")}

    def validation_count(self) -> int:
        return int(self.config.validation.groups)

    def validation_record(self, model: SelectorTrainingModel, batches: list[SelectorBatch], device) -> dict[str, float]:
        return validate_selector(model, batches, device)

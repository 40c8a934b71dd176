"""Co-op coarse-matcher training: `train_coop(config)` of training/coop_config.py runs it.

Per step: a batch of coarse pairs (training/coarse_pairs.py, in data worker processes); the encoder
(the PicoPose backbone, frozen with config.freeze_backbone: no gradient, BatchNorm in eval mode) on
query and template, then the token projection, decoder and heads with gradient; the loss of
networks/coop/coarse_loss.py (cross-entropy over 257 classes + 2 × L1 offset); AdamW with warm-up +
cosine and gradient clipping: the loop of training/loop.py. Logs, resumable checkpoints
(training/coop_checkpoint.py weights files) and validation on fixed pairs of the held-out objects:
mean losses, the accuracy of the class on GT-matched patches and of "no match" on the others, and the
median template-crop error (px) of the predicted correspondence where both say "match".
Outputs in run.out_dir: config.yaml, train_log.jsonl, curves.png, checkpoints/.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from novel_pose_ros.networks.coop.coarse_config import NO_MATCH
from novel_pose_ros.networks.coop.coarse_loss import coarse_loss
from novel_pose_ros.networks.coop.coarse_net import CoopCoarseNet, patch_centres_px
from novel_pose_ros.networks.coop.picopose_backbone import freeze, keep_frozen_eval
from novel_pose_ros.networks.picopose.config import PATCH_PX
from novel_pose_ros.training.coarse_config import CoarseTrainConfig
from novel_pose_ros.training.coarse_pairs import CoarseBatch, CoarsePairSampler, collate_coarse
from novel_pose_ros.training.coop_run import CoopTrainingRun, manifest_pool
from novel_pose_ros.training.distributed import Distributed
from novel_pose_ros.training.logs import Panel

LOGGER = logging.getLogger(__name__)
LOSS_TERMS = ("ce", "offset_l1")
CURVE_PANELS = (
    Panel((("loss", (255, 255, 255)), ("ce", (60, 60, 255)), ("offset_l1", (80, 255, 120)), ("val_loss", (0, 255, 255)),
           ("val_ce", (255, 120, 220))), "loss, cross-entropy, offset L1 (log10)", log_scale=True),
    Panel((("val_match_accuracy", (80, 255, 120)), ("val_no_match_accuracy", (60, 60, 255))),
          "validation accuracy (matched class, no match)", 220, validation_only=True),
    Panel((("val_corr_error_px", (255, 200, 60)),), "validation median correspondence error (px)", 220,
          validation_only=True))


def build_coarse_sampler(config: CoarseTrainConfig, split: str) -> CoarsePairSampler:
    """A coarse sampler over the manifest's `split`."""
    return CoarsePairSampler(manifest_pool(config.data, split), config.data,
                             far_template_probability=config.far_template_probability)


def build_coarse_network(config: CoarseTrainConfig) -> CoopCoarseNet:
    """The coarse network of `config`, its encoder copied from the PicoPose weights (frozen with freeze_backbone)."""
    from novel_pose_ros.runtime.weights import load_network, resolve_checkpoint

    net = CoopCoarseNet(config.network_config())
    name = net.config.backbone
    checkpoint = resolve_checkpoint(name, config.picopose_weights)
    if checkpoint is None:
        raise FileNotFoundError(f"no PicoPose '{name}' weights shipped for the coarse encoder; set picopose_weights")
    picopose, _ = load_network(name, checkpoint)
    count = net.load_backbone_from(picopose.state_dict())
    LOGGER.info("coarse encoder initialised from %s (%d tensors)", checkpoint, count)
    if config.freeze_backbone:
        freeze(net.feature_extractor)
    return net


class CoarseTrainingModel(nn.Module):
    """The network, with the frozen encoder run without gradient (the module wrapped by DDP)."""

    def __init__(self, net: CoopCoarseNet) -> None:
        super().__init__()
        self.net = net

    def train(self, mode: bool = True) -> "CoarseTrainingModel":
        super().train(mode)
        keep_frozen_eval(self.net)
        return self

    def forward(self, batch: CoarseBatch) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.net
        frozen = not any(p.requires_grad for p in net.feature_extractor.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            maps_q, maps_t = net.feature_extractor(batch.query), net.feature_extractor(batch.template)
        return net.match(net.tokens_from_maps(maps_q), net.tokens_from_maps(maps_t))


def compute_loss(outputs: tuple[torch.Tensor, torch.Tensor], batch: CoarseBatch,
                 config: CoarseTrainConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    logits, offsets = outputs
    terms = coarse_loss(logits, offsets, batch.target_class, batch.target_offset, config.loss.no_match_weight,
                        config.loss.offset_weight)
    return terms.pop("total"), terms


def correspondence_error_px(logits: torch.Tensor, offsets: torch.Tensor, target_class: torch.Tensor,
                            target_offset: torch.Tensor) -> torch.Tensor:
    """Template-crop distance (px) between predicted and GT correspondences, for the patches both call matched."""
    label = logits.argmax(dim=-1)
    both = (label != NO_MATCH) & (target_class != NO_MATCH)
    centres = patch_centres_px(logits.device)
    predicted = centres[label[both]] + offsets[both] * PATCH_PX
    truth = centres[target_class[both]] + target_offset[both] * PATCH_PX
    return torch.linalg.norm(predicted - truth, dim=-1)


@torch.no_grad()
def validate_coarse(model: CoarseTrainingModel, batches: list[CoarseBatch], config: CoarseTrainConfig,
                    device: torch.device) -> dict[str, float]:
    """val_loss, val_ce, val_offset_l1 (means), val_match_accuracy (GT-matched patches given their class),
    val_no_match_accuracy (the others called "no match"), val_corr_error_px (median), in eval mode."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    hits = {"match": [0, 0], "no_match": [0, 0]}
    errors: list[float] = []
    count = 0
    for batch in batches:
        batch = batch.to(device)
        logits, offsets = model(batch)
        total, terms = compute_loss((logits, offsets), batch, config)
        for key, value in {"val_loss": total, **{f"val_{k}": v for k, v in terms.items()}}.items():
            sums[key] = sums.get(key, 0.0) + float(value) * len(batch)
        count += len(batch)
        label, matched = logits.argmax(dim=-1), batch.target_class != NO_MATCH
        hits["match"][0] += int((label == batch.target_class)[matched].sum())
        hits["match"][1] += int(matched.sum())
        hits["no_match"][0] += int((label == NO_MATCH)[~matched].sum())
        hits["no_match"][1] += int((~matched).sum())
        errors += correspondence_error_px(logits, offsets, batch.target_class, batch.target_offset).cpu().tolist()
    model.train(was_training)
    if not count:
        return {}
    record = {k: v / count for k, v in sums.items()}
    for key, (right, total) in hits.items():
        record[f"val_{key}_accuracy"] = right / total if total else float("nan")
    record["val_corr_error_px"] = float(np.median(errors)) if errors else float("nan")
    return record


class CoarseTrainer(CoopTrainingRun):
    """One coarse training run (training/coop_run.py on training/loop.py's loop)."""

    loss_terms = LOSS_TERMS
    progress_label = "train coarse"
    build_sampler = staticmethod(build_coarse_sampler)
    collate = staticmethod(collate_coarse)
    curve_panels = CURVE_PANELS

    def build_network(self, from_weights: bool) -> CoopCoarseNet:
        """Encoder from the PicoPose weights (frozen with freeze_backbone), even when coarse weights are loaded
        next (they hold the same encoder)."""
        return build_coarse_network(self.config)

    def training_model(self, net: CoopCoarseNet) -> CoarseTrainingModel:
        return CoarseTrainingModel(net)

    def step_loss(self, trained, batch: CoarseBatch, step: int, dist: Distributed):
        return compute_loss(trained(batch), batch, self.config)

    def progress(self, record: dict) -> dict[str, str]:
        return {k: f"{record[k]:.3f}" for k in ("loss", "ce", "offset_l1")}

    def validation_record(self, model: CoarseTrainingModel, batches: list[CoarseBatch], device) -> dict[str, float]:
        return validate_coarse(model, batches, self.config, device)

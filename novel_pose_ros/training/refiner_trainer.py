"""Co-op refiner training: `train_coop(config)` of training/coop_config.py runs it.

Per step: a batch of refiner pairs (training/refiner_pairs.py, in data worker processes); the
network on (query, render at T_cur); the run-time pose solve (estimation/refiner_stage.refiner_pose_solve:
W = sigmoid(certainty) × sigmoid(sensitivity) × (1 − exp(−R/b)) on the render-valid grid cells, the
differentiable LM-PnP from T_cur of the lifted grid points to their predicted crop pixels through K_crop); the loss (training/refiner_losses.py): Laplace NLL on visible cells +
certainty BCE on render-valid cells + disentangled point matching of the solved pose vs T_gt
(weights in config.loss); AdamW (backbone at optim.backbone_lr) with warm-up + cosine, gradient
clipping: the loop of training/loop.py. Logs (JSON lines, curves.png), resumable checkpoints
(training/coop_checkpoint.py weights files) and held-out validation as PicoPose's; validation adds the median rotation / translation
error of T_cur (before) and of the solved pose (after) on fixed pairs of the "validation" objects.
Outputs in run.out_dir: config.yaml, train_log.jsonl, curves.png, checkpoints/.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from novel_pose_ros.estimation.refiner_stage import refiner_pose_solve
from novel_pose_ros.networks.coop.refiner_net import CoopRefinerNet, load_picopose_weights
from novel_pose_ros.training.coop_run import CoopTrainingRun, manifest_pool
from novel_pose_ros.training.distributed import Distributed
from novel_pose_ros.training.logs import Panel
from novel_pose_ros.training.refiner_config import RefinerTrainConfig
from novel_pose_ros.training.refiner_losses import REFINER_LOSS_TERMS, refiner_loss
from novel_pose_ros.training.refiner_pairs import RefinerBatch, RefinerPairSampler, collate_refiner

LOGGER = logging.getLogger(__name__)
LOSS_TERMS = tuple(k for k in REFINER_LOSS_TERMS if k != "total")  # laplace_nll, certainty_bce, pose_*, pose
# the Laplace NLL may be negative: its panel is linear
CURVE_PANELS = (
    Panel((("loss", (255, 255, 255)), ("laplace_nll", (60, 60, 255)), ("val_loss", (0, 255, 255)),
           ("val_laplace_nll", (255, 120, 220))), "loss, Laplace NLL"),
    Panel((("certainty_bce", (200, 200, 120)), ("pose", (80, 255, 120)), ("val_pose", (255, 200, 60))),
          "certainty BCE, pose (log10)", log_scale=True),
    Panel((("val_rot_err_deg_before", (120, 120, 120)), ("val_rot_err_deg_after", (80, 255, 120)),
           ("val_trans_err_mm_before", (200, 200, 200)), ("val_trans_err_mm_after", (60, 60, 255))),
          "validation median errors (deg, mm)", 220, validation_only=True))
ERROR_KEYS = ("rot_err_deg_before", "rot_err_deg_after", "trans_err_mm_before", "trans_err_mm_after")


def build_refiner_sampler(config: RefinerTrainConfig, split: str) -> RefinerPairSampler:
    """A refiner sampler over the manifest's `split`."""
    data = config.data
    return RefinerPairSampler(manifest_pool(data, split), data, config.noise, window_margin=config.solver.window_margin,
                              model_points=config.loss.model_points)


def build_refiner_network(config: RefinerTrainConfig) -> CoopRefinerNet:
    """The refiner of `config`; backbone, DPT head and decoder from PicoPose weights when init_from_picopose."""
    from novel_pose_ros.runtime.weights import load_network, resolve_checkpoint

    net = CoopRefinerNet(config.network_config())
    if config.init_from_picopose:
        name = net.config.picopose
        checkpoint = resolve_checkpoint(name, config.picopose_weights)
        if checkpoint is None:
            raise FileNotFoundError(f"init_from_picopose: no PicoPose '{name}' weights shipped; set picopose_weights")
        picopose, _ = load_network(name, checkpoint)
        count = load_picopose_weights(net, picopose.state_dict())
        LOGGER.info("refiner initialised from %s (%d tensors)", checkpoint, count)
    return net


class RefinerTrainingModel(nn.Module):
    """The network plus the differentiable pose solve (the module wrapped by DDP)."""

    def __init__(self, net: CoopRefinerNet, config: RefinerTrainConfig) -> None:
        super().__init__()
        self.net = net
        self.solver = config.solver

    def forward(self, batch: RefinerBatch) -> dict[str, torch.Tensor]:
        """Network outputs plus weights [B, 64, 64] (0 off the render) and T_pred [B, 4, 4] (float64)."""
        out = self.net(batch.query, batch.render, batch.render_mask16)
        s = self.solver
        T_pred, weights = refiner_pose_solve(out["flow"], out["log_b"], out["certainty"], out["sensitivity"],
                                             batch.points_obj, batch.points_valid, batch.K_crop, batch.T_cur,
                                             s.flow_radius_cells, s.lm_iterations, s.gn_iterations)
        return {**out, "weights": weights, "T_pred": T_pred}


def compute_loss(outputs: dict[str, torch.Tensor], batch: RefinerBatch,
                 config: RefinerTrainConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(weighted total, {LOSS_TERMS}) of training/refiner_losses.py: the NLL on visible cells, the BCE on
    render-valid cells, the pose loss of the solved pose on the model points."""
    loss = config.loss
    terms = refiner_loss(outputs["flow"], outputs["log_b"], outputs["certainty"], batch.flow_gt, batch.visible,
                         outputs["T_pred"], batch.T_gt, batch.model_points, render_mask=batch.points_valid,
                         laplace_weight=loss.flow_weight, certainty_weight=loss.certainty_weight,
                         pose_weight=loss.pose_weight)
    return terms.pop("total"), terms


def pose_errors(T_est: torch.Tensor, T_gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation angle (degrees) and translation error (mm) per pair, [B] each."""
    R = T_est[:, :3, :3].transpose(1, 2) @ T_gt[:, :3, :3]
    cos = ((torch.diagonal(R, dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos)), 1000.0 * torch.linalg.norm(T_est[:, :3, 3] - T_gt[:, :3, 3], dim=-1)


@torch.no_grad()
def validate_refiner(model: RefinerTrainingModel, batches: list[RefinerBatch], config: RefinerTrainConfig,
                     device: torch.device) -> dict[str, float]:
    """Mean losses (val_loss, val_<term>) and median pose errors (val_rot_err_deg_before/after,
    val_trans_err_mm_before/after) over the batches, in eval mode (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    errors: dict[str, list] = {k: [] for k in ERROR_KEYS}
    count = 0
    for batch in batches:
        batch = batch.to(device)
        outputs = model(batch)
        total, terms = compute_loss(outputs, batch, config)
        for key, value in {"val_loss": total, **{f"val_{k}": v for k, v in terms.items()}}.items():
            sums[key] = sums.get(key, 0.0) + float(value) * len(batch)
        count += len(batch)
        for when, T in (("before", batch.T_cur), ("after", outputs["T_pred"])):
            rot, trans = pose_errors(T, batch.T_gt)
            errors[f"rot_err_deg_{when}"] += rot.cpu().tolist()
            errors[f"trans_err_mm_{when}"] += trans.cpu().tolist()
    model.train(was_training)
    if not count:
        return {}
    return {**{k: v / count for k, v in sums.items()}, **{f"val_{k}": float(np.nanmedian(v)) for k, v in errors.items()}}


class RefinerTrainer(CoopTrainingRun):
    """One refiner training run (training/coop_run.py on training/loop.py's loop)."""

    loss_terms = LOSS_TERMS
    progress_label = "train refiner"
    build_sampler = staticmethod(build_refiner_sampler)
    collate = staticmethod(collate_refiner)
    curve_panels = CURVE_PANELS

    def build_network(self, from_weights: bool) -> CoopRefinerNet:
        """From the PicoPose weights, unless refiner weights (resume, init_weights) are loaded next."""
        return CoopRefinerNet(self.config.network_config()) if from_weights else build_refiner_network(self.config)

    def training_model(self, net: CoopRefinerNet) -> RefinerTrainingModel:
        return RefinerTrainingModel(net, self.config)

    def step_loss(self, trained, batch: RefinerBatch, step: int, dist: Distributed):
        return compute_loss(trained(batch), batch, self.config)

    def progress(self, record: dict) -> dict[str, str]:
        return {k: f"{record[k]:.3f}" for k in ("loss", "laplace_nll", "certainty_bce", "pose")}

    def validation_record(self, model: RefinerTrainingModel, batches: list[RefinerBatch], device) -> dict[str, float]:
        return validate_refiner(model, batches, self.config, device)

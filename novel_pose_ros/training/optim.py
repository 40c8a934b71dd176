"""AdamW with a lower learning rate on the backbone, and the warm-up + cosine schedule."""
from __future__ import annotations

import math

import torch

from novel_pose_ros.networks.picopose.picopose_net import PicoPoseNet
from novel_pose_ros.training.config import OptimConfig


def parameter_groups(net: PicoPoseNet, config: OptimConfig) -> list[dict]:
    """Backbone vs heads, each split into decayed weights and undecayed biases / norm parameters (1-D)."""
    groups = {}
    for name, parameter in net.named_parameters():
        if not parameter.requires_grad:
            continue
        part = "backbone" if name.startswith("feature_extractor.") else "heads"
        decay = parameter.ndim > 1
        groups.setdefault((part, decay), []).append(parameter)
    out = []
    for (part, decay), params in sorted(groups.items()):
        lr = config.backbone_lr if part == "backbone" else config.lr
        out.append({"params": params, "lr": lr, "initial_lr": lr, "weight_decay": config.weight_decay if decay else 0.0,
                    "name": f"{part}{'' if decay else '_no_decay'}"})
    return out


def lr_factor(step: int, total_steps: int, config: OptimConfig) -> float:
    """Multiplier of every group's lr at `step`: linear warm-up, then cosine to min_lr_ratio."""
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(total_steps - config.warmup_steps, 1)
    progress = min(max(step - config.warmup_steps, 0) / span, 1.0)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(net: PicoPoseNet, config: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(parameter_groups(net, config), betas=(0.9, 0.999))


def set_learning_rates(optimizer: torch.optim.Optimizer, step: int, total_steps: int, config: OptimConfig) -> float:
    """Apply the schedule for `step`; returns the heads' lr."""
    factor = lr_factor(step, total_steps, config)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
    return config.lr * factor


def apply_update(net: torch.nn.Module, optimizer: torch.optim.Optimizer, values: list[float], config: OptimConfig,
                 dist) -> bool:
    """After backward: clip the gradients (config.grad_clip_norm) and step, unless a loss value is non-finite
    on any rank: then every rank drops its gradients and skips the step (all ran backward, so none waits).
    Returns whether the step was taken."""
    if not dist.all_true(all(math.isfinite(v) for v in values)):
        optimizer.zero_grad(set_to_none=True)
        return False
    if config.grad_clip_norm:
        torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip_norm)
    optimizer.step()
    return True

"""Trained PicoPose backbones as Co-op encoders (coarse matcher, selector): strict copy and freezing.

Our Co-op networks use a PicoPose backbone (feature_extractor) as their encoder. Starting it from
trained PicoPose weights (matching features already) and freezing it is what makes training them
on a CPU feasible: a step then back-propagates through the small decoder only.
"""
from __future__ import annotations

import torch
from torch import nn

BACKBONE_PREFIX = "feature_extractor."


def copy_picopose_backbone(extractor: nn.Module, picopose_state: dict[str, torch.Tensor], picopose_name: str) -> int:
    """Copy the `feature_extractor.*` tensors of a PicoPoseNet state dict (trained with config
    `picopose_name`) into `extractor`, strictly: the same names and shapes, none missing, none extra.
    Returns the number of tensors copied."""
    source = {k[len(BACKBONE_PREFIX):]: v for k, v in picopose_state.items() if k.startswith(BACKBONE_PREFIX)}
    own = extractor.state_dict()
    missing, extra = sorted(set(own) - set(source)), sorted(set(source) - set(own))
    wrong = sorted(k for k in set(own) & set(source) if own[k].shape != source[k].shape)
    if missing or extra or wrong:
        raise ValueError(f"PicoPose state does not fit this backbone (PicoPose config {picopose_name!r}): "
                         f"{len(missing)} missing (e.g. {missing[:2]}), {len(extra)} unexpected (e.g. {extra[:2]}), "
                         f"{len(wrong)} of another shape (e.g. {wrong[:2]})")
    extractor.load_state_dict(source, strict=True)
    return len(source)


def freeze(extractor: nn.Module) -> None:
    """No gradients for the backbone; its BatchNorm statistics stay fixed (keep_frozen_eval after train())."""
    for parameter in extractor.parameters():
        parameter.requires_grad_(False)
    extractor.eval()


def keep_frozen_eval(net: nn.Module) -> None:
    """After net.train(): put a frozen (requires_grad False) feature_extractor back in eval mode."""
    extractor = getattr(net, "feature_extractor", None)
    if extractor is not None and not any(p.requires_grad for p in extractor.parameters()):
        extractor.eval()

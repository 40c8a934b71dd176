"""The network as trained: stages 1-3 in one forward, stage 3 started from a noisy GT affine.

`TrainingModel.forward` runs the backbone once on queries and templates together, stage 2 on the
last maps (its prediction is only supervised), and stage 3 from `init_affine` — the GT affine with
noise (`noisy_affine`), decoupled from stage 2 as in PicoPose. Wrapping this module (not the
network's submodules) in DistributedDataParallel keeps gradient synchronisation correct.

Noise (METHODS.md, stage 3): per pair, stds drawn uniformly in their ranges; scale × exp(N(0, σ_s)),
angle + N(0, σ_r) clamped at ±rotation_clamp, object centre moved by N(0, σ_t) px per axis clamped at
±translation_clamp; the noisy affine is built about the template centre as `affine_from_prediction`
builds a predicted one.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from novel_pose_ros.networks.picopose.affine_regressor import (
    AffinePrediction,
    affine_from_prediction,
    template_patch_mask,
)
from novel_pose_ros.networks.picopose.config import PATCH_PX
from novel_pose_ros.networks.picopose.flow_decoder import initial_flow
from novel_pose_ros.networks.picopose.picopose_net import PicoPoseNet
from novel_pose_ros.training.config import NoiseConfig


class TrainingModel(nn.Module):
    """PicoPoseNet + the training forward. `net` is the network saved in checkpoints."""

    def __init__(self, net: PicoPoseNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, query: torch.Tensor, template: torch.Tensor, template_mask: torch.Tensor,
                init_affine: torch.Tensor) -> dict[str, torch.Tensor]:
        """query, template [B, 3, 224, 224]; template_mask [B, 224, 224]; init_affine [B, 2, 3] (corner convention).

        Returns query_map / template_map [B, C, 16, 16] (last backbone maps), translation [B, 2], scale [B, 1],
        cos_sin [B, 2], flow_n [B, 2, n, n] and certainty_n [B, 1, n, n] for n = 16, 32, 64."""
        B = query.shape[0]
        maps = self.net.extract(torch.cat([query, template]))
        query_maps, template_maps = [m[:B] for m in maps], [m[B:] for m in maps]
        mask16 = template_patch_mask(template_mask)
        prediction = self.net.regress_affine(query_maps[-1], template_maps[-1], mask16)
        flow0, certainty0 = initial_flow(init_affine, mask16)
        flows, certainties = self.net.offset_regressor(template_maps, query_maps, flow0, certainty0)
        out = {"query_map": query_maps[-1], "template_map": template_maps[-1], "translation": prediction.translation,
               "scale": prediction.scale, "cos_sin": prediction.cos_sin}
        for flow, certainty in zip(flows, certainties):
            out[f"flow_{flow.shape[-1]}"] = flow
            out[f"certainty_{certainty.shape[-1]}"] = certainty
        return out


def _uniform(low: float, high: float, size: int, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(size, generator=generator, dtype=torch.float64)


def noisy_affine(translation: torch.Tensor, scale: torch.Tensor, cos_sin: torch.Tensor, template_centre: torch.Tensor,
                 config: NoiseConfig, generator: torch.Generator) -> torch.Tensor:
    """GT (translation [B, 2] patch units, scale [B], cos_sin [B, 2]) + noise → affine [B, 2, 3] (corner convention).
    Random numbers come from `generator` (CPU) only."""
    B = translation.shape[0]
    scale_std = _uniform(*config.scale_std, B, generator)
    rot_std = _uniform(*[math.radians(v) for v in config.rotation_std_deg], B, generator)
    trans_std = _uniform(*config.translation_std_px, B, generator)
    clamp_rot = math.radians(config.rotation_clamp_deg)
    d_scale = torch.exp(torch.randn(B, generator=generator, dtype=torch.float64) * scale_std)
    d_angle = (torch.randn(B, generator=generator, dtype=torch.float64) * rot_std).clamp(-clamp_rot, clamp_rot)
    d_centre = (torch.randn(B, 2, generator=generator, dtype=torch.float64) * trans_std[:, None]).clamp(
        -config.translation_clamp_px, config.translation_clamp_px)
    device, dtype = translation.device, translation.dtype
    angle = torch.atan2(cos_sin[:, 1], cos_sin[:, 0]) + d_angle.to(device, dtype)
    prediction = AffinePrediction(translation + d_centre.to(device, dtype) / PATCH_PX,
                                  (scale.reshape(B) * d_scale.to(device, dtype)).reshape(B, 1),
                                  torch.stack([torch.cos(angle), torch.sin(angle)], dim=1))
    return affine_from_prediction(prediction, template_centre)


def backbone_batchnorm_eval(net: PicoPoseNet) -> None:
    """Freeze the backbone's BatchNorm statistics (called after every net.train())."""
    for module in net.feature_extractor.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()

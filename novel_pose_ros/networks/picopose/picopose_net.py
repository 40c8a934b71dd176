"""The whole PicoPose network, with the official module tree.

    PicoPoseNet
    ├── feature_extractor   stage 1 backbone: image → 4 maps [B, D, 16, 16]
    │   └── dinov2          (ViT configs; `cnn` for the EfficientNet-Lite0 config)
    ├── affine_regressor    stage 2: similarity volume → translation, scale, (cos, sin)
    └── offset_regressor    stage 3
        ├── dpt_head        4 maps → 3 maps [B, F, 16|32|64, ...] (template and query alike)
        └── flow_decoder    → flow + certainty logits at 16², 32², 64²

For the `official` config, `state_dict()` has exactly the 603 entries of the official
`Net` (shared/data/picopose_official/state_dict.json), so official weights load with
strict=True (see checkpoint.py). Data-dependent steps (template scoring, correspondence
gathering, PnP) are not here: they belong to the estimator.
"""
from __future__ import annotations

import torch
from torch import nn

from novel_pose_ros.networks.picopose.affine_regressor import (
    AffinePrediction,
    AffineRegressor,
    affine_from_prediction,
    similarity_volume,
    template_patch_mask,
)
from novel_pose_ros.networks.picopose.config import CNNConfig, PicoPoseConfig
from novel_pose_ros.networks.picopose.dpt_head import DPTHead
from novel_pose_ros.networks.picopose.flow_decoder import FlowDecoder, initial_flow
from novel_pose_ros.networks.picopose.vit_backbone import ViTFeatureExtractor


def build_feature_extractor(config: PicoPoseConfig) -> nn.Module:
    if isinstance(config.backbone, CNNConfig):
        from novel_pose_ros.networks.picopose.cnn_backbone import CNNFeatureExtractor

        return CNNFeatureExtractor(config.backbone)
    return ViTFeatureExtractor(config.backbone)


class OffsetRegressor(nn.Module):
    """Stage 3: shared DPT head + flow decoder."""

    def __init__(self, config: PicoPoseConfig) -> None:
        super().__init__()
        self.dpt_head = DPTHead(config.backbone.out_dim, config.dpt)
        self.flow_decoder = FlowDecoder(config.flow)

    def forward(self, template_maps: list[torch.Tensor], query_maps: list[torch.Tensor], init_flow: torch.Tensor,
                init_certainty: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """4 backbone maps each (template, query) + initial flow/certainty → per-level flows and certainty logits."""
        return self.flow_decoder(self.dpt_head(template_maps), self.dpt_head(query_maps), init_flow, init_certainty)


class PicoPoseNet(nn.Module):
    def __init__(self, config: PicoPoseConfig) -> None:
        super().__init__()
        self.config = config
        self.feature_extractor = build_feature_extractor(config)
        self.affine_regressor = AffineRegressor(config.affine)
        self.offset_regressor = OffsetRegressor(config)

    def extract(self, image: torch.Tensor) -> list[torch.Tensor]:
        """image [B, 3, 224, 224] (preprocessing.to_network_input) → 4 maps [B, D, 16, 16]."""
        return self.feature_extractor(image)

    def regress_affine(self, query_map: torch.Tensor, template_map: torch.Tensor,
                       template_mask16: torch.Tensor) -> AffinePrediction:
        """Stage 2 on last-layer maps [B, D, 16, 16] and the template patch mask [B, 16, 16]."""
        return self.affine_regressor(similarity_volume(query_map, template_map, template_mask16))

    def forward(self, query_image: torch.Tensor, template_image: torch.Tensor, template_mask: torch.Tensor,
                template_center: torch.Tensor) -> dict[str, torch.Tensor]:
        """One pass through stages 2 and 3 for B (query, template) pairs (reference path, training).

        query_image, template_image: [B, 3, 224, 224]; template_mask: [B, 224, 224];
        template_center: [B, 2] projected object centre in the template crop (pixels).
        Returns translation [B, 2], scale [B, 1], cos_sin [B, 2], affine [B, 2, 3],
        flow_16/32/64 [B, 2, n, n] and certainty_16/32/64 [B, 1, n, n] (logits).
        """
        query_maps, template_maps = self.extract(query_image), self.extract(template_image)
        mask16 = template_patch_mask(template_mask)
        prediction = self.regress_affine(query_maps[-1], template_maps[-1], mask16)
        affine = affine_from_prediction(prediction, template_center)
        flow0, certainty0 = initial_flow(affine, mask16)
        flows, certainties = self.offset_regressor(template_maps, query_maps, flow0, certainty0)
        out = {"translation": prediction.translation, "scale": prediction.scale, "cos_sin": prediction.cos_sin,
               "affine": affine}
        for flow, certainty in zip(flows, certainties):
            out[f"flow_{flow.shape[-1]}"] = flow
            out[f"certainty_{certainty.shape[-1]}"] = certainty
        return out


def build_network(config: PicoPoseConfig, device: torch.device | str | None = None) -> PicoPoseNet:
    """PicoPoseNet in eval mode; device="meta" builds it without allocating weights."""
    if device is not None and torch.device(device).type == "meta":
        with torch.device("meta"):
            return PicoPoseNet(config).eval()
    net = PicoPoseNet(config).eval()
    return net.to(device) if device is not None else net

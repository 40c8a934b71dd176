"""Co-op refiner training pairs: PicoPose's cluttered scenes, a noisy pose, the render at that pose.

`RefinerPairSampler` reuses PairSampler's scenes (objects with distractors and occluders on a plane
or in the air, random lights and intrinsics, random appearances) and its choice of visible
instances; only `make_pair` differs: the GT pose T_gt is perturbed with the paper's noise
(`perturb_pose`), the refiner's GT is computed at that pose (training/refiner_truth.py), and the
query crop is colour-augmented as PicoPose's. The render shows the instance as drawn in the scene
or, with data.grey_template_probability (objects with colours), its grey geometry-only version —
what a geometry-only mesh gives at run time. Pairs without a visible cell are dropped.
`collate_refiner` stacks pairs into a `RefinerBatch` of tensors: the collation training/batches.py's
BatchStream is given for the refiner (same per-step seeding).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import trimesh

from novel_pose_ros.estimation.template_bank import patch_grid_mask
from novel_pose_ros.geometry.se3 import rotation_from_axis_angle
from novel_pose_ros.networks.coop.refiner_net import REFINER_CROP
from novel_pose_ros.render import Renderer
from novel_pose_ros.training.augment import augment_rgb
from novel_pose_ros.training.batches import DeviceBatch, network_input_tensor, stacked_tensor
from novel_pose_ros.training.config import DataConfig
from novel_pose_ros.training.objects import ObjectPool
from novel_pose_ros.training.pairs import PairSampler, SceneImage
from novel_pose_ros.training.refiner_config import PoseNoiseConfig
from novel_pose_ros.training.refiner_truth import refiner_truth
from novel_pose_ros.types import ObjectModel

NOISE_DRAWS = 5  # noisy poses tried per pair before giving up on it


@dataclass(frozen=True)
class RefinerPair:
    """One refiner training pair (crop = the 256 window around the object at T_cur).

    query_rgb, render_rgb (256, 256, 3) uint8 (the query augmented); render_mask16 (16, 16) float32
    (`patch_grid_mask` of the render mask); flow_gt (2, 64, 64) float32 cells, visible (64, 64) bool;
    points_obj (64, 64, 3) float64 m (object frame), points_valid (64, 64) bool; K_crop (3, 3);
    T_cur, T_gt (4, 4) T_cam_obj; model_points (P, 3) float64 m, points on the mesh surface for the
    pose loss. The rest describes the pair (tests, debugging).
    """

    query_rgb: np.ndarray
    render_rgb: np.ndarray
    render_mask16: np.ndarray
    flow_gt: np.ndarray
    visible: np.ndarray
    points_obj: np.ndarray
    points_valid: np.ndarray
    K_crop: np.ndarray
    T_cur: np.ndarray
    T_gt: np.ndarray
    model_points: np.ndarray
    object_name: str
    diameter_m: float
    grey_render: bool


def perturb_pose(T_gt: np.ndarray, rng: np.random.Generator, noise: PoseNoiseConfig) -> np.ndarray:
    """T_gt with noise in the camera frame: t + N(0, σ_t) per axis, R ← exp(ω) R, ω ~ N(0, σ_r) per axis
    (norm capped at noise.max_rotation_deg)."""
    omega = rng.normal(0.0, np.radians(noise.rotation_std_deg), size=3)
    angle = float(np.linalg.norm(omega))
    T = np.array(T_gt, dtype=np.float64)
    if angle > 1e-12:
        T[:3, :3] = rotation_from_axis_angle(omega / angle, min(angle, np.radians(noise.max_rotation_deg))) @ T[:3, :3]
    T[:3, 3] += rng.normal(0.0, 1.0, size=3) * np.asarray(noise.translation_std_m, dtype=np.float64)
    return T


def sample_model_points(obj: ObjectModel, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 3) points on the mesh surface (object frame, metres), area-uniform, drawn from `rng`."""
    points, _ = trimesh.sample.sample_surface(obj.mesh, int(count), seed=rng)
    return np.asarray(points, dtype=np.float64)


class RefinerPairSampler(PairSampler):
    """PairSampler whose pairs are RefinerPairs (module docstring)."""

    def __init__(self, pool: ObjectPool, config: DataConfig, noise: PoseNoiseConfig | None = None,
                 renderer: Renderer | None = None, window_margin: float = 0.2, model_points: int = 256) -> None:
        super().__init__(pool, config, renderer)
        self.noise = noise or PoseNoiseConfig()
        self.window_margin = float(window_margin)
        self.model_points = int(model_points)

    def make_pair(self, image: SceneImage, index: int, rng: np.random.Generator) -> RefinerPair | None:
        cfg = self.config
        shown, base, T_gt = image.instances[index]
        render_obj, grey = self.template_object(shown, base, rng)
        truth = None
        for _ in range(NOISE_DRAWS):
            T_cur = perturb_pose(T_gt, rng, self.noise)
            try:
                truth = refiner_truth(image, index, T_gt, T_cur, self.renderer, render_obj,
                                      self.window_margin, cfg.visibility_tolerance(base.diameter_m))
                break
            except ValueError:  # the noisy pose put the object behind the camera
                continue
        if truth is None or not truth.visible.any():
            return None
        return RefinerPair(
            query_rgb=augment_rgb(truth.query_rgb, rng, cfg.augment), render_rgb=truth.render_rgb,
            render_mask16=patch_grid_mask(truth.render_mask, 16), flow_gt=truth.flow_gt, visible=truth.visible,
            points_obj=truth.points_obj, points_valid=truth.points_valid, K_crop=truth.K_crop, T_cur=T_cur,
            T_gt=np.asarray(T_gt, dtype=np.float64), model_points=sample_model_points(base, self.model_points, rng),
            object_name=base.name, diameter_m=float(base.diameter_m), grey_render=grey)


@dataclass
class RefinerBatch(DeviceBatch):
    """B refiner pairs as tensors. query, render [B, 3, 256, 256] float32 network input
    (preprocessing.to_network_input); render_mask16 [B, 16, 16] float32; flow_gt [B, 2, 64, 64] float32;
    visible, points_valid [B, 64, 64] bool; points_obj [B, 64, 64, 3], K_crop [B, 3, 3], T_cur, T_gt
    [B, 4, 4], model_points [B, P, 3] float64 (the pose solve and pose loss run in float64)."""

    query: torch.Tensor
    render: torch.Tensor
    render_mask16: torch.Tensor
    flow_gt: torch.Tensor
    visible: torch.Tensor
    points_obj: torch.Tensor
    points_valid: torch.Tensor
    K_crop: torch.Tensor
    T_cur: torch.Tensor
    T_gt: torch.Tensor
    model_points: torch.Tensor

    def __len__(self) -> int:
        return int(self.query.shape[0])


def collate_refiner(pairs: list[RefinerPair]) -> RefinerBatch:
    """Stack RefinerPairs into a RefinerBatch (CPU tensors)."""
    if not pairs:
        raise ValueError("collate_refiner: no pairs")

    def stack(name: str, dtype) -> torch.Tensor:
        return stacked_tensor([getattr(p, name) for p in pairs], dtype)

    return RefinerBatch(
        query=network_input_tensor([p.query_rgb for p in pairs], REFINER_CROP),
        render=network_input_tensor([p.render_rgb for p in pairs], REFINER_CROP),
        render_mask16=stack("render_mask16", np.float32), flow_gt=stack("flow_gt", np.float32),
        visible=stack("visible", bool), points_obj=stack("points_obj", np.float64),
        points_valid=stack("points_valid", bool), K_crop=stack("K_crop", np.float64), T_cur=stack("T_cur", np.float64),
        T_gt=stack("T_gt", np.float64), model_points=stack("model_points", np.float64))

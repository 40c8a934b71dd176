"""Co-op selector training groups: one query instance, 1 good and `negatives` bad hypothesis poses.

`SelectorPairSampler` reuses PairSampler's scenes (objects with distractors and occluders on a plane
or in the air, random lights and intrinsics, random appearances) and its choice of visible instances;
only `make_pair` differs: it returns a `SelectorGroup`. The hypotheses are
networks/coop/selector_loss.sample_selector_poses(T_gt): index 0 within 5° and (0.01, 0.01, 0.05) m of
the GT (label 1), the others outside (label 0). Each hypothesis is seen exactly as the estimator
scores it at run time (estimation/selector_stage.py): through ITS OWN refiner window
(estimation/refiner_geometry.window_view: refiner_window(T_hyp, K, AABB corners, window_margin),
window_transform, crop_camera), the query being the scene image cropped to that window and the
render the object alone at T_hyp drawn into it (render_for_refiner); the mask is
patch_grid_mask(render depth > 0, 16).

The query crops are colour-augmented as the refiner's, with one augmentation for the whole group
(one camera took the image the hypotheses are compared on). The render shows the instance as drawn
in the scene or, with data.grey_template_probability (objects with colours), its grey geometry-only
version, for the whole group. A hypothesis that puts the object behind the camera or renders to
nothing is drawn again (NOISE_DRAWS times; a failing positive is redrawn inside the positive
thresholds), after which the group is dropped. `collate_selector` stacks groups into a
`SelectorBatch`, the collation training/batches.py's BatchStream is given for the selector.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from novel_pose_ros.estimation.refiner_geometry import window_view
from novel_pose_ros.estimation.template_bank import patch_grid_mask
from novel_pose_ros.networks.coop.selector_loss import sample_selector_poses
from novel_pose_ros.networks.coop.selector_net import SELECTOR_CROP, SELECTOR_GRID
from novel_pose_ros.render import Renderer
from novel_pose_ros.training.augment import augment_rgb
from novel_pose_ros.training.batches import DeviceBatch, network_input_tensor, stacked_tensor
from novel_pose_ros.training.config import DataConfig
from novel_pose_ros.training.objects import ObjectPool
from novel_pose_ros.training.pairs import PairSampler, SceneImage
from novel_pose_ros.types import ObjectModel

NOISE_DRAWS = 5  # draws per hypothesis before giving up on the group (as refiner_pairs.NOISE_DRAWS)


@dataclass(frozen=True)
class SelectorView:
    """One hypothesis seen through its window: query_rgb, render_rgb (256, 256, 3) uint8 (not augmented);
    render_mask16 (16, 16) float32; M_crop_img (2, 3) image → crop pixels; K_crop (3, 3)."""

    query_rgb: np.ndarray
    render_rgb: np.ndarray
    render_mask16: np.ndarray
    M_crop_img: np.ndarray
    K_crop: np.ndarray


@dataclass(frozen=True)
class SelectorGroup:
    """The N = 1 + negatives hypotheses of one query instance (crop = the 256 window at each hypothesis).

    query_rgb, render_rgb (N, 256, 256, 3) uint8 (the queries augmented, one augmentation for the group);
    render_mask16 (N, 16, 16) float32; labels (N,) float32, 1 = positive (index 0), 0 = negative;
    T_hyp (N, 4, 4) T_cam_obj; T_gt (4, 4) T_cam_obj; M_crop_img (N, 2, 3); K_crop (N, 3, 3).
    The rest describes the group (tests, debugging).
    """

    query_rgb: np.ndarray
    render_rgb: np.ndarray
    render_mask16: np.ndarray
    labels: np.ndarray
    T_hyp: np.ndarray
    T_gt: np.ndarray
    M_crop_img: np.ndarray
    K_crop: np.ndarray
    object_name: str
    diameter_m: float
    grey_render: bool

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def selector_view(image: SceneImage, T_hyp: np.ndarray, render_obj: ObjectModel, renderer: Renderer,
                  margin: float) -> SelectorView | None:
    """Hypothesis T_hyp (4, 4) seen as the estimator sees it (refiner_geometry.window_view, as
    estimation/selector_stage.py); None when T_hyp puts the object behind the camera or its render is empty."""
    try:
        view = window_view(renderer, image.rgb, image.K, render_obj, T_hyp, margin)
    except ValueError:
        return None
    mask = view.render.depth_m > 0
    if not mask.any():
        return None
    return SelectorView(query_rgb=view.query, render_rgb=view.render.rgb,
                        render_mask16=patch_grid_mask(mask, SELECTOR_GRID), M_crop_img=view.M_crop_img,
                        K_crop=view.K_crop)


class SelectorPairSampler(PairSampler):
    """PairSampler whose pairs are SelectorGroups (module docstring). negatives: bad hypotheses per group;
    window_margin: the refiner window's margin, as the estimator uses it."""

    def __init__(self, pool: ObjectPool, config: DataConfig, renderer: Renderer | None = None, negatives: int = 5,
                 window_margin: float = 0.2) -> None:
        super().__init__(pool, config, renderer)
        if negatives < 1:
            raise ValueError(f"SelectorPairSampler: negatives must be ≥ 1, got {negatives}")
        self.negatives = int(negatives)
        self.window_margin = float(window_margin)

    def make_pair(self, image: SceneImage, index: int, rng: np.random.Generator) -> SelectorGroup | None:
        cfg = self.config
        shown, base, T_gt = image.instances[index]
        T_gt = np.asarray(T_gt, dtype=np.float64)
        render_obj, grey = self.template_object(shown, base, rng)
        poses, labels = sample_selector_poses(T_gt, rng, self.negatives)
        views = []
        for slot in range(len(poses)):
            view = None
            for draw in range(NOISE_DRAWS):
                if draw:  # the positive is redrawn as a positive, a negative as a negative
                    fresh, _ = sample_selector_poses(T_gt, rng, 0 if slot == 0 else 1)
                    poses[slot] = fresh[0 if slot == 0 else 1]
                view = selector_view(image, poses[slot], render_obj, self.renderer, self.window_margin)
                if view is not None:
                    break
            if view is None:
                return None
            views.append(view)
        augment_seed = int(rng.integers(2**63))  # the same colour augmentation for every crop of the group
        return SelectorGroup(
            query_rgb=np.stack([augment_rgb(v.query_rgb, np.random.default_rng(augment_seed), cfg.augment)
                                for v in views]),
            render_rgb=np.stack([v.render_rgb for v in views]),
            render_mask16=np.stack([v.render_mask16 for v in views]).astype(np.float32),
            labels=np.asarray(labels, dtype=np.float32), T_hyp=np.asarray(poses, dtype=np.float64), T_gt=T_gt,
            M_crop_img=np.stack([v.M_crop_img for v in views]), K_crop=np.stack([v.K_crop for v in views]),
            object_name=base.name, diameter_m=float(base.diameter_m), grey_render=grey)


@dataclass
class SelectorBatch(DeviceBatch):
    """G groups of N hypotheses as G·N pairs, group-major (rows g·N .. g·N + N − 1 are group g).
    query, render [G·N, 3, 256, 256] float32 network input (preprocessing.to_network_input);
    render_mask16 [G·N, 16, 16] float32; labels [G·N] float32 (1 = positive); group [G·N] int64 (g)."""

    query: torch.Tensor
    render: torch.Tensor
    render_mask16: torch.Tensor
    labels: torch.Tensor
    group: torch.Tensor

    def __len__(self) -> int:
        return int(self.query.shape[0])

    @property
    def groups(self) -> int:
        return int(self.group.max()) + 1 if len(self) else 0


def collate_selector(groups: list[SelectorGroup]) -> SelectorBatch:
    """Stack SelectorGroups into a SelectorBatch (CPU tensors)."""
    if not groups:
        raise ValueError("collate_selector: no groups")

    def cat(name: str, dtype) -> torch.Tensor:  # the groups' pairs one after the other
        return stacked_tensor([row for g in groups for row in getattr(g, name)], dtype)

    return SelectorBatch(
        query=network_input_tensor([crop for g in groups for crop in g.query_rgb], SELECTOR_CROP),
        render=network_input_tensor([crop for g in groups for crop in g.render_rgb], SELECTOR_CROP),
        render_mask16=cat("render_mask16", np.float32), labels=cat("labels", np.float32),
        group=torch.from_numpy(np.concatenate([np.full(len(g), i, dtype=np.int64) for i, g in enumerate(groups)])))

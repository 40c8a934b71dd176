"""Fixtures of the training tests: a tiny PicoPose network, the bundled objects as a pool, a pair sampler."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import BUNDLED_OBJECTS

# A PicoPose network small enough for a CPU training step in ~0.1 s (same module tree as `small`).
TINY_NETWORK = {
    "name": "tiny",
    "backbone": {"kind": "vit", "embed_dim": 32, "depth": 4, "num_heads": 2, "pos_grid": 16, "out_blocks": [0, 1, 2, 3]},
    "affine": {"hidden_dim": 16, "fc_dim": 32, "gn_groups": 4},
    "dpt": {"features": 8, "out_channels": [8, 8, 16, 16], "with_unused": False},
    "flow": {"proj_dim": 8, "corr_channels": [8, 8], "flow_channels": [8, 8], "motion_dim": 8, "head_channels": [8, 8],
             "corr_mode": "local"},
}


@pytest.fixture(scope="session")
def tiny_network() -> dict:
    return TINY_NETWORK


@pytest.fixture(scope="session")
def bundled_pool():
    from novel_pose_ros.objects import ObjectLibrary
    from novel_pose_ros.training.objects import ObjectPool

    return ObjectPool.from_objects(list(ObjectLibrary.from_yaml(BUNDLED_OBJECTS)))


@pytest.fixture(scope="session")
def pair_sampler(bundled_pool, gl_renderer):
    from novel_pose_ros.training.config import DataConfig
    from novel_pose_ros.training.pairs import PairSampler

    return PairSampler(bundled_pool, DataConfig(), renderer=gl_renderer)


@pytest.fixture(scope="session")
def rendered_pairs(pair_sampler):
    """Eight pairs of the bundled objects in cluttered scenes (seeded)."""
    return pair_sampler.sample(np.random.default_rng(2024), 8)

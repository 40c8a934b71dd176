"""Shared fixtures: renderers, a seeded RNG, visible library logs."""
from __future__ import annotations

import logging

import numpy as np
import pytest


@pytest.fixture(scope="session")
def gl_renderer():
    """The moderngl EGL renderer; the set-up installs EGL/Mesa, so failing to create it is a failure."""
    from novel_pose_ros.render import create_renderer

    return create_renderer("gl")


@pytest.fixture(scope="session")
def numpy_renderer():
    from novel_pose_ros.render import create_renderer

    return create_renderer("numpy")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _library_logs_visible(caplog):
    caplog.set_level(logging.INFO, logger="novel_pose_ros")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Template, feature and ONNX caches of the whole run go to a temporary folder, never ~/.cache."""
    import os

    previous = os.environ.get("NOVEL_POSE_CACHE")
    os.environ["NOVEL_POSE_CACHE"] = str(tmp_path_factory.mktemp("novel_pose_cache"))
    yield
    if previous is None:
        os.environ.pop("NOVEL_POSE_CACHE", None)
    else:
        os.environ["NOVEL_POSE_CACHE"] = previous


@pytest.fixture(scope="session")
def untrained_backend():
    """The small PicoPose network with untrained (seeded) weights on ONNX Runtime: real sessions, real graphs."""
    from novel_pose_ros.runtime import create_backend

    return create_backend("onnxruntime", "small", None, seed=0)


def _tiny_coop_checkpoint(tmp_path_factory, kind: str):
    """A Co-op checkpoint of the tiny test config with seeded random weights (plumbing, not accuracy)."""
    import torch

    from novel_pose_ros.networks.coop.coarse_config import get_coarse_config
    from novel_pose_ros.networks.coop.coarse_net import CoopCoarseNet
    from novel_pose_ros.networks.coop.selector_net import CoopSelectorNet, get_selector_config
    from novel_pose_ros.training.coop_checkpoint import save_coop_weights

    torch.manual_seed(0)
    net = (CoopCoarseNet(get_coarse_config("coop_coarse_tiny")) if kind == "coop_coarse"
           else CoopSelectorNet(get_selector_config("coop_selector_tiny")))
    return save_coop_weights(net.eval(), tmp_path_factory.mktemp(kind) / f"{kind}_tiny.ckpt")


@pytest.fixture(scope="session")
def tiny_coarse_checkpoint(tmp_path_factory):
    return _tiny_coop_checkpoint(tmp_path_factory, "coop_coarse")


@pytest.fixture(scope="session")
def tiny_selector_checkpoint(tmp_path_factory):
    return _tiny_coop_checkpoint(tmp_path_factory, "coop_selector")

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

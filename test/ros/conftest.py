"""Fixtures for tests that start rclpy nodes: loopback-only DDS on a per-run domain, an in-process listener."""
from __future__ import annotations

import os
import random
import uuid

import pytest


@pytest.fixture(scope="module", autouse=True)
def localhost_ros_env():
    """`make test` sets these; a bare `pytest` run gets them here so traffic stays on loopback."""
    with pytest.MonkeyPatch.context() as mp:
        if not os.environ.get("ROS_DOMAIN_ID"):
            mp.setenv("ROS_DOMAIN_ID", str(random.randint(1, 100)))
        if not os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE"):
            mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        yield


def _listener():
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f"test_listener_{uuid.uuid4().hex[:6]}", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield node, executor
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()


@pytest.fixture
def listener():
    """(node, executor) in a fresh rclpy context, for one test."""
    yield from _listener()


@pytest.fixture(scope="module")
def module_listener():
    """(node, executor) shared by a module's tests (publishers and subscriptions made once)."""
    yield from _listener()

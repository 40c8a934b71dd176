"""The pose_estimator node with a depth camera (use_depth: true), as its own process on loopback (issue 18):
depth in millimetres (16UC1) and metres (32FC1) give the same pose, the diagnostics say depth was used, and
a depth image not registered to the colour image is refused with both sizes named while the frame is still
answered from RGB. Shipped weights: the pose with depth is checked against the rendered truth."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import MESHES
from ros_helpers import finish
from ros_node_client import K, Client, start_pose_estimator

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def depth_scene(gl_renderer):
    """The toy block rendered with its depth, mask and true pose."""
    from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle
    from novel_pose_ros.objects import load_object
    from novel_pose_ros.render import SHADED

    block = load_object(MESHES / "toy_block.ply", 2, "toy_block", units="m")
    truth = make_T(rotation_from_axis_angle(np.array([1.0, 0.3, 0.2]), 2.2), [0.02, 0.01, 0.6])
    result = gl_renderer.render([(block, truth)], K, 640, 480, SHADED)
    image = np.where(result.mask[..., None], result.rgb, np.uint8(90))
    depth = np.where(result.mask, result.depth_m, np.float32(1.2))  # a wall behind the object
    return image, depth, result.labels == 1, truth


@pytest.fixture(scope="module")
def client(tmp_path_factory, module_listener):
    proc = start_pose_estimator(tmp_path_factory.mktemp("depth_node"), {
        "use_masks": True, "use_depth": True, "input_reliability": "reliable", "diagnostics_period_s": 0.5})
    node, executor = module_listener
    client = Client(node, executor, depth=True).wait_for_node(proc)
    client.sent_unregistered = False
    yield client
    code, out = finish(proc, sigint=True)
    print(out)
    assert code == 0
    if client.sent_unregistered:  # the message names both sizes and what to subscribe to
        assert "depth is 320x240 but the colour image is 640x480" in out and "aligned_depth_to_color" in out


def position(poses) -> np.ndarray:
    p = poses.poses[0].position
    return np.array([p.x, p.y, p.z])


def test_depth_in_mm_and_m_give_the_same_pose_and_are_used(client, depth_scene):
    image, depth, mask, truth = depth_scene
    metres = client.output_for(client.send(image, [mask], ["toy_block"], depth_m=depth, depth_encoding="32FC1"))
    millimetres = client.output_for(client.send(image, [mask], ["toy_block"], depth_m=depth, depth_encoding="16UC1"))
    assert metres is not None and millimetres is not None
    np.testing.assert_allclose(position(millimetres), position(metres), atol=2e-3)  # 16UC1 rounds to 1 mm
    assert abs(position(metres)[2] - truth[2, 3]) < 0.01, "with depth, the distance should be right within 1 cm"
    used = client.first("/diagnostics", lambda m: any(kv.key == "depth_used_share" and float(kv.value) == 1.0
                                                      for s in m.status for kv in s.values))
    assert used is not None, "/diagnostics does not say that depth was used"


def test_an_unregistered_depth_image_is_refused_and_the_frame_answered_from_rgb(client, depth_scene):
    image, depth, mask, _ = depth_scene
    small = depth[::2, ::2]  # 320x240: a depth camera's own resolution, not registered to the colour image
    stamp = client.send(image, [mask], ["toy_block"], depth_m=small)
    client.sent_unregistered = True
    poses = client.output_for(stamp)
    assert poses is not None and len(poses.poses) == 1, "the RGB path did not answer"
    counted = client.first("/diagnostics", lambda m: any(kv.key == "count_depth" for s in m.status for kv in s.values))
    assert counted is not None, "the unusable depth image was not counted"

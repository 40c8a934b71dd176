"""The pose_estimator node across frames (issue 21 item 8, issue 22 item 3), as its own processes on loopback:

- instance ids follow the objects: two blocks that swap places in the detection list keep their TF
  frames; one that leaves keeps nobody else's id, and after instance_timeout_s its markers are deleted;
- target_frame is looked up at the image stamp in a TF history (interpolated), not the newest transform;
  a stamp the history does not cover drops the frame with the tf_lookup cause;
- two nodes in namespaces /left and /right (frame_prefix left/, right/) do not hear each other's inputs
  and publish apart.
Untrained weights: the poses are deterministic for the same input, which is all these checks need."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from helpers import MESHES
from ros_helpers import finish, spin_until, stamp_ns
from ros_node_client import FRAME, K, Client, start_pose_estimator

pytestmark = pytest.mark.ros

WORLD = "world"
TF_START_S, TF_END_S = 2000.0, 2010.0  # the camera's TF samples cover these image stamps
CAMERA_SPEED_M_S = 0.1  # the camera slides along the world's x axis
INSTANCE_TIMEOUT_S = 0.5


def T_world_camera(stamp_s: float) -> np.ndarray:
    T = np.eye(4)
    T[0, 3] = CAMERA_SPEED_M_S * (stamp_s - TF_START_S)
    return T


@pytest.fixture(scope="module")
def two_blocks(gl_renderer):
    """Two toy blocks side by side, and their masks (left, right)."""
    from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle
    from novel_pose_ros.objects import load_object
    from novel_pose_ros.render import SHADED

    block = load_object(MESHES / "toy_block.ply", 2, "toy_block", units="m")
    R = rotation_from_axis_angle(np.array([1.0, 0.3, 0.2]), 2.2)
    result = gl_renderer.render([(block, make_T(R, [-0.1, 0.02, 0.6])), (block, make_T(R.T, [0.1, -0.01, 0.6]))],
                                K, 640, 480, SHADED)
    image = np.where(result.mask[..., None], result.rgb, np.uint8(90))
    return image, [result.labels == 1, result.labels == 2]


def start_node(folder, namespace: str, extra: dict[str, object]) -> subprocess.Popen:
    """The node in `namespace`, its TF frames prefixed with it; the two nodes share their templates."""
    return start_pose_estimator(folder, {"use_masks": True, "input_reliability": "reliable", "network": "small",
                                         "frame_prefix": f"{namespace.strip('/')}/", "diagnostics_period_s": 0.5,
                                         **extra},
                                templates_dir=folder.parent / "templates", namespace=namespace)


@pytest.fixture(scope="module")
def left(tmp_path_factory, module_listener):
    """The node in /left, posing in `world` (target_frame), instances timing out after INSTANCE_TIMEOUT_S."""
    proc = start_node(tmp_path_factory.mktemp("left"), "/left",
                      {"target_frame": WORLD, "tf_timeout_s": 0.5, "instance_timeout_s": INSTANCE_TIMEOUT_S})
    node, executor = module_listener
    client = Client(node, executor, "/left").wait_for_node(proc)
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    client.tf_pub = node.create_publisher(TFMessage, "/tf", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    assert spin_until(executor, lambda: client.tf_pub.get_subscription_count() >= 1, 20.0)
    publish_camera_tf(client)
    yield client
    code, out = finish(proc, sigint=True)
    print(out)
    assert code == 0, f"pose_estimator exited with {code} after SIGINT"


def publish_camera_tf(client) -> None:
    """Two samples of world -> camera, 10 s apart (a slide of 1 m), as an arm's TF publisher sends them."""
    from geometry_msgs.msg import TransformStamped
    from std_msgs.msg import Header
    from tf2_msgs.msg import TFMessage

    from novel_pose_ros.ros import conversions as cv

    transforms = []
    for stamp_s in (TF_START_S, TF_END_S):
        t = TransformStamped(header=Header(stamp=cv.seconds_to_stamp(stamp_s), frame_id=WORLD), child_frame_id=FRAME)
        t.transform.translation.x = float(T_world_camera(stamp_s)[0, 3])
        t.transform.rotation.w = 1.0
        transforms.append(t)
    client.tf_pub.publish(TFMessage(transforms=transforms))
    client.executor.spin_once(timeout_sec=0.5)


def instance_frames(client, stamp: int) -> dict[str, np.ndarray]:
    """child frame -> translation of the TF the node sent for the frame of `stamp`."""
    tf = client.first("/tf", lambda m: any(stamp_ns(t) == stamp and t.child_frame_id.startswith("left/")
                                           for t in m.transforms))
    assert tf is not None, "no TF for the frame"
    return {t.child_frame_id: np.array([t.transform.translation.x, t.transform.translation.y, t.transform.translation.z])
            for t in tf.transforms if stamp_ns(t) == stamp}


def test_target_frame_is_looked_up_at_the_image_stamp(left, two_blocks):
    image, masks = two_blocks
    early = left.output_for(left.send(image, masks[:1], ["toy_block"], stamp_s=TF_START_S + 1.0))
    late = left.output_for(left.send(image, masks[:1], ["toy_block"], stamp_s=TF_START_S + 5.0))
    assert early is not None and late is not None and early.header.frame_id == WORLD
    # the same image 4 s apart: the poses differ by the camera's slide at those stamps (0.4 m), as
    # interpolated from the two samples; the newest transform would have given both the same place
    shift = late.poses[0].position.x - early.poses[0].position.x
    assert shift == pytest.approx(4.0 * CAMERA_SPEED_M_S, abs=1e-6)
    assert late.poses[0].position.z == pytest.approx(early.poses[0].position.z, abs=1e-9)


def test_instances_keep_their_ids_and_expire(left, two_blocks):
    from visualization_msgs.msg import Marker

    image, (a, b) = two_blocks
    t0 = TF_START_S + 6.0
    first = instance_frames(left, left.send(image, [a, b], ["toy_block", "toy_block"], stamp_s=t0))
    assert set(first) == {"left/toy_block_0", "left/toy_block_1"}
    assert np.linalg.norm(first["left/toy_block_0"] - first["left/toy_block_1"]) > 0.05  # two places to tell apart
    slide = np.array([0.1 * CAMERA_SPEED_M_S, 0.0, 0.0])  # the camera moves 1 cm between the frames
    swapped = instance_frames(left, left.send(image, [b, a], ["toy_block", "toy_block"], stamp_s=t0 + 0.1))
    for name in first:  # the detection order changed, the ids did not
        np.testing.assert_allclose(swapped[name], first[name] + slide, atol=1e-6)
    for step in (0.3, 0.5):  # block a leaves; b, seen every 0.2 s, stays
        only_b = instance_frames(left, left.send(image, [b], ["toy_block"], stamp_s=t0 + step))
        assert set(only_b) == {"left/toy_block_1"}  # b keeps its id; a's is neither reused nor published
    expired = left.send(image, [b], ["toy_block"], stamp_s=t0 + 0.7)  # a unseen for 0.6 s > INSTANCE_TIMEOUT_S
    markers = left.first("/pose_estimator/markers", lambda m: any(stamp_ns(x) == expired for x in m.markers))
    assert markers is not None
    assert {(m.ns, m.id) for m in markers.markers if m.action == Marker.DELETE} == {("toy_block", 0), ("toy_block/label", 0)}
    assert {(m.ns, m.id) for m in markers.markers if m.action == Marker.ADD} == {("toy_block", 1), ("toy_block/label", 1)}
    back = instance_frames(left, left.send(image, [a, b], ["toy_block", "toy_block"], stamp_s=t0 + 0.9))
    assert set(back) == {"left/toy_block_0", "left/toy_block_1"}  # a block that comes back gets the free id


def test_two_namespaced_nodes_publish_apart(left, two_blocks, tmp_path_factory):
    image, masks = two_blocks
    proc = start_node(tmp_path_factory.mktemp("right"), "/right", {})
    try:
        right = Client(left.node, left.executor, "/right").wait_for_node(proc)
        stamp = right.send(image, masks, ["toy_block", "toy_block"], stamp_s=3000.25)  # camera frame, no TF needed
        poses = right.output_for(stamp)
        assert poses is not None and poses.header.frame_id == FRAME and len(poses.poses) == 2
        tf = right.first("/tf", lambda m: any(stamp_ns(t) == stamp for t in m.transforms))
        assert {t.child_frame_id for t in tf.transforms} == {"right/toy_block_0", "right/toy_block_1"}
        # the left node heard nothing of it: its outputs carry no such stamp
        assert all(stamp_ns(m) != stamp for m in left.got["/object_poses"])
        assert left.node.count_publishers("/left/object_poses") == 1 and left.node.count_publishers("/object_poses") == 0
    finally:
        code, out = finish(proc, sigint=True)
        print(out)
    assert code == 0


def test_a_stamp_outside_the_tf_history_is_dropped_with_the_reason(left, two_blocks):
    image, masks = two_blocks  # runs last: its stamp is the newest of the module
    stamp = left.send(image, masks[:1], ["toy_block"], stamp_s=TF_END_S + 3.0)  # no extrapolation
    assert left.output_for(stamp, timeout_s=5.0) is None
    diagnostics = left.first("/diagnostics", lambda m: any(kv.key == "count_tf_lookup" for s in m.status for kv in s.values))
    assert diagnostics is not None, "tf_lookup was not counted in /diagnostics"

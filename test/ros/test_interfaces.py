"""tf2_msgs and vision_msgs as this package uses them.

In a venv they are built from interfaces/ by tools/setup/build_interfaces.sh; on a robot
they come from apt. Either way they must be the upstream definitions:
- the Python classes have the upstream fields, in the upstream order (the wire format);
- the RIHS01 type hashes equal upstream's, so our nodes match a real robot's graph;
- messages cross a real rclpy graph on loopback, in one process and between processes.

Every test uses ROS_DOMAIN_ID from the environment (the Makefile sets a random one) and
localhost-only discovery; when run by hand without them, the module sets both.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest

pytestmark = pytest.mark.ros

TIMEOUT_S = 15.0

# Fields as rclpy reports them (get_fields_and_field_types), in declaration order.
HEADER = ("header", "std_msgs/Header")
UPSTREAM_FIELDS: dict[str, list[tuple[str, str]]] = {
    "vision_msgs/msg/BoundingBox2D": [
        ("center", "vision_msgs/Pose2D"), ("size_x", "double"), ("size_y", "double")],
    "vision_msgs/msg/BoundingBox2DArray": [
        HEADER, ("boxes", "sequence<vision_msgs/BoundingBox2D>")],
    "vision_msgs/msg/BoundingBox3D": [
        ("center", "geometry_msgs/Pose"), ("size", "geometry_msgs/Vector3")],
    "vision_msgs/msg/BoundingBox3DArray": [
        HEADER, ("boxes", "sequence<vision_msgs/BoundingBox3D>")],
    "vision_msgs/msg/Classification": [
        HEADER, ("results", "sequence<vision_msgs/ObjectHypothesis>")],
    "vision_msgs/msg/Detection2D": [
        HEADER, ("results", "sequence<vision_msgs/ObjectHypothesisWithPose>"),
        ("bbox", "vision_msgs/BoundingBox2D"), ("id", "string")],
    "vision_msgs/msg/Detection2DArray": [
        HEADER, ("detections", "sequence<vision_msgs/Detection2D>")],
    "vision_msgs/msg/Detection3D": [
        HEADER, ("results", "sequence<vision_msgs/ObjectHypothesisWithPose>"),
        ("bbox", "vision_msgs/BoundingBox3D"), ("id", "string")],
    "vision_msgs/msg/Detection3DArray": [
        HEADER, ("detections", "sequence<vision_msgs/Detection3D>")],
    "vision_msgs/msg/LabelInfo": [
        HEADER, ("class_map", "sequence<vision_msgs/VisionClass>"), ("threshold", "float")],
    "vision_msgs/msg/ObjectHypothesis": [("class_id", "string"), ("score", "double")],
    "vision_msgs/msg/ObjectHypothesisWithPose": [
        ("hypothesis", "vision_msgs/ObjectHypothesis"),
        ("pose", "geometry_msgs/PoseWithCovariance")],
    "vision_msgs/msg/Point2D": [("x", "double"), ("y", "double")],
    "vision_msgs/msg/Pose2D": [("position", "vision_msgs/Point2D"), ("theta", "double")],
    "vision_msgs/msg/VisionClass": [("class_id", "uint16"), ("class_name", "string")],
    "vision_msgs/msg/VisionInfo": [
        HEADER, ("method", "string"), ("database_location", "string"),
        ("database_version", "int32")],
    "tf2_msgs/msg/TFMessage": [("transforms", "sequence<geometry_msgs/TransformStamped>")],
    "tf2_msgs/msg/TF2Error": [("error", "uint8"), ("error_string", "string")],
    "tf2_msgs/srv/FrameGraph_Request": [],
    "tf2_msgs/srv/FrameGraph_Response": [("frame_yaml", "string")],
    "tf2_msgs/action/LookupTransform_Goal": [
        ("target_frame", "string"), ("source_frame", "string"),
        ("source_time", "builtin_interfaces/Time"), ("timeout", "builtin_interfaces/Duration"),
        ("target_time", "builtin_interfaces/Time"), ("fixed_frame", "string"),
        ("advanced", "boolean")],
    "tf2_msgs/action/LookupTransform_Result": [
        ("transform", "geometry_msgs/TransformStamped"), ("error", "tf2_msgs/TF2Error")],
    "tf2_msgs/action/LookupTransform_Feedback": [],
}

# RIHS01 hashes of the upstream interfaces (vision_msgs 4.1.x, tf2_msgs Jazzy), as found in
# rosidl-generated code built from the upstream packages and published in public
# repositories (the *_description.c / *_struct.h files carry the hash of each type and of
# each type they reference). A mismatch means our definitions differ from a robot's:
# its nodes would not match ours.
UPSTREAM_TYPE_HASHES: dict[str, str] = {
    "vision_msgs/msg/BoundingBox2D":
        "RIHS01_008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f",
    "vision_msgs/msg/BoundingBox3D":
        "RIHS01_bbb73a65c163d7f9bb29009c7bde9f7faa576bd2d23299c4511d19230dab4698",
    "vision_msgs/msg/Classification":
        "RIHS01_f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143",
    "vision_msgs/msg/Detection2D":
        "RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea",
    "vision_msgs/msg/Detection2DArray":
        "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    "vision_msgs/msg/Detection3D":
        "RIHS01_ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b",
    "vision_msgs/msg/Detection3DArray":
        "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018",
    "vision_msgs/msg/LabelInfo":
        "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "vision_msgs/msg/ObjectHypothesis":
        "RIHS01_51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90",
    "vision_msgs/msg/ObjectHypothesisWithPose":
        "RIHS01_41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc",
    "vision_msgs/msg/Point2D":
        "RIHS01_eab0e83f44ab4de92ceaf76dd7d0e7638f2bdd1d16ffbe16c7a136c48e407247",
    "vision_msgs/msg/Pose2D":
        "RIHS01_b0b5d1d7b4c20dd4fcde3ed1d4b289a919290572007d67a97043814db25d3648",
    "vision_msgs/msg/VisionClass":
        "RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a",
    "vision_msgs/msg/VisionInfo":
        "RIHS01_95d3116a17484ad91c9a2686e1d54890bbfc3ff6c6a2de137738c4950d45d284",
    "tf2_msgs/msg/TFMessage":
        "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087",
    "tf2_msgs/msg/TF2Error":
        "RIHS01_db2485e7d6a0ec75bf087e058ee45df682acc3a621ca7780503d10aac141809a",
    "tf2_msgs/srv/FrameGraph":
        "RIHS01_0d1fbc6222c018ba5f33822904a2fdd4063705289956d3fdde07cd8c50fe8067",
    "tf2_msgs/action/LookupTransform":
        "RIHS01_0b8adf6bc0b5958879e3265b41a457e03558fe523890a81252c70eba97a82c5d",
}
# No published upstream value was found for these two; pinned from our build of the
# upstream text, so any change to their definition still fails here.
PINNED_TYPE_HASHES: dict[str, str] = {
    "vision_msgs/msg/BoundingBox2DArray":
        "RIHS01_2464e82838009386d371b523211c21c91d74d313fcdd6788223c531d621cf691",
    "vision_msgs/msg/BoundingBox3DArray":
        "RIHS01_a81938db9576b10c2eecd7c5a5da3eac496efd00221b25ed051dfbc81fb56da6",
}
ALL_TYPE_HASHES = {**UPSTREAM_TYPE_HASHES, **PINNED_TYPE_HASHES}

# Builds the sample messages; executed here and, as source, in the publisher subprocess.
SAMPLES_SOURCE = textwrap.dedent('''
    def make_detections():
        from geometry_msgs.msg import Point, Pose, PoseWithCovariance, Quaternion
        from vision_msgs.msg import (
            BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesis,
            ObjectHypothesisWithPose, Point2D, Pose2D)
        msg = Detection2DArray()
        msg.header.frame_id = "camera_color_optical_frame"
        msg.header.stamp.sec = 1712
        msg.header.stamp.nanosec = 345_000_000
        for i, (name, score) in enumerate([("mug", 0.93), ("drill", 0.41)]):
            det = Detection2D()
            det.header = msg.header
            det.id = f"track-{i}"
            det.bbox = BoundingBox2D(
                center=Pose2D(position=Point2D(x=320.5 + i, y=240.25), theta=0.125 * i),
                size_x=64.0 + i, size_y=48.5)
            covariance = [0.0] * 36
            covariance[0] = covariance[7] = covariance[14] = 1e-4 * (i + 1)
            det.results.append(ObjectHypothesisWithPose(
                hypothesis=ObjectHypothesis(class_id=name, score=score),
                pose=PoseWithCovariance(
                    pose=Pose(position=Point(x=0.1 * i, y=-0.02, z=0.75),
                              orientation=Quaternion(x=0.0, y=0.0, z=0.38268343, w=0.92387953)),
                    covariance=covariance)))
            msg.detections.append(det)
        return msg

    def make_transforms():
        from geometry_msgs.msg import TransformStamped
        from tf2_msgs.msg import TFMessage
        msg = TFMessage()
        for i, child in enumerate(["mug", "drill"]):
            t = TransformStamped()
            t.header.frame_id = "camera_color_optical_frame"
            t.header.stamp.sec = 1712
            t.child_frame_id = child
            t.transform.translation.x = 0.1 * i
            t.transform.translation.z = 0.75
            t.transform.rotation.z = 0.38268343
            t.transform.rotation.w = 0.92387953
            msg.transforms.append(t)
        return msg
''')
_samples: dict = {}
exec(SAMPLES_SOURCE, _samples)
make_detections: Callable = _samples["make_detections"]
make_transforms: Callable = _samples["make_transforms"]


@pytest.fixture
def ros_context():
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        context.try_shutdown()


def interface_class(type_name: str):
    """The Python class of 'pkg/msg/Name', 'pkg/srv/Name_Request', 'pkg/action/Name_Goal'."""
    import importlib

    package, kind, name = type_name.split("/")
    module = importlib.import_module(f"{package}.{kind}")
    if kind == "msg":
        return getattr(module, name)
    base, _, part = name.rpartition("_")
    return getattr(getattr(module, base), part)


def type_description_hash(type_name: str) -> str:
    """RIHS01 hash from the type description JSON that rosidl installs next to the .msg."""
    package, kind, name = type_name.split("/")
    if os.environ.get("AMENT_PREFIX_PATH"):
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory(package))
    else:  # <prefix>/lib/pythonX.Y/site-packages/<package>/__init__.py -> <prefix>/share/<package>
        module = __import__(package)
        share = Path(module.__file__).resolve().parents[4] / "share" / package
    description = json.loads((share / kind / f"{name}.json").read_text())
    hashes = {h["type_name"]: h["hash_string"] for h in description["type_hashes"]}
    return hashes[type_name]


def spin_until(executor, condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.05)
    return condition()


def unique_topic(name: str) -> str:
    return f"/test_interfaces_{uuid.uuid4().hex[:8]}/{name}"


@pytest.mark.parametrize("type_name", sorted(UPSTREAM_FIELDS))
def test_interface_has_upstream_fields_in_order(type_name):
    cls = interface_class(type_name)
    assert list(cls.get_fields_and_field_types().items()) == UPSTREAM_FIELDS[type_name]


def test_tf2_error_constants_match_upstream():
    from tf2_msgs.msg import TF2Error

    expected = {"NO_ERROR": 0, "LOOKUP_ERROR": 1, "CONNECTIVITY_ERROR": 2,
                "EXTRAPOLATION_ERROR": 3, "INVALID_ARGUMENT_ERROR": 4, "TIMEOUT_ERROR": 5,
                "TRANSFORM_ERROR": 6}
    assert {name: getattr(TF2Error, name) for name in expected} == expected


def test_every_vision_msgs_message_is_covered():
    """The 16 messages of vision_msgs 4.1.x, no more, no fewer."""
    import vision_msgs.msg

    exported = {name for name in dir(vision_msgs.msg)
                if not name.startswith("_") and hasattr(getattr(vision_msgs.msg, name), "get_fields_and_field_types")}
    expected = {t.split("/")[2] for t in UPSTREAM_FIELDS if t.startswith("vision_msgs/")}
    assert exported == expected


@pytest.mark.parametrize("type_name", sorted(ALL_TYPE_HASHES))
def test_type_hash_matches_upstream(type_name):
    assert type_description_hash(type_name) == ALL_TYPE_HASHES[type_name]


def test_round_trip_in_process(ros_context):
    """A publisher node and a subscriber node in one process exchange both message types."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from tf2_msgs.msg import TFMessage
    from vision_msgs.msg import Detection2DArray

    det_topic, tf_topic = unique_topic("detections"), unique_topic("tf")
    pub_node = rclpy.create_node("interfaces_test_pub", context=ros_context)
    sub_node = rclpy.create_node("interfaces_test_sub", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    try:
        received: dict[str, list] = {"det": [], "tf": []}
        sub_node.create_subscription(Detection2DArray, det_topic, received["det"].append, 10)
        sub_node.create_subscription(TFMessage, tf_topic, received["tf"].append, 10)
        det_pub = pub_node.create_publisher(Detection2DArray, det_topic, 10)
        tf_pub = pub_node.create_publisher(TFMessage, tf_topic, 10)
        executor.add_node(pub_node)
        executor.add_node(sub_node)

        assert spin_until(executor, lambda: det_pub.get_subscription_count() == 1
                          and tf_pub.get_subscription_count() == 1
                          and sub_node.count_publishers(det_topic) == 1
                          and sub_node.count_publishers(tf_topic) == 1), "publishers and subscriptions never matched"
        sent_det, sent_tf = make_detections(), make_transforms()
        det_pub.publish(sent_det)
        tf_pub.publish(sent_tf)
        assert spin_until(executor, lambda: received["det"] and received["tf"]), f"received only {received}"

        assert received["det"] == [sent_det]
        assert received["tf"] == [sent_tf]
        assert received["det"][0].detections[1].results[0].hypothesis.class_id == "drill"
        assert received["tf"][0].transforms[0].child_frame_id == "mug"
        (det_info,) = sub_node.get_publishers_info_by_topic(det_topic)
        (tf_info,) = sub_node.get_publishers_info_by_topic(tf_topic)
        assert det_info.topic_type == "vision_msgs/msg/Detection2DArray"
        assert str(det_info.topic_type_hash) == UPSTREAM_TYPE_HASHES["vision_msgs/msg/Detection2DArray"]
        assert str(tf_info.topic_type_hash) == UPSTREAM_TYPE_HASHES["tf2_msgs/msg/TFMessage"]
    finally:
        executor.shutdown()
        pub_node.destroy_node()
        sub_node.destroy_node()


def test_static_transforms_reach_a_late_subscriber(ros_context):
    """/tf_static style: transient-local, depth 1, published before anyone subscribes."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    static_qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                            reliability=ReliabilityPolicy.RELIABLE)
    topic = unique_topic("tf_static")
    pub_node = rclpy.create_node("interfaces_test_static_pub", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(pub_node)
    sub_node = None
    try:
        sent = make_transforms()
        pub_node.create_publisher(TFMessage, topic, static_qos).publish(sent)

        sub_node = rclpy.create_node("interfaces_test_static_sub", context=ros_context)
        received: list = []
        sub_node.create_subscription(TFMessage, topic, received.append, static_qos)
        executor.add_node(sub_node)
        assert spin_until(executor, lambda: bool(received)), "late subscriber got no static transforms"
        assert received == [sent]
    finally:
        executor.shutdown()
        pub_node.destroy_node()
        if sub_node is not None:
            sub_node.destroy_node()


PUBLISHER_PROCESS = SAMPLES_SOURCE + textwrap.dedent('''
    import sys, time
    import rclpy
    from tf2_msgs.msg import TFMessage
    from vision_msgs.msg import Detection2DArray

    det_topic, tf_topic, timeout_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
    rclpy.init()
    node = rclpy.create_node("interfaces_test_publisher_process")
    det_pub = node.create_publisher(Detection2DArray, det_topic, 10)
    tf_pub = node.create_publisher(TFMessage, tf_topic, 10)
    deadline = time.monotonic() + timeout_s
    while det_pub.get_subscription_count() < 1 or tf_pub.get_subscription_count() < 1:
        if time.monotonic() > deadline:
            sys.exit("publisher process: no subscription matched within %.0f s" % timeout_s)
        time.sleep(0.05)
    det_pub.publish(make_detections())
    tf_pub.publish(make_transforms())
    print("published", flush=True)
    sys.stdin.read()  # stay alive (reliable resends) until the test closes our stdin
    node.destroy_node()
    rclpy.shutdown()
''')


def test_round_trip_from_publisher_process(ros_context):
    """The publisher runs in a separate `python -c` process; this process subscribes."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from tf2_msgs.msg import TFMessage
    from vision_msgs.msg import Detection2DArray

    det_topic, tf_topic = unique_topic("detections"), unique_topic("tf")
    node = rclpy.create_node("interfaces_test_subscriber", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    received: dict[str, list] = {"det": [], "tf": []}
    node.create_subscription(Detection2DArray, det_topic, received["det"].append, 10)
    node.create_subscription(TFMessage, tf_topic, received["tf"].append, 10)

    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER_PROCESS, det_topic, tf_topic, str(TIMEOUT_S)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ))
    try:
        assert spin_until(executor, lambda: node.count_publishers(det_topic) == 1
                          and node.count_publishers(tf_topic) == 1
                          or proc.poll() is not None), "publisher process never appeared in the graph"
        assert proc.poll() is None, f"publisher process exited early: {proc.communicate()}"
        got_both = spin_until(executor, lambda: received["det"] and received["tf"] or proc.poll() is not None)
        assert got_both and received["det"] and received["tf"], f"received only {received}"

        assert received["det"] == [make_detections()]
        assert received["tf"] == [make_transforms()]
        # The hashes the other process announced for its publishers are upstream's.
        # Node names arrive through a discovery topic of their own, possibly after the endpoints.
        assert spin_until(executor, lambda: [i.node_name for i in node.get_publishers_info_by_topic(det_topic)]
                          == ["interfaces_test_publisher_process"]), "publisher node name never discovered"
        (det_info,) = node.get_publishers_info_by_topic(det_topic)
        (tf_info,) = node.get_publishers_info_by_topic(tf_topic)
        assert str(det_info.topic_type_hash) == UPSTREAM_TYPE_HASHES["vision_msgs/msg/Detection2DArray"]
        assert str(tf_info.topic_type_hash) == UPSTREAM_TYPE_HASHES["tf2_msgs/msg/TFMessage"]
    finally:
        executor.shutdown()
        node.destroy_node()
        try:
            out, err = proc.communicate(input="", timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert proc.returncode == 0, f"publisher process exited {proc.returncode}: {out}\n{err}"
    assert "published" in out

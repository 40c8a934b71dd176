"""/tf and /tf_static into a TransformHistory (geometry/transform_history.py), for the optional `target_frame`.

tf2_ros is not on PyPI, so the node keeps its own buffer: every sample of the last `cache_s`
seconds per edge, looked up at the image stamp with interpolation, as tf2's buffer does.
"""
from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from novel_pose_ros.geometry.se3 import make_T, matrix_from_quaternion
from novel_pose_ros.geometry.transform_history import DEFAULT_CACHE_S, TransformHistory
from novel_pose_ros.ros.conversions import stamp_to_nanoseconds


def transform_to_matrix(transform) -> np.ndarray:
    q, t = transform.rotation, transform.translation
    return make_T(matrix_from_quaternion(np.array([q.x, q.y, q.z, q.w])), [t.x, t.y, t.z])


class TfBuffer:
    """Subscribes to /tf and /tf_static on `node`; `history` answers lookups at a time."""

    def __init__(self, node: Node, cache_s: float = DEFAULT_CACHE_S) -> None:
        self._node = node
        self.history = TransformHistory(cache_s)
        dynamic = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        static = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._subscriptions = [node.create_subscription(TFMessage, "/tf", lambda msg: self._on_tf(msg, False), dynamic),
                               node.create_subscription(TFMessage, "/tf_static", lambda msg: self._on_tf(msg, True), static)]

    def _on_tf(self, msg: TFMessage, static: bool) -> None:
        for stamped in msg.transforms:
            try:
                T = transform_to_matrix(stamped.transform)
            except ValueError:  # a zero or NaN quaternion: not a transform, skip it (the others stay)
                continue
            self.history.add(stamped.header.frame_id, stamped.child_frame_id,
                             stamp_to_nanoseconds(stamped.header.stamp), T, static=static)

    def destroy(self) -> None:
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
        self._subscriptions = []

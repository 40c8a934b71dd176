"""The newest transforms from /tf and /tf_static, chained between any two connected frames.

Used for the optional `target_frame`. It keeps only the latest transform per edge (no
interpolation in time), which is exact for static transforms (a camera mount) and a close
approximation for slowly moving ones; tf2_ros is not available on every install.
"""
from __future__ import annotations

import threading
from collections import deque

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from novel_pose_ros.geometry.se3 import invert_T, make_T, matrix_from_quaternion


def transform_to_matrix(transform) -> np.ndarray:
    q, t = transform.rotation, transform.translation
    return make_T(matrix_from_quaternion(np.array([q.x, q.y, q.z, q.w])), [t.x, t.y, t.z])


class LatestTfBuffer:
    def __init__(self, node: Node) -> None:
        self._edges: dict[tuple[str, str], np.ndarray] = {}  # (parent, child) -> T_parent_child
        self._lock = threading.Lock()
        dynamic = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        static = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._subscriptions = [node.create_subscription(TFMessage, "/tf", self._on_tf, dynamic),
                               node.create_subscription(TFMessage, "/tf_static", self._on_tf, static)]

    def _on_tf(self, msg: TFMessage) -> None:
        with self._lock:
            for stamped in msg.transforms:
                self._edges[(stamped.header.frame_id.lstrip("/"), stamped.child_frame_id.lstrip("/"))] = \
                    transform_to_matrix(stamped.transform)

    def lookup(self, target: str, source: str) -> np.ndarray | None:
        """T_target_source (maps source-frame points into target), or None when the frames are not connected."""
        if target == source:
            return np.eye(4)
        with self._lock:
            neighbours: dict[str, list[tuple[str, np.ndarray]]] = {}
            for (parent, child), T in self._edges.items():
                neighbours.setdefault(parent, []).append((child, T))  # p_parent = T p_child
                neighbours.setdefault(child, []).append((parent, invert_T(T)))
        found = {target: np.eye(4)}  # frame -> T_target_frame
        queue = deque([target])
        while queue:
            frame = queue.popleft()
            for other, T_frame_other in neighbours.get(frame, []):
                if other not in found:
                    found[other] = found[frame] @ T_frame_other
                    if other == source:
                        return found[other]
                    queue.append(other)
        return None

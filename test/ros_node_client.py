"""The pose_estimator node as its own process, and a test-side client of it: publishes synchronised inputs,
collects every output."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from helpers import REPO_ROOT, TOY_BLOCK, bundled_objects_yaml
from ros_helpers import finish, spin_until, stamp_ns

FRAME = "camera_color_optical_frame"
K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])
STARTUP_TIMEOUT_S = 240.0  # first start renders templates and computes features
FRAME_TIMEOUT_S = 60.0


def start_pose_estimator(folder: Path, parameters: dict[str, object], objects=(TOY_BLOCK,),
                         templates_dir: Path | None = None, namespace: str = "",
                         env: dict[str, str] | None = None) -> subprocess.Popen:
    """The node with config/pose_estimator.yaml, an objects file of bundled meshes (in metres) written to
    `folder`, templates in `templates_dir` (default folder/templates) and `parameters` over the file's."""
    objects_file = bundled_objects_yaml(folder, objects)
    command = [sys.executable, "-m", "novel_pose_ros.ros.pose_estimator_node", "--ros-args",
               *(["-r", f"__ns:={namespace}"] if namespace else []),
               "--params-file", str(REPO_ROOT / "config" / "pose_estimator.yaml"),
               "-p", f"objects_file:={objects_file}", "-p", f"templates_dir:={templates_dir or folder / 'templates'}"]
    for name, value in parameters.items():
        command += ["-p", f"{name}:={str(value).lower() if isinstance(value, bool) else value}"]
    return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})


class Client:
    """Publishes synchronised inputs and collects everything the node publishes. With a `namespace` (the
    node's, e.g. "/left") its inputs and outputs are under it; `got` keys stay the names without it."""

    GLOBAL_TOPICS = ("/tf", "/diagnostics")

    def __init__(self, node, executor, namespace: str = "", depth: bool = False):
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray, PoseStamped
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import String
        from tf2_msgs.msg import TFMessage
        from vision_msgs.msg import Detection2DArray, Detection3DArray
        from visualization_msgs.msg import MarkerArray

        self.node, self.executor = node, executor
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = {name: node.create_publisher(t, f"{namespace}/{name}" if namespace else name, reliable) for name, t in
                     [("image", Image), ("camera_info", CameraInfo), ("detections", Detection2DArray),
                      ("detection_masks", Image)] + ([("depth", Image)] if depth else [])}
        self.got: dict[str, list] = {}
        outputs = {"/object_poses": PoseArray, "/pose_estimator/detections_3d": Detection3DArray, "/tf": TFMessage,
                   "/pose_estimator/markers": MarkerArray, "/pose_estimator/overlay": Image,
                   "/pose_estimator/object_poses/toy_block": PoseStamped, "/diagnostics": DiagnosticArray}
        for topic, msg_type in outputs.items():
            self.got[topic] = []
            where = topic if topic in self.GLOBAL_TOPICS else namespace + topic
            node.create_subscription(msg_type, where, self.got[topic].append, QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.got["symmetries"] = []
        node.create_subscription(String, f"{namespace}/pose_estimator/object_symmetries", self.got["symmetries"].append, latched)
        self.next_stamp_s = 1000

    def send(self, image, masks, classes, K_matrix=K, encoding="rgb8", info_size=None, scores=None, ids=None,
             edit_detections=None, frame_id=FRAME, distortion=None, stamp_s=None, parts=("camera", "detector"),
             depth_m=None, depth_encoding="32FC1"):
        """Publish one synchronised frame; returns its stamp in ns. ids: the Detection2D ids (default "0", "1", …);
        edit_detections(Detection2DArray): changes the message before it is sent (malformed detections);
        depth_m: the depth image (metres) of a client made with depth=True, sent as depth_encoding."""
        from std_msgs.msg import Header

        from novel_pose_ros.geometry.crop import box_from_mask
        from novel_pose_ros.ros import conversions as cv
        from novel_pose_ros.types import Detection

        if stamp_s is None:
            self.next_stamp_s += 1
            stamp_s = self.next_stamp_s + 0.25
        header = Header(stamp=cv.seconds_to_stamp(stamp_s), frame_id=frame_id)
        detections = [Detection(c, box_from_mask(m), (scores or [0.9] * len(classes))[i], m) for i, (c, m) in enumerate(zip(classes, masks))]
        image_msg = cv.rgb_to_image_msg(image, header)
        image_msg.encoding = encoding
        info = cv.camera_info_msg(K_matrix, *(info_size or image.shape[:2]), header)
        if distortion is not None:
            info.distortion_model, info.d = distortion[0], list(distortion[1])
        if "camera" in parts:
            self.pubs["camera_info"].publish(info)
        detections_msg = cv.detections_to_msg(detections, header)
        for detection, ident in zip(detections_msg.detections, ids or []):
            detection.id = ident
        if edit_detections is not None:
            edit_detections(detections_msg)
        if "detector" in parts:
            self.pubs["detections"].publish(detections_msg)
            self.pubs["detection_masks"].publish(cv.masks_to_label_image_msg(masks, image.shape[:2], header))
        if "camera" in parts and "depth" in self.pubs:
            self.pubs["depth"].publish(cv.depth_to_image_msg(depth_m, header, depth_encoding))
        if "camera" in parts:
            self.pubs["image"].publish(image_msg)
        return stamp_ns(image_msg)

    def wait_for_node(self, proc: subprocess.Popen) -> "Client":
        """Wait until the node process subscribes to every input of this client (it has started); fail with
        the end of its log when it exits or does not."""
        ready = spin_until(self.executor, lambda: proc.poll() is not None or all(
            p.get_subscription_count() >= 1 for p in self.pubs.values()), STARTUP_TIMEOUT_S)
        assert ready and proc.poll() is None, f"pose_estimator did not start: {finish(proc)[1][-3000:]}"
        return self

    def first(self, topic: str, predicate, timeout_s: float = FRAME_TIMEOUT_S):
        """The first message on `topic` for which predicate(msg) holds, waiting for it (None on timeout)."""
        found = lambda: next((m for m in self.got[topic] if predicate(m)), None)  # noqa: E731
        spin_until(self.executor, lambda: found() is not None, timeout_s)
        return found()

    def output_for(self, stamp: int, topic: str = "/object_poses", timeout_s: float = FRAME_TIMEOUT_S):
        return self.first(topic, lambda m: stamp_ns(m) == stamp, timeout_s)

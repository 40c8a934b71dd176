"""Everything the pose_estimator publishes for one frame, created together and published together.

Topics (`object_poses` is relative to the node's namespace: /object_poses without one, /left/object_poses
in namespace `left`, so that two cameras' nodes do not collide; `~/` ones are private):
  object_poses                    geometry_msgs/PoseArray, one pose per instance, detection order
  ~/object_poses/<object_name>    geometry_msgs/PoseStamped of the most confident instance of that object
  ~/detections_3d                 vision_msgs/Detection3DArray, one entry per input detection in input order: id =
                                  the input Detection2D.id (else <name>_<instance>), class_id = object name, score =
                                  pose confidence; held-back poses and detections without a pose flagged by an id
                                  suffix (":below_min_confidence", ":failed:<cause>", ":below_score_threshold"); the
                                  unflagged entries are /object_poses, in its order
  /tf                             <frame_prefix><object_name>_<instance> frames, children of the image frame; an
                                  instance keeps its number across frames (instance_tracking.py)
  ~/markers                       visualization_msgs/MarkerArray (mesh + label per instance; DELETE when an
                                  instance expires: ros/markers.py)
  ~/overlay                       sensor_msgs/Image, mesh contours on the input coloured by confidence, held-back
                                  poses included (only when subscribed)
Poses whose confidence is below `min_confidence` are held back: only ~/detections_3d and ~/overlay show them.
  ~/object_symmetries             std_msgs/String, JSON, latched (symmetries of every object, metres)
All carry the input image's stamp and frame (or `target_frame` when set).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from novel_pose_ros.estimation.overlay import draw_overlay
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.render import Renderer
from novel_pose_ros.ros import conversions
from novel_pose_ros.ros.markers import marker_array_msg, mesh_resource_url
from novel_pose_ros.ros.qos import latched_qos
from novel_pose_ros.types import Frame, PoseEstimate

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class PoseOutputs:
    """The result publishers. On a lifecycle node they are lifecycle publishers: nothing goes out while the
    node is inactive (a frame still in the worker at deactivation is not published). The latched
    symmetries are published at configure (static metadata, for inactive nodes too)."""

    def __init__(self, node: Node, library: ObjectLibrary, frame_prefix: str = "") -> None:
        self._node = node
        self._library = library
        self._prefix = frame_prefix
        self._lifecycle = hasattr(node, "create_lifecycle_publisher")
        create = node.create_lifecycle_publisher if self._lifecycle else node.create_publisher
        self.poses = create(PoseArray, "object_poses", RELIABLE)
        self.best = {name: create(PoseStamped, f"~/object_poses/{name}", RELIABLE) for name in library.names}
        self.detections = create(Detection3DArray, "~/detections_3d", RELIABLE)
        self.tf = create(TFMessage, "/tf", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.markers = create(MarkerArray, "~/markers", RELIABLE)
        self.overlay = create(Image, "~/overlay", RELIABLE)
        self.symmetries = node.create_publisher(String, "~/object_symmetries", latched_qos())
        self.symmetries.publish(conversions.symmetries_msg(library))
        local = [obj.name for obj in library if mesh_resource_url(obj.mesh_path).startswith("file://")]
        if local:
            node.get_logger().info(f"RViz markers of {', '.join(local)} use file:// URLs, which only this machine can "
                                   "open; a mesh installed in a ROS package's share/ folder gets a package:// URL")

    def publish(self, poses: list[PoseEstimate], header, frame: Frame, renderer: Renderer,
                T_target_cam: np.ndarray | None, flags: dict[str, object], ids: dict[int, str] | None = None,
                unposed: list[tuple[int, str, str]] = (), expired: list[tuple[str, int]] = ()) -> list[PoseEstimate]:
        """Publish one frame's results. T_target_cam re-expresses the poses in header.frame_id's frame;
        ids / unposed: the input detections' ids and the ones without a pose (conversions.detection3d_array_msg);
        expired: the (object, instance) pairs whose markers go.
        Returns the poses held back (confidence below flags["min_confidence"])."""
        if T_target_cam is not None:
            poses = [replace(p, T_cam_obj=T_target_cam @ p.T_cam_obj) for p in poses]
        trusted = [p for p in poses if p.ranking_score >= flags["min_confidence"]]
        held_back = [p for p in poses if p.ranking_score < flags["min_confidence"]]
        self.poses.publish(conversions.pose_array_msg(trusted, header))
        self.detections.publish(conversions.detection3d_array_msg(trusted, self._library, header, held_back, ids, unposed,
                                                                  self._prefix))
        best: dict[str, PoseEstimate] = {}
        for p in trusted:
            if p.object_id not in best or p.ranking_score > best[p.object_id].ranking_score:
                best[p.object_id] = p
        for name, p in best.items():
            self.best[name].publish(conversions.pose_stamped_msg(p.T_cam_obj, header))
        if flags["publish_tf"] and trusted:
            self.tf.publish(conversions.transforms_msg(trusted, header, self._prefix))
        if flags["publish_markers"]:
            self.markers.publish(marker_array_msg(trusted, self._library, header, flags["marker_lifetime_s"], expired,
                                                  self._prefix))
        if flags["publish_overlay"] and self.overlay.get_subscription_count() > 0:
            # Drawn in the camera frame whatever the target frame: undo the re-expression.
            T_cam_target = np.linalg.inv(T_target_cam) if T_target_cam is not None else np.eye(4)
            instances = [(self._library.get(p.object_id), T_cam_target @ p.T_cam_obj, conversions.instance_frame_id(p.object_id, p.instance, self._prefix),
                          p.confidence) for p in poses]
            image = draw_overlay(frame.image, frame.K, instances, renderer)
            self.overlay.publish(conversions.rgb_to_image_msg(image, header))
        return held_back

    def destroy(self) -> None:
        destroy = self._node.destroy_lifecycle_publisher if self._lifecycle else self._node.destroy_publisher
        for publisher in (self.poses, self.detections, self.tf, self.markers, self.overlay, *self.best.values()):
            destroy(publisher)
        self._node.destroy_publisher(self.symmetries)

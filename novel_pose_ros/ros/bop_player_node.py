"""bop_player: plays a BOP-format dataset as camera topics, for demos, tests and replays.

    python -m novel_pose_ros.ros.bop_player_node --ros-args --params-file config/bop_player.yaml -p dataset:=/data/ycbv

Topics (relative names: remap or namespace them):
  image            sensor_msgs/Image, rgb8
  camera_info      sensor_msgs/CameraInfo: K from scene_camera.json, no distortion
  detections       vision_msgs/Detection2DArray: class_id = object name (`objects_file` maps BOP ids
                   to names; obj_XXXXXX otherwise), from `detections_file` (CNOS JSON; relative paths
                   are relative to the dataset) or, when that is empty, from the GT (`detections_from_gt`)
  detection_masks  sensor_msgs/Image, mono16 label image (pixel = detection index + 1), if publish_masks
  depth            sensor_msgs/Image, 32FC1 metres or 16UC1 millimetres, if publish_depth
  ~/ground_truth   geometry_msgs/PoseArray of the GT T_cam_obj, and ~/ground_truth_ids std_msgs/String
                   JSON {stamp, frame_id, scene_id, im_id, names, obj_ids} in the same order, if
                   publish_ground_truth
All messages of one frame carry the same header: `frame_id` and the node clock at publish time,
strictly increasing (also across loops). After one pass with loop=false the node exits
(exit_when_done) or stays idle.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseArray
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.duration import Duration
from rclpy.exceptions import ParameterException, ParameterUninitializedException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String
from vision_msgs.msg import Detection2DArray

from novel_pose_ros.bop.dataset import BopDataset, BopImage
from novel_pose_ros.bop.detections import decode_mask
from novel_pose_ros.ros.log_bridge import bridge_library_logs
from novel_pose_ros.ros import conversions as cv
from novel_pose_ros.ros.qos import RELIABILITIES, sensor_qos
from novel_pose_ros.types import Detection
from novel_pose_ros.yaml_files import read_yaml

MATCH_GRACE_S = 2.0  # after `image` has a subscriber, how long to wait for the other topics to match too
# name: (default or parameter type when unset, description, choices)
PARAMETERS: dict[str, tuple[Any, str, tuple[str, ...]]] = {
    "dataset": ("", "BOP dataset root (holds models/ and the split folder)", ()),
    "split": ("test", "split folder to play", ()),
    "detections_file": ("", "CNOS-format detection JSON (relative: to the dataset); empty: see detections_from_gt", ()),
    "detections_from_gt": (False, "without detections_file, derive detections from the GT (rendered visible masks)", ()),
    "objects_file": ("", "objects YAML mapping BOP ids to names (empty: names obj_XXXXXX)", ()),
    "rate_hz": (2.0, "frames per second", ()),
    "loop": (False, "start again after the last image", ()),
    "exit_when_done": (True, "with loop=false: exit after one pass (else stay idle)", ()),
    "publish_depth": (False, "publish the depth topic", ()),
    "depth_encoding": ("32FC1", "depth encoding", ("32FC1", "16UC1")),
    "publish_masks": (False, "publish detection_masks (mono16 label image)", ()),
    "frame_id": ("camera_color_optical_frame", "frame_id of every message (the camera optical frame)", ()),
    "scene_ids": (Parameter.Type.INTEGER_ARRAY, "play only these scenes (unset: all)", ()),
    "image_ids": (Parameter.Type.INTEGER_ARRAY, "play only these image ids (unset: all)", ()),
    "wait_for_subscribers": (True, "publish the first frame only once `image` has a subscriber", ()),
    "publish_ground_truth": (False, "publish ~/ground_truth and ~/ground_truth_ids", ()),
    "reliability": ("reliable", "QoS reliability of the published topics", tuple(RELIABILITIES)),
}


def declare_parameters(node: Node) -> dict[str, Any]:
    """Declare every parameter with a descriptor; values (None = unset) after checking the choices."""
    values = {}
    for name, (default, description, choices) in PARAMETERS.items():
        descriptor = ParameterDescriptor(description=description, read_only=True,
                                         additional_constraints="one of: " + ", ".join(choices) if choices else "")
        if name == "rate_hz":
            descriptor.floating_point_range = [FloatingPointRange(from_value=0.01, to_value=1000.0, step=0.0)]
        node.declare_parameter(name, default, descriptor)
        try:
            values[name] = node.get_parameter(name).value
        except ParameterUninitializedException:
            values[name] = None
        if choices and values[name] not in choices:
            raise ValueError(f"parameter {name} must be one of {', '.join(choices)}, got '{values[name]}'")
    return values


def object_names(objects_file: str) -> dict[int, str]:
    """BOP id -> name from an objects YAML (config/objects.yaml layout); meshes are not loaded."""
    if not objects_file:
        return {}
    entries = read_yaml(Path(objects_file), "objects file").get("objects") or []
    try:
        return {int(e["id"]): str(e["name"]) for e in entries}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"objects file {objects_file}: every object needs an integer id and a name ({exc!r})") from None


class DetectionSource:
    """Detections (object names) per image: from a CNOS JSON, masks decoded only when wanted, or from the GT."""

    def __init__(self, dataset: BopDataset, images: list[BopImage], names: dict[int, str], detections_file: str,
                 from_gt: bool, with_masks: bool) -> None:
        self._dataset, self._names, self._with_masks = dataset, names, with_masks
        self._entries: dict[tuple[int, int], list[tuple[Detection, dict | None]]] | None = None
        self._gt_iter: Iterator | None = None
        self._renderer = None
        if detections_file:
            path = Path(detections_file) if Path(detections_file).is_absolute() else dataset.root / detections_file
            wanted = {(im.scene_id, im.im_id) for im in images}
            self._entries = {key: [] for key in wanted}
            skipped = 0
            for e in json.loads(path.read_text()):
                try:  # masks stay RLE until their frame is played
                    key = (int(e["scene_id"]), int(e["image_id"]))
                    if key in wanted:
                        d = Detection(self.name(int(e["category_id"])), tuple(e["bbox"]), float(e.get("score", 1.0)))
                        self._entries[key].append((d, e.get("segmentation")))
                except (KeyError, TypeError, ValueError):
                    skipped += 1
            self.description = (f"{sum(map(len, self._entries.values()))} detections from {path}"
                                + (f", {skipped} malformed entries skipped" if skipped else ""))
        elif from_gt:
            from novel_pose_ros.render import create_renderer

            self._renderer = create_renderer("auto")
            self.description = f"detections from the ground truth ({self._renderer.name})"
        else:
            raise ValueError("set detections_file (a CNOS JSON) or detections_from_gt: true")

    def name(self, obj_id: int) -> str:
        return self._names.get(obj_id, f"obj_{obj_id:06d}")

    def restart(self) -> None:
        self._gt_iter = None

    def get(self, image: BopImage) -> list[Detection]:
        if self._entries is not None:
            return [replace(d, mask=decode_mask(rle)) if self._with_masks and rle else d
                    for d, rle in self._entries[(image.scene_id, image.im_id)]]
        from novel_pose_ros.bop.gt_detections import iter_detections_from_gt

        if self._gt_iter is None:  # GT detections come in dataset order; selected images are a subsequence
            self._gt_iter = zip(self._dataset.images(), iter_detections_from_gt(self._dataset, self._renderer))
        for candidate, detections in self._gt_iter:
            if (candidate.scene_id, candidate.im_id) == (image.scene_id, image.im_id):
                return [Detection(self.name(d.obj_id), d.bbox_xywh, d.score, d.mask) for d in detections]
        raise KeyError(f"no GT detections for scene {image.scene_id} image {image.im_id}")


class BopPlayer(Node):
    def __init__(self) -> None:
        super().__init__("bop_player")
        p = self.params = declare_parameters(self)
        if not p["dataset"]:
            raise ValueError("parameter dataset is required (the BOP dataset root)")
        dataset = BopDataset(p["dataset"], p["split"])
        self._images = [im for im in dataset.images() if (p["scene_ids"] is None or im.scene_id in p["scene_ids"])
                        and (p["image_ids"] is None or im.im_id in p["image_ids"])]
        if not self._images:
            raise ValueError(f"no images in {dataset.split_dir} match scene_ids={p['scene_ids']} image_ids={p['image_ids']}")
        if p["publish_depth"] and any(im.depth_path is None for im in self._images):
            raise ValueError(f"publish_depth is true but {dataset.split_dir} has images without depth")
        self._detections = DetectionSource(dataset, self._images, object_names(p["objects_file"]), p["detections_file"],
                                           p["detections_from_gt"], p["publish_masks"])
        topics = {"image": Image, "camera_info": CameraInfo, "detections": Detection2DArray,
                  "detection_masks": Image if p["publish_masks"] else None, "depth": Image if p["publish_depth"] else None}
        qos = sensor_qos(5, p["reliability"])
        self._pubs = {name: self.create_publisher(t, name, qos) for name, t in topics.items() if t is not None}
        if p["publish_ground_truth"]:
            self._pubs["ground_truth"] = self.create_publisher(PoseArray, "~/ground_truth", 10)
            self._pubs["ground_truth_ids"] = self.create_publisher(String, "~/ground_truth_ids", 10)
        self._index, self._played, self._last_stamp_ns = 0, 0, 0
        self._matched_since: float | None = None
        self._started = not p["wait_for_subscribers"]
        self.exit_requested = False
        self._timer = self.create_timer(1.0 / p["rate_hz"], self._tick)
        scenes = sorted({im.scene_id for im in self._images})
        self.get_logger().info(f"playing {len(self._images)} images of scenes {scenes} from {dataset.split_dir} at "
                               f"{p['rate_hz']:g} Hz ({self._detections.description}; loop={p['loop']}; "
                               f"topics: {', '.join(pub.topic_name for pub in self._pubs.values())})")

    def _ready(self) -> bool:
        """With wait_for_subscribers: `image` has a subscriber, and the other topics as many (or MATCH_GRACE_S passed)."""
        if self._started:
            return True
        wanted = self._pubs["image"].get_subscription_count()
        if wanted == 0:
            self.get_logger().info(f"waiting for a subscriber on {self._pubs['image'].topic_name}", once=True)
            return False
        self._matched_since = self._matched_since or time.monotonic()
        others = [pub.get_subscription_count() >= wanted for pub in self._pubs.values()]
        self._started = all(others) or time.monotonic() - self._matched_since > MATCH_GRACE_S
        return self._started

    def _tick(self) -> None:
        if not self._ready():
            return
        if self._index == len(self._images):
            if not self.params["loop"]:
                return self._finish()
            self._index = 0
            self._detections.restart()
            self.get_logger().info(f"looping: {self._played} frames played so far")
        image = self._images[self._index]
        self._index += 1
        try:
            self._publish(image)
        except (OSError, ValueError, KeyError) as exc:  # a broken file costs its frame, not the node
            self.get_logger().error(f"scene {image.scene_id} image {image.im_id} skipped: {exc}", throttle_duration_sec=5.0)

    def _finish(self) -> None:
        self._timer.cancel()
        then = "exiting" if self.params["exit_when_done"] else "staying idle"
        self.get_logger().info(f"played {self._played} frames, one pass (loop=false): {then}")
        self.exit_requested = self.params["exit_when_done"]

    def _next_stamp(self) -> Header:
        stamp_ns = max(self.get_clock().now().nanoseconds, self._last_stamp_ns + 1)
        self._last_stamp_ns = stamp_ns
        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=self.params["frame_id"])

    def _publish(self, image: BopImage) -> None:
        rgb = image.load_rgb()
        detections = self._detections.get(image)
        header = self._next_stamp()
        self._pubs["image"].publish(cv.rgb_to_image_msg(rgb, header))
        self._pubs["camera_info"].publish(cv.camera_info_msg(image.K, rgb.shape[0], rgb.shape[1], header))
        self._pubs["detections"].publish(cv.detections_to_msg(detections, header))
        if "detection_masks" in self._pubs:
            masks = [d.mask for d in detections]
            self._pubs["detection_masks"].publish(cv.masks_to_label_image_msg(masks, rgb.shape[:2], header))
        if "depth" in self._pubs:
            self._pubs["depth"].publish(cv.depth_to_image_msg(image.load_depth_m(), header, self.params["depth_encoding"]))
        if "ground_truth" in self._pubs:
            self._pubs["ground_truth"].publish(PoseArray(header=header, poses=[cv.pose_msg(g.T_cam_obj) for g in image.gt]))
            ids = {"stamp": {"sec": header.stamp.sec, "nanosec": header.stamp.nanosec}, "frame_id": header.frame_id,
                   "scene_id": image.scene_id, "im_id": image.im_id, "obj_ids": [g.obj_id for g in image.gt],
                   "names": [self._detections.name(g.obj_id) for g in image.gt]}
            self._pubs["ground_truth_ids"].publish(String(data=json.dumps(ids)))
        self._played += 1
        self.get_logger().info(f"frame {self._played}: scene {image.scene_id} image {image.im_id}, "
                               f"{len(detections)} detections", throttle_duration_sec=5.0)

    def flush(self, timeout_s: float = 2.0) -> None:
        """Wait (bounded) until reliable subscribers have acknowledged everything sent."""
        if self.params["reliability"] == "reliable":
            for pub in self._pubs.values():
                pub.wait_for_all_acked(Duration(seconds=timeout_s))


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    bridge_library_logs(rclpy.logging.get_logger("bop_player"))  # the dataset is read while the node is made
    try:
        node = BopPlayer()
    except (ValueError, KeyError, OSError, ParameterException) as exc:
        rclpy.logging.get_logger("bop_player").fatal(f"cannot start: {exc}")
        rclpy.try_shutdown()
        return 1
    try:
        while rclpy.ok() and not node.exit_requested:
            rclpy.spin_once(node, timeout_sec=0.1)
        if node.exit_requested:
            node.flush()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

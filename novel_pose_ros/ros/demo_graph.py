"""The demo's ROS graph: a bop_player process feeds a pose_estimator process; this process listens.

`play_dataset` starts both nodes as separate ROS 2 processes on loopback, collects every frame's
3D detections (and /object_poses), the player's ground truth and the overlay images, stops the
estimator, and returns one `FrameResult` per played frame.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from novel_pose_ros.geometry.se3 import make_T, matrix_from_quaternion, rotation_angle_rad
from novel_pose_ros.paths import share_dir

STARTUP_TIMEOUT_S = 300.0
IDLE_GRACE_S = 20.0  # after the player is done: how long to wait for one more answer


def _pose_T(pose) -> np.ndarray:
    q, p = pose.orientation, pose.position
    return make_T(matrix_from_quaternion(np.array([q.x, q.y, q.z, q.w])), [p.x, p.y, p.z])


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


@dataclass
class FrameResult:
    """One played frame: estimates (name, instance id, T_cam_obj, pose confidence), ground truth (name, T_cam_obj)."""

    stamp_ns: int
    scene_id: int = -1
    im_id: int = -1
    estimates: list[tuple[str, str, np.ndarray, float]] = field(default_factory=list)
    ground_truth: list[tuple[str, np.ndarray]] = field(default_factory=list)
    latency_s: float | None = None
    poses_in_pose_array: int | None = None
    overlay_path: Path | None = None

    def errors(self) -> list[tuple[float, float] | None]:
        """(translation error m, rotation error deg) per estimate against the nearest GT of its object."""
        out = []
        for name, _, T, _ in self.estimates:
            candidates = [G for n, G in self.ground_truth if n == name]
            if not candidates:
                out.append(None)
                continue
            G = min(candidates, key=lambda G: np.linalg.norm(G[:3, 3] - T[:3, 3]))
            out.append((float(np.linalg.norm(G[:3, 3] - T[:3, 3])), float(np.degrees(rotation_angle_rad(G[:3, :3], T[:3, :3])))))
        return out


def start_node_process(module: str, params_file: Path, overrides: dict[str, object], log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", module, "--ros-args", "--params-file", str(params_file)]
    for name, value in overrides.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        command += ["-p", f"{name}:={text}"]
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=dict(os.environ))


def play_dataset(dataset: Path, objects_file: Path, out_dir: Path, estimator_params: dict[str, object],
                 player_params: dict[str, object], label: str, timeout_s: float = STARTUP_TIMEOUT_S) -> list[FrameResult]:
    """Run the graph on `dataset` (played once) and collect the results; raises RuntimeError if the graph fails."""
    import rclpy
    from geometry_msgs.msg import PoseArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    from vision_msgs.msg import Detection3DArray

    from novel_pose_ros.ros.conversions import image_to_rgb

    out_dir.mkdir(parents=True, exist_ok=True)
    config = share_dir() / "config"
    estimator = start_node_process("novel_pose_ros.ros.pose_estimator_node", config / "pose_estimator.yaml",
                       {"objects_file": objects_file, "use_masks": True, "input_reliability": "reliable", **estimator_params},
                       out_dir / f"{label}_pose_estimator.log")
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f"demo_listener_{os.getpid()}", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    frames: dict[int, FrameResult] = {}
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)

    def frame(header) -> FrameResult:
        return frames.setdefault(_stamp_ns(header), FrameResult(_stamp_ns(header)))

    def on_detections(msg) -> None:
        result = frame(msg.header)
        result.latency_s = time.time() - result.stamp_ns * 1e-9
        # entries without results are input detections that got no pose (their id says why)
        result.estimates = [(d.results[0].hypothesis.class_id, d.id, _pose_T(d.results[0].pose.pose),
                             float(d.results[0].hypothesis.score)) for d in msg.detections if d.results]

    def on_ground_truth_ids(msg) -> None:
        info = json.loads(msg.data)  # {stamp: {sec, nanosec}, scene_id, im_id, names, ...}
        pending_ids[info["stamp"]["sec"] * 1_000_000_000 + info["stamp"]["nanosec"]] = info

    def on_ground_truth(msg) -> None:
        pending_gt[_stamp_ns(msg.header)] = [_pose_T(p) for p in msg.poses]

    def on_overlay(msg) -> None:
        result = frame(msg.header)
        result.overlay_path = out_dir / f"{label}_overlay_{len([f for f in frames.values() if f.overlay_path])}.png"
        cv2.imwrite(str(result.overlay_path), image_to_rgb(msg)[..., ::-1])

    pending_ids: dict = {}
    pending_gt: dict = {}
    node.create_subscription(Detection3DArray, "/pose_estimator/detections_3d", on_detections, reliable)
    node.create_subscription(PoseArray, "/object_poses", lambda m: setattr(frame(m.header), "poses_in_pose_array", len(m.poses)), reliable)
    node.create_subscription(Image, "/pose_estimator/overlay", on_overlay, reliable)
    node.create_subscription(PoseArray, "/bop_player/ground_truth", on_ground_truth, reliable)
    node.create_subscription(String, "/bop_player/ground_truth_ids", on_ground_truth_ids, reliable)
    player = None
    try:
        deadline = time.monotonic() + timeout_s
        # The estimator subscribes to `image` once configured (templates and features may take a while).
        while node.count_subscribers("image") < 1:
            if estimator.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pose_estimator did not start; see {out_dir / f'{label}_pose_estimator.log'}")
            executor.spin_once(timeout_sec=0.1)
        player = start_node_process("novel_pose_ros.ros.bop_player_node", config / "bop_player.yaml",
                        {"dataset": dataset, "objects_file": objects_file, "publish_masks": True,
                         "publish_ground_truth": True, "wait_for_subscribers": True, **player_params},
                        out_dir / f"{label}_bop_player.log")
        while player.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        if player.poll() != 0:
            raise RuntimeError(f"bop_player failed; see {out_dir / f'{label}_bop_player.log'}")
        # Wait for the last frames' results while the estimator is still producing them; a frame that
        # arrived while it was busy may have been replaced by a newer one (latest wins) and never comes.
        answered = lambda: sum(1 for s in pending_gt if s in frames and frames[s].poses_in_pose_array is not None)  # noqa: E731
        progress, last_change = answered(), time.monotonic()
        while time.monotonic() < deadline and answered() < len(pending_gt) and time.monotonic() - last_change < IDLE_GRACE_S:
            executor.spin_once(timeout_sec=0.05)
            if answered() != progress:
                progress, last_change = answered(), time.monotonic()
        end = time.monotonic() + 1.0
        while time.monotonic() < end:  # late overlays
            executor.spin_once(timeout_sec=0.05)
    finally:
        if player is not None and player.poll() is None:
            player.kill()
        if estimator.poll() is None:
            estimator.send_signal(signal.SIGINT)
            try:
                estimator.wait(20)
            except subprocess.TimeoutExpired:
                estimator.kill()
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
    results = []
    for stamp, poses in sorted(pending_gt.items()):
        info = pending_ids.get(stamp, {})
        result = frames.get(stamp, FrameResult(stamp))
        result.scene_id, result.im_id = info.get("scene_id", -1), info.get("im_id", -1)
        result.ground_truth = list(zip(info.get("names", []), poses))
        results.append(result)
    return results


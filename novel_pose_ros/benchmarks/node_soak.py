"""The pose_estimator node under a steady camera: frames in and out, drops, latency and memory over minutes.

`run_soak` starts the node as its own process (config/pose_estimator.yaml, masks on), publishes a
rendered frame of K bundled objects with their detections and masks at `rate_hz` (fresh stamps from
the wall clock; best-effort image, as a camera driver sends it), counts every /object_poses answer,
its latency (receive time − image stamp) and the node process's resident memory (VmRSS, sampled
every `rss_period_s`). Memory growth is measured from the end of the warm-up (first frames compile
and fill caches) to the end. The numbers are the benchmark; nothing here passes or fails.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from novel_pose_ros.benchmarks.estimator_bench import proc_status_kib
from novel_pose_ros.paths import default_objects_file, share_dir

STARTUP_TIMEOUT_S = 300.0


@dataclass
class SoakResult:
    duration_s: float
    rate_hz: float
    objects_per_frame: int
    frames_in: int = 0
    frames_out: int = 0
    poses_out: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    rss_mib: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MiB)
    warmup_s: float = 60.0

    @property
    def drop_share(self) -> float:
        return 1.0 - self.frames_out / self.frames_in if self.frames_in else 0.0

    def latency_percentile_ms(self, q: float) -> float | None:
        values = sorted(self.latencies_ms)
        return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else None

    def rss_after_warmup(self) -> tuple[float | None, float | None]:
        """(RSS at the end of the warm-up, RSS at the end), MiB."""
        kept = [mib for t, mib in self.rss_mib if t >= self.warmup_s]
        return (kept[0], kept[-1]) if kept else (None, None)

    def summary(self) -> dict[str, object]:
        start, end = self.rss_after_warmup()
        return {
            "duration_s": self.duration_s, "rate_hz": self.rate_hz, "objects_per_frame": self.objects_per_frame,
            "frames_in": self.frames_in, "frames_out": self.frames_out, "poses_out": self.poses_out,
            "output_rate_hz": self.frames_out / self.duration_s if self.duration_s else 0.0,
            "drop_share": self.drop_share,
            "latency_ms_p50": self.latency_percentile_ms(50), "latency_ms_p95": self.latency_percentile_ms(95),
            "rss_mib_after_warmup": start, "rss_mib_end": end,
            "rss_growth_share": (end - start) / start if start else None,
            "rss_mib_max": max((mib for _, mib in self.rss_mib), default=None),
        }

    def to_json(self) -> dict[str, object]:
        return {"benchmark": "node_soak", "summary": self.summary(), **{k: v for k, v in asdict(self).items()
                                                                          if k in ("rss_mib", "warmup_s")}}


def soak_scene(objects_per_frame: int, width: int = 640, height: int = 480):
    """(image, K, class names, masks): K bundled objects in a row in front of the camera, rendered."""
    from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle
    from novel_pose_ros.objects import ObjectLibrary
    from novel_pose_ros.render import SHADED, create_renderer

    library = list(ObjectLibrary.from_yaml(default_objects_file()))
    objects = [library[i % len(library)] for i in range(objects_per_frame)]
    K = np.array([[600.0, 0.0, width / 2 - 0.5], [0.0, 600.0, height / 2 - 0.5], [0.0, 0.0, 1.0]])
    xs = np.linspace(-0.25, 0.25, objects_per_frame) if objects_per_frame > 1 else [0.0]
    placed = [(obj, make_T(rotation_from_axis_angle(np.array([1.0, 0.4, 0.2]), 0.7 + i), [x, 0.02 * i, 0.9]))
              for i, (obj, x) in enumerate(zip(objects, xs))]
    result = create_renderer("auto").render(placed, K, width, height, SHADED)
    image = np.where(result.mask[..., None], result.rgb, np.uint8(110))
    masks = [result.labels == i + 1 for i in range(len(placed))]
    return image, K, [obj.name for obj in objects], masks


def run_soak(duration_s: float, rate_hz: float, objects_per_frame: int, warmup_s: float = 60.0,
             rss_period_s: float = 5.0, overrides: dict[str, object] | None = None,
             log_path: Path | None = None) -> SoakResult:
    import rclpy
    from geometry_msgs.msg import PoseArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header
    from vision_msgs.msg import Detection2DArray

    from novel_pose_ros.geometry.crop import box_from_mask
    from novel_pose_ros.ros import conversions as cv
    from novel_pose_ros.ros.demo_graph import start_node_process
    from novel_pose_ros.types import Detection

    image, K, names, masks = soak_scene(objects_per_frame)
    detections = [Detection(name, box_from_mask(mask), 0.9, mask) for name, mask in zip(names, masks)]
    log_path = log_path or Path(tempfile.mkdtemp(prefix="novel_pose_soak_")) / "pose_estimator.log"
    params = {"use_masks": True, "diagnostics_period_s": 1.0, **(overrides or {})}
    proc = start_node_process("novel_pose_ros.ros.pose_estimator_node", share_dir() / "config" / "pose_estimator.yaml",
                              params, log_path)
    result = SoakResult(duration_s, rate_hz, objects_per_frame, warmup_s=warmup_s)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f"soak_camera_{os.getpid()}", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        best_effort = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        pubs = {"image": node.create_publisher(Image, "image", best_effort),
                "camera_info": node.create_publisher(CameraInfo, "camera_info", best_effort),
                "detections": node.create_publisher(Detection2DArray, "detections", reliable),
                "detection_masks": node.create_publisher(Image, "detection_masks", reliable)}

        def on_poses(msg: PoseArray) -> None:
            if started is not None:
                result.frames_out += 1
                result.poses_out += len(msg.poses)
                result.latencies_ms.append((time.time() - cv.stamp_to_seconds(msg.header.stamp)) * 1000.0)
        node.create_subscription(PoseArray, "object_poses", on_poses, reliable)
        started = None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not all(p.get_subscription_count() for p in pubs.values()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the pose_estimator did not start (log: {log_path})")
            executor.spin_once(timeout_sec=0.1)

        def publish_frame() -> None:
            header = Header(stamp=cv.seconds_to_stamp(time.time()), frame_id="camera_color_optical_frame")
            pubs["camera_info"].publish(cv.camera_info_msg(K, image.shape[0], image.shape[1], header))
            pubs["detections"].publish(cv.detections_to_msg(detections, header))
            pubs["detection_masks"].publish(cv.masks_to_label_image_msg(masks, image.shape[:2], header))
            pubs["image"].publish(cv.rgb_to_image_msg(image, header))
            result.frames_in += 1
        started = time.monotonic()
        timer = node.create_timer(1.0 / rate_hz, publish_frame)
        next_rss = started
        while (now := time.monotonic()) - started < duration_s:
            if now >= next_rss:
                kib = proc_status_kib("VmRSS", proc.pid)
                if kib is None:
                    raise RuntimeError(f"the pose_estimator exited during the soak (log: {log_path})")
                result.rss_mib.append((now - started, kib / 1024.0))
                next_rss += rss_period_s
            executor.spin_once(timeout_sec=0.005)
        result.duration_s = time.monotonic() - started
        node.destroy_timer(timer)
        end = time.monotonic() + 5.0  # the answers in flight still count
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
        proc.send_signal(2)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a node that hangs at exit is killed; the numbers stand
            proc.kill()
    return result


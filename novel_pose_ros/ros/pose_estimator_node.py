"""The pose_estimator node: camera topics + 2D detections in, 6D poses, TF, markers and diagnostics out.

    python -m novel_pose_ros.ros.pose_estimator_node --ros-args --params-file config/pose_estimator.yaml

A lifecycle node (configure loads the objects and the estimator, activate starts processing);
with `autostart` (default) it configures and activates itself. Inputs are synchronised by
stamp; the estimator runs in a worker thread (newest frame wins, drops are counted); bad
input is logged once per cause, counted in /diagnostics, and never stops the node.
"""
from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import Detection2DArray

from diagnostic_msgs.msg import DiagnosticArray
from novel_pose_ros.estimation import Estimator
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.geometry.distortion import LensDistortion, Undistorter
from novel_pose_ros.geometry.transform_history import TransformUnavailable
from novel_pose_ros.instance_tracking import InstanceTracker, Sighting
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.ros import conversions, parameters
from novel_pose_ros.ros.diagnostics import (DEFAULT_WINDOW_S, CauseLog, EventWindow, MeanTracker, RateMeter, WindowStats,
                                             diagnostic_array, pipeline_level)
from novel_pose_ros.ros.frame_matching import FrameMatcher
from novel_pose_ros.ros.log_bridge import bridge_library_logs
from novel_pose_ros.ros.outputs import PoseOutputs
from novel_pose_ros.ros.sync import create_synchronizer
from novel_pose_ros.ros.tf_buffer import TfBuffer
from novel_pose_ros.ros.transport_limits import fastdds_shm_limit, frame_transport_warning
from novel_pose_ros.ros.worker import LatestFrameWorker
from novel_pose_ros.types import Frame

RUNTIME_FLAGS = ("publish_tf", "publish_markers", "publish_overlay", "marker_lifetime_s", "score_threshold",
                 "min_confidence")


class PoseEstimatorNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("pose_estimator", **kwargs)
        parameters.declare(self, configured=lambda: self._estimator is not None)
        self.events = EventWindow(DEFAULT_WINDOW_S)  # the diagnostics window (diagnostics_window_s at configure)
        self.causes = CauseLog(self.get_logger().warning, self.events)
        self.input_rate, self.output_rate, self.means = RateMeter(), RateMeter(), MeanTracker()
        self._active = False
        self._settings = self._estimator = self._outputs = self._matcher = self._worker = None
        self._syncs: list = []  # the camera topics' and the detector topics' synchronisers
        self._tf_buffer = self._diagnostics_timer = self._diagnostics_pub = self._tracker = None
        self._undistort: Undistorter | None = None  # the camera's undistortion maps, made at its first frame
        self._size_watch = None  # camera_info on its own: frames too large for the transport never make a set
        self._shm_limit = None  # the Fast DDS shared-memory segment (ros/transport_limits.py), read at configure

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._settings = settings = parameters.read_settings(self)
            library = ObjectLibrary.from_yaml(settings.objects_file)
            self.get_logger().info(f"loading {len(library)} objects from {settings.objects_file} and the estimator "
                                   f"({settings.estimator.network}, {settings.estimator.backend}, {settings.estimator.device}); "
                                   "first start renders templates and features (seconds per object)")
            self._estimator = Estimator(library, settings.estimator)
        except (ValueError, FileNotFoundError, KeyError, RuntimeError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._outputs = PoseOutputs(self, library, settings.frame_prefix)
        self._tf_buffer = TfBuffer(self, settings.tf_cache_s) if settings.target_frame else None
        self._tracker = InstanceTracker(settings.instance_timeout_s, settings.instance_match_iou,
                                        settings.instance_match_distance)
        self._worker = LatestFrameWorker(self._process, self._on_worker_error)
        self._matcher = FrameMatcher(self._on_match, settings.sync_policy, settings.image_cache_s,
                                     int(settings.image_cache_mib * 2**20), settings.sync_slop_s, self._on_unmatched)
        camera_topics, detection_topics = self._input_topics(settings)
        self._syncs = [create_synchronizer(self, camera_topics, self._matcher.add_camera, settings.sync_slop_s,
                                           settings.queue_size),
                       create_synchronizer(self, detection_topics, self._matcher.add_detections, settings.sync_slop_s,
                                           settings.queue_size)]
        self._shm_limit = fastdds_shm_limit()
        self._size_watch = self.create_subscription(CameraInfo, "camera_info", self._check_frame_size, camera_topics[1][2])
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.events.window_s = settings.diagnostics_window_s
        self._diagnostics_timer = self.create_timer(settings.diagnostics_period_s, self._publish_diagnostics)
        self.get_logger().info(f"configured: {', '.join(library.names)}; synchroniser: {self._syncs[0].kind}, "
                               f"detections matched to frames cached {settings.image_cache_s:g} s "
                               f"({settings.sync_policy} stamps); "
                               f"weights: {self._estimator.backend.weights_id[:24]}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = True
        self.get_logger().info("active: estimating poses")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self._active = False
        if self._worker is not None:
            self._worker.stop()
        for sync in self._syncs:
            sync.destroy()
        self._syncs = []
        if self._size_watch is not None:
            self.destroy_subscription(self._size_watch)
            self._size_watch = None
        if self._outputs is not None:
            self._outputs.destroy()
        if self._tf_buffer is not None:
            self._tf_buffer.destroy()
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
        if self._diagnostics_pub is not None:  # else each cleanup/configure cycle adds a /diagnostics publisher
            self.destroy_publisher(self._diagnostics_pub)
        self._worker = self._matcher = self._outputs = self._diagnostics_timer = self._estimator = None
        self._diagnostics_pub = self._tf_buffer = self._undistort = self._tracker = None

    # --- inputs ------------------------------------------------------------------------
    def _input_topics(self, settings: parameters.NodeSettings) -> tuple[list, list]:
        """(camera topics, detector topics), each synchronised on its own (ros/frame_matching.py)."""
        reliability = ReliabilityPolicy.RELIABLE if settings.input_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(depth=settings.queue_size, reliability=reliability)
        camera = [(Image, "image", qos), (CameraInfo, "camera_info", qos)] + ([(Image, "depth", qos)] if settings.use_depth else [])
        detector = [(Detection2DArray, "detections", qos)] + ([(Image, "detection_masks", qos)] if settings.use_masks else [])
        return camera, detector

    def _check_frame_size(self, info: CameraInfo) -> None:
        """Counts (cause frame_over_transport, logged once) the frames a best-effort input will mostly lose."""
        if self._active:
            warning = frame_transport_warning(info.width, info.height, self._shm_limit,
                                              self._settings.input_reliability == "reliable")
            if warning is not None:
                self.causes.report("frame_over_transport", warning)

    def _on_match(self, camera: tuple, detector: tuple) -> None:
        """A detection set and its cached camera frame -> the inputs in _frame_and_detections' order."""
        image, info, *depth = camera
        detections, *masks = detector
        self._on_inputs(image, info, detections, *masks, *depth)

    def _on_unmatched(self, stamp_ns: int, gap_ns: int | None) -> None:
        settings = self._settings
        where = ("no camera frame is cached" if gap_ns is None else
                 f"the nearest cached camera frame is {gap_ns * 1e-9:+.3f} s away")
        message = (f"detections stamped {stamp_ns * 1e-9:.3f} s matched no camera frame: {where} (sync_policy "
                   f"{settings.sync_policy}, sync_slop_s {settings.sync_slop_s:g}, image_cache_s {settings.image_cache_s:g}); "
                   "a detector slower than image_cache_s needs a larger one, one that re-stamps its output sync_policy nearest")
        self.causes.report("unmatched_detections", message)
        self.get_logger().warning(message, throttle_duration_sec=5.0)

    def _on_inputs(self, *messages) -> None:
        if self._active:
            self.input_rate.tick()
            self.events.add("frame_in")
            dropped = self._worker.dropped
            self._worker.submit(messages)
            if self._worker.dropped > dropped:  # the pending frame was replaced: a drop, now
                self.events.add("dropped")

    def _frame_and_detections(self, messages) -> tuple[Frame, list[conversions.InputDetection]]:
        """Convert a synchronised set (each detection on its own); raises ConversionError naming what was wrong
        with the image, the camera, the masks or the depth."""
        settings = self._settings
        image_msg, info_msg, detections_msg, *optional = messages
        masks_msg = optional.pop(0) if settings.use_masks else None
        depth_msg = optional.pop(0) if settings.use_depth else None
        conversions.check_frame_id(image_msg.header)
        rgb = conversions.image_to_rgb(image_msg)
        K = conversions.camera_info_to_K(info_msg, settings.use_projection_matrix)
        conversions.check_image_size(info_msg, rgb.shape[0], rgb.shape[1])
        depth = None
        if depth_msg is not None:
            try:
                depth = conversions.registered_depth_m(depth_msg, *rgb.shape[:2])
            except conversions.ConversionError as exc:  # the frame still has its RGB: estimate from that
                self.causes.report(exc.cause, f"depth not used, this frame is estimated from RGB alone: {exc}")
        masks = conversions.label_image_to_masks(masks_msg, len(detections_msg.detections)) if masks_msg is not None else None
        detections = conversions.read_detections(detections_msg, masks)
        undistort = None if settings.use_projection_matrix else self._undistorter(info_msg, K, rgb.shape)
        if undistort is not None:  # the estimator sees the pinhole image of K (geometry/distortion.py)
            rgb = undistort.image(rgb)
            depth = undistort.nearest(depth) if depth is not None else None
            detections = [undistorted_detection(item, undistort) for item in detections]
        frame = Frame(rgb, K, depth, conversions.stamp_to_seconds(image_msg.header.stamp), image_msg.header.frame_id)
        return frame, detections

    def _undistorter(self, info_msg, K, shape) -> Undistorter | None:
        """The camera's Undistorter (made once, again when the camera changes), None without distortion."""
        try:
            distortion = LensDistortion.from_camera_info(info_msg.distortion_model, info_msg.d)
        except ValueError as exc:
            raise conversions.ConversionError("distortion", str(exc)) from None
        if distortion is None:
            return None
        key = (tuple(K.ravel()), (shape[1], shape[0]), distortion)
        if self._undistort is None or self._undistort.key() != key:
            self._undistort = Undistorter(K, shape[1], shape[0], distortion)
            self.get_logger().info(f"camera distortion {distortion.model} {list(distortion.coefficients)}: "
                                   "images, masks and boxes are undistorted before estimation")
        return self._undistort

    # --- the worker's job ----------------------------------------------------------------
    def _process(self, messages) -> None:
        header = messages[0].header
        try:
            frame, inputs = self._frame_and_detections(messages)
        except conversions.ConversionError as exc:
            self.causes.report(exc.cause, f"input dropped: {exc}")
            self.events.add("rejected")
            return
        flags = {name: self.get_parameter(name).value for name in RUNTIME_FLAGS}
        status: dict[int, str] = {}  # input index -> why it has no pose
        for item in inputs:
            if item.detection is None:  # only this detection is lost; the others go on
                self.causes.report(item.cause, f"detection dropped: {item.message}")
                status[item.index] = f"failed:{item.cause}"
            elif item.detection.score < flags["score_threshold"]:
                status[item.index] = "below_score_threshold"
        kept = [item for item in inputs if item.index not in status]
        report = self._estimator.run(frame, [item.detection for item in kept])
        for failure in report.failures:
            self.causes.report(failure.cause, failure.message)
            status[kept[failure.detection_index].index] = f"failed:{failure.cause}"
        # poses and outputs speak of input detections (their position in the Detection2DArray)
        poses = [replace(p, detection_index=kept[p.detection_index].index) for p in report.poses]
        ids = {item.index: item.id for item in inputs}
        unposed = [(index, ids[index], why) for index, why in sorted(status.items())]
        T_target_cam = None
        if self._settings.target_frame:
            target = self._settings.target_frame
            try:  # at the image's stamp: on a moving arm the newest transform is the wrong one
                T_target_cam = self._tf_buffer.history.wait_for(target, header.frame_id, conversions.stamp_to_nanoseconds(
                    header.stamp), self._settings.tf_timeout_s)
            except TransformUnavailable as exc:
                self.causes.report("tf_lookup", f"frame dropped: no transform from '{header.frame_id}' to '{target}' "
                                   f"at the image stamp {frame.stamp_s:.3f} s (tf_timeout_s "
                                   f"{self._settings.tf_timeout_s:g}): {exc}")
                self.events.add("rejected")
                return
            header = type(header)(stamp=header.stamp, frame_id=target)
        poses, expired = self._track(poses, inputs, T_target_cam, frame.stamp_s)
        held_back = self._outputs.publish(poses, header, frame, self._estimator.renderer, T_target_cam, flags, ids,
                                          unposed, expired)
        self.output_rate.tick()
        self.events.add("answered")
        # latency on the node's clock (sim time when use_sim_time), as the image stamps are
        self.events.add("latency_ms", (self.get_clock().now().nanoseconds - conversions.stamp_to_nanoseconds(
            messages[0].header.stamp)) * 1e-6)
        self.means.add("depth_used_share", float(frame.depth_m is not None and self._estimator.config.use_depth != "off"))
        held_back_ids = {p.detection_index for p in held_back}
        for p in poses:  # per pose, so the diagnostics' means are over the poses of the period
            if p.confidence is not None:
                self.means.add("mean_confidence", p.confidence)
            self.means.add("held_back_share", float(p.detection_index in held_back_ids))
        for stage, seconds in report.timings.seconds.items():
            self.means.add(f"{stage}_ms", 1000.0 * seconds)

    def _track(self, poses, inputs, T_target_cam, stamp_s: float):
        """The poses with their instance ids across frames (instance_tracking.py), compared in the published
        frame; and the instances that expired at this frame."""
        detections = {item.index: item.detection for item in inputs}
        T_ref_cam = T_target_cam if T_target_cam is not None else np.eye(4)
        library = self._estimator.objects
        sightings = [Sighting(p.object_id, detections[p.detection_index].bbox_xywh, detections[p.detection_index].mask,
                              T_ref_cam @ p.T_cam_obj, library.get(p.object_id).diameter_m) for p in poses]
        instance_ids, expired = self._tracker.assign(stamp_s, sightings)
        return [replace(p, instance=i) for p, i in zip(poses, instance_ids)], expired

    def _on_worker_error(self, exc: BaseException) -> None:
        if not rclpy.ok():  # shutting down: the frame in flight could not be published, nothing is wrong
            return
        self.causes.report("estimator_exception", f"frame failed: {type(exc).__name__}: {exc}")

    def _publish_diagnostics(self) -> None:
        estimator, worker = self._estimator, self._worker
        if estimator is None or worker is None:
            return
        values: dict[str, object] = {
            "input_rate_hz": self.input_rate.rate_hz(), "output_rate_hz": self.output_rate.rate_hz(),
            "dropped_frames": worker.dropped, "processed_frames": worker.processed,
            "synchroniser": self._syncs[0].kind if self._syncs else "n/a",
            "synchroniser_dropped": ("n/a" if any(sync.dropped is None for sync in self._syncs)
                                     else sum(sync.dropped for sync in self._syncs)),
            "sync_policy": self._settings.sync_policy,
            "frames_cached": len(self._matcher.cache.frames) if self._matcher else 0,
            "frame_cache_mib": round(self._matcher.cache.nbytes / 2**20, 1) if self._matcher else 0,
            "matched_detection_sets": self._matcher.counters.matched if self._matcher else 0,
            "backend": estimator.backend.name, "device": estimator.backend.device,
            "precision": estimator.backend.precision, "network": estimator.config.network,
            "weights": estimator.backend.weights_id[:24],
            "transport_shm_segment_mib": ("n/a (not Fast DDS)" if self._shm_limit is None
                                          else round(self._shm_limit.segment_bytes / 2**20, 1)),
        }
        values.update({k: round(v, 2) for k, v in self.means.take().items()})
        values.update({f"count_{cause}": n for cause, n in sorted(self.causes.counts.items())})  # since start
        counts, failures = self.events.counts(), self.events.counts("cause:")
        stats = WindowStats(counts.get("frame_in", 0), counts.get("answered", 0), counts.get("dropped", 0),
                            counts.get("rejected", 0), failures, self._active,
                            estimator.backend.weights_id.startswith("untrained"))
        values.update({"window_s": self.events.window_s, "window_frames_in": stats.frames_in,
                       "window_answered": stats.answered, "window_dropped": stats.dropped,
                       "window_rejected": stats.rejected,
                       **{f"window_{cause}": n for cause, n in sorted(failures.items())}})
        for q in (50, 95):
            latency = self.events.percentile("latency_ms", q)
            values[f"latency_ms_p{q}"] = "n/a" if latency is None else round(latency, 1)
        level, message = pipeline_level(stats)
        self._diagnostics_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), "pose_estimator: pipeline",
                                                       self.get_fully_qualified_name(), values, level, message))


def undistorted_detection(item: conversions.InputDetection, undistort: Undistorter) -> conversions.InputDetection:
    """A detection of the distorted image in the pinhole image: its mask re-sampled (and its box from that
    mask), or its box outline undistorted when it has no mask."""
    if item.detection is None:
        return item
    detection = item.detection
    if detection.mask is not None:
        mask = undistort.nearest(detection.mask)
        box = box_from_mask(mask)
        detection = replace(detection, mask=mask, bbox_xywh=box if box is not None else undistort.box(detection.bbox_xywh))
    else:
        detection = replace(detection, bbox_xywh=undistort.box(detection.bbox_xywh))
    return replace(item, detection=detection)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    try:
        node = PoseEstimatorNode()
    except ValueError as exc:  # a parameter from the params file outside its range or of the wrong type
        print(f"pose_estimator: invalid parameters: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    bridge_library_logs(node.get_logger())
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal("could not configure (see the error above); exiting")
                return 1
            node.trigger_activate()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._release()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

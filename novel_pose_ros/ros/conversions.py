"""Messages ↔ core types: pure functions, no node, no I/O.

Conventions (docs/CONVENTIONS.md): metres; OpenCV optical frame; pixel centres at integer
coordinates; quaternions (x, y, z, w) exist only here, in messages.

Bounding boxes: vision_msgs `BoundingBox2D.center` is read in the same pixel coordinates as
K (pixel centres at integers), so a box centre back-projects with the camera's K unchanged.
A core box (x, y, w, h) — top-left pixel index, size in pixels — covers the continuous
region [x − 0.5, x + w − 0.5) × [y − 0.5, y + h − 0.5), whose centre is

    cx = x + w / 2 − 0.5,   cy = y + h / 2 − 0.5     (size_x = w, size_y = h)

so a one-pixel box at pixel (u, v) has its centre at (u, v). A detector that writes corner
coordinates (pixel i spanning [i, i + 1), COCO style) as the centre is read half a pixel
off, which no stage of the estimator is sensitive to.

Every input problem raises `ConversionError` with a stable `cause` key for diagnostics.
"""
from __future__ import annotations

import array
import json
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, Pose, PoseArray, PoseStamped, Quaternion, TransformStamped, Vector3
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import (BoundingBox2D, BoundingBox3D, Detection2D, Detection2DArray, Detection3D,
                             Detection3DArray, ObjectHypothesis, ObjectHypothesisWithPose, Point2D, Pose2D)

from novel_pose_ros.geometry.se3 import check_shape, quaternion_from_matrix
from novel_pose_ros.objects.library import ObjectLibrary
from novel_pose_ros.types import Detection, PoseEstimate

CAUSES = ("encoding", "size_mismatch", "uncalibrated", "non_finite_K", "bad_detection", "bad_mask", "no_frame_id",
          "distortion", "depth")
# encoding -> (channels, numpy dtype of one channel, little-endian)
COLOR_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
DEPTH_ENCODINGS = {"16UC1": "<u2", "32FC1": "<f4"}
LABEL_ENCODINGS = {"mono8": "<u1", "8UC1": "<u1", "mono16": "<u2", "16UC1": "<u2"}
MM_PER_M = 1000.0
UINT16_MAX = 65535


class ConversionError(ValueError):
    """A message that cannot be converted. `cause` is a stable short key (one of CAUSES)."""

    def __init__(self, cause: str, message: str) -> None:
        if cause not in CAUSES:
            raise ValueError(f"ConversionError: unknown cause '{cause}' (known: {', '.join(CAUSES)})")
        super().__init__(message)
        self.cause = cause


# --- images -----------------------------------------------------------------------------

def _pixels(msg: Image, channel_dtype: str, channels: int) -> np.ndarray:
    """(H, W, C) view of msg.data honouring step (row padding) and is_bigendian."""
    dtype = np.dtype(channel_dtype)
    if msg.is_bigendian and dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    data = np.frombuffer(msg.data, dtype=np.uint8) if isinstance(msg.data, (array.array, bytes, bytearray)) \
        else np.asarray(msg.data, dtype=np.uint8)
    if height == 0 or width == 0:
        raise ConversionError("size_mismatch", f"image ({msg.encoding}) is empty: {width}x{height}")
    if step < row_bytes:
        raise ConversionError("size_mismatch",
                              f"image ({msg.encoding}) step {step} < width {width} × {channels * dtype.itemsize} bytes")
    if data.size != height * step:
        raise ConversionError("size_mismatch", f"image ({msg.encoding}) {width}x{height} step {step}: "
                                               f"expected {height * step} bytes of data, got {data.size}")
    rows = data.reshape(height, step)[:, :row_bytes]
    return np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)


def image_to_rgb(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from rgb8, bgr8, rgba8, bgra8 or mono8 (grey replicated); alpha is dropped."""
    channels = COLOR_ENCODINGS.get(msg.encoding)
    if channels is None:
        raise ConversionError("encoding", f"image encoding '{msg.encoding}' is not supported "
                                          f"(expected one of {', '.join(COLOR_ENCODINGS)})")
    pixels = _pixels(msg, "<u1", channels)
    if msg.encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if msg.encoding.startswith("bgr"):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3])


def image_to_depth_m(msg: Image) -> np.ndarray:
    """(H, W) float32 metres from 16UC1 (millimetres) or 32FC1 (metres); 0, negative and non-finite → 0 (invalid)."""
    dtype = DEPTH_ENCODINGS.get(msg.encoding)
    if dtype is None:
        raise ConversionError("encoding",
                              f"depth encoding '{msg.encoding}' is not supported (expected 16UC1 in mm or 32FC1 in m)")
    raw = _pixels(msg, dtype, 1)[:, :, 0]
    depth = raw.astype(np.float32) / np.float32(MM_PER_M) if msg.encoding == "16UC1" else raw.astype(np.float32)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth


def registered_depth_m(msg: Image, height: int, width: int) -> np.ndarray:
    """image_to_depth_m of a depth image registered to the colour image (same size); ConversionError with cause
    "depth" otherwise, naming both sizes (the node then estimates the frame from RGB alone)."""
    try:
        depth = image_to_depth_m(msg)
    except ConversionError as exc:
        raise ConversionError("depth", str(exc)) from None
    if depth.shape != (height, width):
        raise ConversionError("depth", f"depth is {depth.shape[1]}x{depth.shape[0]} but the colour image is {width}x{height}: "
                                       "depth must be registered to the colour image (a RealSense's "
                                       "aligned_depth_to_color topic)")
    return depth


def label_image_to_masks(msg: Image, count: int) -> list[np.ndarray | None]:
    """Per detection i, the (H, W) bool mask of pixels labelled i + 1 (0 = background), or None if it has none.

    A label above `count` means the label image does not belong to these detections: bad_mask.
    """
    dtype = LABEL_ENCODINGS.get(msg.encoding)
    if dtype is None:
        raise ConversionError("encoding", f"label image encoding '{msg.encoding}' is not supported (expected mono8 or mono16)")
    labels = _pixels(msg, dtype, 1)[:, :, 0]
    top = int(labels.max())
    if top > count:
        raise ConversionError("bad_mask", f"label image has label {top} but there are only {count} detections")
    present = set(np.unique(labels).tolist())
    return [labels == i + 1 if i + 1 in present else None for i in range(count)]


def _image_msg(pixels: np.ndarray, header: Header, encoding: str, big_endian: bool = False) -> Image:
    height, width = pixels.shape[:2]
    raw = np.ascontiguousarray(pixels)
    data = array.array("B")
    data.frombytes(raw.tobytes())
    return Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=big_endian,
                 step=raw.strides[0], data=data)


def rgb_to_image_msg(rgb: np.ndarray, header: Header, encoding: str = "rgb8") -> Image:
    """Image from (H, W, 3) uint8 RGB in rgb8, bgr8, rgba8, bgra8 (alpha 255) or mono8 (luma)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb: expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if encoding not in COLOR_ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(COLOR_ENCODINGS)}, got '{encoding}'")
    if encoding == "mono8":
        pixels = np.rint(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    else:
        pixels = rgb[:, :, ::-1] if encoding.startswith("bgr") else rgb
        if encoding.endswith("a8"):
            pixels = np.concatenate([pixels, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return _image_msg(pixels, header, encoding)


def depth_to_image_msg(depth_m: np.ndarray, header: Header, encoding: str = "32FC1") -> Image:
    """Depth image from (H, W) metres: 32FC1 in metres, or 16UC1 in millimetres (beyond 65535 mm → 0).

    Non-finite and negative depth is written as 0 (invalid) in both encodings.
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth_m: expected (H, W), got {depth.shape}")
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(0.0))
    if encoding == "32FC1":
        return _image_msg(depth.astype("<f4"), header, encoding)
    if encoding == "16UC1":
        mm = np.rint(depth.astype(np.float64) * MM_PER_M)
        return _image_msg(np.where(mm <= UINT16_MAX, mm, 0).astype("<u2"), header, encoding)
    raise ValueError(f"encoding must be 32FC1 or 16UC1, got '{encoding}'")


def masks_to_label_image_msg(masks: Sequence[np.ndarray | None], shape: tuple[int, int], header: Header) -> Image:
    """mono16 label image: pixel = detection index + 1, 0 = background; None masks are skipped.

    Where masks overlap, the later detection wins.
    """
    height, width = (int(v) for v in shape[:2])
    if len(masks) > UINT16_MAX:
        raise ValueError(f"masks: a mono16 label image holds at most {UINT16_MAX} detections, got {len(masks)}")
    labels = np.zeros((height, width), "<u2")
    for i, mask in enumerate(masks):
        if mask is None:
            continue
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (height, width):
            raise ValueError(f"masks[{i}]: expected shape {(height, width)}, got {mask.shape}")
        labels[mask] = i + 1
    return _image_msg(labels, header, "mono16")


# --- camera -----------------------------------------------------------------------------

def check_frame_id(header: Header) -> None:
    """An image without a frame cannot be placed: its poses would go to TF as children of '' (which tf2
    refuses) and a planner could not say which camera they are in."""
    if not header.frame_id.strip():
        raise ConversionError("no_frame_id", "image header.frame_id is empty: the camera frame of the poses is unknown "
                                             "(set the driver's frame_id, e.g. camera_color_optical_frame)")


def camera_info_msg(K: np.ndarray, height: int, width: int, header: Header) -> CameraInfo:
    """CameraInfo of an undistorted camera: k = K, p = [K | 0], r = I, plumb_bob with zero distortion."""
    K = check_shape("K", K, (3, 3))
    P = np.hstack([K, np.zeros((3, 1))])
    return CameraInfo(header=header, height=int(height), width=int(width), distortion_model="plumb_bob",
                      d=[0.0] * 5, k=K.ravel().tolist(), r=np.eye(3).ravel().tolist(), p=P.ravel().tolist())


def camera_info_image_size(msg: CameraInfo) -> tuple[int, int]:
    """(height, width) of the images this CameraInfo describes, after its ROI and binning."""
    height, width = int(msg.height), int(msg.width)
    if msg.roi.width and msg.roi.height:
        height, width = int(msg.roi.height), int(msg.roi.width)
    return height // max(int(msg.binning_y), 1), width // max(int(msg.binning_x), 1)


def check_image_size(msg: CameraInfo, height: int, width: int) -> None:
    """size_mismatch when a CameraInfo of known size does not describe (height, width) images."""
    if msg.width == 0 and msg.height == 0:
        return
    expected = camera_info_image_size(msg)
    if expected != (int(height), int(width)):
        raise ConversionError("size_mismatch", f"camera_info describes {expected[1]}x{expected[0]} images "
                                               f"but the image is {width}x{height}")


def camera_info_to_K(msg: CameraInfo, use_projection: bool = False) -> np.ndarray:
    """3×3 intrinsics from `k`, or from the first 3×3 of `p` (rectified topics), in the image's pixels.

    A ROI shifts the principal point; binning b maps full-resolution pixel centres u to
    (u − (b − 1) / 2) / b (pixel centres at integers). Raises ConversionError: uncalibrated
    (K all zero, focal lengths ≤ 0, not upper-triangular, or only one of width/height set),
    non_finite_K (NaN/inf).
    """
    source = "p" if use_projection else "k"
    values = np.asarray(msg.p if use_projection else msg.k, dtype=np.float64)
    K = values.reshape(3, 4)[:, :3].copy() if use_projection else values.reshape(3, 3).copy()
    if not np.all(np.isfinite(K)):
        raise ConversionError("non_finite_K", f"camera_info.{source} has non-finite values: {K.ravel().tolist()}")
    if not np.any(K):
        raise ConversionError("uncalibrated", f"camera_info.{source} is all zero: the camera is not calibrated")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or K[1, 0] != 0 or not np.allclose(K[2], [0.0, 0.0, 1.0]):
        raise ConversionError("uncalibrated", f"camera_info.{source} is not an intrinsic matrix "
                                              f"(positive fx, fy, last row 0 0 1): {K.ravel().tolist()}")
    if (msg.width == 0) != (msg.height == 0):
        raise ConversionError("uncalibrated", f"camera_info has width {msg.width} and height {msg.height}: "
                                              "both or neither must be set")
    if msg.roi.width and msg.roi.height:
        K[0, 2] -= msg.roi.x_offset
        K[1, 2] -= msg.roi.y_offset
    for axis, binning in ((0, int(msg.binning_x)), (1, int(msg.binning_y))):
        if binning > 1:
            K[axis, :2] /= binning
            K[axis, 2] = (K[axis, 2] - (binning - 1) / 2) / binning
    return K


# --- 2D detections ----------------------------------------------------------------------

def detections_from_msg(msg: Detection2DArray, masks: Sequence[np.ndarray | None] | None = None) -> list[Detection]:
    """Core detections, in message order, all or nothing (a reader of well-formed messages, e.g. tests and
    tools); the node reads each detection on its own (`read_detections`). object_id = class_id of the
    best-scoring hypothesis (a name or an integer id as text; the estimator resolves it), score = its score.

    masks: one per detection (None entries allowed), e.g. from `label_image_to_masks`.
    Raises ConversionError: bad_detection (no hypothesis, empty class_id, degenerate box),
    bad_mask (mask count differs from detection count).
    """
    inputs = read_detections(msg, masks)
    for item in inputs:
        if item.detection is None:
            raise ConversionError(item.cause, item.message)
    return [item.detection for item in inputs]


@dataclass(frozen=True)
class InputDetection:
    """One Detection2D of a message, read on its own: its position in the message, its id (Detection2D.id,
    stripped; "" when the detector gave none) and either the core Detection or why it could not be read
    (cause: a ConversionError cause, message: what was wrong)."""

    index: int
    id: str
    detection: Detection | None = None
    cause: str = ""
    message: str = ""


def read_detections(msg: Detection2DArray, masks: Sequence[np.ndarray | None] | None = None) -> list[InputDetection]:
    """Every detection of `msg`, in message order, each read on its own: a malformed one (no hypothesis,
    an empty class_id, a zero-size or non-finite box) is an InputDetection without a Detection, and the
    others are unaffected. A mask count that differs from the detection count is a ConversionError
    (bad_mask) for the whole message: no mask could be assigned with confidence."""
    if masks is not None and len(masks) != len(msg.detections):
        raise ConversionError("bad_mask", f"{len(masks)} masks for {len(msg.detections)} detections")
    inputs = []
    for i, det in enumerate(msg.detections):
        ident = det.id.strip()
        try:
            inputs.append(InputDetection(i, ident, _detection_of(i, det, None if masks is None else masks[i])))
        except ConversionError as exc:
            inputs.append(InputDetection(i, ident, None, exc.cause, str(exc)))
    return inputs


def _detection_of(i: int, det: Detection2D, mask: np.ndarray | None) -> Detection:
    label = f"detection {i} (id '{det.id}')"
    if not det.results:
        raise ConversionError("bad_detection", f"{label} has no results (class hypotheses)")
    best = max(det.results, key=lambda r: r.hypothesis.score).hypothesis
    if not best.class_id.strip():
        raise ConversionError("bad_detection", f"{label} has an empty class_id")
    w, h = float(det.bbox.size_x), float(det.bbox.size_y)
    x = float(det.bbox.center.position.x) - w / 2 + 0.5
    y = float(det.bbox.center.position.y) - h / 2 + 0.5
    if not math.isfinite(float(best.score)):
        raise ConversionError("bad_detection", f"{label}, class '{best.class_id}': score {best.score} is not finite")
    try:
        return Detection(best.class_id.strip(), (x, y, w, h), float(best.score), mask)
    except ValueError as exc:
        raise ConversionError("bad_detection", f"{label}, class '{best.class_id}': {exc}") from None


def detections_to_msg(detections: Sequence[Detection], header: Header) -> Detection2DArray:
    """Detection2DArray (one hypothesis each: class_id = object_id, score); masks are not part of it
    (see `masks_to_label_image_msg`). Inverse of `detections_from_msg`."""
    msg = Detection2DArray(header=header)
    for i, d in enumerate(detections):
        x, y, w, h = d.bbox_xywh
        msg.detections.append(Detection2D(
            header=header, id=str(i),
            results=[ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id=str(d.object_id), score=float(d.score)))],
            bbox=BoundingBox2D(center=Pose2D(position=Point2D(x=x + w / 2 - 0.5, y=y + h / 2 - 0.5), theta=0.0),
                               size_x=float(w), size_y=float(h))))
    return msg


# --- time -------------------------------------------------------------------------------

def stamp_to_seconds(stamp: Time) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def stamp_to_nanoseconds(stamp: Time) -> int:
    """Exact integer nanoseconds (for comparing stamps)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def seconds_to_stamp(s: float) -> Time:
    sec = math.floor(s)
    nanosec = int(round((s - sec) * 1e9))
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return Time(sec=int(sec), nanosec=nanosec)


def duration_msg(seconds: float) -> Duration:
    stamp = seconds_to_stamp(max(float(seconds), 0.0))
    return Duration(sec=stamp.sec, nanosec=stamp.nanosec)


# --- poses ------------------------------------------------------------------------------

def _quaternion(R: np.ndarray) -> Quaternion:
    x, y, z, w = (float(v) for v in quaternion_from_matrix(R))
    return Quaternion(x=x, y=y, z=z, w=w)


def pose_msg(T_cam_obj: np.ndarray) -> Pose:
    """geometry_msgs/Pose of a 4×4 transform (position in metres, quaternion x, y, z, w)."""
    T = check_shape("T_cam_obj", T_cam_obj, (4, 4))
    x, y, z = (float(v) for v in T[:3, 3])
    return Pose(position=Point(x=x, y=y, z=z), orientation=_quaternion(T[:3, :3]))


def pose_stamped_msg(T: np.ndarray, header: Header) -> PoseStamped:
    return PoseStamped(header=header, pose=pose_msg(T))


def pose_array_msg(poses: Sequence[PoseEstimate], header: Header) -> PoseArray:
    """PoseArray of the poses' T_cam_obj, in the given order."""
    return PoseArray(header=header, poses=[pose_msg(p.T_cam_obj) for p in poses])


# Detection3D.id suffix of a pose held back for a confidence below min_confidence
HELD_BACK_SUFFIX = ":below_min_confidence"


def instance_frame_id(name: str, instance: int, prefix: str = "") -> str:
    """The TF frame of an instance: <prefix><name>_<instance> (prefix: the node's frame_prefix, one per camera)."""
    return f"{prefix}{name}_{int(instance)}"


def transforms_msg(poses: Sequence[PoseEstimate], header: Header, prefix: str = "") -> TFMessage:
    """TF frames <prefix><name>_<instance>, children of header.frame_id, stamped with header.stamp."""
    transforms = []
    for p in poses:
        pose = pose_msg(p.T_cam_obj)
        t = TransformStamped(header=header, child_frame_id=instance_frame_id(p.object_id, p.instance, prefix))
        t.transform.translation = Vector3(x=pose.position.x, y=pose.position.y, z=pose.position.z)
        t.transform.rotation = pose.orientation
        transforms.append(t)
    return TFMessage(transforms=transforms)


def box_centre_obj(library: ObjectLibrary, name: str) -> np.ndarray:
    return np.asarray(library.get(name).mesh.bounds, dtype=np.float64).mean(axis=0)


def detection3d_array_msg(poses: Sequence[PoseEstimate], library: ObjectLibrary, header: Header,
                          held_back: Sequence[PoseEstimate] = (), ids: Mapping[int, str] | None = None,
                          unposed: Sequence[tuple[int, str, str]] = (), prefix: str = "") -> Detection3DArray:
    """One Detection3D per input detection, in input order (PoseEstimate.detection_index):

    - a pose: id = the input detection's id (`ids`, by detection index), or its TF frame <prefix><name>_<instance>
      when the input has none; one hypothesis (class_id = name, score = the pose confidence, or the
      detection score where there is none; pose); bbox = the mesh's axis-aligned box placed by the pose;
    - a held-back pose (below min_confidence: no TF frame): the same, id suffixed HELD_BACK_SUFFIX;
    - `unposed` (index, id, status): a detection without a pose (status "failed:<cause>" or
      "below_score_threshold"): id "<id>:<status>" (id "detection_<index>" when the input has none),
      no hypothesis, an empty box.
    So the entries without a ":" status are exactly /object_poses, in the same order."""
    ids = ids or {}
    entries = []
    for p, suffix in [(p, "") for p in poses] + [(p, HELD_BACK_SUFFIX) for p in held_back]:
        obj = library.get(p.object_id)
        centre = p.T_cam_obj[:3, :3] @ box_centre_obj(library, obj.name) + p.T_cam_obj[:3, 3]
        sx, sy, sz = (float(v) for v in obj.extents_m)
        hypothesis = ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id=obj.name, score=float(p.ranking_score)))
        hypothesis.pose.pose = pose_msg(p.T_cam_obj)
        box_pose = Pose(position=Point(x=float(centre[0]), y=float(centre[1]), z=float(centre[2])),
                        orientation=_quaternion(p.T_cam_obj[:3, :3]))
        ident = ids.get(p.detection_index) or instance_frame_id(obj.name, p.instance, prefix)
        entries.append((p.detection_index, Detection3D(header=header, id=ident + suffix, results=[hypothesis],
                                                       bbox=BoundingBox3D(center=box_pose, size=Vector3(x=sx, y=sy, z=sz)))))
    for index, ident, status in unposed:
        entries.append((index, Detection3D(header=header, id=f"{ident or f'detection_{index}'}:{status}")))
    entries.sort(key=lambda entry: entry[0])  # stable: the given order where indices tie
    return Detection3DArray(header=header, detections=[d for _, d in entries])


def symmetries_msg(library: ObjectLibrary) -> String:
    """JSON {name: {"discrete": [[16 numbers, row-major, metres]], "continuous": [{"axis": [3], "offset_m": [3]}]}}."""
    table = {}
    for obj in library:
        sym = obj.symmetries
        table[obj.name] = {
            "discrete": [[float(v) for v in S.ravel()] for S in sym.discrete],
            "continuous": [{"axis": [float(v) for v in axis], "offset_m": [float(v) for v in offset]}
                           for axis, offset in zip(sym.continuous_axes, sym.continuous_offsets_m)],
        }
    return String(data=json.dumps(table, sort_keys=True))

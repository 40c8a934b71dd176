"""novel_pose_ros.ros.conversions: messages ↔ core types, round trips and every error cause."""
from __future__ import annotations

import json

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesis, ObjectHypothesisWithPose

from helpers import BUNDLED_OBJECTS, MESHES
from novel_pose_ros.geometry.se3 import make_T, matrix_from_quaternion, random_rotation, transform_points
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.objects.mesh_loading import load_object
from novel_pose_ros.ros import conversions as cv
from novel_pose_ros.ros.conversions import ConversionError
from novel_pose_ros.types import Detection, PoseEstimate

HEADER = Header(stamp=Time(sec=1712, nanosec=345_000_000), frame_id="camera_color_optical_frame")


@pytest.fixture(scope="module")
def library() -> ObjectLibrary:
    return ObjectLibrary.from_yaml(BUNDLED_OBJECTS)


@pytest.fixture
def rgb(rng) -> np.ndarray:
    return rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)


def T_of(pose) -> np.ndarray:
    q = [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]
    return make_T(matrix_from_quaternion(np.array(q)), [pose.position.x, pose.position.y, pose.position.z])


def random_pose(rng, name: str, instance: int = 0, score: float = 0.9, index: int = 0) -> PoseEstimate:
    return PoseEstimate(name, instance, make_T(random_rotation(rng), rng.uniform(-0.2, 0.2, 3) + [0, 0, 0.8]), score, index)


def padded_image(pixels: np.ndarray, encoding: str, pad: int, big_endian: bool = False) -> Image:
    """An Image whose rows carry `pad` garbage bytes, data in the given byte order."""
    height, width = pixels.shape[:2]
    dtype = pixels.dtype.newbyteorder(">" if big_endian else "<")
    rows = np.ascontiguousarray(pixels.astype(dtype)).reshape(height, -1).view(np.uint8)
    data = np.concatenate([rows, np.full((height, pad), 0xAB, np.uint8)], axis=1)
    return Image(header=HEADER, height=height, width=width, encoding=encoding, is_bigendian=big_endian,
                 step=rows.shape[1] + pad, data=data.tobytes())


# --- images -----------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_image_round_trip(encoding, rgb):
    msg = cv.rgb_to_image_msg(rgb, HEADER, encoding)
    assert (msg.encoding, msg.height, msg.width, msg.step) == (encoding, 7, 5, 5 * len(encoding[:-1]))
    assert msg.header == HEADER
    np.testing.assert_array_equal(cv.image_to_rgb(msg), rgb)


def test_channel_order_on_the_wire():
    pixel = np.array([[[10, 20, 30]]], np.uint8)
    assert list(cv.rgb_to_image_msg(pixel, HEADER, "bgr8").data) == [30, 20, 10]
    assert list(cv.rgb_to_image_msg(pixel, HEADER, "rgba8").data) == [10, 20, 30, 255]
    assert list(cv.rgb_to_image_msg(pixel, HEADER, "bgra8").data) == [30, 20, 10, 255]


def test_mono8_is_replicated_to_rgb(rgb):
    grey = np.repeat(rgb[:, :, :1], 3, axis=2)
    msg = cv.rgb_to_image_msg(grey, HEADER, "mono8")
    assert msg.step == 5
    np.testing.assert_array_equal(cv.image_to_rgb(msg), grey)


@pytest.mark.parametrize("encoding,channels", [("rgb8", 3), ("bgra8", 4), ("mono8", 1)])
def test_padded_rows_are_skipped(encoding, channels, rgb):
    wire = {"rgb8": rgb, "bgra8": np.concatenate([rgb[:, :, ::-1], np.zeros((7, 5, 1), np.uint8)], axis=2),
            "mono8": rgb[:, :, :1]}[encoding]
    msg = padded_image(wire, encoding, pad=3)
    expected = np.repeat(rgb[:, :, :1], 3, axis=2) if encoding == "mono8" else rgb
    np.testing.assert_array_equal(cv.image_to_rgb(msg), expected)


def test_depth_32fc1_round_trip_and_invalid_values(rng):
    depth = rng.uniform(0.2, 3.0, (6, 4)).astype(np.float32)
    msg = cv.depth_to_image_msg(depth, HEADER)
    assert (msg.encoding, msg.step) == ("32FC1", 16)
    np.testing.assert_array_equal(cv.image_to_depth_m(msg), depth)
    bad = depth.copy()
    bad[0, :] = [np.nan, np.inf, -1.0, 0.0]
    out = cv.image_to_depth_m(padded_image(bad, "32FC1", pad=8))
    assert out.dtype == np.float32 and np.all(out[0] == 0) and np.array_equal(out[1:], depth[1:])


def test_depth_16uc1_is_millimetres(rng):
    depth = (rng.integers(1, 65535, (6, 4)) / 1000.0).astype(np.float32)
    depth[0, 0] = 70.0  # beyond the uint16 range: invalid
    depth[0, 1] = np.nan
    msg = cv.depth_to_image_msg(depth, HEADER, encoding="16UC1")
    assert msg.encoding == "16UC1" and msg.step == 8
    back = cv.image_to_depth_m(msg)
    assert back[0, 0] == 0 and back[0, 1] == 0
    np.testing.assert_allclose(back.ravel()[2:], depth.ravel()[2:], atol=1e-6)


@pytest.mark.parametrize("encoding,dtype,scale", [("16UC1", np.uint16, 1e-3), ("32FC1", np.float32, 1.0)])
def test_big_endian_depth_with_padding(encoding, dtype, scale):
    raw = np.array([[0, 1, 258, 4000], [65535 if dtype == np.uint16 else 2.5, 7, 0, 1500]], dtype)
    msg = padded_image(raw, encoding, pad=5, big_endian=True)
    np.testing.assert_allclose(cv.image_to_depth_m(msg), raw.astype(np.float64) * scale, rtol=1e-6)


def test_label_image_round_trip():
    masks = [np.zeros((4, 6), bool) for _ in range(4)]
    masks[0][0, :3] = True
    masks[2][1:3, 2:5] = True
    masks[3][3, 5] = True
    masks[1] = None  # no pixels for detection 1
    msg = cv.masks_to_label_image_msg(masks, (4, 6), HEADER)
    assert (msg.encoding, msg.step) == ("mono16", 12)
    back = cv.label_image_to_masks(msg, 4)
    assert back[1] is None
    for i in (0, 2, 3):
        np.testing.assert_array_equal(back[i], masks[i])
    # mono8 with padding and one more detection than labels: its mask is None
    labels = np.array([[0, 1, 1], [2, 0, 0]], np.uint8)
    mono8 = cv.label_image_to_masks(padded_image(labels, "mono8", pad=1), 3)
    assert mono8[2] is None and mono8[0].sum() == 2 and mono8[1][1, 0]


def test_big_endian_mono16_labels():
    labels = np.array([[0, 300], [1, 0]], np.uint16)
    masks = cv.label_image_to_masks(padded_image(labels, "mono16", pad=2, big_endian=True), 300)
    assert masks[0][1, 0] and masks[299][0, 1] and masks[1] is None


# --- errors -----------------------------------------------------------------------------

def test_conversion_error_has_a_stable_cause():
    error = ConversionError("encoding", "what was wrong")
    assert isinstance(error, ValueError) and error.cause == "encoding" and str(error) == "what was wrong"
    with pytest.raises(ValueError, match="unknown cause"):
        ConversionError("no_such_cause", "x")


def _raises(cause: str, function, *args, match: str | None = None):
    with pytest.raises(ConversionError, match=match) as info:
        function(*args)
    assert info.value.cause == cause
    return info.value


def test_image_errors(rgb):
    msg = cv.rgb_to_image_msg(rgb, HEADER)
    msg.encoding = "yuv422"
    _raises("encoding", cv.image_to_rgb, msg, match="yuv422")
    _raises("encoding", cv.image_to_depth_m, cv.rgb_to_image_msg(rgb, HEADER), match="16UC1")
    _raises("encoding", cv.label_image_to_masks, cv.depth_to_image_msg(np.ones((2, 2)), HEADER), 1, match="32FC1")
    short = cv.rgb_to_image_msg(rgb, HEADER)
    short.data = short.data[:-1]
    _raises("size_mismatch", cv.image_to_rgb, short, match="expected 105 bytes")
    narrow = cv.rgb_to_image_msg(rgb, HEADER)
    narrow.step = 14
    _raises("size_mismatch", cv.image_to_rgb, narrow, match="step 14")
    _raises("size_mismatch", cv.image_to_rgb, Image(encoding="rgb8"), match="empty")


def test_label_beyond_the_detection_count_is_a_bad_mask():
    msg = cv.masks_to_label_image_msg([np.ones((2, 2), bool), np.eye(2, dtype=bool)], (2, 2), HEADER)
    _raises("bad_mask", cv.label_image_to_masks, msg, 1, match="label 2 but there are only 1")


def test_detection_errors():
    msg = cv.detections_to_msg([Detection("mug", (1, 2, 3, 4))], HEADER)
    _raises("bad_mask", cv.detections_from_msg, msg, [None, None], match="2 masks for 1 detections")
    msg.detections.append(Detection2D(id="lonely"))
    _raises("bad_detection", cv.detections_from_msg, msg, match="lonely")
    flat = cv.detections_to_msg([Detection("mug", (1, 2, 3, 4))], HEADER)
    flat.detections[0].bbox.size_x = 0.0
    _raises("bad_detection", cv.detections_from_msg, flat, match="positive")
    unnamed = cv.detections_to_msg([Detection("mug", (1, 2, 3, 4))], HEADER)
    unnamed.detections[0].results[0].hypothesis.class_id = " "
    _raises("bad_detection", cv.detections_from_msg, unnamed, match="empty class_id")


# --- camera -----------------------------------------------------------------------------

def camera_info(width=640, height=480, **fields) -> CameraInfo:
    k = [600.0, 0.0, 319.5, 0.0, 601.0, 239.5, 0.0, 0.0, 1.0]
    p = [590.0, 0.0, 318.0, 0.0, 0.0, 592.0, 241.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    return CameraInfo(width=width, height=height, k=k, p=p, **fields)


def test_K_from_k_and_from_p():
    msg = camera_info()
    np.testing.assert_array_equal(cv.camera_info_to_K(msg), np.reshape(msg.k, (3, 3)))
    np.testing.assert_array_equal(cv.camera_info_to_K(msg, use_projection=True), [[590, 0, 318], [0, 592, 241], [0, 0, 1]])
    cv.check_image_size(msg, 480, 640)
    cv.check_image_size(camera_info(0, 0), 10, 10)  # size unknown: anything goes
    _raises("size_mismatch", cv.check_image_size, msg, 480, 320, match="640x480 images but the image is 320x480")


def test_camera_info_msg_round_trip():
    K = np.array([[600.0, 0.0, 319.5], [0.0, 601.0, 239.5], [0.0, 0.0, 1.0]])
    msg = cv.camera_info_msg(K, 480, 640, HEADER)
    assert (msg.header, msg.height, msg.width, msg.distortion_model, list(msg.d)) == (HEADER, 480, 640, "plumb_bob", [0.0] * 5)
    np.testing.assert_array_equal(cv.camera_info_to_K(msg), K)
    np.testing.assert_array_equal(cv.camera_info_to_K(msg, use_projection=True), K)
    cv.check_image_size(msg, 480, 640)


def test_K_follows_roi_and_binning():
    from sensor_msgs.msg import RegionOfInterest

    msg = camera_info(binning_x=2, binning_y=2, roi=RegionOfInterest(x_offset=100, y_offset=40, width=400, height=300))
    K = cv.camera_info_to_K(msg)
    # full-resolution pixel u maps to binned pixel (u - 100 - 0.5) / 2 after the ROI
    assert K[0, 0] == 300.0 and K[1, 1] == 300.5
    assert K[0, 2] == (319.5 - 100 - 0.5) / 2 and K[1, 2] == (239.5 - 40 - 0.5) / 2
    assert cv.camera_info_image_size(msg) == (150, 200)
    cv.check_image_size(msg, 150, 200)


def test_camera_info_errors():
    _raises("uncalibrated", cv.camera_info_to_K, CameraInfo(width=640, height=480), match="all zero")
    _raises("uncalibrated", cv.camera_info_to_K, camera_info(640, 0), match="width 640 and height 0")
    negative = camera_info()
    negative.k[0] = -1.0
    _raises("uncalibrated", cv.camera_info_to_K, negative, match="positive fx")
    nan = camera_info()
    nan.k[4] = float("nan")
    _raises("non_finite_K", cv.camera_info_to_K, nan, match="non-finite")
    inf = camera_info()
    inf.p[2] = float("inf")
    cv.camera_info_to_K(inf)  # k is fine
    _raises("non_finite_K", cv.camera_info_to_K, inf, True, match=r"camera_info\.p")
    _raises("uncalibrated", cv.camera_info_to_K, CameraInfo(width=640, height=480, k=camera_info().k), True)


# --- detections -------------------------------------------------------------------------

def test_detections_round_trip_and_pixel_convention():
    detections = [Detection("mug", (10.0, 20.0, 30.0, 40.0), 0.75), Detection("4", (0.0, 5.5, 1.0, 2.5), 0.5),
                  Detection("bracket", (3.25, 1.0, 7.5, 1.0), 1.0)]
    msg = cv.detections_to_msg(detections, HEADER)
    assert msg.header == HEADER and [d.header for d in msg.detections] == [HEADER] * 3
    first = msg.detections[0].bbox
    assert (first.center.position.x, first.center.position.y, first.size_x, first.size_y) == (24.5, 39.5, 30.0, 40.0)
    one_pixel = msg.detections[1].bbox  # pixel (0, 5.5..) : a 1-pixel-wide box is centred on its pixel
    assert one_pixel.center.position.x == 0.0
    masks = [np.ones((2, 2), bool), None, np.eye(2, dtype=bool)]
    back = cv.detections_from_msg(msg, masks)
    assert [(d.object_id, d.score) for d in back] == [("mug", 0.75), ("4", 0.5), ("bracket", 1.0)]
    for got, sent in zip(back, detections):
        np.testing.assert_allclose(got.bbox_xywh, sent.bbox_xywh, rtol=0, atol=1e-12)
    assert back[1].mask is None and back[2].mask.tolist() == [[True, False], [False, True]]


def test_best_hypothesis_wins():
    det = Detection2D(bbox=BoundingBox2D(size_x=4.0, size_y=2.0))
    det.bbox.center.position.x, det.bbox.center.position.y = 1.5, 0.5
    for name, score in [("mug", 0.2), ("toy_block", 0.9), ("bracket", 0.4)]:
        det.results.append(ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id=name, score=score)))
    (detection,) = cv.detections_from_msg(Detection2DArray(header=HEADER, detections=[det]))
    assert detection.object_id == "toy_block" and detection.score == 0.9 and detection.bbox_xywh == (0.0, 0.0, 4.0, 2.0)


# --- time -------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds", [0.0, 1712.345, 1.9999999999, 1e9 + 0.5, 3.000000001])
def test_stamp_round_trip(seconds):
    stamp = cv.seconds_to_stamp(seconds)
    assert 0 <= stamp.nanosec < 1_000_000_000
    assert cv.stamp_to_seconds(stamp) == pytest.approx(seconds, abs=1e-9)
    assert cv.stamp_to_nanoseconds(stamp) == stamp.sec * 10**9 + stamp.nanosec


# --- poses ------------------------------------------------------------------------------

def test_pose_messages(rng):
    poses = [random_pose(rng, "mug", 0), random_pose(rng, "bracket", 0, index=1), random_pose(rng, "mug", 1, index=2)]
    np.testing.assert_allclose(T_of(cv.pose_msg(poses[0].T_cam_obj)), poses[0].T_cam_obj, atol=1e-12)
    stamped = cv.pose_stamped_msg(poses[1].T_cam_obj, HEADER)
    assert stamped.header == HEADER
    assert stamped.pose.orientation.w >= 0
    array = cv.pose_array_msg(poses, HEADER)
    assert array.header == HEADER
    for pose, p in zip(array.poses, poses):
        np.testing.assert_allclose(T_of(pose), p.T_cam_obj, atol=1e-12)
    tf = cv.transforms_msg(poses, HEADER)
    assert [t.child_frame_id for t in tf.transforms] == ["mug_0", "bracket_0", "mug_1"]
    assert all(t.header == HEADER for t in tf.transforms)
    t = tf.transforms[2].transform
    np.testing.assert_allclose([t.translation.x, t.translation.y, t.translation.z], poses[2].t_m)
    assert cv.instance_frame_id("mug", 3) == "mug_3" and cv.instance_frame_id("mug", 3, "left/") == "left/mug_3"
    prefixed = cv.transforms_msg(poses, HEADER, "left/")
    assert [t.child_frame_id for t in prefixed.transforms] == ["left/mug_0", "left/bracket_0", "left/mug_1"]


def test_detection3d_box_is_the_posed_mesh_box(rng, library):
    poses = [random_pose(rng, "mug", 0, 0.8), random_pose(rng, "cereal_box", 2, 0.6)]
    msg = cv.detection3d_array_msg(poses, library, HEADER)
    assert msg.header == HEADER and [d.id for d in msg.detections] == ["mug_0", "cereal_box_2"]
    for det, p in zip(msg.detections, poses):
        obj = library.get(p.object_id)
        assert det.header == HEADER
        (result,) = det.results
        assert (result.hypothesis.class_id, result.hypothesis.score) == (obj.name, p.score)
        np.testing.assert_allclose(T_of(result.pose.pose), p.T_cam_obj, atol=1e-12)
        box_T = T_of(det.bbox.center)
        np.testing.assert_allclose(box_T[:3, :3], p.R, atol=1e-12)
        size = np.array([det.bbox.size.x, det.bbox.size.y, det.bbox.size.z])
        np.testing.assert_allclose(size, obj.extents_m)
        # the box, placed by its message pose, holds exactly the posed mesh
        in_box = transform_points(np.linalg.inv(box_T), transform_points(p.T_cam_obj, obj.mesh.vertices))
        np.testing.assert_allclose(in_box.min(axis=0), -size / 2, atol=1e-9)
        np.testing.assert_allclose(in_box.max(axis=0), size / 2, atol=1e-9)


def test_symmetries_json(library):
    half_turn = [-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    symmetric = load_object(MESHES / "mug.ply", 9, "round_mug", units="m",
                            symmetries={"discrete": [half_turn], "continuous": [{"axis": [0, 0, 1], "offset": [0, 0, 0]}]})
    table = json.loads(cv.symmetries_msg(ObjectLibrary([*library, symmetric])).data)
    assert set(table) == {"mug", "toy_block", "cereal_box", "bracket", "round_mug"}
    assert table["mug"] == {"discrete": [], "continuous": []}
    assert table["round_mug"]["discrete"] == [[float(v) for v in half_turn]]
    assert table["round_mug"]["continuous"] == [{"axis": [0.0, 0.0, 1.0], "offset_m": [0.0, 0.0, 0.0]}]


def test_detection3d_score_is_the_confidence_and_held_back_poses_are_flagged(rng, library):
    from dataclasses import replace

    trusted = replace(random_pose(rng, "mug", 0, 0.8), confidence=0.83)
    held = replace(random_pose(rng, "mug", 1, 0.9), confidence=0.12)
    msg = cv.detection3d_array_msg([trusted], library, HEADER, held_back=[held])
    assert [d.id for d in msg.detections] == ["mug_0", f"mug_1{cv.HELD_BACK_SUFFIX}"]
    assert [d.results[0].hypothesis.score for d in msg.detections] == [0.83, 0.12]
    without = cv.detection3d_array_msg([replace(trusted, confidence=None)], library, HEADER)
    assert without.detections[0].results[0].hypothesis.score == trusted.score  # no model: the detection score


def test_read_detections_isolates_each_bad_detection():
    msg = cv.detections_to_msg([Detection("mug", (1, 2, 3, 4)), Detection("mug", (5, 6, 7, 8)),
                                Detection("toy_block", (9, 9, 9, 9), 0.5)], HEADER)
    msg.detections[0].id = " cnos-1 "
    msg.detections[1].bbox.size_y = float("nan")
    msg.detections[2].results[0].hypothesis.score = float("inf")
    good = cv.detections_to_msg([Detection("mug", (1, 2, 3, 4))], HEADER)
    msg.detections.append(good.detections[0])
    msg.detections[3].id = ""
    inputs = cv.read_detections(msg)
    assert [(i.index, i.id) for i in inputs] == [(0, "cnos-1"), (1, "1"), (2, "2"), (3, "")]
    assert [i.detection is not None for i in inputs] == [True, False, False, True]
    assert [i.cause for i in inputs] == ["", "bad_detection", "bad_detection", ""]
    assert "positive and finite" in inputs[1].message and "not finite" in inputs[2].message
    with pytest.raises(cv.ConversionError, match="2 masks for 4 detections"):
        cv.read_detections(msg, [None, None])


def test_detection3d_array_accounts_for_every_input_detection_in_input_order(rng, library):
    from dataclasses import replace

    posed = replace(random_pose(rng, "mug", 0, 0.8), detection_index=2)
    held = replace(random_pose(rng, "mug", 1, 0.9), detection_index=0, confidence=0.1)
    msg = cv.detection3d_array_msg([posed], library, HEADER, [held], ids={0: "a", 1: "", 2: ""},
                                   unposed=[(1, "", "failed:bad_detection"), (3, "d", "below_score_threshold")])
    assert [d.id for d in msg.detections] == [f"a{cv.HELD_BACK_SUFFIX}", "detection_1:failed:bad_detection", "mug_0",
                                              "d:below_score_threshold"]
    assert [len(d.results) for d in msg.detections] == [1, 0, 1, 0]

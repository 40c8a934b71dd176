"""The bop_player node, started as its own process with config/bop_player.yaml, on a tiny synthetic
BOP dataset (bundled objects, 1 scene × 2 images); this process subscribes on loopback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import numpy as np
import pytest

from helpers import BUNDLED_OBJECTS, REPO_ROOT
from ros_helpers import finish, spin_until, stamp_ns

pytestmark = pytest.mark.ros

FRAME_ID = "camera_color_optical_frame"
CAMERA_TOPICS = ("image", "camera_info", "detections", "detection_masks", "depth")


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    from novel_pose_ros.objects import ObjectLibrary
    from novel_pose_ros.synth import SynthSettings, generate_dataset

    out = tmp_path_factory.mktemp("bop_player") / "synth"
    settings = SynthSettings(width=160, height=120, focal_px=150.0, objects_per_scene=(3, 4))
    generate_dataset(ObjectLibrary.from_yaml(BUNDLED_OBJECTS), out, scenes=1, images_per_scene=2, seed=3,
                     settings=settings, show_progress=False)
    return out


def subscribe(node, namespace: str, topics: dict[str, type]) -> dict[str, list]:
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    received: dict[str, list] = {name: [] for name in topics}
    qos = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    for name, msg_type in topics.items():
        topic = f"{namespace}/{name}" if name in CAMERA_TOPICS else name
        node.create_subscription(msg_type, topic, received[name].append, qos)
    return received


def start_player(namespace: str, *overrides: str) -> subprocess.Popen:
    """The player with config/bop_player.yaml, its camera topics (only those) remapped under `namespace`."""
    command = [sys.executable, "-m", "novel_pose_ros.ros.bop_player_node", "--ros-args",
               "--params-file", str(REPO_ROOT / "config" / "bop_player.yaml")]
    for topic in CAMERA_TOPICS:
        command += ["-r", f"{topic}:={namespace}/{topic}"]
    for override in overrides:
        command += ["-p", override]
    return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ))


def test_one_pass_with_file_detections_and_masks(dataset_dir, listener):
    from sensor_msgs.msg import CameraInfo, Image
    from vision_msgs.msg import Detection2DArray

    from novel_pose_ros.bop.dataset import BopDataset
    from novel_pose_ros.bop.detections import decode_mask
    from novel_pose_ros.ros import conversions as cv

    node, executor = listener
    namespace = f"/bop_player_test_{uuid.uuid4().hex[:8]}"
    got = subscribe(node, namespace, {"image": Image, "camera_info": CameraInfo, "detections": Detection2DArray,
                                      "detection_masks": Image})
    proc = start_player(namespace, f"dataset:={dataset_dir}", "detections_file:=detections_gt.json",
                        "detections_from_gt:=false", f"objects_file:={BUNDLED_OBJECTS}", "publish_masks:=true",
                        "rate_hz:=20.0")
    try:
        assert spin_until(executor, lambda: all(len(v) == 2 for v in got.values()) and proc.poll() is not None), \
            f"received {[(k, len(v)) for k, v in got.items()]}, player {'exited' if proc.poll() is not None else 'running'}"
    finally:
        rc, out = finish(proc)
    assert rc == 0, out
    assert "played 2 frames" in out and "exiting" in out

    dataset = BopDataset(dataset_dir)
    images = list(dataset.images())
    entries = json.loads((dataset_dir / "detections_gt.json").read_text())
    names = {1: "mug", 2: "toy_block", 3: "cereal_box", 4: "bracket"}
    stamps = [stamp_ns(m) for m in got["image"]]
    assert stamps[0] < stamps[1]
    for i, image in enumerate(images):
        frame = {name: messages[i] for name, messages in got.items()}
        assert {stamp_ns(m) for m in frame.values()} == {stamps[i]}
        assert {m.header.frame_id for m in frame.values()} == {FRAME_ID}
        assert {d.header.frame_id for d in frame["detections"].detections} <= {FRAME_ID}
        np.testing.assert_array_equal(cv.image_to_rgb(frame["image"]), image.load_rgb())
        info = frame["camera_info"]
        assert (info.width, info.height) == (160, 120)
        np.testing.assert_allclose(cv.camera_info_to_K(info), image.K)
        mine = [e for e in entries if (e["scene_id"], e["image_id"]) == (image.scene_id, image.im_id)]
        assert len(mine) >= 1
        masks = cv.label_image_to_masks(frame["detection_masks"], len(mine))
        detections = cv.detections_from_msg(frame["detections"], masks)
        assert [d.object_id for d in detections] == [names[e["category_id"]] for e in mine]
        for d, e in zip(detections, mine):
            np.testing.assert_allclose(d.bbox_xywh, e["bbox"], atol=1e-9)
            np.testing.assert_array_equal(d.mask, decode_mask(e["segmentation"]))


def test_loop_with_gt_detections_depth_and_ground_truth(dataset_dir, listener):
    from geometry_msgs.msg import PoseArray
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import String
    from vision_msgs.msg import Detection2DArray

    from novel_pose_ros.bop.dataset import BopDataset
    from novel_pose_ros.ros import conversions as cv

    node, executor = listener
    namespace = f"/bop_player_test_{uuid.uuid4().hex[:8]}"
    got = subscribe(node, namespace, {"image": Image, "camera_info": CameraInfo, "detections": Detection2DArray,
                                      "depth": Image, "/bop_player/ground_truth": PoseArray,
                                      "/bop_player/ground_truth_ids": String})
    proc = start_player(namespace, f"dataset:={dataset_dir}", "loop:=true", "publish_depth:=true",
                        "depth_encoding:=16UC1", "publish_ground_truth:=true", "rate_hz:=25.0", "frame_id:=cam")
    try:
        assert spin_until(executor, lambda: all(len(v) >= 5 for v in got.values()) or proc.poll() is not None), \
            f"received {[(k, len(v)) for k, v in got.items()]}"
    finally:
        rc, out = finish(proc, sigint=True)
    assert rc == 0, out
    assert "looping" in out

    dataset = BopDataset(dataset_dir)
    ids = [json.loads(m.data) for m in got["/bop_player/ground_truth_ids"]]
    assert [i["im_id"] for i in ids[:5]] == [0, 1, 0, 1, 0]
    stamps = [stamp_ns(m) for m in got["depth"][:5]]
    assert stamps == sorted(set(stamps))  # strictly increasing, across loops too
    for n in range(5):
        frame = [got[name][n] for name in ("image", "camera_info", "detections", "depth", "/bop_player/ground_truth")]
        assert {stamp_ns(m) for m in frame} == {stamps[n]}
        assert {m.header.frame_id for m in frame} == {"cam"}
        assert ids[n]["stamp"] == {"sec": stamps[n] // 10**9, "nanosec": stamps[n] % 10**9} and ids[n]["frame_id"] == "cam"
        image = dataset.image(ids[n]["scene_id"], ids[n]["im_id"])
        assert got["depth"][n].encoding == "16UC1"
        np.testing.assert_allclose(cv.image_to_depth_m(got["depth"][n]), image.load_depth_m(), atol=0.5e-3)
        assert ids[n]["obj_ids"] == [g.obj_id for g in image.gt]
        assert ids[n]["names"] == [f"obj_{g.obj_id:06d}" for g in image.gt]
        poses = got["/bop_player/ground_truth"][n].poses
        for pose, g in zip(poses, image.gt, strict=True):
            np.testing.assert_allclose([pose.position.x, pose.position.y, pose.position.z], g.T_cam_obj[:3, 3])
        detected = {d.object_id for d in cv.detections_from_msg(got["detections"][n])}
        assert detected and detected <= set(ids[n]["names"])


def test_bad_parameters_stop_the_player_with_a_reason(tmp_path):
    proc = start_player("/bop_player_test_bad", f"dataset:={tmp_path}")
    rc, out = finish(proc)
    assert rc == 1 and "cannot start" in out and "no 'test' folder" in out

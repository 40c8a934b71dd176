"""The pose_estimator node as its own process (`--ros-args --params-file config/pose_estimator.yaml`),
fed by this process on loopback: poses and TF for a two-object frame, stamps and frames passed
through, empty detections, every bad-input case followed by a good frame, parameter validation
through the parameter service, diagnostics and the latched symmetries. Untrained weights: the
graph is under test, not accuracy."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from helpers import MESHES, TOY_BLOCK
from ros_helpers import finish, spin_until, stamp_ns
from ros_node_client import FRAME, K, Client, start_pose_estimator

pytestmark = pytest.mark.ros

# short enough for a test to see it pass, long enough that a loaded CI machine's slow frames stay in it
DIAGNOSTICS_WINDOW_S = 6.0


@pytest.fixture(scope="module")
def scene(gl_renderer):
    """RGB frame with the toy block and the cereal box, and their masks."""
    from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle
    from novel_pose_ros.objects import load_object
    from novel_pose_ros.render import SHADED

    block = load_object(MESHES / "toy_block.ply", 2, "toy_block", units="m")
    box = load_object(MESHES / "cereal_box.obj", 3, "cereal_box", units="m")
    R = rotation_from_axis_angle(np.array([1.0, 0.3, 0.2]), 2.2)
    result = gl_renderer.render([(block, make_T(R, [-0.08, 0.02, 0.6])), (box, make_T(R.T, [0.09, -0.01, 0.55]))],
                                K, 640, 480, SHADED)
    image = np.where(result.mask[..., None], result.rgb, np.uint8(90))
    return image, [result.labels == 1, result.labels == 2]


@pytest.fixture(scope="module")
def node_process(tmp_path_factory):
    proc = start_pose_estimator(
        tmp_path_factory.mktemp("pose_estimator"),
        {"use_masks": True, "input_reliability": "reliable", "diagnostics_period_s": 0.5,
         "diagnostics_window_s": DIAGNOSTICS_WINDOW_S,
         "network": "small"},  # untrained small network: the graph is under test, not the weights
        objects=(TOY_BLOCK, (3, "cereal_box", "cereal_box.obj")))
    yield proc
    code, out = finish(proc, sigint=True)
    print(out)
    assert code == 0, f"pose_estimator exited with {code} after SIGINT"
    # the library's own log records reach the node's ROS log (ros/log_bridge.py): its untrained-weights warning
    assert "[WARN]" in out and "novel_pose_ros.runtime.weights: PicoPose 'small' runs with UNTRAINED" in out, \
        "the library's logging records did not reach the node's log"


@pytest.fixture(scope="module")
def client(node_process, module_listener):
    node, executor = module_listener
    return Client(node, executor).wait_for_node(node_process)


def test_poses_tf_and_detections_for_two_objects(client, scene):
    image, masks = scene
    stamp = client.send(image, masks, ["toy_block", "cereal_box"], ids=["cnos-17", "cnos-18"])
    poses = client.output_for(stamp)
    assert poses is not None, "no /object_poses for the frame"
    assert poses.header.frame_id == FRAME and len(poses.poses) == 2
    detections = client.output_for(stamp, "/pose_estimator/detections_3d")
    assert [d.results[0].hypothesis.class_id for d in detections.detections] == ["toy_block", "cereal_box"]
    assert [d.id for d in detections.detections] == ["cnos-17", "cnos-18"]  # the input ids, carried
    assert detections.detections[0].results[0].pose.pose.position.z == pytest.approx(poses.poses[0].position.z)
    tf = client.first("/tf", lambda m: any(stamp_ns(t) == stamp for t in m.transforms))
    assert {(t.header.frame_id, t.child_frame_id) for t in tf.transforms} == {(FRAME, "toy_block_0"), (FRAME, "cereal_box_0")}
    best = client.output_for(stamp, "/pose_estimator/object_poses/toy_block")
    assert best.header.frame_id == FRAME and best.pose.position.z == pytest.approx(poses.poses[0].position.z)
    markers = client.first("/pose_estimator/markers", lambda m: m.markers and stamp_ns(m.markers[-1]) == stamp)
    # bundled meshes: package URLs that RViz on another machine resolves
    assert "package://novel_pose_ros/meshes/toy_block.ply" in {m.mesh_resource for m in markers.markers}
    overlay = client.output_for(stamp, "/pose_estimator/overlay")
    assert overlay is not None and (overlay.height, overlay.width) == image.shape[:2]


def test_empty_detections_publish_empty_arrays(client, scene):
    image, _ = scene
    stamp = client.send(image, [], [])
    poses = client.output_for(stamp)
    assert poses is not None and len(poses.poses) == 0 and poses.header.frame_id == FRAME
    assert len(client.output_for(stamp, "/pose_estimator/detections_3d").detections) == 0


# case -> (what is wrong with the frame, the cause the node must count in /diagnostics)
BAD_INPUTS = {
    "wrong_encoding": (dict(encoding="yuv422"), "encoding"),
    "size_mismatch": (dict(info_size=(240, 320)), "size_mismatch"),
    "nan_in_K": (dict(K_matrix=np.where(np.eye(3, dtype=bool), np.nan, K)), "non_finite_K"),
    "uncalibrated": (dict(K_matrix=np.zeros((3, 3))), "uncalibrated"),
    "empty_frame_id": (dict(frame_id=""), "no_frame_id"),
    "unsupported_distortion": (dict(distortion=("kannala_brandt", [0.1, 0.0, 0.0, 0.0])), "distortion"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_dropped_and_the_next_good_frame_is_answered(client, scene, node_process, case):
    image, masks = scene
    broken, cause = BAD_INPUTS[case]
    bad = client.send(image, masks, ["toy_block", "cereal_box"], **broken)
    counted = client.first("/diagnostics", lambda m: any(v.key == f"count_{cause}" for v in m.status[0].values))
    assert counted is not None, f"the node did not count cause '{cause}'"
    good = client.send(image, masks, ["toy_block", "cereal_box"])
    answer = client.output_for(good)
    assert node_process.poll() is None, "the node died"
    assert answer is not None and len(answer.poses) == 2
    assert all(stamp_ns(m) != bad for m in client.got["/object_poses"]), "a pose was published for the bad frame"


def test_unknown_object_costs_no_other_detection_its_pose(client, scene):
    image, masks = scene
    stamp = client.send(image, masks, ["banana", "cereal_box"], ids=["a", "b"])
    poses = client.output_for(stamp)
    assert poses is not None and len(poses.poses) == 1
    detections = client.output_for(stamp, "/pose_estimator/detections_3d")
    assert [d.id for d in detections.detections] == ["a:failed:unknown_object", "b"]
    assert [len(d.results) for d in detections.detections] == [0, 1]
    assert detections.detections[1].results[0].hypothesis.class_id == "cereal_box"


def _zero_size_box(msg):
    msg.detections[1].bbox.size_x = 0.0


def _nan_box(msg):
    msg.detections[1].bbox.center.position.x = float("nan")


def _no_results(msg):
    msg.detections[1].results = []


@pytest.mark.parametrize("malform", [_zero_size_box, _nan_box, _no_results], ids=["zero_size", "nan", "no_results"])
def test_a_malformed_detection_costs_only_itself(client, scene, node_process, malform):
    """Issue 21 (1, 2): one bad Detection2D between two good ones is a counted failure of that detection
    alone; every input detection is accounted for, in input order, by its id."""
    image, masks = scene
    corner = np.zeros_like(masks[0])
    corner[2:12, 2:12] = True  # the malformed detection's own mask, clear of the others
    stamp = client.send(image, [masks[0], corner, masks[1]], ["toy_block", "toy_block", "cereal_box"],
                        ids=["first", "broken", "last"], edit_detections=malform)
    poses = client.output_for(stamp)
    assert node_process.poll() is None, "the node died"
    assert poses is not None and len(poses.poses) == 2, "the good detections lost their poses"
    detections = client.output_for(stamp, "/pose_estimator/detections_3d")
    assert [d.id for d in detections.detections] == ["first", "broken:failed:bad_detection", "last"]
    unflagged = [d for d in detections.detections if ":" not in d.id]
    for pose, detection in zip(poses.poses, unflagged):  # /object_poses is the unflagged entries, in order
        assert pose.position.z == pytest.approx(detection.results[0].pose.pose.position.z)
    counted = client.first("/diagnostics", lambda m: any(v.key == "count_bad_detection" for v in m.status[0].values))
    assert counted is not None


def test_detections_without_an_id_get_their_instance_frame(client, scene):
    image, masks = scene
    stamp = client.send(image, masks, ["toy_block", "cereal_box"], ids=["", ""])
    detections = client.output_for(stamp, "/pose_estimator/detections_3d")
    assert [d.id for d in detections.detections] == ["toy_block_0", "cereal_box_0"]


def set_parameter(client, name, value):
    """Set one parameter of the node through its parameter service; the SetParametersResult."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    service = client.node.create_client(SetParameters, "/pose_estimator/set_parameters")
    assert service.wait_for_service(timeout_sec=10)
    if isinstance(value, str):
        parameter_value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    elif isinstance(value, int) and not isinstance(value, bool):
        parameter_value = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    else:
        parameter_value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(value))
    future = service.call_async(SetParameters.Request(parameters=[Parameter(name=name, value=parameter_value)]))
    assert spin_until(client.executor, future.done, 10)
    client.node.destroy_client(service)
    return future.result().results[0]


def test_parameters_are_validated_through_the_parameter_service(client, scene):
    out_of_range = set_parameter(client, "score_threshold", 2.0)
    assert not out_of_range.successful and "out of range" in out_of_range.reason
    read_only = set_parameter(client, "backend", "torch")
    assert not read_only.successful and "read-only" in read_only.reason
    assert set_parameter(client, "score_threshold", 0.95).successful
    image, masks = scene
    stamp = client.send(image, masks, ["toy_block", "cereal_box"], scores=[0.9, 0.97])
    poses = client.output_for(stamp)
    assert poses is not None and len(poses.poses) == 1  # the 0.9 detection is below the threshold now
    detections = client.output_for(stamp, "/pose_estimator/detections_3d")
    assert [d.id for d in detections.detections] == ["0:below_score_threshold", "1"]
    assert set_parameter(client, "score_threshold", 0.0).successful


def test_poses_under_min_confidence_are_held_back_but_reported(client, scene):
    from novel_pose_ros.ros.conversions import HELD_BACK_SUFFIX

    image, masks = scene
    stamp = client.send(image, masks, ["toy_block", "cereal_box"])
    detections = client.output_for(stamp, "/pose_estimator/detections_3d")
    confidences = [d.results[0].hypothesis.score for d in detections.detections]
    assert len(confidences) == 2 and all(0.0 < c < 1.0 for c in confidences)  # confidences, not the 0.9 detection score
    assert set_parameter(client, "min_confidence", 1.0).successful  # above every confidence: all held back
    held = client.send(image, masks, ["toy_block", "cereal_box"])
    poses = client.output_for(held)
    assert poses is not None and len(poses.poses) == 0
    detections = client.output_for(held, "/pose_estimator/detections_3d")
    assert [d.id for d in detections.detections] == [f"0{HELD_BACK_SUFFIX}", f"1{HELD_BACK_SUFFIX}"]
    assert set_parameter(client, "min_confidence", 0.0).successful
    published = client.send(image, masks, ["toy_block", "cereal_box"])
    assert len(client.output_for(published).poses) == 2
    assert client.first("/tf", lambda m: any(stamp_ns(t) == published for t in m.transforms)) is not None
    assert not any(stamp_ns(t) == held for m in client.got["/tf"] for t in m.transforms), "TF for held-back poses"
    values = {v.key for v in client.first("/diagnostics", lambda m: any(
        v.key == "held_back_share" for v in m.status[0].values)).status[0].values}
    assert {"mean_confidence", "held_back_share"} <= values


def test_diagnostics_and_latched_symmetries(client):
    assert spin_until(client.executor, lambda: any(
        any(v.key == "count_encoding" for v in m.status[0].values) for m in client.got["/diagnostics"]), 10)
    status = client.got["/diagnostics"][-1].status[0]
    values = {v.key: v.value for v in status.values}
    assert {"input_rate_hz", "output_rate_hz", "dropped_frames", "backend", "device", "network"} <= set(values)
    assert values["backend"] == "onnxruntime" and values["device"] == "cpu"
    assert "untrained weights" in status.message
    assert spin_until(client.executor, lambda: client.got["symmetries"], 10)
    symmetries = json.loads(client.got["symmetries"][-1].data)
    assert set(symmetries) == {"toy_block", "cereal_box"}


def test_a_mesh_in_the_wrong_unit_is_refused_at_configure(tmp_path):
    """Issue 21 (6): the node does not start with an object 1000x too large; its log says why and what to set."""
    proc = start_pose_estimator(tmp_path, {}, objects=((5, "bracket", "bracket.stl"),))  # a mm mesh
    code, out = finish(proc)
    assert code == 1, out[-2000:]
    assert "with units: m the object is" in out and "set units: mm" in out, out[-2000:]


def test_detections_that_arrive_after_many_newer_frames_still_get_their_poses(client, scene):
    """Issue 21 (3): a detector answering after 15 newer camera frames (0.5 s at 30 Hz) still finds its
    frame in the node's frame cache (a 10-message synchroniser queue lost it)."""
    image, masks = scene
    client.next_stamp_s += 10
    first = client.next_stamp_s
    for k in range(16):  # camera frames only, at 30 Hz as a driver sends them
        client.send(image, masks, ["toy_block", "cereal_box"], stamp_s=first + k / 30, parts=("camera",))
        spin_until(client.executor, lambda: False, 1 / 30)
    spin_until(client.executor, lambda: False, 0.5)  # let them arrive first
    stamp = client.send(image, masks, ["toy_block", "cereal_box"], stamp_s=first, parts=("detector",))
    poses = client.output_for(stamp)
    assert poses is not None and len(poses.poses) == 2


def test_detections_without_a_frame_are_reported_with_the_stamp_gap(client, scene):
    image, masks = scene
    client.next_stamp_s += 10
    client.send(image, masks, ["toy_block"], stamp_s=client.next_stamp_s, parts=("camera",))
    client.send(image, masks, ["toy_block"], stamp_s=client.next_stamp_s + 1.0, parts=("camera",))
    spin_until(client.executor, lambda: False, 0.5)
    client.send(image, masks, ["toy_block"], stamp_s=client.next_stamp_s + 0.4, parts=("detector",))  # re-stamped
    counted = client.first("/diagnostics", lambda m: any(v.key == "count_unmatched_detections" for v in m.status[0].values))
    assert counted is not None
    values = {v.key: v.value for v in counted.status[0].values}
    assert values["sync_policy"] == "exact" and int(values["frames_cached"]) >= 2


def test_diagnostics_levels_follow_the_last_window(client, scene):
    """Issue 21 (7): the level is over the last diagnostics_window_s (6 s here): STALE without input, ERROR
    while most frames are rejected, back to WARN (untrained weights only) once the window holds good frames."""
    from diagnostic_msgs.msg import DiagnosticStatus

    image, masks = scene
    history = client.got["/diagnostics"]

    def status_after(start: int, predicate=lambda status: True):
        """The first /diagnostics status published after history[start] for which predicate holds."""
        found = lambda: next((m.status[0] for m in history[start:] if predicate(m.status[0])), None)  # noqa: E731
        spin_until(client.executor, lambda: found() is not None, 10.0)
        return found()

    def window_value(status, key):
        return next((v.value for v in status.values if v.key == key), None)

    spin_until(client.executor, lambda: False, DIAGNOSTICS_WINDOW_S + 0.5)  # nothing for longer than the window
    stale = status_after(len(history))
    assert stale.level == DiagnosticStatus.STALE and "no input frames" in stale.message
    start = len(history)
    client.send(image, masks, ["toy_block", "cereal_box"], encoding="yuv422")  # a frame arrives, nothing comes out
    failing = status_after(start, lambda status: window_value(status, "window_frames_in") == "1")
    assert failing is not None, history[-1].status[0].message
    assert failing.level == DiagnosticStatus.ERROR and "0 of 1 frames answered, 100% dropped or rejected" in failing.message
    assert window_value(failing, "window_rejected") == "1" and window_value(failing, "window_encoding") == "1"
    answered = client.send(image, masks, ["toy_block", "cereal_box"])
    assert client.output_for(answered) is not None
    latency = status_after(start, lambda status: window_value(status, "latency_ms_p50") not in (None, "n/a"))
    assert latency is not None and latency.level != DiagnosticStatus.OK  # the bad frame is still in the window
    started = time.monotonic()
    while time.monotonic() - started < DIAGNOSTICS_WINDOW_S + 1.0:  # good frames, each answered before the next
        assert client.output_for(client.send(image, masks, ["toy_block", "cereal_box"])) is not None
    recovered = status_after(len(history))
    assert recovered.level == DiagnosticStatus.WARN, recovered.message
    assert recovered.message.endswith("untrained weights: poses are meaningless") and "encoding" not in recovered.message


def _transition(client, transition_id: int) -> bool:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    service = client.node.create_client(ChangeState, "/pose_estimator/change_state")
    assert service.wait_for_service(timeout_sec=10.0)
    future = service.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
    spin_until(client.executor, future.done, 120.0)  # configure rebuilds the estimator
    client.node.destroy_client(service)
    return future.done() and future.result().success


def test_lifecycle_inactive_publishes_nothing_and_cleanup_frees_the_configure_time_parameters(client, scene):
    """Issue 21 (9). Runs last: it takes the node through deactivate, cleanup, configure and activate."""
    from lifecycle_msgs.msg import Transition

    image, masks = scene
    assert _transition(client, Transition.TRANSITION_DEACTIVATE)
    quiet = client.send(image, masks, ["toy_block", "cereal_box"])
    assert client.output_for(quiet, timeout_s=3.0) is None, "an inactive node published poses"
    refused = set_parameter(client, "hypotheses", 3)
    assert not refused.successful and "read-only while the node is configured" in refused.reason
    assert _transition(client, Transition.TRANSITION_CLEANUP)
    assert set_parameter(client, "hypotheses", 3).successful  # unconfigured: accepted, used at configure
    assert not set_parameter(client, "hypotheses", 999).successful  # still validated
    for _ in range(2):  # two configure/cleanup cycles leave one /diagnostics publisher
        assert _transition(client, Transition.TRANSITION_CONFIGURE)
        assert _transition(client, Transition.TRANSITION_CLEANUP)
    assert _transition(client, Transition.TRANSITION_CONFIGURE)
    assert _transition(client, Transition.TRANSITION_ACTIVATE)
    assert spin_until(client.executor, lambda: client.node.count_publishers("/diagnostics") == 1, 5.0), \
        f"{client.node.count_publishers('/diagnostics')} /diagnostics publishers after the cycles"
    answered = client.send(image, masks, ["toy_block", "cereal_box"])
    poses = client.output_for(answered)
    assert poses is not None and len(poses.poses) == 2

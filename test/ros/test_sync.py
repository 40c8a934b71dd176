"""novel_pose_ros.ros.sync: our StampSynchronizer (logic, then over real rclpy topics on loopback)
and the choice of message_filters where it is importable."""
from __future__ import annotations

import sys
import threading
import types
import uuid

import pytest
from geometry_msgs.msg import PointStamped, PoseStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import String

from novel_pose_ros.ros.conversions import seconds_to_stamp, stamp_to_seconds
from novel_pose_ros.ros.sync import StampSynchronizer, create_synchronizer
from ros_helpers import spin_until

TIMEOUT_S = 10.0
T0 = 1_700_000_000.0
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


def stamped(cls, seconds: float):
    msg = cls()
    msg.header.stamp = seconds_to_stamp(seconds)
    return msg


def stamps(messages) -> list[float]:
    return [round(stamp_to_seconds(m.header.stamp) - T0, 6) for m in messages]


# --- the matching rules, without a graph ------------------------------------------------

class Recorder:
    def __init__(self) -> None:
        self.sets: list[tuple] = []

    def __call__(self, *messages) -> None:
        self.sets.append(messages)

    def stamps(self) -> list[list[float]]:
        return [stamps(s) for s in self.sets]


def test_exact_stamps_match_with_zero_slop():
    out = Recorder()
    sync = StampSynchronizer(3, out, slop_s=0.0, queue_size=5)
    sync.add(0, stamped(PointStamped, T0 + 1))
    sync.add(1, stamped(PoseStamped, T0 + 1))
    assert out.sets == []
    sync.add(2, stamped(CameraInfo, T0 + 1.000000001))  # 1 ns apart: no match with slop 0
    sync.add(2, stamped(CameraInfo, T0 + 1))
    assert out.stamps() == [[1.0, 1.0, 1.0]]
    assert [type(m) for m in out.sets[0]] == [PointStamped, PoseStamped, CameraInfo]


def test_newest_complete_set_wins_and_older_messages_are_dropped():
    out = Recorder()
    sync = StampSynchronizer(2, out, slop_s=0.1, queue_size=10)
    for t in (1.00, 1.05, 1.10):
        sync.add(0, stamped(PointStamped, T0 + t))
    sync.add(1, stamped(PoseStamped, T0 + 1.08))
    assert out.stamps() == [[1.10, 1.08]]
    assert sync.dropped == 2 and sync.matched == 1 and sync.received == 4
    sync.add(1, stamped(PoseStamped, T0 + 1.04))  # older than the last emitted set of its topic
    sync.add(0, stamped(PointStamped, T0 + 1.03))
    assert sync.dropped == 4 and len(out.sets) == 1


def test_beyond_slop_never_matches_until_a_close_one_arrives():
    out = Recorder()
    sync = StampSynchronizer(2, out, slop_s=0.02, queue_size=10)
    sync.add(0, stamped(PointStamped, T0 + 1.00))
    sync.add(1, stamped(PoseStamped, T0 + 1.05))
    sync.add(1, stamped(PoseStamped, T0 + 0.97))
    assert out.sets == []
    sync.add(0, stamped(PointStamped, T0 + 1.07))  # within 0.02 of 1.05: the newest set
    assert out.stamps() == [[1.07, 1.05]]
    assert sync.dropped == 2  # 1.00 on topic 0, 0.97 on topic 1


def test_queue_bound_drops_the_oldest():
    out = Recorder()
    sync = StampSynchronizer(2, out, slop_s=0.0, queue_size=3)
    for t in range(5):
        sync.add(0, stamped(PointStamped, T0 + t))
    assert sync.dropped == 2
    sync.add(1, stamped(PoseStamped, T0 + 0))  # its partner was pushed out of the queue
    assert out.sets == []
    sync.add(1, stamped(PoseStamped, T0 + 3))
    assert out.stamps() == [[3.0, 3.0]]
    assert sync.dropped == 2 + 1 + 1  # t=2 on topic 0, t=0 on topic 1 left behind by the match


def test_out_of_order_arrival_within_a_topic():
    out = Recorder()
    sync = StampSynchronizer(2, out, slop_s=0.0, queue_size=5)
    for t in (3, 1, 2):
        sync.add(0, stamped(PointStamped, T0 + t))
    sync.add(1, stamped(PoseStamped, T0 + 2))
    assert out.stamps() == [[2.0, 2.0]] and sync.dropped == 1
    sync.add(1, stamped(PoseStamped, T0 + 3))
    assert out.stamps()[-1] == [3.0, 3.0]


def test_concurrent_adds_are_consistent():
    out = Recorder()
    sync = StampSynchronizer(2, out, slop_s=0.0, queue_size=1000)

    def feed(index: int, cls) -> None:
        for t in range(300):
            sync.add(index, stamped(cls, T0 + t))

    threads = [threading.Thread(target=feed, args=(0, PointStamped)), threading.Thread(target=feed, args=(1, PoseStamped))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(a == b for a, b in out.stamps())
    assert [s[0] for s in out.stamps()] == sorted({s[0] for s in out.stamps()})  # strictly increasing
    assert sync.received == 600 and sync.dropped + 2 * sync.matched == 600 and sync.matched > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="slop_s"):
        StampSynchronizer(2, print, -0.1, 5)
    with pytest.raises(ValueError, match="queue_size"):
        StampSynchronizer(2, print, 0.1, 0)


def test_qos_profiles():
    from rclpy.qos import DurabilityPolicy, HistoryPolicy

    from novel_pose_ros.ros.qos import latched_qos, sensor_qos

    sensor = sensor_qos(3)
    assert (sensor.depth, sensor.history, sensor.reliability, sensor.durability) == (
        3, HistoryPolicy.KEEP_LAST, ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE)
    assert sensor_qos(5, "reliable").reliability == ReliabilityPolicy.RELIABLE
    with pytest.raises(ValueError, match="best_effort, reliable"):
        sensor_qos(5, "sometimes")
    with pytest.raises(ValueError, match="depth"):
        sensor_qos(0)
    latched = latched_qos()
    assert (latched.depth, latched.reliability, latched.durability) == (
        1, ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL)


# --- which implementation ---------------------------------------------------------------

class FakeNode:
    def __init__(self) -> None:
        self.created, self.destroyed = [], []

    def create_subscription(self, msg_type, topic, callback, qos_profile):
        sub = types.SimpleNamespace(msg_type=msg_type, topic_name="/" + topic, callback=callback, qos=qos_profile)
        self.created.append(sub)
        return sub

    def destroy_subscription(self, sub) -> None:
        self.destroyed.append(sub)


def fake_message_filters() -> types.ModuleType:
    """The parts of message_filters' Python API that create_synchronizer uses (Jazzy signatures)."""
    module = types.ModuleType("message_filters")

    class Subscriber:
        def __init__(self, node, msg_type, topic, qos_profile=10):
            self.topic = topic
            self.sub = node.create_subscription(msg_type, topic, self.callback, qos_profile=qos_profile)
            self.callbacks = []

        def callback(self, msg):
            for cb in self.callbacks:
                cb(msg, self)

    class TimeSynchronizer:
        def __init__(self, fs, queue_size):
            self.fs, self.queue_size, self.slop, self.callbacks, self.latest = fs, queue_size, None, [], {}
            for f in fs:
                f.callbacks.append(self.add)

        def add(self, msg, f):
            self.latest[f] = msg
            if len(self.latest) == len(self.fs):
                for cb in self.callbacks:
                    cb(*[self.latest[g] for g in self.fs])
                self.latest = {}

        def registerCallback(self, cb):
            self.callbacks.append(cb)

    class ApproximateTimeSynchronizer(TimeSynchronizer):
        def __init__(self, fs, queue_size, slop, allow_headerless=False):
            super().__init__(fs, queue_size)
            self.slop = slop

    module.Subscriber, module.TimeSynchronizer = Subscriber, TimeSynchronizer
    module.ApproximateTimeSynchronizer = ApproximateTimeSynchronizer
    return module


SUBSCRIPTIONS = [(PointStamped, "a", RELIABLE), (PoseStamped, "b", RELIABLE)]


@pytest.mark.parametrize("slop_s,expected", [(0.05, "ApproximateTimeSynchronizer"), (0.0, "TimeSynchronizer")])
def test_message_filters_is_used_when_importable(monkeypatch, slop_s, expected):
    monkeypatch.setitem(sys.modules, "message_filters", fake_message_filters())
    node, out = FakeNode(), Recorder()
    sync = create_synchronizer(node, SUBSCRIPTIONS, out, slop_s, 7)
    assert sync.kind == "message_filters" and sync.topics == ["/a", "/b"]
    assert sync.dropped is None and sync.received is None
    assert [(s.msg_type, s.qos) for s in node.created] == [(PointStamped, RELIABLE), (PoseStamped, RELIABLE)]
    mf_sync = sync._keep_alive[1]
    assert type(mf_sync).__name__ == expected and mf_sync.queue_size == 7 and mf_sync.slop == (slop_s or None)
    node.created[0].callback(stamped(PointStamped, T0))
    node.created[1].callback(stamped(PoseStamped, T0))
    assert out.stamps() == [[0.0, 0.0]] and sync.matched == 1
    sync.destroy()
    assert node.destroyed == node.created


def test_own_synchronizer_when_message_filters_is_missing_or_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "message_filters", None)  # import fails
    node = FakeNode()
    sync = create_synchronizer(node, SUBSCRIPTIONS, Recorder(), 0.01, 5)
    assert sync.kind == "stamp" and sync.topics == ["/a", "/b"] and sync.dropped == 0
    with pytest.raises(ImportError):
        create_synchronizer(node, SUBSCRIPTIONS, Recorder(), 0.01, 5, use_message_filters=True)
    monkeypatch.setitem(sys.modules, "message_filters", fake_message_filters())
    assert create_synchronizer(node, SUBSCRIPTIONS, Recorder(), 0.01, 5, use_message_filters=False).kind == "stamp"
    with pytest.raises(ValueError, match="no header"):
        create_synchronizer(node, [(String, "s", RELIABLE)], Recorder(), 0.01, 5)


# --- over real topics -------------------------------------------------------------------

@pytest.fixture
def graph():
    """(publisher node, subscriber node, executor) in a fresh context."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    pub_node = rclpy.create_node("sync_test_pub", context=context)
    sub_node = rclpy.create_node("sync_test_sub", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(pub_node)
    executor.add_node(sub_node)
    try:
        yield pub_node, sub_node, executor
    finally:
        executor.shutdown()
        pub_node.destroy_node()
        sub_node.destroy_node()
        context.try_shutdown()


def wired(graph, slop_s: float, queue_size: int, use_message_filters: bool = False):
    """A synchroniser (ours unless asked) on two fresh topics and matched publishers for them."""
    pub_node, sub_node, executor = graph
    prefix = f"/sync_test_{uuid.uuid4().hex[:8]}"
    out = Recorder()
    sync = create_synchronizer(sub_node, [(PointStamped, f"{prefix}/a", RELIABLE), (PoseStamped, f"{prefix}/b", RELIABLE)],
                               out, slop_s, queue_size, use_message_filters=use_message_filters)
    pubs = [pub_node.create_publisher(PointStamped, f"{prefix}/a", RELIABLE),
            pub_node.create_publisher(PoseStamped, f"{prefix}/b", RELIABLE)]
    assert spin_until(executor, lambda: all(p.get_subscription_count() == 1 for p in pubs)
                      and sub_node.count_publishers(f"{prefix}/a") == 1 and sub_node.count_publishers(f"{prefix}/b") == 1), \
        "publishers and synchroniser subscriptions never matched"
    return sync, out, pubs


def publish(pubs, index: int, seconds: float) -> None:
    pubs[index].publish(stamped(PointStamped if index == 0 else PoseStamped, T0 + seconds))


@pytest.mark.ros
def test_exact_and_close_stamps_match_over_topics(graph):
    executor = graph[2]
    sync, out, pubs = wired(graph, slop_s=0.0, queue_size=5)
    assert sync.kind == "stamp"
    for n, t in enumerate((1.0, 2.0, 3.0), start=1):  # one set at a time: arrival order across topics is free
        publish(pubs, 0, t)
        publish(pubs, 1, t)
        assert spin_until(executor, lambda: sync.matched == n), f"set {t} never matched: {out.stamps()}"
    assert out.stamps() == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]] and sync.dropped == 0

    sync, out, pubs = wired(graph, slop_s=0.02, queue_size=5)
    publish(pubs, 0, 1.0)
    publish(pubs, 1, 1.015)
    assert spin_until(executor, lambda: sync.matched == 1), f"stamps within the slop never matched ({sync.received} received)"
    assert out.stamps() == [[1.0, 1.015]]


@pytest.mark.ros
def test_beyond_slop_and_queue_bound_over_topics(graph):
    executor = graph[2]
    sync, out, pubs = wired(graph, slop_s=0.02, queue_size=3)
    publish(pubs, 0, 1.0)
    publish(pubs, 1, 1.03)
    assert spin_until(executor, lambda: sync.received == 2)
    assert out.sets == [] and sync.matched == 0

    for t in (2.0, 3.0, 4.0, 5.0):  # topic a now holds 1, 2, 3, 4, 5: the two oldest fall out
        publish(pubs, 0, t)
    assert spin_until(executor, lambda: sync.received == 6)
    assert sync.dropped == 2 and out.sets == []
    publish(pubs, 1, 4.01)
    assert spin_until(executor, lambda: sync.matched == 1)
    assert out.stamps() == [[4.0, 4.01]]
    assert sync.dropped == 2 + 1 + 1  # a: 3.0 left behind; b: 1.03 left behind
    sync.destroy()
    assert spin_until(executor, lambda: pubs[0].get_subscription_count() == 0), "destroy() left the subscription alive"


@pytest.mark.ros
def test_message_filters_over_topics(graph):
    """Where message_filters exists (robots), the same graph through it: exact and close stamps match."""
    pytest.importorskip("message_filters", reason="message_filters is not installed here (pip-installed ROS)")
    executor = graph[2]
    for slop_s, offset in ((0.0, 0.0), (0.02, 0.015)):
        sync, out, pubs = wired(graph, slop_s=slop_s, queue_size=5, use_message_filters=True)
        assert sync.kind == "message_filters"
        publish(pubs, 0, 1.0)
        publish(pubs, 1, 1.0 + offset)
        assert spin_until(executor, lambda: sync.matched == 1), f"slop {slop_s}: no match"
        assert out.stamps() == [[1.0, 1.0 + offset]]

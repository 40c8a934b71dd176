"""Stamp synchronisation of several topics behind one interface.

`create_synchronizer` subscribes to every topic and calls `callback(*messages)` (in the order
of `subscriptions`) for each matched set. It uses `message_filters` where it is importable
(robots: `ApproximateTimeSynchronizer`, or `TimeSynchronizer` for slop 0 because the
approximate one matches only stamps *strictly* closer than its slop) and our
`StampSynchronizer` otherwise (pip-installed ROS). `Synchronizer.kind` says which.

StampSynchronizer rules (stamps compared as integer nanoseconds):
- each topic keeps a queue of at most `queue_size` messages; overflow drops the oldest;
- a set matches when it has one message per topic and max(stamp) − min(stamp) ≤ slop
  (equal stamps always match, also with slop 0);
- on every arrival the newest complete set (largest newest stamp) is emitted; its messages
  and every older message are removed, and the unmatched ones among those counted in
  `dropped`; a message no newer than its topic's last emitted one is dropped on arrival.
"""
from __future__ import annotations

import bisect
import threading
from typing import Any, Callable, Sequence

from rclpy.node import Node
from rclpy.qos import QoSProfile

from novel_pose_ros.ros.conversions import stamp_to_nanoseconds

Subscriptions = Sequence[tuple[type, str, QoSProfile]]


class StampSynchronizer:
    """Approximate-time matching of N message streams (see the module docstring). Thread-safe."""

    def __init__(self, topic_count: int, callback: Callable[..., Any], slop_s: float, queue_size: int) -> None:
        if topic_count < 1:
            raise ValueError(f"need at least one topic, got {topic_count}")
        if not slop_s >= 0:
            raise ValueError(f"slop_s must be ≥ 0, got {slop_s}")
        if int(queue_size) < 1:
            raise ValueError(f"queue_size must be ≥ 1, got {queue_size}")
        self._callback = callback
        self._slop_ns = int(round(slop_s * 1e9))
        self._queue_size = int(queue_size)
        self._queues: list[list[tuple[int, Any]]] = [[] for _ in range(topic_count)]  # sorted by stamp
        self._last_emitted: list[int | None] = [None] * topic_count
        self._lock = threading.RLock()
        self.received = 0
        self.dropped = 0
        self.matched = 0

    def add(self, index: int, msg: Any) -> None:
        """Queue a message of topic `index`; emits the newest complete set if there is one."""
        stamp = stamp_to_nanoseconds(msg.header.stamp)
        with self._lock:
            self.received += 1
            last = self._last_emitted[index]
            if last is not None and stamp <= last:
                self.dropped += 1
                return
            queue = self._queues[index]
            keys = [s for s, _ in queue]
            queue.insert(bisect.bisect_right(keys, stamp), (stamp, msg))
            if len(queue) > self._queue_size:
                del queue[0]
                self.dropped += 1
            chosen = self._newest_set()
            if chosen is None:
                return
            messages = []
            for i, position in enumerate(chosen):
                queue = self._queues[i]
                stamp_i, msg_i = queue[position]
                messages.append(msg_i)
                self.dropped += position  # the older, unmatched messages of this topic
                del queue[:position + 1]
                self._last_emitted[i] = stamp_i
            self.matched += 1
            self._callback(*messages)  # under the lock, so sets arrive in order (as message_filters does)

    def _newest_set(self) -> list[int] | None:
        """Queue positions of the newest complete set, or None. Anchor = the set's newest stamp."""
        if any(not q for q in self._queues):
            return None
        anchors = sorted(((s, i) for i, q in enumerate(self._queues) for s, _ in q), reverse=True)
        for anchor, _ in anchors:
            chosen = []
            for queue in self._queues:
                keys = [s for s, _ in queue]
                position = bisect.bisect_right(keys, anchor) - 1  # newest message not after the anchor
                if position < 0 or anchor - keys[position] > self._slop_ns:
                    break
                chosen.append(position)
            else:
                return chosen
        return None


class Synchronizer:
    """What `create_synchronizer` returns.

    kind: "message_filters" or "stamp" (our StampSynchronizer).
    topics: the subscribed topic names, in callback order.
    matched: sets delivered to the callback.
    received: messages that reached the synchroniser (StampSynchronizer; None with message_filters).
    dropped: messages discarded without being matched (StampSynchronizer); None with
        message_filters, which does not report them.
    """

    def __init__(self, node: Node, kind: str, topics: list[str], subscriptions: list[Any],
                 stamp_sync: StampSynchronizer | None, keep_alive: Any = None) -> None:
        self.kind = kind
        self.topics = topics
        self._node = node
        self._subscriptions = subscriptions
        self._stamp_sync = stamp_sync
        self._keep_alive = keep_alive
        self._matched = 0

    @property
    def matched(self) -> int:
        return self._stamp_sync.matched if self._stamp_sync is not None else self._matched

    @property
    def received(self) -> int | None:
        return self._stamp_sync.received if self._stamp_sync is not None else None

    @property
    def dropped(self) -> int | None:
        return self._stamp_sync.dropped if self._stamp_sync is not None else None

    def destroy(self) -> None:
        """Destroy the subscriptions; no callback follows."""
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
        self._subscriptions = []
        self._keep_alive = None


def _message_filters():
    try:
        import message_filters
    except ImportError:
        return None
    return message_filters


def create_synchronizer(node: Node, subscriptions: Subscriptions, callback: Callable[..., Any], slop_s: float,
                        queue_size: int, use_message_filters: bool | None = None) -> Synchronizer:
    """Subscribe to (type, topic, qos) entries and call `callback(*messages)` per matched set.

    use_message_filters: None (default) = when importable; False = always StampSynchronizer;
    True = message_filters or ImportError.
    """
    if not subscriptions:
        raise ValueError("need at least one subscription")
    for msg_type, topic, _ in subscriptions:
        if "header" not in msg_type.get_fields_and_field_types():
            raise ValueError(f"topic '{topic}': {msg_type.__name__} has no header to synchronise on")
    mf = _message_filters() if use_message_filters in (None, True) else None
    if use_message_filters and mf is None:
        raise ImportError("message_filters is not importable here")
    if mf is not None:
        filters = [mf.Subscriber(node, msg_type, topic, qos_profile=qos) for msg_type, topic, qos in subscriptions]
        synchronizer = (mf.TimeSynchronizer(filters, queue_size) if slop_s == 0
                        else mf.ApproximateTimeSynchronizer(filters, queue_size, slop_s))
        result = Synchronizer(node, "message_filters", [f.sub.topic_name for f in filters], [f.sub for f in filters], None,
                              keep_alive=(filters, synchronizer))

        def counted(*messages: Any) -> None:
            result._matched += 1
            callback(*messages)

        synchronizer.registerCallback(counted)
        return result
    stamp_sync = StampSynchronizer(len(subscriptions), callback, slop_s, queue_size)
    subs = [node.create_subscription(msg_type, topic, lambda msg, i=i: stamp_sync.add(i, msg), qos)
            for i, (msg_type, topic, qos) in enumerate(subscriptions)]
    return Synchronizer(node, "stamp", [s.topic_name for s in subs], subs, stamp_sync)

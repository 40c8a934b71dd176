"""Detections matched to their camera frame through a stamp-keyed cache of recent frames.

A detector (CNOS, a segmenter) answers 0.2 to 3 s after its image, and some stamp their answer with
the time they produced it. A short synchroniser queue over all topics loses those silently. Instead:

- the camera topics (image, camera_info, optional depth) are synchronised among themselves and each
  complete set goes into `FrameCache`, kept for `window_s` seconds after the newest frame and within
  `max_bytes` of image data (the oldest frames leave first);
- the detector's topics (detections, optional masks) are synchronised among themselves, and each set
  is matched to a cached frame: `exact` policy, the frame whose stamp is within `slop_s` (detectors
  that copy the image stamp); `nearest`, the frame of nearest stamp within `window_s` (detectors that
  re-stamp). A detection set that comes before its frame waits for it (up to `window_s`);
- a detection set that finds no frame is reported through `on_unmatched(stamp_ns, nearest_gap_ns)`
  (the node logs it, throttled, with the stamp difference) and counted.

Pure Python (no rclpy): messages only need `header.stamp`; images count `len(data)` bytes.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

from novel_pose_ros.ros.conversions import stamp_to_nanoseconds

POLICIES = ("exact", "nearest")


@dataclass
class CachedFrame:
    stamp_ns: int
    messages: tuple  # the camera set, in the order given to add_camera
    nbytes: int


@dataclass
class MatchCounters:
    frames_cached: int = 0
    frames_evicted: int = 0
    matched: int = 0
    unmatched: int = 0
    last_gap_s: float | None = None  # stamp difference of the last unmatched set to its nearest frame


class FrameCache:
    """Camera sets by stamp, bounded by age (window after the newest) and by bytes."""

    def __init__(self, window_s: float, max_bytes: int) -> None:
        if not window_s > 0 or max_bytes < 1:
            raise ValueError(f"FrameCache: window_s must be > 0 and max_bytes ≥ 1, got {window_s}, {max_bytes}")
        self.window_ns = int(round(window_s * 1e9))
        self.max_bytes = int(max_bytes)
        self.frames: list[CachedFrame] = []  # sorted by stamp
        self.nbytes = 0

    def add(self, frame: CachedFrame) -> int:
        """Insert; returns how many frames were evicted (too old, or over the byte bound). A frame older than
        the window before the newest means the stream started again (a bag replayed, sim time reset): the
        cache starts over from it, else every frame of the new pass would be evicted on arrival."""
        if self.frames and frame.stamp_ns < self.frames[-1].stamp_ns - self.window_ns:
            evicted = len(self.frames)
            self.frames, self.nbytes = [frame], frame.nbytes
            return evicted
        position = next((i for i, f in enumerate(self.frames) if f.stamp_ns > frame.stamp_ns), len(self.frames))
        self.frames.insert(position, frame)
        self.nbytes += frame.nbytes
        evicted = 0
        newest = self.frames[-1].stamp_ns
        while self.frames and (self.frames[0].stamp_ns < newest - self.window_ns or
                               (self.nbytes > self.max_bytes and len(self.frames) > 1)):
            self.nbytes -= self.frames.pop(0).nbytes
            evicted += 1
        return evicted

    def nearest(self, stamp_ns: int) -> CachedFrame | None:
        return min(self.frames, key=lambda f: abs(f.stamp_ns - stamp_ns), default=None)

    @property
    def newest_ns(self) -> int | None:
        return self.frames[-1].stamp_ns if self.frames else None


class FrameMatcher:
    """Matches detection sets to cached camera sets (module docstring). Thread-safe.

    callback(camera_messages, detection_messages): the matched camera set and detection set, each in the
    order given to add_camera / add_detections.
    """

    def __init__(self, callback: Callable[[tuple, tuple], Any], policy: str, window_s: float, max_bytes: int,
                 slop_s: float, on_unmatched: Callable[[int, int | None], Any] | None = None,
                 max_pending: int = 32) -> None:
        if policy not in POLICIES:
            raise ValueError(f"sync_policy must be one of {POLICIES}, got '{policy}'")
        if not slop_s >= 0:
            raise ValueError(f"slop_s must be ≥ 0, got {slop_s}")
        self.policy = policy
        self.cache = FrameCache(window_s, max_bytes)
        self.slop_ns = int(round(slop_s * 1e9))
        self.counters = MatchCounters()
        self._callback = callback
        self._on_unmatched = on_unmatched
        self._pending: list[tuple[int, tuple]] = []  # detection sets waiting for their frame
        self._max_pending = int(max_pending)
        self._lock = threading.RLock()

    def add_camera(self, *messages) -> None:
        stamp = stamp_to_nanoseconds(messages[0].header.stamp)
        nbytes = sum(len(getattr(m, "data", b"")) for m in messages)
        with self._lock:
            self.counters.frames_cached += 1
            self.counters.frames_evicted += self.cache.add(CachedFrame(stamp, tuple(messages), nbytes))
            waiting, self._pending = self._pending, []
            for detection_stamp, detections in waiting:
                self._match(detection_stamp, detections)

    def add_detections(self, *messages) -> None:
        stamp = stamp_to_nanoseconds(messages[0].header.stamp)
        with self._lock:
            self._match(stamp, tuple(messages))

    def _frame_for(self, stamp: int) -> CachedFrame | None:
        frame = self.cache.nearest(stamp)
        if frame is None:
            return None
        limit = self.slop_ns if self.policy == "exact" else self.cache.window_ns
        return frame if abs(frame.stamp_ns - stamp) <= limit else None

    def _match(self, stamp: int, detections: tuple) -> None:
        frame = self._frame_for(stamp)
        if frame is not None:
            self.counters.matched += 1
            self._callback(frame.messages, detections)
            return
        newest = self.cache.newest_ns
        # its frame may still come: the cache has nothing that recent yet
        if newest is None or newest < stamp + self.slop_ns:
            self._pending.append((stamp, detections))
            if len(self._pending) > self._max_pending:
                self._give_up(*self._pending.pop(0))
            return
        self._give_up(stamp, detections)

    def _give_up(self, stamp: int, detections: tuple) -> None:
        nearest = self.cache.nearest(stamp)
        gap = None if nearest is None else stamp - nearest.stamp_ns
        self.counters.unmatched += 1
        self.counters.last_gap_s = None if gap is None else gap * 1e-9
        if self._on_unmatched is not None:
            self._on_unmatched(stamp, gap)

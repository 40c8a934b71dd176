"""Counters and rates for /diagnostics, and logging once per cause.

`CauseLog` logs the first occurrence of each cause (bad encoding, unknown object, ...) and
counts the rest, so a camera sending a wrong encoding at 30 Hz gives one log line and a
counter in /diagnostics instead of 30 lines a second.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


class RateMeter:
    """Events per second over a sliding window."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            self._times.append(time.monotonic())

    def rate_hz(self) -> float:
        now = time.monotonic()
        with self._lock:
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()
            if len(self._times) < 2:
                return 0.0
            return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)


class CauseLog:
    """Counts occurrences per cause (since start, and as "cause:<cause>" events of `window` when given);
    logs a cause's first occurrence through `log`."""

    def __init__(self, log: Callable[[str], None], window: "EventWindow | None" = None) -> None:
        self._log = log
        self._window = window
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def report(self, cause: str, message: str) -> None:
        if self._window is not None:
            self._window.add(f"cause:{cause}")
        with self._lock:
            count = self.counts.get(cause, 0) + 1
            self.counts[cause] = count
        if count == 1:
            self._log(f"{message} [cause '{cause}': logged once, counted in /diagnostics]")


class MeanTracker:
    """Running means of named values (stage times, latency) since the last `take`."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, name: str, value: float) -> None:
        with self._lock:
            self._sums[name] = self._sums.get(name, 0.0) + value
            self._counts[name] = self._counts.get(name, 0) + 1

    def take(self) -> dict[str, float]:
        with self._lock:
            means = {k: self._sums[k] / self._counts[k] for k in self._sums}
            self._sums.clear()
            self._counts.clear()
        return means


class EventWindow:
    """Timestamped events (a key, a value) of the last `window_s` seconds: counts and percentiles over that
    window, so one bad frame does not leave the node in WARN forever and a quiet node still says its latency."""

    def __init__(self, window_s: float) -> None:
        self.window_s = float(window_s)
        self._events: deque[tuple[float, str, float]] = deque()
        self._lock = threading.Lock()

    def add(self, key: str, value: float = 1.0) -> None:
        with self._lock:
            self._events.append((time.monotonic(), key, float(value)))

    def _recent(self) -> list[tuple[float, str, float]]:
        cutoff = time.monotonic() - self.window_s
        with self._lock:
            while self._events and self._events[0][0] < cutoff:
                self._events.popleft()
            return list(self._events)

    def counts(self, prefix: str = "") -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, key, _ in self._recent():
            if key.startswith(prefix):
                counts[key[len(prefix):]] = counts.get(key[len(prefix):], 0) + 1
        return counts

    def percentile(self, key: str, q: float) -> float | None:
        values = sorted(v for _, k, v in self._recent() if k == key)
        if not values:
            return None
        return values[min(len(values) - 1, int(round(q / 100.0 * (len(values) - 1))))]


DEFAULT_WINDOW_S = 10.0
# Levels of the pipeline status, over the diagnostics window (README "The ROS 2 node"):
DROP_WARN_SHARE = 0.10   # WARN: at least 10 % of the frames that arrived were dropped (busy worker) or failed
DROP_ERROR_SHARE = 0.50  # ERROR: at least half of them, or frames arrive and none is answered


@dataclass(frozen=True)
class WindowStats:
    """What happened in the last window: frames in (synchronised sets), answered, dropped (the worker was
    busy), rejected (dropped for bad input), failures per cause, and whether the node is active."""

    frames_in: int
    answered: int
    dropped: int
    rejected: int
    failures: dict[str, int]
    active: bool = True
    untrained: bool = False


def pipeline_level(stats: WindowStats) -> tuple[int, str]:
    """(DiagnosticStatus level, message) of the pipeline from the window's events."""
    problems = [f"{n} x {cause}" for cause, n in sorted(stats.failures.items())]
    if stats.untrained:
        problems.insert(0, "untrained weights: poses are meaningless")
    if not stats.active:
        return DiagnosticStatus.OK, "inactive (lifecycle): not estimating"
    if stats.frames_in == 0:
        return DiagnosticStatus.STALE, "; ".join(["no input frames in the diagnostics window (camera, detector or "
                                                  "their matching)"] + problems)
    lost = stats.dropped + stats.rejected
    share = lost / max(stats.frames_in, 1)
    summary = f"{stats.answered} of {stats.frames_in} frames answered, {share:.0%} dropped or rejected"
    if stats.answered == 0 or share >= DROP_ERROR_SHARE:
        return DiagnosticStatus.ERROR, "; ".join([summary] + problems)
    if share >= DROP_WARN_SHARE or problems:
        return DiagnosticStatus.WARN, "; ".join([summary] + problems)
    return DiagnosticStatus.OK, summary


def diagnostic_array(stamp, name: str, hardware_id: str, values: dict[str, object], level: int,
                     message: str) -> DiagnosticArray:
    """One DiagnosticStatus of the given level and message, with the values."""
    status = DiagnosticStatus(
        level=level, name=name, hardware_id=hardware_id, message=message,
        values=[KeyValue(key=k, value=f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in values.items()],
    )
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array

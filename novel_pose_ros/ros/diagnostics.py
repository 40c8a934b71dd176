"""Counters and rates for /diagnostics, and logging once per cause.

`CauseLog` logs the first occurrence of each cause (bad encoding, unknown object, ...) and
counts the rest, so a camera sending a wrong encoding at 30 Hz gives one log line and a
counter in /diagnostics instead of 30 lines a second.
"""
from __future__ import annotations

import threading
import time
from collections import deque
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
    """Counts occurrences per cause; logs a cause's first occurrence through `log`."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def report(self, cause: str, message: str) -> None:
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


def diagnostic_array(stamp, name: str, hardware_id: str, values: dict[str, object], warnings: list[str]) -> DiagnosticArray:
    """One DiagnosticStatus: OK, or WARN with the warnings joined into its message."""
    status = DiagnosticStatus(
        level=DiagnosticStatus.WARN if warnings else DiagnosticStatus.OK,
        name=name, hardware_id=hardware_id, message="; ".join(warnings) if warnings else "running",
        values=[KeyValue(key=k, value=f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in values.items()],
    )
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array

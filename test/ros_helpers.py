"""Helpers for tests with real ROS 2 processes: waiting, stamps, stopping a node process."""
from __future__ import annotations

import signal
import subprocess
import time
from typing import Callable

TIMEOUT_S = 20.0


def spin_until(executor, condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> bool:
    """Spin until `condition()` holds (True) or the timeout passes (the condition's last value)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.02)
    return condition()


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def finish(proc: subprocess.Popen, sigint: bool = False, timeout_s: float = TIMEOUT_S) -> tuple[int, str]:
    """(exit code, output) of a node process, interrupting it first when `sigint`."""
    if sigint and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out

"""A worker thread that runs one job at a time, keeping only the newest pending job.

Callbacks hand frames over with `submit` and return at once; while a frame is being
processed, a newer frame replaces the pending one (latest wins) and the replaced one is
counted as dropped. Exceptions inside a job are handed to `on_error` and never stop the thread.
"""
from __future__ import annotations

import threading
from typing import Any, Callable


class LatestFrameWorker:
    def __init__(self, job: Callable[[Any], None], on_error: Callable[[BaseException], None], name: str = "pose_worker") -> None:
        self._job = job
        self._on_error = on_error
        self._pending: Any = None
        self._has_pending = False
        self._busy = False
        self._stopping = False
        self._condition = threading.Condition()
        self.dropped = 0
        self.processed = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> None:
        with self._condition:
            if self._has_pending:
                self.dropped += 1
            self._pending, self._has_pending = item, True
            self._condition.notify()

    def wait_idle(self, timeout_s: float) -> bool:
        """True once nothing is pending or running (for orderly shutdown and tests)."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._has_pending and not self._busy, timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._has_pending or self._stopping)
                if self._stopping:
                    return
                item, self._pending, self._has_pending = self._pending, None, False
                self._busy = True
            try:
                self._job(item)
            except BaseException as exc:  # a failing frame must not end the worker
                self._on_error(exc)
            finally:
                with self._condition:
                    self._busy = False
                    self.processed += 1
                    self._condition.notify_all()

"""Pieces of the pose_estimator node that need no graph: the worker, cause logging, parameter validation."""
import threading
import time

import pytest

from novel_pose_ros.ros.diagnostics import CauseLog, MeanTracker, RateMeter
from novel_pose_ros.ros.parameters import SPECS, validate
from novel_pose_ros.ros.worker import LatestFrameWorker


def test_worker_keeps_only_the_newest_pending_frame_and_counts_drops():
    release = threading.Event()
    done = []

    def job(item):
        if item == 0:
            release.wait(5)
        done.append(item)

    worker = LatestFrameWorker(job, on_error=lambda exc: None)
    worker.submit(0)
    time.sleep(0.1)  # item 0 is running and blocks
    for item in (1, 2, 3):
        worker.submit(item)
    release.set()
    assert worker.wait_idle(5)
    assert done == [0, 3] and worker.dropped == 2 and worker.processed == 2
    worker.stop()


def test_worker_survives_a_failing_job():
    errors, done = [], []

    def job(item):
        if item == "bad":
            raise RuntimeError("boom")
        done.append(item)

    worker = LatestFrameWorker(job, on_error=errors.append)
    worker.submit("bad")
    assert worker.wait_idle(5)
    worker.submit("good")
    assert worker.wait_idle(5)
    assert done == ["good"] and len(errors) == 1 and "boom" in str(errors[0])
    worker.stop()


def test_cause_log_logs_once_and_counts():
    lines = []
    log = CauseLog(lines.append)
    for _ in range(30):
        log.report("encoding", "image encoding 'yuv422' is not supported")
    log.report("unknown_object", "unknown object 'banana'")
    assert log.counts == {"encoding": 30, "unknown_object": 1}
    assert len(lines) == 2 and "yuv422" in lines[0] and "logged once" in lines[0]


def test_rates_and_means():
    meter = RateMeter(window_s=10)
    for _ in range(11):
        meter.tick()
        time.sleep(0.01)
    assert 50 < meter.rate_hz() < 110
    means = MeanTracker()
    means.add("a", 1.0)
    means.add("a", 3.0)
    assert means.take() == {"a": 2.0} and means.take() == {}


@pytest.mark.parametrize("name,value,ok", [
    ("backend", "onnxruntime", True), ("backend", "tensorflow", False), ("hypotheses", 0, False),
    ("hypotheses", 5, True), ("score_threshold", 1.5, False), ("network", "small_cnn", True), ("device", "tpu", False),
    ("pipeline", "coop+refine+select", True), ("pipeline", "coop+select", False),
])
def test_parameter_validation_gives_reasons(name, value, ok):
    reason = validate(name, value)
    assert (reason is None) == ok
    if not ok:
        assert name in reason


def test_every_parameter_has_a_description():
    assert all(spec.description for spec in SPECS)

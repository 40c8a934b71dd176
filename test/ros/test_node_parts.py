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


def test_pipeline_level_thresholds():
    """OK / WARN / ERROR / STALE of /diagnostics, from one window's events (ros/diagnostics.py)."""
    from diagnostic_msgs.msg import DiagnosticStatus

    from novel_pose_ros.ros.diagnostics import EventWindow, WindowStats, pipeline_level

    def level(**kw):
        stats = dict(frames_in=20, answered=20, dropped=0, rejected=0, failures={})
        return pipeline_level(WindowStats(**{**stats, **kw}))

    assert level() == (DiagnosticStatus.OK, "20 of 20 frames answered, 0% dropped or rejected")
    assert level(dropped=1)[0] == DiagnosticStatus.OK  # 5 %: a busy worker now and then
    assert level(dropped=2, answered=18)[0] == DiagnosticStatus.WARN  # 10 %
    assert level(failures={"unknown_object": 1})[0] == DiagnosticStatus.WARN
    assert level(untrained=True)[1].endswith("untrained weights: poses are meaningless")
    assert level(dropped=10, answered=10)[0] == DiagnosticStatus.ERROR  # half the frames lost
    assert level(answered=0)[0] == DiagnosticStatus.ERROR  # frames arrive, nothing comes out
    assert level(frames_in=0, answered=0)[0] == DiagnosticStatus.STALE
    assert level(frames_in=0, answered=0, active=False)[0] == DiagnosticStatus.OK
    window = EventWindow(0.05)
    for value in (1.0, 2.0, 3.0, 10.0):
        window.add("latency_ms", value)
    window.add("cause:encoding")
    assert window.percentile("latency_ms", 50) in (2.0, 3.0) and window.percentile("latency_ms", 95) == 10.0
    assert window.counts("cause:") == {"encoding": 1}
    import time

    time.sleep(0.1)
    assert window.counts() == {} and window.percentile("latency_ms", 50) is None

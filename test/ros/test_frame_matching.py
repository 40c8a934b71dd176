"""FrameMatcher (ros/frame_matching.py): detections that arrive late, early or re-stamped find their frame;
the ones that cannot are reported with the stamp difference. Plain objects with a header: no ROS graph."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from novel_pose_ros.ros.conversions import seconds_to_stamp
from novel_pose_ros.ros.frame_matching import FrameMatcher


def msg(t: float, nbytes: int = 0):
    return SimpleNamespace(header=SimpleNamespace(stamp=seconds_to_stamp(t)), data=b"x" * nbytes)


class Recorder:
    def __init__(self):
        self.matched, self.unmatched = [], []

    def __call__(self, camera, detections):
        self.matched.append((camera[0].t, detections[0].t))

    def miss(self, stamp_ns, gap_ns):
        self.unmatched.append((stamp_ns * 1e-9, None if gap_ns is None else gap_ns * 1e-9))


def stamped(t: float, nbytes: int = 0):
    m = msg(t, nbytes)
    m.t = t
    return m


def matcher(policy="exact", window_s=5.0, max_bytes=10**9, slop_s=0.02):
    out = Recorder()
    return FrameMatcher(out, policy, window_s, max_bytes, slop_s, out.miss), out


def test_a_detection_three_seconds_late_finds_its_frame_among_ninety_newer_ones():
    frames, out = matcher()
    for k in range(100):  # 30 Hz for 3.3 s
        frames.add_camera(stamped(10.0 + k / 30), stamped(10.0 + k / 30))
    frames.add_detections(stamped(10.0 + 1 / 30))
    assert out.matched == [(pytest.approx(10.0 + 1 / 30), pytest.approx(10.0 + 1 / 30))] and not out.unmatched


def test_a_detection_before_its_frame_waits_for_it():
    frames, out = matcher()
    frames.add_camera(stamped(1.0), stamped(1.0))
    frames.add_detections(stamped(1.5))  # its image is not there yet
    assert not out.matched and not out.unmatched
    frames.add_camera(stamped(1.5), stamped(1.5))
    assert out.matched == [(1.5, 1.5)]


def test_exact_policy_reports_a_restamped_detection_with_the_gap_and_nearest_policy_matches_it():
    frames, out = matcher("exact")
    frames.add_camera(stamped(2.0), stamped(2.0))
    frames.add_camera(stamped(3.0), stamped(3.0))
    frames.add_detections(stamped(2.4))  # a detector that stamps with its own clock
    assert not out.matched and out.unmatched == [(pytest.approx(2.4), pytest.approx(0.4))]  # 0.4 s after frame 2.0
    assert frames.counters.unmatched == 1 and frames.counters.last_gap_s == pytest.approx(0.4)
    frames, out = matcher("nearest")
    frames.add_camera(stamped(2.0), stamped(2.0))
    frames.add_camera(stamped(3.0), stamped(3.0))
    frames.add_detections(stamped(2.4))
    assert out.matched == [(2.0, 2.4)]


def test_frames_leave_the_cache_by_age_and_by_bytes():
    frames, out = matcher(window_s=1.0)
    for k in range(30):
        frames.add_camera(stamped(k * 0.1, nbytes=100), stamped(k * 0.1))
    assert frames.cache.frames[0].stamp_ns >= int(1.9e9) and frames.counters.frames_evicted == 19
    frames.add_detections(stamped(0.5))  # evicted: too old to wait for, reported
    assert out.unmatched and not out.matched
    small, _ = matcher(max_bytes=450)
    for k in range(10):
        small.add_camera(stamped(k * 0.01, nbytes=100), stamped(k * 0.01))
    assert len(small.cache.frames) == 4 and small.cache.nbytes == 400


def test_a_stream_that_starts_again_is_matched_from_its_first_frame():
    frames, out = matcher(window_s=1.0)
    for k in range(20):
        frames.add_camera(stamped(100.0 + k * 0.1), stamped(100.0 + k * 0.1))
    frames.add_camera(stamped(50.0), stamped(50.0))  # a bag replayed from its start: 52 s back
    assert [f.stamp_ns for f in frames.cache.frames] == [50_000_000_000]
    frames.add_detections(stamped(50.0))
    assert out.matched == [(50.0, 50.0)] and not out.unmatched


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="sync_policy"):
        FrameMatcher(Recorder(), "latest", 5.0, 100, 0.02)
    with pytest.raises(ValueError, match="window_s"):
        FrameMatcher(Recorder(), "exact", 0.0, 100, 0.02)

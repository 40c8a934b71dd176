"""novel_pose_ros.instance_tracking: instance ids that follow the objects, not the detection order."""
from __future__ import annotations

import numpy as np
import pytest

from novel_pose_ros.geometry.se3 import make_T
from novel_pose_ros.instance_tracking import InstanceTracker, Sighting, box_iou

DIAMETER = 0.1


def mug(x_px: float, x_m: float, mask_shape=None) -> Sighting:
    box = np.array([x_px, 100.0, 60.0, 60.0])
    mask = None
    if mask_shape is not None:
        mask = np.zeros(mask_shape, bool)
        mask[100:160, int(x_px):int(x_px) + 60] = True
    return Sighting("mug", box, mask, make_T(np.eye(3), [x_m, 0.0, 0.8]), DIAMETER)


def test_swapped_detection_order_keeps_the_ids():
    tracker = InstanceTracker(timeout_s=1.0)
    assert tracker.assign(0.0, [mug(100, -0.2), mug(400, 0.2)]) == ([0, 1], [])
    assert tracker.assign(0.1, [mug(402, 0.2), mug(98, -0.2)]) == ([1, 0], [])  # same mugs, other order
    assert tracker.live() == [("mug", 0), ("mug", 1)]


def test_an_instance_unseen_longer_than_the_timeout_expires_and_frees_its_id():
    tracker = InstanceTracker(timeout_s=0.5)
    tracker.assign(0.0, [mug(100, -0.2), mug(400, 0.2)])
    assert tracker.assign(0.4, [mug(400, 0.2)]) == ([1], [])  # mug 0 missed once: kept
    assert tracker.assign(0.8, [mug(400, 0.2)]) == ([1], [("mug", 0)])  # 0.8 s unseen > 0.5 s
    assert tracker.assign(0.9, [mug(100, -0.2), mug(400, 0.2)]) == ([0, 1], [])  # a new mug takes the free id


def test_pose_distance_or_mask_overlap_admit_a_match():
    tracker = InstanceTracker(timeout_s=1.0, min_iou=0.3, max_offset_diameters=0.5)
    tracker.assign(0.0, [mug(100, 0.0)])
    # the box moved far (IoU 0) but the pose is within half a diameter: the same mug (a camera that turned)
    assert tracker.assign(0.1, [mug(300, 0.04)]) == ([0], [])
    # far in the image and in space: another mug
    assert tracker.assign(0.2, [mug(300, 0.04), mug(600, 0.5)]) == ([0, 1], [])
    masked = InstanceTracker(timeout_s=1.0)
    masked.assign(0.0, [mug(100, 0.0, (480, 640))])
    assert masked.assign(0.1, [mug(110, 0.3, (480, 640))]) == ([0], [])  # masks overlap by 0.71


def test_objects_are_tracked_apart_and_time_going_back_forgets_everything():
    tracker = InstanceTracker(timeout_s=1.0)
    block = Sighting("block", np.array([100.0, 100.0, 60.0, 60.0]), None, make_T(np.eye(3), [-0.2, 0, 0.8]), DIAMETER)
    assert tracker.assign(5.0, [mug(100, -0.2), block]) == ([0, 0], [])  # same place, other object: each its own 0
    assert tracker.assign(1.0, [block]) == ([0], [("block", 0), ("mug", 0)])  # a bag that restarted
    assert tracker.live() == [("block", 0)]


def test_box_iou_and_argument_checks():
    assert box_iou(np.array([0, 0, 10, 10]), np.array([5, 0, 10, 10])) == pytest.approx(50 / 150)
    assert box_iou(np.array([0, 0, 10, 10]), np.array([20, 20, 5, 5])) == 0.0
    with pytest.raises(ValueError, match="timeout_s > 0"):
        InstanceTracker(timeout_s=0.0)

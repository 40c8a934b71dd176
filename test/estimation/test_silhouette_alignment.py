"""Silhouette alignment: a pose too far and off to the side is pulled onto the detection mask; the rotation stays."""
from __future__ import annotations

import numpy as np

from helpers import MESHES
from novel_pose_ros.estimation.crops import make_query_crop
from novel_pose_ros.estimation.silhouette_alignment import align_to_mask
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle
from novel_pose_ros.objects import load_object
from novel_pose_ros.types import Detection, Frame

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])


def _scene(renderer, occlude: bool = False):
    obj = load_object(MESHES / "mug.ply", 1, "mug", units="m")
    T_true = make_T(rotation_from_axis_angle(np.array([0.4, 1.0, 0.2]), 1.0), [0.04, -0.02, 0.7])
    mask = renderer.render([(obj, T_true)], K, 640, 480).mask
    if occlude:  # the right third of the object hidden
        xs = np.nonzero(mask.any(axis=0))[0]
        mask[:, xs.max() - (xs.max() - xs.min()) // 3:] = False
    detection = Detection("mug", box_from_mask(mask), 1.0, mask)
    crop = make_query_crop(Frame(np.zeros((480, 640, 3), np.uint8), K), detection, 0, "mug", 224, 1)
    return obj, T_true, crop


def test_depth_and_image_position_are_fitted_to_the_mask(gl_renderer):
    obj, T_true, crop = _scene(gl_renderer)
    T_off = T_true.copy()
    T_off[:3, 3] = T_true[:3, 3] * 1.07 + [0.004, 0.0, 0.0]  # 7 % too far, 4 mm to the side
    aligned, iou = align_to_mask(gl_renderer, obj, T_off, K, crop, crop.mask)
    assert np.array_equal(aligned[:3, :3], T_off[:3, :3])
    assert abs(aligned[2, 3] - T_true[2, 3]) / T_true[2, 3] < 0.015  # from 7 % to under 1.5 %
    assert np.linalg.norm(aligned[:3, 3] - T_true[:3, 3]) < 0.3 * np.linalg.norm(T_off[:3, 3] - T_true[:3, 3])
    assert iou > 0.9


def test_a_right_pose_stays_and_a_pose_behind_the_camera_is_untouched(gl_renderer):
    obj, T_true, crop = _scene(gl_renderer)
    aligned, iou = align_to_mask(gl_renderer, obj, T_true, K, crop, crop.mask)
    assert np.linalg.norm(aligned[:3, 3] - T_true[:3, 3]) < 0.003 and iou > 0.97
    behind = make_T(np.eye(3), [0.0, 0.0, -0.5])
    assert np.array_equal(align_to_mask(gl_renderer, obj, behind, K, crop, crop.mask)[0], behind)


def test_an_occluded_object_is_not_pushed_far_away(gl_renderer):
    obj, T_true, crop = _scene(gl_renderer, occlude=True)
    aligned, _ = align_to_mask(gl_renderer, obj, T_true, K, crop, crop.mask)
    assert abs(aligned[2, 3] - T_true[2, 3]) / T_true[2, 3] < 0.03  # measured 1.5 % with the handle's side hidden

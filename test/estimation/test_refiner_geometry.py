"""The refiner's window, crop camera and grid: round trips through a real render."""
import numpy as np
import pytest
import torch

from helpers import BUNDLED_OBJECTS
from novel_pose_ros.estimation.refiner_geometry import (
    box_corners,
    crop_camera,
    flow_to_pixels,
    grid_pixels,
    identity_flow,
    lift_grid,
    refiner_window,
    render_for_refiner,
    window_transform,
)
from novel_pose_ros.geometry.camera import project_points
from novel_pose_ros.geometry.crop import transform_pixels
from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle, transform_points
from novel_pose_ros.objects import ObjectLibrary

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def block():
    return ObjectLibrary.from_yaml(BUNDLED_OBJECTS).get("toy_block")


def test_crop_camera_projects_like_the_image_camera_then_the_crop_transform(rng):
    T = make_T(rotation_from_axis_angle(np.array([0.2, 1.0, 0.1]), 0.7), [0.05, -0.02, 0.6])
    corners = box_corners([-0.05, -0.04, -0.03], [0.05, 0.04, 0.03])
    M = window_transform(refiner_window(T, K, corners, margin=0.2))
    points = transform_points(T, rng.uniform(-0.05, 0.05, size=(20, 3)))
    np.testing.assert_allclose(project_points(crop_camera(K, M), points),
                               transform_pixels(M, project_points(K, points)), atol=1e-9)
    # the window holds the projected box with its margin: corners land inside the 256 crop
    crop_px = project_points(crop_camera(K, M), transform_points(T, corners))
    assert crop_px.min() > 256 * 0.1 and crop_px.max() < 256 * 0.9


def test_a_pose_behind_the_camera_is_refused():
    with pytest.raises(ValueError, match="behind"):
        refiner_window(make_T(np.eye(3), [0.0, 0.0, -0.5]), K, box_corners([-0.1] * 3, [0.1] * 3))


def test_identity_flow_keeps_every_grid_pixel():
    pixels = flow_to_pixels(torch.from_numpy(identity_flow()[None]))[0].numpy()
    np.testing.assert_allclose(pixels, grid_pixels(), atol=1e-12)
    assert grid_pixels()[0, 0].tolist() == [2.0, 2.0] and grid_pixels()[1, 3].tolist() == [14.0, 6.0]


def test_lifted_grid_points_project_back_onto_their_pixels(block, gl_renderer):
    T = make_T(rotation_from_axis_angle(np.array([1.0, 0.4, 0.2]), 2.0), [0.02, 0.01, 0.5])
    M = window_transform(refiner_window(T, K, box_corners(*block.mesh.bounds)))
    K_crop = crop_camera(K, M)
    render = render_for_refiner(gl_renderer, block, T, K_crop)
    points, valid = lift_grid(render.depth_m, K_crop, T)
    assert valid.sum() > 300  # the block fills a good part of its window
    back = project_points(K_crop, transform_points(T, points[valid]))
    np.testing.assert_allclose(back, grid_pixels()[valid], atol=1e-3)
    # points lie on the block: inside its bounding box
    lo, hi = block.mesh.bounds
    assert np.all(points[valid] >= lo - 1e-3) and np.all(points[valid] <= hi + 1e-3)

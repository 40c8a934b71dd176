"""Correspondence geometry: template bank lifting, grid conventions, PnP, affine fallback."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from helpers import MESHES
from novel_pose_ros.estimation.correspondences import (
    affine_fallback_pose,
    affine_to_pixel_centres,
    cells_to_crop_pixels,
    crop_pixels_to_cells,
    dense_correspondences,
    pose_from_correspondences,
    targets_from_flow,
)
from novel_pose_ros.estimation.template_bank import build_template_bank, grid_cell_centres, patch_grid_mask
from novel_pose_ros.geometry.camera import project_points
from novel_pose_ros.geometry.crop import crop_transform, square_box_around, transform_pixels
from novel_pose_ros.geometry.se3 import make_T, rotation_angle_rad, transform_points
from novel_pose_ros.objects import load_object
from novel_pose_ros.templates import TemplateSettings, ensure_templates, load_template_set

K_QUERY = np.array([[610.0, 0.0, 318.0], [0.0, 612.0, 243.0], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def block_bank(tmp_path_factory, gl_renderer):
    obj = load_object(MESHES / "toy_block.ply", 2, name="toy_block", units="m")
    report = ensure_templates(obj, tmp_path_factory.mktemp("templates"), TemplateSettings(), gl_renderer, show_progress=False)
    return obj, build_template_bank(load_template_set(report.folder))


def test_bank_shapes_and_lifted_points_lie_on_the_mesh(block_bank):
    obj, bank = block_bank
    assert bank.rgb.shape == (42, 224, 224, 3) and bank.patch_mask.shape == (42, 16, 16)
    assert bank.points_obj.shape == (42, 64, 64, 3) and bank.points_valid.any(axis=(1, 2)).all()
    # every lifted point lies on the block's surface (depth stored at 0.1 mm)
    points = bank.points_obj[bank.points_valid]
    half = obj.extents_m / 2
    outside = np.clip(np.abs(points) - half, 0, None).max(axis=1)
    on_a_face = np.min(np.abs(np.abs(points) - half), axis=1)
    assert outside.max() < 2e-4 and np.percentile(on_a_face, 99) < 2e-4
    # the projected origin is the template image centre (320, 240) mapped into each crop
    expected = transform_pixels(bank.M_crop_img[0], np.array([[320.0, 240.0]]))[0]
    np.testing.assert_allclose(bank.centre_crop_px[0], expected, atol=1e-6)


def test_grid_conventions_round_trip():
    centres = grid_cell_centres(64, 224)
    np.testing.assert_allclose(centres[0, 0], [1.25, 1.25])  # corner-origin (1.75, 1.75) = crop pixel 1.25
    cells = crop_pixels_to_cells(centres, 64, 224)
    np.testing.assert_allclose(cells[5, 7], [7.5, 5.5])  # a cell centre is half a cell past its index
    np.testing.assert_allclose(cells_to_crop_pixels(cells, 64, 224), centres)
    # zero flow: every template cell matches the corner of the same query cell
    np.testing.assert_allclose(targets_from_flow(np.zeros((2, 64, 64)))[5, 7], [7, 5])
    mask = np.zeros((224, 224), bool)
    mask[0, 14] = True  # the top-left pixel of patch (0, 1) decides it, as in PicoPose's nearest resize
    mask[20, 20] = True
    assert patch_grid_mask(mask, 16)[0, 1] == 1 and patch_grid_mask(mask, 16)[1, 1] == 0


def _query_crop(T_q, obj):
    corners = transform_points(T_q, np.array(np.meshgrid(*[[-e / 2, e / 2] for e in obj.extents_m])).reshape(3, -1).T)
    uv = project_points(K_QUERY, corners)
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    return crop_transform(square_box_around((*lo, *(hi - lo)), 640, 480), 224)


def test_exact_correspondences_recover_a_known_pose(block_bank):
    """Targets computed from a known query pose go through the PnP step to < 1 mm / 0.1°."""
    obj, bank = block_bank
    view = 9
    T_q = make_T(Rotation.from_rotvec([0.2, -0.1, 0.4]).as_matrix() @ bank.T_cam_obj[view][:3, :3], [0.03, -0.02, 0.55])
    M_q = _query_crop(T_q, obj)
    pixels = project_points(K_QUERY, transform_points(T_q, bank.points_obj[view].reshape(-1, 3)))
    target = crop_pixels_to_cells(transform_pixels(M_q, pixels), 64, 224).reshape(64, 64, 2)
    corr = dense_correspondences(target, np.ones((64, 64)), bank, view, M_q)
    assert len(corr.pixels) > 200
    result = pose_from_correspondences(corr, K_QUERY)
    assert result.success and result.inlier_ratio > 0.99
    assert np.linalg.norm(result.T_cam_obj[:3, 3] - T_q[:3, 3]) < 1e-3
    assert np.degrees(rotation_angle_rad(result.T_cam_obj[:3, :3], T_q[:3, :3])) < 0.1
    # low certainty and targets on the grid border are dropped
    certainty = np.ones((64, 64))
    certainty[:32] = 0.2
    assert len(dense_correspondences(target, certainty, bank, view, M_q).pixels) < len(corr.pixels)
    edge = target.copy()
    edge[..., 0] = 0.0  # on the grid's border: dropped, as in PicoPose
    assert len(dense_correspondences(edge, np.ones((64, 64)), bank, view, M_q).pixels) == 0


def test_network_affine_converts_to_integer_centred_pixels():
    """An affine in the network's corner convention and its integer-centred form agree on every point."""
    A_corner = np.array([[0.8, -0.6, 30.0], [0.6, 0.8, -12.0]])
    A = affine_to_pixel_centres(A_corner)
    x = np.array([[10.0, 20.0], [100.0, 7.5]])
    np.testing.assert_allclose(transform_pixels(A, x), transform_pixels(A_corner, x + 0.5) - 0.5)
    identity = np.hstack([np.eye(2), np.zeros((2, 1))])
    np.testing.assert_allclose(affine_to_pixel_centres(identity), identity)


@pytest.mark.parametrize("theta_deg,farther", [(0.0, 1.0), (25.0, 1.3), (-70.0, 0.8)])
def test_affine_fallback_recovers_an_on_axis_in_plane_rotation_and_scale(block_bank, theta_deg, farther):
    """Query = template seen from the same axis, rotated in-plane and moved along the axis."""
    _, bank = block_bank
    view = 4
    T_t = bank.T_cam_obj[view]
    theta = np.radians(theta_deg)
    R_z = Rotation.from_rotvec([0, 0, theta]).as_matrix()
    T_q = make_T(R_z @ T_t[:3, :3], T_t[:3, 3] * farther)
    # in the image: rotation by θ and scaling by 1/farther about the principal point (320, 240)
    c = np.array([320.0, 240.0])
    H_img = np.eye(3)
    H_img[:2, :2] = R_z[:2, :2] / farther
    H_img[:2, 2] = c - H_img[:2, :2] @ c
    M_t = np.vstack([bank.M_crop_img[view], [0, 0, 1]])
    A = (M_t @ H_img @ np.linalg.inv(M_t))[:2]
    T_est = affine_fallback_pose(A, bank, view, bank.M_crop_img[view], bank.K)
    np.testing.assert_allclose(T_est, T_q, atol=1e-9)


def test_fallback_places_off_axis_objects_on_the_query_ray(block_bank):
    _, bank = block_bank
    view = 0
    shift = np.array([[1, 0, 60.0], [0, 1, -30.0]])  # the object appears 60 px right, 30 px up
    A = np.vstack([shift, [0, 0, 1]])
    M_t = np.vstack([bank.M_crop_img[view], [0, 0, 1]])
    A_crop = (M_t @ A @ np.linalg.inv(M_t))[:2]
    T_est = affine_fallback_pose(A_crop, bank, view, bank.M_crop_img[view], bank.K)
    origin_px = project_points(bank.K, T_est[:3, 3][None])[0]
    np.testing.assert_allclose(origin_px, [380.0, 210.0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(T_est[:3, 3]), bank.T_cam_obj[view][2, 3], rtol=1e-9)

"""The refiner stage: exact flow through the real render/lift/LM-PnP path recovers the pose; the shipped
refiner network runs end to end, and failures keep the input pose."""
import numpy as np
import pytest

from helpers import BUNDLED_OBJECTS
from novel_pose_ros.estimation.correspondences import crop_pixels_to_cells
from novel_pose_ros.geometry.camera import project_points
from novel_pose_ros.estimation.refiner_stage import RefinerSettings, RefinerStage, solve_poses
from novel_pose_ros.geometry.se3 import make_T, rotation_angle_rad, rotation_from_axis_angle, transform_points
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.render import SHADED
from novel_pose_ros.types import Frame

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def block():
    return ObjectLibrary.from_yaml(BUNDLED_OBJECTS).get("toy_block")


@pytest.fixture(scope="module")
def scene(block, gl_renderer):
    T_gt = make_T(rotation_from_axis_angle(np.array([1.0, 0.4, 0.2]), 2.0), [0.03, -0.02, 0.55])
    image = gl_renderer.render([(block, T_gt)], K, 640, 480, SHADED)
    rgb = np.where(image.mask[..., None], image.rgb, np.uint8(70))
    return Frame(rgb, K), T_gt


def _perturbed(T, degrees, offset_m):
    R = rotation_from_axis_angle(np.array([0.3, -1.0, 0.5]), np.radians(degrees))
    return make_T(R @ T[:3, :3], T[:3, 3] + offset_m)


def test_exact_flow_recovers_the_pose_through_render_lift_and_lm_pnp(block, scene, gl_renderer):
    frame, T_gt = scene
    T_start = _perturbed(T_gt, 6.0, [0.008, -0.006, 0.02])
    stage = RefinerStage(backend=None, renderer=gl_renderer)
    item = stage._prepare(frame, block, T_start)
    # the flow the network should predict: each lifted render point where T_gt puts it in the crop
    target_px = project_points(item.K_crop, transform_points(T_gt, item.points.reshape(-1, 3)))
    target = crop_pixels_to_cells(target_px, 64, 256)
    grid = np.stack(np.meshgrid(np.arange(64), np.arange(64)), axis=-1).reshape(-1, 2)
    flow = (target - grid).reshape(64, 64, 2).transpose(2, 0, 1)[None]
    confident = np.full((1, 1, 64, 64), 12.0)
    [pose] = solve_poses([item], flow, np.full((1, 1, 64, 64), -4.0), confident, confident, RefinerSettings())
    assert pose.failure is None
    assert np.linalg.norm(pose.T_cam_obj[:3, 3] - T_gt[:3, 3]) < 0.5e-3
    assert np.degrees(rotation_angle_rad(pose.T_cam_obj[:3, :3], T_gt[:3, :3])) < 0.05


def test_the_real_network_refines_every_detection_and_a_pose_off_screen_keeps_its_input(block, scene, gl_renderer):
    from novel_pose_ros.runtime.coop_weights import create_coop_backend

    frame, T_gt = scene
    stage = RefinerStage(create_coop_backend("coop_refiner", "onnxruntime", None), gl_renderer, RefinerSettings(iterations=2))
    behind = make_T(np.eye(3), [0.0, 0.0, -1.0])
    timings = {}
    start = _perturbed(T_gt, 5.0, [0.01, 0.0, 0.02])
    refined, off = stage.refine(frame, [block, block], [start, behind], timings)
    assert refined.failure is None and refined.rounds == 2 and 0.0 < refined.weight <= 1.0
    assert np.all(np.isfinite(refined.T_cam_obj)) and refined.T_cam_obj[2, 3] > 0
    assert off.failure is not None and "behind" in off.failure and np.array_equal(off.T_cam_obj, behind)
    assert timings["refine"] > 0


def test_shipped_refiner_moves_a_perturbed_pose_towards_the_truth(block, scene, gl_renderer):
    """One round of the shipped refiner on a clean render: the pose error shrinks (a loose, real check)."""
    from novel_pose_ros.runtime.coop_weights import create_coop_backend

    frame, T_gt = scene
    start = _perturbed(T_gt, 8.0, [0.01, -0.008, 0.03])
    [refined] = RefinerStage(create_coop_backend("coop_refiner", "onnxruntime", None), gl_renderer).refine(frame, [block], [start])
    before = np.linalg.norm(start[:3, 3] - T_gt[:3, 3])
    after = np.linalg.norm(refined.T_cam_obj[:3, 3] - T_gt[:3, 3])
    assert refined.failure is None and after < 0.7 * before

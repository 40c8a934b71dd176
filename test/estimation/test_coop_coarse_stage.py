"""The Co-op coarse stage: scoring, matches, exact patch matches through the real crop/lift/EPnP path recover
the pose, and the stage runs end to end on a real ONNX Runtime session (tiny random network: plumbing)."""
import numpy as np
import pytest
import torch

from helpers import BUNDLED_OBJECTS
from novel_pose_ros.estimation import EstimatorConfig
from novel_pose_ros.estimation.coop_coarse_stage import (
    CoopCoarseStage,
    PatchMatches,
    patch_matches,
    similarity,
)
from novel_pose_ros.estimation.crops import make_query_crop
from novel_pose_ros.estimation.template_bank import build_template_bank, patch_grid_mask
from novel_pose_ros.geometry.crop import box_from_mask, warp_crop
from novel_pose_ros.geometry.se3 import make_T, rotation_angle_rad, rotation_from_axis_angle
from novel_pose_ros.networks.coop.coarse_config import NO_MATCH
from novel_pose_ros.networks.coop.coarse_net import template_scores
from novel_pose_ros.networks.coop.coarse_truth import coarse_truth
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.render import SHADED
from novel_pose_ros.templates import TemplateSettings, ensure_templates, load_template_set
from novel_pose_ros.types import Detection, Frame

K = np.array([[610.0, 0.0, 330.0], [0.0, 605.0, 235.0], [0.0, 0.0, 1.0]])
VIEW = 7


@pytest.fixture(scope="module")
def block():
    return ObjectLibrary.from_yaml(BUNDLED_OBJECTS).get("toy_block")


@pytest.fixture(scope="module")
def templates(block, gl_renderer, tmp_path_factory):
    report = ensure_templates(block, tmp_path_factory.mktemp("templates"), TemplateSettings(level=0), gl_renderer)
    template_set = load_template_set(report.folder)
    return template_set, build_template_bank(template_set)


@pytest.fixture(scope="module")
def query(block, templates, gl_renderer):
    """The block seen close to template VIEW (turned 10° about the optical axis, 8° off it, elsewhere in the image)."""
    _, bank = templates
    T_view = bank.T_cam_obj[VIEW]
    R = rotation_from_axis_angle(np.array([0.0, 0.0, 1.0]), np.radians(10)) @ \
        rotation_from_axis_angle(np.array([1.0, 0.0, 0.0]), np.radians(8)) @ T_view[:3, :3]
    T_q = make_T(R, [0.04, -0.02, 0.5])
    r = gl_renderer.render([(block, T_q)], K, 640, 480, SHADED)
    frame = Frame(np.where(r.mask[..., None], r.rgb, np.uint8(80)), K)
    crop = make_query_crop(frame, Detection("toy_block", box_from_mask(r.mask), 0.9, r.mask), 0, "toy_block", 224, 16)
    return frame, crop, r, T_q


def test_scores_count_confident_matched_patches_on_the_mask():
    logits = np.full((2, 256, 257), -20.0)
    logits[0, :, NO_MATCH] = 20.0  # template 0: nothing matches
    logits[1, :, 5] = 20.0  # template 1: everything matches patch 5
    np.testing.assert_allclose(template_scores(torch.from_numpy(logits)), [0.0, 256.0])  # probabilities ≈ 1
    mask = np.zeros(256, np.float32)
    mask[:100] = 1
    np.testing.assert_allclose(template_scores(torch.from_numpy(logits), torch.from_numpy(mask)), [0.0, 100.0])
    matches = patch_matches(logits[1], np.full((256, 2), 0.25), mask)
    assert len(matches.query_xy) == 100
    np.testing.assert_allclose(matches.template_xy, np.tile([5 * 14 + 6.5 + 3.5, 6.5 + 3.5], (100, 1)))


def test_similarity_of_exact_matches_and_identity_without_them():
    rng = np.random.default_rng(0)
    template_xy = rng.uniform(20, 200, size=(30, 2))
    A = np.array([[0.9, -0.2, 14.0], [0.2, 0.9, -6.0]])
    fitted = similarity(PatchMatches(template_xy @ A[:, :2].T + A[:, 2], template_xy, np.ones(30)))
    np.testing.assert_allclose(fitted, A, atol=1e-4)  # float32 inside OpenCV
    np.testing.assert_array_equal(similarity(PatchMatches(np.zeros((2, 2)), np.zeros((2, 2)), np.ones(2))),
                                  [[1, 0, 0], [0, 1, 0]])


def test_exact_patch_matches_recover_the_pose_through_crop_lift_and_epnp(templates, query, block):
    template_set, bank = templates
    frame, crop, render, T_q = query
    view = template_set.views[VIEW]
    truth = coarse_truth(render.depth_m, render.labels, 1, K, crop.M_crop_img, T_q,
                         warp_crop(view.depth_m, bank.M_crop_img[VIEW], 224, nearest=True), bank.mask[VIEW], bank.K,
                         bank.M_crop_img[VIEW], bank.T_cam_obj[VIEW], 0.003)
    assert truth.matched.sum() > 40
    logits = np.full((256, 257), -20.0)
    logits[np.arange(256), truth.target_class] = 20.0  # the network's ideal answer
    mask = patch_grid_mask(crop.mask, 16).reshape(-1)
    stage = CoopCoarseStage(backend=None, config=EstimatorConfig())
    outcome = stage._solve(crop, [(VIEW, 99.0, patch_matches(logits, truth.target_offset, mask))], bank, K)
    assert outcome.source == "coop_pnp" and outcome.hypotheses[0].source == f"coop:view{VIEW}"
    # the template's 3D points sit on its 64×64 grid (3.5-px cells): a few millimetres, a degree or two
    assert np.linalg.norm(outcome.T_cam_obj[:3, 3] - T_q[:3, 3]) < 0.006
    assert np.degrees(rotation_angle_rad(outcome.T_cam_obj[:3, :3], T_q[:3, :3])) < 2.5


def test_without_usable_matches_the_similarity_fallback_still_gives_a_pose(templates, query):
    _, bank = templates
    frame, crop, render, T_q = query
    logits = np.full((256, 257), -20.0)
    logits[:, NO_MATCH] = 20.0
    outcome = CoopCoarseStage(None, EstimatorConfig())._solve(
        crop, [(VIEW, 0.0, patch_matches(logits, np.zeros((256, 2)), np.ones(256)))], bank, K)
    assert outcome.source == "coop_similarity_fallback"
    # the identity similarity: the template's distance scaled by the crops' zoom, the object on the crop's centre ray
    assert abs(outcome.T_cam_obj[2, 3] - T_q[2, 3]) < 0.1 and np.degrees(
        rotation_angle_rad(outcome.T_cam_obj[:3, :3], T_q[:3, :3])) < 40


def test_the_stage_runs_on_a_real_onnx_session(templates, query, tiny_coarse_checkpoint):
    from novel_pose_ros.runtime.coop_weights import create_coop_backend

    _, bank = templates
    frame, crop, _, _ = query
    stage = CoopCoarseStage(create_coop_backend("coop_coarse", "onnxruntime", tiny_coarse_checkpoint),
                            EstimatorConfig(hypotheses=2, max_batch=16))
    onboarded = stage.templates(bank)
    assert onboarded.tokens.shape == (42, 256, 32) and np.isfinite(onboarded.tokens).all()
    timings = {}
    [outcome] = stage.run([crop], {"toy_block": onboarded}, K, timings)
    assert outcome.detection_index == 0 and outcome.T_cam_obj.shape == (4, 4) and np.isfinite(outcome.T_cam_obj).all()
    assert 1 <= len(outcome.hypotheses) <= 3 and set(timings) == {"encoder", "match", "pnp"}

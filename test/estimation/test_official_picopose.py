"""`picopose_mode: official` rules (estimation/official_picopose.py) against the official PicoPose fixture:
each function of the estimator's official mode on the fixture's own inputs gives the official outputs.
No network runs here (the network's parity is test/networks/test_official_parity.py)."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import shared_data
from novel_pose_ros.estimation.correspondences import targets_from_flow
from novel_pose_ros.estimation.official_picopose import (
    integer_centred_crop_matrix,
    official_affine_3x3,
    official_correspondences,
    official_crop_matrix,
    official_fallback_pose,
    official_grid_pixels,
    official_kept_cells,
    official_stage1_scores,
    official_template_centres,
)

pytestmark = pytest.mark.needs_data
HYPOTHESES, QUERIES = 5, 2


@pytest.fixture(scope="module")
def fixture():
    folder = shared_data("picopose_official/parity")
    inputs = dict(np.load(folder / "inputs.npz"))
    outputs = dict(np.load(folder / "official_outputs.npz"))
    return inputs, outputs


def _selected(fixture, k, b):
    inputs, outputs = fixture
    return int(outputs["stage1_topk_id"][b, k])


def test_crop_matrices_convert_both_ways(fixture):
    inputs, _ = fixture
    for M in list(inputs["template_M"]) + list(inputs["query_M"]):
        ours = integer_centred_crop_matrix(M)
        np.testing.assert_allclose(official_crop_matrix(ours), M[:2], atol=1e-4)
        # ours maps the window's first pixel centre x1 to (s - 1) / 2, the official matrix maps x1 to 0
        s = M[0, 0]
        x1 = -M[0, 2] / s
        assert ours[0, 0] * x1 + ours[0, 2] == pytest.approx(0.5 * s - 0.5, abs=1e-3)


def test_template_centre_is_the_official_one(fixture):
    inputs, outputs = fixture
    centres = official_template_centres(inputs["template_pose"].astype(np.float64), inputs["template_K"][0],
                                        integer_centred_crop_matrix(inputs["template_M"]))
    for k in range(HYPOTHESES):
        for b in range(QUERIES):
            np.testing.assert_allclose(centres[_selected(fixture, k, b)], outputs["hyp_tem_centre_M"][k, b], atol=2e-3)


def test_query_grid_points_are_the_official_ones(fixture):
    inputs, _ = fixture
    for b in range(QUERIES):
        pixels = official_grid_pixels(integer_centred_crop_matrix(inputs["query_M"][b]), 64, 224)
        # the fixture stores the grid as [x index][y index], ours is [row h][col w]
        np.testing.assert_allclose(pixels, inputs["query_pts2d"][b].transpose(1, 0, 2), atol=2e-3)


def test_stage2_affine_and_fallback_pose_are_the_official_ones(fixture):
    inputs, outputs = fixture
    for k in range(HYPOTHESES):
        for b in range(QUERIES):
            view = _selected(fixture, k, b)
            M = official_affine_3x3(outputs["hyp_translation"][k, b], outputs["hyp_scale"][k, b],
                                    outputs["hyp_inplane"][k, b], outputs["hyp_tem_centre_M"][k, b])
            np.testing.assert_allclose(M, outputs["hyp_pred_Ms"][k, b], atol=1e-4)
            pose = official_fallback_pose(outputs["hyp_pred_Ms"][k, b].astype(np.float64), inputs["query_M"][b],
                                          inputs["query_K"][b], inputs["template_M"][view], inputs["template_K"][view],
                                          inputs["template_pose"][view])
            np.testing.assert_allclose(pose[:3, :3], outputs["hyp_pred_poses"][k, b][:3, :3], atol=1e-5)
            np.testing.assert_allclose(pose[:3, 3], outputs["hyp_pred_poses"][k, b][:3, 3], rtol=1e-4, atol=1e-6)


def test_correspondence_gather_is_the_official_one(fixture):
    """From the official flow and certainty: the same kept cells, truncated targets, and gathered 2D/3D
    points in the same order as the official pose_recovery_ransac_pnp input."""
    inputs, outputs = fixture
    gathered_2d, gathered_3d = [], []
    for k in range(HYPOTHESES):
        for b in range(QUERIES):
            targets = targets_from_flow(outputs["hyp_flow_2"][k, b])
            certainty = 1.0 / (1.0 + np.exp(-outputs["hyp_certainty_2"][k, b, 0].astype(np.float64)))
            cells = official_kept_cells(targets, certainty)
            src, tar = outputs["hyp_src_pts"][k, b], outputs["hyp_tar_pts"][k, b]
            kept = src[:, 0] >= 0
            np.testing.assert_array_equal(cells[:, :2], src[kept])
            np.testing.assert_array_equal(cells[:, 2:], tar[kept])
            view = _selected(fixture, k, b)
            pixels_grid = official_grid_pixels(integer_centred_crop_matrix(inputs["query_M"][b]), 64, 224)
            points, pixels = official_correspondences(targets, certainty, inputs["template_pts3d_cam"][view], pixels_grid)
            gathered_2d.append(pixels)
            gathered_3d.append(points)
    np.testing.assert_allclose(np.concatenate(gathered_2d), outputs["corr_coord_2d"], atol=2e-3)
    np.testing.assert_allclose(np.concatenate(gathered_3d), outputs["corr_coord_3d_cam"], atol=1e-6)


def test_stage1_rule_on_constructed_patches():
    """The official rule on unit vectors where the answer is worked out by hand (3 patches, the query's
    third patch outside the mask): a query patch j counts only if its best template patch is not patch 0
    and template patch j's best query patch is not patch 0 either."""
    e = np.eye(4)
    query = e[[0, 1, 2]]
    mask = np.array([1.0, 1.0, 0.0])
    templates = np.stack([
        e[[1, 0, 2]],  # best matches: query 0 -> patch 1, query 1 -> patch 0 (filtered); counted: query 0 only
        e[[0, 1, 3]],  # query 0 -> patch 0 (filtered); query 1 -> patch 1, template patch 1's best is query 1
        e[[3, 3, 3]],  # nothing similar: every best index is 0, nothing counts
    ])
    np.testing.assert_allclose(official_stage1_scores(query, mask, templates), [1 / 3, 1 / 3, 0.0])


@pytest.fixture(scope="module")
def official_layout_checkpoint(tmp_path_factory):
    """A checkpoint as the official code writes it: Lightning layout, no `novel_pose` entry of ours."""
    import torch

    from novel_pose_ros.networks.picopose.config import get_config
    from novel_pose_ros.networks.picopose.picopose_net import build_network

    torch.manual_seed(0)
    net = build_network(get_config("small"))
    path = tmp_path_factory.mktemp("official") / "official_layout.ckpt"
    torch.save({"state_dict": {f"network.{k}": v for k, v in net.state_dict().items()}, "epoch": 3,
                "pytorch-lightning_version": "1.8.1"}, path)
    return path


@pytest.mark.parametrize("requested, expected", [("auto", "official"), ("ours", "ours"), ("official", "official")])
def test_an_official_checkpoint_selects_the_official_rules_unless_told_otherwise(official_layout_checkpoint, requested,
                                                                                   expected, caplog):
    from novel_pose_ros.estimation import EstimatorConfig
    from novel_pose_ros.estimation.estimator import resolve_picopose_mode

    config = EstimatorConfig(network="small", weights=official_layout_checkpoint, picopose_mode=requested)
    assert resolve_picopose_mode(config) == expected
    if requested == "auto":
        assert "official PicoPose checkpoint" in caplog.text


def test_our_checkpoints_keep_our_rules():
    from novel_pose_ros.estimation import EstimatorConfig
    from novel_pose_ros.estimation.estimator import resolve_picopose_mode

    assert resolve_picopose_mode(EstimatorConfig()) == "ours"  # the shipped small_cnn weights
    with pytest.raises(ValueError, match="official_rules"):
        EstimatorConfig(official_rules=("stage1", "bogus"))
    with pytest.raises(ValueError, match="picopose_mode"):
        EstimatorConfig(picopose_mode="paper")


def test_official_mode_runs_end_to_end_with_float32_features(tmp_path, untrained_backend, gl_renderer):
    """The estimator under picopose_mode official on a rendered frame: a pose, float32 template features
    cached under their own name, and the official template centres in use."""
    from helpers import BUNDLED_OBJECTS
    from novel_pose_ros.estimation import Estimator, EstimatorConfig
    from novel_pose_ros.geometry.crop import box_from_mask
    from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle
    from novel_pose_ros.objects import ObjectLibrary
    from novel_pose_ros.render import SHADED
    from novel_pose_ros.types import Detection, Frame

    library = ObjectLibrary.from_yaml(BUNDLED_OBJECTS).subset(["toy_block"])
    K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])
    T = make_T(rotation_from_axis_angle(np.array([1.0, 0.3, 0.2]), 2.2), [0.0, 0.01, 0.6])
    render = gl_renderer.render([(library.get("toy_block"), T)], K, 640, 480, SHADED)
    frame = Frame(np.where(render.mask[..., None], render.rgb, 90).astype(np.uint8), K)
    estimator = Estimator(library, EstimatorConfig(network="small", templates_dir=tmp_path, picopose_mode="official"),
                          untrained_backend, gl_renderer)
    assert estimator.picopose_mode == "official"
    report = estimator.run(frame, [Detection("toy_block", box_from_mask(render.mask), 0.9, render.mask)])
    assert len(report.poses) == 1 and np.isfinite(report.poses[0].T_cam_obj).all()
    templates = estimator.templates_of("toy_block")
    assert templates.features.feat64.dtype == np.float32
    assert list((tmp_path).rglob("*-f32.npz")), "float32 features are cached under their own name"
    bank = templates.bank
    np.testing.assert_allclose(templates.centres, official_template_centres(bank.T_cam_obj, bank.K, bank.M_crop_img),
                               atol=1e-4)
    # the official centre sits s/2 crop pixels before ours (s = crop scale of the template)
    np.testing.assert_allclose(bank.centre_crop_px + 0.5 - templates.centres,
                               0.5 * bank.M_crop_img[:, :, [0]].max(axis=1).repeat(2, axis=1), atol=1e-4)


def test_official_template_points_are_the_official_ones(fixture, gl_renderer, tmp_path):
    """The fixture's templates are our cereal_box templates: our bank reproduces their crops, the official
    crop matrices and the official template point cloud (nearest resize, no validity filter) cell by cell."""
    from helpers import BUNDLED_OBJECTS
    from novel_pose_ros.estimation.template_bank import build_template_bank
    from novel_pose_ros.objects import ObjectLibrary
    from novel_pose_ros.templates import TemplateSettings, ensure_templates
    from novel_pose_ros.templates.store import load_template_set

    inputs, _ = fixture
    cereal_box = ObjectLibrary.from_yaml(BUNDLED_OBJECTS).get("cereal_box")
    report = ensure_templates(cereal_box, tmp_path, TemplateSettings(level=0), gl_renderer, show_progress=False)
    bank = build_template_bank(load_template_set(report.folder))
    for i, view in enumerate(inputs["template_views"]):
        assert np.array_equal(bank.rgb[view], inputs["template_rgb"][i])
        np.testing.assert_allclose(bank.M_crop_img[view], integer_centred_crop_matrix(inputs["template_M"][i]), atol=1e-4)
        T = bank.T_cam_obj[view]
        official_cam = bank.official_points_obj[view] @ T[:3, :3].T + T[:3, 3]
        np.testing.assert_allclose(official_cam, inputs["template_pts3d_cam"][i], atol=1e-5)
        assert (np.abs(official_cam).max(axis=-1) < 1e-6).any(), "cells without depth give the camera centre"
        ours_cam = bank.points_obj[view] @ T[:3, :3].T + T[:3, 3]
        on_both = bank.points_valid[view] & (official_cam[..., 2] > 0)
        assert np.abs(ours_cam - official_cam)[on_both].max() > 1e-4, "ours samples cell centres, not cv2's floor"

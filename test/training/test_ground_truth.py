"""Ground truth of rendered training pairs speaks the estimator's conventions exactly.

The GT flow at 64², fed through the estimator's own correspondence and PnP functions with certainty
1 on the valid cells, must give back the query pose; the GT affine through the estimator's fallback
must give back an on-axis query's pose.
"""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from novel_pose_ros.estimation.correspondences import (
    affine_fallback_pose,
    affine_to_pixel_centres,
    dense_correspondences,
    pose_from_correspondences,
    targets_from_flow,
)
from novel_pose_ros.estimation.crops import make_query_crop
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.geometry.icosphere import template_poses
from novel_pose_ros.geometry.se3 import make_T, rotation_angle_rad
from novel_pose_ros.training.ground_truth import affine_truth
from novel_pose_ros.types import Detection, Frame

K_QUERY = np.array([[610.0, 0.0, 318.0], [0.0, 612.0, 243.0], [0.0, 0.0, 1.0]])


def _template_of(sampler, pair):
    """The pair's template view (its 3D points depend on geometry only, not on the appearance shown)."""
    index = sampler.pool.names.index(pair.object_name)
    return sampler.views.view(sampler.pool.get(index), pair.view)


def test_pairs_meet_the_sampling_rules(rendered_pairs):
    for pair in rendered_pairs:
        assert pair.query_rgb.shape == (224, 224, 3) and pair.query_rgb.dtype == np.uint8
        assert pair.template_mask.any() and pair.valid[64].sum() > 50
        assert pair.scale > 0 and np.isclose(np.linalg.norm(pair.cos_sin), 1.0)
        # InfoNCE positives: valid level-16 cells, one template patch per query patch
        used = pair.infonce_query[pair.infonce_query >= 0]
        assert len(used) > 0 and len(np.unique(used)) == len(used)
        rows, cols = np.divmod(pair.infonce_template[pair.infonce_template >= 0], 16)
        assert pair.valid[16][rows, cols].all()


def test_gt_flow_recovers_the_query_pose_through_the_estimator(pair_sampler, rendered_pairs):
    for pair in rendered_pairs:
        template = _template_of(pair_sampler, pair)
        np.testing.assert_array_equal(template.mask, pair.template_mask)
        targets = targets_from_flow(pair.flow[64])
        corr = dense_correspondences(targets, pair.valid[64].astype(np.float64), template.bank(64), 0, pair.M_crop_img)
        result = pose_from_correspondences(corr, pair.K)
        assert result.success, pair.object_name
        t_err_m = np.linalg.norm(result.T_cam_obj[:3, 3] - pair.T_cam_obj[:3, 3])
        r_err_deg = np.degrees(rotation_angle_rad(result.T_cam_obj[:3, :3], pair.T_cam_obj[:3, :3]))
        assert t_err_m < 2e-3 and r_err_deg < 0.5, (pair.object_name, t_err_m, r_err_deg)


@pytest.mark.parametrize("view,theta_deg,farther", [(3, 30.0, 1.2), (50, -100.0, 0.8), (120, 170.0, 1.0)])
def test_gt_affine_through_the_fallback_recovers_an_on_axis_query(pair_sampler, gl_renderer, view, theta_deg, farther):
    """Query = a template view turned in-plane and moved along the optical axis."""
    obj = pair_sampler.pool.get(pair_sampler.pool.names.index("toy_block"))
    settings = pair_sampler.template_settings
    T_t = template_poses(settings.level, settings.distance_m(obj))[view]
    R_z = Rotation.from_rotvec([0.0, 0.0, np.radians(theta_deg)]).as_matrix()
    T_q = make_T(R_z @ T_t[:3, :3], T_t[:3, 3] * farther)
    rendered = gl_renderer.render([(obj, T_q)], K_QUERY, 640, 480)
    mask = rendered.labels == 1
    crop = make_query_crop(Frame(rendered.rgb, K_QUERY), Detection("toy_block", box_from_mask(mask), mask=mask),
                           0, "toy_block", 224, 1)
    template = pair_sampler.views.view(obj, view)
    truth = affine_truth(template, T_q, K_QUERY, crop.M_crop_img)
    assert np.isclose(np.degrees(truth.angle_rad), theta_deg)
    T_est = affine_fallback_pose(affine_to_pixel_centres(truth.affine), template.bank(64), 0, crop.M_crop_img, K_QUERY)
    np.testing.assert_allclose(T_est, T_q, atol=1e-9)


def test_preview_draws_pairs_side_by_side(pair_sampler, tmp_path):
    import cv2

    from novel_pose_ros.training.preview import write_preview

    path = write_preview(pair_sampler, tmp_path / "pairs.png", count=2, columns=2)
    sheet = cv2.imread(str(path))
    assert sheet.shape == (224, 2 * 448, 3) and sheet.std() > 10

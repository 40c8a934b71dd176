"""Stage-2 pre-selection and per-hypothesis alignment: which templates go on to stage 3, and how hypotheses compete.

Real template banks (rendered by the real renderer), real ONNX Runtime sessions (untrained weights: the mechanism,
not accuracy).
"""
import dataclasses

import numpy as np
import pytest

from helpers import BUNDLED_OBJECTS
from novel_pose_ros.estimation import Estimator, EstimatorConfig
from novel_pose_ros.estimation.crops import make_query_crop
from novel_pose_ros.estimation.picopose_stages import DetectionOutcome
from novel_pose_ros.estimation.verification import warped_template_iou
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.types import Detection, Frame, PoseHypothesis

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@pytest.fixture(scope="module")
def estimator_for(tmp_path_factory, untrained_backend, gl_renderer):
    library = ObjectLibrary.from_yaml(BUNDLED_OBJECTS).subset(["toy_block"])
    templates_dir = tmp_path_factory.mktemp("templates")

    def build(**settings):
        return Estimator(library, EstimatorConfig(templates_dir=templates_dir, **settings), untrained_backend, gl_renderer)
    return build


@pytest.fixture(scope="module")
def bank(estimator_for):
    return estimator_for().templates_of("toy_block").bank


def _crop_with_mask(mask):
    """A query crop whose detection mask is `mask` (the crop itself: identity crop transform)."""
    size = mask.shape[0]
    frame = Frame(np.zeros((size, size, 3), np.uint8), K)
    crop = make_query_crop(frame, Detection("toy_block", box_from_mask(mask), 1.0, mask), 0, "toy_block", size, 1)
    return dataclasses.replace(crop, mask=mask, M_crop_img=IDENTITY.copy())


def _most_different_view(bank, view):
    ious = [warped_template_iou(bank.mask[v], IDENTITY, bank.mask[view]) for v in range(len(bank))]
    return int(np.argmin(ious))


def test_a_template_mask_moved_by_the_right_affine_fits_the_query(bank):
    view = 7
    query = np.zeros_like(bank.mask[view])
    query[5:, 10:] = bank.mask[view][:-5, :-10]  # the template's silhouette 10 px right, 5 px down
    moved = np.array([[1.0, 0.0, 10.0], [0.0, 1.0, 5.0]])
    assert warped_template_iou(bank.mask[view], moved, query) > 0.99
    assert warped_template_iou(bank.mask[view], IDENTITY, query) < 0.95
    assert warped_template_iou(bank.mask[_most_different_view(bank, view)], moved, query) < 0.9


def test_the_templates_whose_stage2_silhouette_fits_go_on_in_stage1_order(estimator_for, bank):
    estimator = estimator_for(hypotheses=3, templates_considered=8)
    true_view = 11
    views = [v for v in range(len(bank)) if v != true_view][:7]
    views.insert(6, true_view)  # stage 1 ranked the right template 7th of 8
    pairs = [(0, v, 1.0 - 0.01 * rank) for rank, v in enumerate(views)]
    templates = [estimator.templates_of("toy_block")] * len(pairs)
    affines = np.repeat(IDENTITY[None], len(pairs), axis=0)  # corner convention; identity either way
    crop = _crop_with_mask(bank.mask[true_view])
    keep = estimator._stages._preselect([crop], pairs, templates, affines, keep_first=False)
    ious = [warped_template_iou(bank.mask[v], IDENTITY, crop.mask) for v in views]
    assert 6 in keep and len(keep) == 3 and keep == sorted(keep)
    assert keep == sorted(np.argsort(-np.array(ious), kind="stable")[:3].tolist())
    # the template oracle's GT view (first) always stays; a box-only detection keeps stage 1's best
    worst = int(np.argmin(ious))
    worst_first = [pairs[worst]] + [p for i, p in enumerate(pairs) if i != worst]
    assert 0 in estimator._stages._preselect([crop], worst_first, templates, affines, keep_first=True)
    box_only = dataclasses.replace(crop, mask=None)
    assert estimator._stages._preselect([box_only], pairs, templates, affines, keep_first=False) == [0, 1, 2]


def test_a_right_rotation_off_in_depth_beats_a_wrong_one_once_both_are_aligned(estimator_for, gl_renderer):
    obj = ObjectLibrary.from_yaml(BUNDLED_OBJECTS).get("toy_block")
    T_true = make_T(rotation_from_axis_angle(np.array([1.0, 0.3, 0.2]), 2.2), [-0.02, 0.01, 0.6])
    mask = gl_renderer.render([(obj, T_true)], K, 640, 480).mask
    detection = Detection("toy_block", box_from_mask(mask), 0.9, mask)
    frame = Frame(np.zeros((480, 640, 3), np.uint8), K)
    crop = make_query_crop(frame, detection, 0, "toy_block", 224, 1)
    far = T_true.copy()
    far[:3, 3] *= 1.10  # PnP's typical error: the right rotation, 10 % too far and 6 mm aside
    far[0, 3] += 0.006
    wrong = T_true @ make_T(rotation_from_axis_angle(np.array([1.0, 0.0, 0.0]), 0.3), [0.0, 0.0, 0.0])  # 17° off
    outcome = DetectionOutcome(0, far, "pnp", 0.5, (PoseHypothesis(far, 0.5, "pnp:view3", 500, 1000),
                                                    PoseHypothesis(wrong, 0.5, "pnp:view9", 500, 1000)))
    chosen = {}
    for alignment in (False, True):
        estimator = estimator_for(silhouette_alignment=alignment)
        timings = {}
        [chosen[alignment]] = estimator._verify(frame, [detection], {0: crop}, [outcome], timings)
        assert ("align" in timings) == alignment
    plain, aligned = chosen[False], chosen[True]
    assert np.array_equal(plain.T_cam_obj, wrong)  # at PnP's placement the wrong rotation fits the mask better
    assert np.array_equal(aligned.T_cam_obj[:3, :3], T_true[:3, :3])  # aligned, the right one wins ...
    assert abs(aligned.T_cam_obj[2, 3] - T_true[2, 3]) < 0.02 * T_true[2, 3]  # ... at nearly the true depth
    assert [h.source for h in aligned.hypotheses] == ["pnp:view3+aligned", "pnp:view9+aligned"]
    assert aligned.agreements[0].iou > 0.95 > plain.agreements[0].iou


def test_with_depth_only_the_chosen_pose_is_aligned(estimator_for, gl_renderer):
    """With measured depth the depth check places the pose: the hypotheses compete as PnP or the 3D–3D fit left
    them (aligning every one cost AR on depth frames), and the chosen one alone is fitted to the mask."""
    obj = ObjectLibrary.from_yaml(BUNDLED_OBJECTS).get("toy_block")
    T_true = make_T(rotation_from_axis_angle(np.array([1.0, 0.3, 0.2]), 2.2), [-0.02, 0.01, 0.6])
    render = gl_renderer.render([(obj, T_true)], K, 640, 480)
    detection = Detection("toy_block", box_from_mask(render.mask), 0.9, render.mask)
    frame = Frame(np.zeros((480, 640, 3), np.uint8), K, np.where(render.mask, render.depth_m, 1.2).astype(np.float32))
    crop = make_query_crop(frame, detection, 0, "toy_block", 224, 1)
    off = T_true.copy()
    off[2, 3] *= 1.05
    outcome = DetectionOutcome(0, off, "rigid", 0.5, (PoseHypothesis(off, 0.5, "rigid:view3", 500, 1000),))
    [verified] = estimator_for()._verify(frame, [detection], {0: crop}, [outcome], {}, with_depth=True)
    original, aligned = verified.hypotheses
    assert original.source == "rigid:view3" and np.array_equal(original.T_cam_obj, off)
    assert aligned.source == "rigid:view3+aligned" and np.array_equal(verified.T_cam_obj, aligned.T_cam_obj)
    assert abs(aligned.T_cam_obj[2, 3] - T_true[2, 3]) < abs(off[2, 3] - T_true[2, 3])

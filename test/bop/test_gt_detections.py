"""Detections from ground truth: visible masks (render + depth test) and the noise, drop and false-positive options."""
import cv2
import numpy as np
import pytest

from helpers import BUNDLED_OBJECTS, shared_data
from novel_pose_ros.bop.dataset import BopDataset
from novel_pose_ros.bop.detections import read_detections_json
from novel_pose_ros.bop.gt_detections import VISIBILITY_DELTA_M, detections_from_gt, ray_length_per_z, visible_masks
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.synth import generate_dataset

W, H = 640, 480


@pytest.fixture(scope="module")
def synth_dataset(tmp_path_factory, gl_renderer):
    bundled = ObjectLibrary.from_yaml(BUNDLED_OBJECTS)
    library = ObjectLibrary([bundled.get("toy_block"), bundled.get("cereal_box"), bundled.get("bracket")])
    out = tmp_path_factory.mktemp("gt_det") / "synth"
    generate_dataset(library, out, 2, 4, seed=11, renderer=gl_renderer, show_progress=False)
    return BopDataset(out)


def _mask_visib(dataset, image, index):
    path = dataset.split_dir / f"{image.scene_id:06d}" / "mask_visib" / f"{image.im_id:06d}_{index:06d}.png"
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0


def _is_true(d):
    return d.score == 1.0


def test_masks_equal_the_synthetic_mask_visib_and_boxes_are_tight(synth_dataset, gl_renderer):
    detections = detections_from_gt(synth_dataset, gl_renderer, box_noise=0.0)
    expected = [(image, i, inst) for image in synth_dataset.images() for i, inst in enumerate(image.gt) if inst.px_count_visib]
    assert len(detections) == len(expected) > 10
    for d, (image, index, inst) in zip(detections, expected):
        mask_visib = _mask_visib(synth_dataset, image, index)
        assert (d.scene_id, d.im_id, d.obj_id, d.score) == (image.scene_id, image.im_id, inst.obj_id, 1.0)
        np.testing.assert_array_equal(d.mask, mask_visib)
        assert d.bbox_xywh == tuple(float(v) for v in box_from_mask(mask_visib))
    written, _ = read_detections_json(synth_dataset.root / "detections_gt.json")  # what the generator wrote
    assert [(d.obj_id, d.bbox_xywh) for d in written] == [(d.obj_id, d.bbox_xywh) for d in detections]
    target_images = {(t.scene_id, t.im_id) for t in synth_dataset.targets}
    on_targets = detections_from_gt(synth_dataset, gl_renderer, only_target_images=True)
    assert [d.bbox_xywh for d in on_targets] == [d.bbox_xywh for d in detections if (d.scene_id, d.im_id) in target_images]


def test_depth_test_is_one_sided_uses_ray_distances_and_keeps_missing_depth():
    K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
    labels = np.zeros((H, W), np.int32)
    labels[:, :320], labels[:, 320:] = 1, 2
    rendered = np.full((H, W), 1.0, np.float32)
    sensor = rendered.copy()
    sensor[0:10, 0:10] = 1.0 - 0.020  # something 20 mm in front: occluded
    sensor[0:10, 100:110] = 1.0 + 0.050  # sensor behind the render: not an occlusion
    sensor[0:10, 200:210] = 0.0  # no reading: no evidence of occlusion
    sensor[100:110, 300:310] = 1.0 - 0.010  # 10 mm: within δ
    sensor[0, 639] = 1.0 - 0.014  # 14 mm in z, but 14 mm × 1.44 along the corner ray: occluded
    masks = visible_masks(labels, rendered, sensor, 2, K)
    assert ray_length_per_z(K, W, H)[0, 639] == pytest.approx(np.sqrt(1 + (319.5 / 500) ** 2 + (239.5 / 500) ** 2))
    assert not masks[0][0:10, 0:10].any() and masks[0][0:10, 100:110].all() and masks[0][0:10, 200:210].all()
    assert masks[0][100:110, 300:310].all() and not masks[1][0, 639] and masks[1][1, 639]
    assert masks[0].sum() == 320 * H - 100 and masks[1].sum() == 320 * H - 1
    without_depth = visible_masks(labels, rendered, None, 2, K)
    np.testing.assert_array_equal(without_depth[0], labels == 1)


def test_noise_drop_and_false_positives_follow_the_seed(synth_dataset, gl_renderer):
    exact = detections_from_gt(synth_dataset, gl_renderer, box_noise=0.0, seed=3)
    noisy = detections_from_gt(synth_dataset, gl_renderer, box_noise=0.1, seed=3)
    again = detections_from_gt(synth_dataset, gl_renderer, box_noise=0.1, seed=3)
    assert [d.bbox_xywh for d in again] == [d.bbox_xywh for d in noisy]
    assert [d.bbox_xywh for d in detections_from_gt(synth_dataset, gl_renderer, box_noise=0.1, seed=4)] != [d.bbox_xywh for d in noisy]
    shifts = []
    for e, n in zip(exact, noisy):
        np.testing.assert_array_equal(e.mask, n.mask)  # only the box is perturbed
        x, y, w, h = n.bbox_xywh
        assert 0 <= x and 0 <= y and x + w <= W + 1e-9 and y + h <= H + 1e-9 and w >= 1 and h >= 1
        ex, ey, ew, eh = e.bbox_xywh
        shifts += [(x - ex) / ew, (y - ey) / eh]
    shifts = np.abs(shifts)
    assert 0.02 < np.median(shifts) < 0.2 and shifts.max() < 0.6  # |N(0, 0.1)|: median 0.067

    assert detections_from_gt(synth_dataset, gl_renderer, drop=1.0, seed=3) == []
    half = detections_from_gt(synth_dataset, gl_renderer, box_noise=0.1, drop=0.5, seed=3)
    kept = {(d.scene_id, d.im_id, d.obj_id, d.bbox_xywh) for d in half}
    assert kept < {(d.scene_id, d.im_id, d.obj_id, d.bbox_xywh) for d in noisy}  # a subset, same boxes
    assert 0.2 < len(half) / len(noisy) < 0.8

    with_fp = detections_from_gt(synth_dataset, gl_renderer, false_positives=2.0, seed=3)
    false = [d for d in with_fp if not _is_true(d)]
    assert [d.bbox_xywh for d in with_fp if _is_true(d)] == [d.bbox_xywh for d in exact]
    images = {(i.scene_id, i.im_id): i for i in synth_dataset.images()}
    assert 4 <= len(false) <= 32  # Poisson with mean 2 × 8 images
    all_ids = {int(k) for k in synth_dataset.models_info}
    for d in false:
        present = {g.obj_id for g in images[(d.scene_id, d.im_id)].gt}
        assert d.obj_id in (all_ids - present or all_ids) and 0.05 <= d.score <= 0.5
        x, y, w, h = (int(v) for v in d.bbox_xywh)
        assert 0 <= x and 0 <= y and x + w <= W and y + h <= H
        assert d.mask.any() and not d.mask[:, :x].any() and not d.mask[:y].any()
        assert not d.mask[:, x + w:].any() and not d.mask[y + h:].any()


@pytest.mark.parametrize("options", [dict(drop=1.5), dict(box_noise=-0.1), dict(false_positives=float("nan"))])
def test_bad_options_are_rejected(synth_dataset, gl_renderer, options):
    with pytest.raises(ValueError):
        detections_from_gt(synth_dataset, gl_renderer, **options)


@pytest.mark.needs_data
def test_real_ycbv_masks_are_the_gt_render_minus_depth_occlusions(gl_renderer):
    dataset = BopDataset(shared_data("ycbv_real"))
    detections = detections_from_gt(dataset, gl_renderer, box_noise=0.0)
    library = dataset.object_library(sorted({g.obj_id for image in dataset.images() for g in image.gt}))
    by_key = {(d.scene_id, d.im_id, d.obj_id): d for d in detections}
    assert len(detections) == sum(len(image.gt) for image in dataset.images()) == 15
    lost_to_depth = 0
    for image in dataset.images():
        render = gl_renderer.render([(library.get(g.obj_id), g.T_cam_obj) for g in image.gt], image.K, W, H)
        depth = image.load_depth_m()
        for index, inst in enumerate(image.gt):
            mask = by_key[(image.scene_id, image.im_id, inst.obj_id)].mask
            rendered = render.labels == index + 1
            if depth is None:  # scene 48: the render alone, occlusion by the other GT objects
                np.testing.assert_array_equal(mask, rendered)
                continue
            assert not (mask & ~rendered).any()
            removed = rendered & ~mask
            assert (depth[removed] > 0).all()
            ray = ray_length_per_z(image.K, W, H)
            assert ((render.depth_m - depth)[removed] * ray[removed] > VISIBILITY_DELTA_M).all()
            assert mask.sum() >= 0.9 * rendered.sum()
            lost_to_depth += int(removed.sum())
            if inst.obj_id == 15:  # the drill renders ~16 mm in front of the sensor: a GT error, not an occlusion
                two_sided = rendered & ((np.abs(render.depth_m - depth) * ray <= VISIBILITY_DELTA_M) | (depth == 0))
                assert two_sided.sum() < 0.6 * rendered.sum() < 0.6 * mask.sum() / 0.9
    assert lost_to_depth > 500  # e.g. the unannotated banana in front of object 2 in image 629

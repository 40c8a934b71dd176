"""The Estimator end to end with real ONNX Runtime sessions (untrained weights: plumbing, not accuracy)."""
import numpy as np
import pytest

from helpers import BUNDLED_OBJECTS, shared_data
from novel_pose_ros.bop.dataset import BopDataset
from novel_pose_ros.bop.gt_detections import detections_from_gt
from novel_pose_ros.estimation import Estimator, EstimatorConfig
from novel_pose_ros.estimation.confidence import FEATURES
from novel_pose_ros.estimation.estimator import PICOPOSE_STAGES as STAGES
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.geometry.se3 import is_rotation, make_T, rotation_from_axis_angle
from novel_pose_ros.objects import ObjectLibrary
from novel_pose_ros.render import SHADED
from novel_pose_ros.types import Detection, Frame

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def library():
    return ObjectLibrary.from_yaml(BUNDLED_OBJECTS).subset(["toy_block", "cereal_box"])


@pytest.fixture(scope="module")
def templates_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("templates")


@pytest.fixture(scope="module")
def estimator(library, templates_dir, untrained_backend, gl_renderer):
    return Estimator(library, EstimatorConfig(templates_dir=templates_dir), untrained_backend, gl_renderer)


@pytest.fixture(scope="module")
def scene(library, gl_renderer):
    """A 640×480 frame with the block and the box, their masks, and a black stripe on the left."""
    R = rotation_from_axis_angle(np.array([1.0, 0.3, 0.2]), 2.2)
    poses = {"toy_block": make_T(R, [-0.08, 0.02, 0.6]), "cereal_box": make_T(R.T, [0.09, -0.01, 0.55])}
    result = gl_renderer.render([(library.get(n), T) for n, T in poses.items()], K, 640, 480, SHADED)
    background = np.full((480, 640, 3), 90, np.uint8)
    background[:, :40] = 0
    image = np.where(result.mask[..., None], result.rgb, background)
    masks = {name: result.labels == i + 1 for i, name in enumerate(poses)}
    return Frame(image, K), masks


def _detection(name, mask, with_mask=True):
    return Detection(name, box_from_mask(mask), 0.9, mask if with_mask else None)


def test_a_pose_per_good_detection_and_a_reason_per_bad_one(estimator, scene):
    frame, masks = scene
    tiny = np.zeros_like(masks["toy_block"])
    tiny[200:205, 300:305] = True
    detections = [
        _detection("toy_block", masks["toy_block"]),
        _detection("cereal_box", masks["cereal_box"], with_mask=False),  # box only
        Detection("banana", (10, 10, 50, 50)),
        Detection("toy_block", (300, 200, 5, 5), 0.5, tiny),
        Detection("cereal_box", (700, 100, 50, 50)),
        Detection("2", box_from_mask(masks["toy_block"]), 0.4),  # object given by its id
    ]
    report = estimator.run(frame, detections)
    assert [(p.detection_index, p.object_id, p.instance) for p in report.poses] == [
        (0, "toy_block", 0), (1, "cereal_box", 0), (5, "toy_block", 1)]
    assert [(f.detection_index, f.cause) for f in report.failures] == [
        (2, "unknown_object"), (3, "mask_too_small"), (4, "box_outside_image")]
    assert "banana" in report.failures[0].message and "toy_block" in report.failures[0].message
    for pose in report.poses:
        assert is_rotation(pose.R, atol=1e-6) and np.all(np.isfinite(pose.t_m))
        assert pose.hypotheses and pose.score == detections[pose.detection_index].score
        assert 0.0 < pose.confidence < 1.0 and set(pose.evidence) == set(FEATURES)
    assert set(report.timings.seconds) == set(STAGES) | {"verify", "align", "confidence"} and report.timings.seconds["backbone"] > 0


def test_empty_detection_list_gives_no_poses(estimator, scene):
    report = estimator.run(scene[0], [])
    assert report.poses == [] and report.failures == []
    assert estimator.estimate(scene[0], []) == []


def test_hypotheses_come_from_the_top_templates(library, templates_dir, untrained_backend, gl_renderer, scene):
    frame, masks = scene
    config = EstimatorConfig(templates_dir=templates_dir, hypotheses=3)
    estimator = Estimator(library.subset(["toy_block"]), config, untrained_backend, gl_renderer)
    pose = estimator.estimate(frame, [_detection("toy_block", masks["toy_block"])])[0]
    views = {h.source.split(":view")[1].split("+")[0] for h in pose.hypotheses}
    assert 1 <= len(views) <= 3


def test_template_features_are_cached_per_weights(library, templates_dir, untrained_backend, gl_renderer, estimator):
    features = sorted((templates_dir / "toy_block" / "features").glob("*.npz"))
    assert len(features) == 1 and untrained_backend.weights_id[:24] in features[0].name
    mtime = features[0].stat().st_mtime_ns
    again = Estimator(library.subset(["toy_block"]), EstimatorConfig(templates_dir=templates_dir), untrained_backend, gl_renderer)
    assert features[0].stat().st_mtime_ns == mtime  # read, not recomputed
    assert again.onboarding_s["toy_block"] < 5.0


class BlackCropFails:
    """Fault injection around a real backend: the backbone raises on an all-black crop."""

    def __init__(self, backend):
        self._backend = backend
        self.name, self.device, self.precision = backend.name, backend.device, backend.precision
        self.weights_id, self.input_names = backend.weights_id, backend.input_names

    def run(self, graph, inputs):
        if graph == "backbone" and any(np.ptp(image, axis=(1, 2)).max() == 0 for image in inputs["image"]):  # uniform crop
            raise RuntimeError("simulated failure on a black crop")
        return self._backend.run(graph, inputs)


def test_an_error_on_one_detection_loses_only_that_detection(library, templates_dir, untrained_backend, gl_renderer, scene):
    frame, masks = scene
    estimator = Estimator(library, EstimatorConfig(templates_dir=templates_dir), BlackCropFails(untrained_backend), gl_renderer)
    detections = [_detection("toy_block", masks["toy_block"]), Detection("cereal_box", (0, 100, 30, 30)),
                  _detection("cereal_box", masks["cereal_box"])]
    report = estimator.run(frame, detections)
    assert [p.detection_index for p in report.poses] == [0, 2]
    assert [(f.detection_index, f.cause) for f in report.failures] == [(1, "estimator_error")]
    assert "simulated failure" in report.failures[0].message


def test_config_validation_names_every_problem():
    with pytest.raises(ValueError, match="hypotheses.*backend|backend.*hypotheses"):
        EstimatorConfig(hypotheses=0, backend="tensorflow")
    with pytest.raises(ValueError, match="unknown keys"):
        EstimatorConfig.from_dict({"hypothesis": 3})


@pytest.mark.needs_data
def test_untrained_path_gives_a_pose_per_detection_on_a_real_image(untrained_backend, gl_renderer, tmp_path):
    dataset = BopDataset(shared_data("ycbv_real"))
    image = dataset.image(48, 1)
    detections = [d for d in detections_from_gt(dataset, gl_renderer, box_noise=0.0, drop=0.0, false_positives=0.0, seed=0)
                  if (d.scene_id, d.im_id) == (48, 1)]
    library = dataset.object_library(sorted({d.obj_id for d in detections}))
    estimator = Estimator(library, EstimatorConfig(templates_dir=tmp_path), untrained_backend, gl_renderer)
    report = estimator.run(Frame(image.load_rgb(), image.K), [d.to_detection(library) for d in detections])
    assert len(report.poses) == len(detections) == 5 and report.failures == []


def test_stage1_score_is_the_brute_force_definition(estimator):
    """score_templates (object patches × masked query patches, max per template) equals the definition
    written out over all patches, also for a template with no object patch and a partial query mask."""
    import dataclasses

    from novel_pose_ros.estimation.picopose_stages import ObjectTemplates, score_templates

    templates = estimator.templates_of("toy_block")
    patch_mask = templates.bank.patch_mask.copy()
    patch_mask[3] = 0.0  # a template whose object is not on the patch grid
    templates = ObjectTemplates(dataclasses.replace(templates.bank, patch_mask=patch_mask), templates.features)
    rng = np.random.default_rng(0)
    query = rng.normal(size=(256, templates.features.unit_patches.shape[2])).astype(np.float32)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    query_mask = (rng.random(256) > 0.4).astype(np.float32)

    sim = np.einsum("npc,qc->npq", templates.features.unit_patches, query)
    best = np.where(patch_mask.reshape(len(patch_mask), -1, 1) > 0, sim, -1.0).max(axis=1)
    expected = (best * query_mask).sum(axis=1) / 256
    got = score_templates(query, query_mask, templates)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert got[3] == pytest.approx(-query_mask.sum() / 256)
    assert np.all(score_templates(query, np.zeros(256, np.float32), templates) == 0.0)


def test_picopose_then_refine_refines_every_posed_detection(library, templates_dir, gl_renderer, scene):
    """pipeline picopose+refine with the shipped weights of both stages: the coarse poses go through the
    refiner graph and the LM-PnP, the refined pose is returned (the coarse ones stay listed); timed."""
    frame, masks = scene
    estimator = Estimator(library, EstimatorConfig(templates_dir=templates_dir, pipeline="picopose+refine",
                                                   refine_iterations=1), renderer=gl_renderer)
    report = estimator.run(frame, [_detection("toy_block", masks["toy_block"]),
                                   _detection("cereal_box", masks["cereal_box"])])
    assert len(report.poses) == 2
    assert set(report.timings.seconds) == set(STAGES) | {"verify", "align", "refine", "confidence"} and report.timings.seconds["refine"] > 0
    for pose in report.poses:
        assert is_rotation(pose.R, atol=1e-6) and np.all(np.isfinite(pose.t_m))
        # the refined pose is the one returned when refinement succeeded; the coarse ones stay listed
        refined = [h for h in pose.hypotheses if h.source == "refined"]
        if refined:
            assert np.allclose(refined[0].T_cam_obj, pose.T_cam_obj)
    assert any(h.source == "refined" for p in report.poses for h in p.hypotheses)

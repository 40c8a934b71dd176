"""The Co-op pipelines end to end with real ONNX Runtime sessions and the real renderer (tiny random coarse and
selector networks, the shipped refiner: plumbing, not accuracy), and the selector stage on its own."""
import numpy as np
import pytest

from helpers import BUNDLED_OBJECTS
from novel_pose_ros.estimation import Estimator, EstimatorConfig
from novel_pose_ros.estimation.config import Pipeline
from novel_pose_ros.estimation.selector_stage import SelectorStage
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
def scene(library, gl_renderer):
    R = rotation_from_axis_angle(np.array([1.0, 0.3, 0.2]), 2.2)
    poses = {"toy_block": make_T(R, [-0.08, 0.02, 0.6]), "cereal_box": make_T(R.T, [0.09, -0.01, 0.55])}
    result = gl_renderer.render([(library.get(n), T) for n, T in poses.items()], K, 640, 480, SHADED)
    image = np.where(result.mask[..., None], result.rgb, np.uint8(90))
    masks = {name: result.labels == i + 1 for i, name in enumerate(poses)}
    return Frame(image, K), masks, poses


@pytest.fixture(scope="module")
def templates_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("templates")


def _estimator(library, templates_dir, gl_renderer, pipeline, coarse, selector):
    config = EstimatorConfig(templates_dir=templates_dir, pipeline=pipeline, backend="onnxruntime", hypotheses=2,
                             coarse_weights=coarse, selector_weights=selector)
    return Estimator(library, config, renderer=gl_renderer)


def test_pipeline_names_parse():
    assert Pipeline.parse("coop+refine+select") == Pipeline("coop", True, True)
    assert Pipeline.parse("picopose") == Pipeline("picopose", False, False)
    with pytest.raises(ValueError, match="pipeline must be one of"):
        Pipeline.parse("coop+select")
    with pytest.raises(ValueError, match="pipeline must be one of"):
        EstimatorConfig(pipeline="coop+select")


@pytest.mark.parametrize("pipeline, stages", [
    ("coop", ("crop", "encoder", "match", "pnp", "verify", "align", "confidence")),
    ("coop+refine", ("crop", "encoder", "match", "pnp", "verify", "align", "refine", "confidence")),
    ("coop+refine+select", ("crop", "encoder", "match", "pnp", "verify", "align", "refine", "select", "confidence")),
])
def test_every_coop_pipeline_answers_good_detections_and_explains_bad_ones(
        library, templates_dir, gl_renderer, scene, tiny_coarse_checkpoint, tiny_selector_checkpoint, pipeline, stages):
    estimator = _estimator(library, templates_dir, gl_renderer, pipeline, tiny_coarse_checkpoint, tiny_selector_checkpoint)
    assert estimator.stage_names == stages and estimator.template_counts == {"toy_block": 42, "cereal_box": 42}
    frame, masks, _ = scene
    detections = [Detection("toy_block", box_from_mask(masks["toy_block"]), 0.9, masks["toy_block"]),
                  Detection("cereal_box", box_from_mask(masks["cereal_box"]), 0.8),  # box only
                  Detection("banana", (10, 10, 50, 50))]
    report = estimator.run(frame, detections)
    assert [p.detection_index for p in report.poses] == [0, 1]
    assert [(f.detection_index, f.cause) for f in report.failures] == [(2, "unknown_object")]
    for pose in report.poses:
        assert is_rotation(pose.T_cam_obj[:3, :3]) and pose.T_cam_obj[2, 3] > 0
        assert set(pose.timings.seconds) == set(stages)
        sources = [h.source for h in pose.hypotheses]
        assert sources[0].startswith("coop")
        if pipeline == "coop+refine+select":  # each coarse hypothesis again, refined and scored in (0, 1)
            coarse = len(sources) // 2
            assert len(sources) == 2 * coarse and all(0 <= h.score <= 1 for h in pose.hypotheses[coarse:])
            assert any(np.array_equal(pose.T_cam_obj, h.T_cam_obj) for h in pose.hypotheses[coarse:])
    assert estimator.run(frame, []).poses == []


def test_the_selector_scores_every_hypothesis_and_cannot_choose_one_it_cannot_render(
        library, scene, gl_renderer, tiny_selector_checkpoint):
    from novel_pose_ros.runtime.coop_weights import create_coop_backend

    frame, _, poses = scene
    stage = SelectorStage(create_coop_backend("coop_selector", "onnxruntime", tiny_selector_checkpoint), gl_renderer)
    behind = make_T(np.eye(3), [0.0, 0.0, -1.0])
    off_screen = make_T(np.eye(3), [5.0, 0.0, 0.5])
    timings = {}
    scores = stage.scores(frame, [library.get("toy_block"), library.get("cereal_box")],
                          [[poses["toy_block"], behind, off_screen], [poses["cereal_box"]]], timings)
    assert [len(s) for s in scores] == [3, 1] and timings["select"] > 0
    assert np.isfinite(scores[0][0]) and np.isfinite(scores[1][0])
    assert scores[0][1] == -np.inf  # behind the camera
    assert stage.scores(frame, [], [], None) == []


def test_coop_without_coarse_weights_says_how_to_get_them(library, templates_dir, gl_renderer, monkeypatch, tmp_path):
    from novel_pose_ros.runtime import coop_weights

    monkeypatch.setattr(coop_weights, "shipped_coop_checkpoint", lambda name: tmp_path / "none.ckpt")
    with pytest.raises(FileNotFoundError, match="configs/train_coarse_small.yaml"):
        _estimator(library, templates_dir, gl_renderer, "coop", None, None)

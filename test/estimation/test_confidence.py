"""The pose confidence: evidence of a rendered scene ranks the right pose above wrong ones; the model's file and fit."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import MESHES, REPO_ROOT
from novel_pose_ros.estimation.confidence import (FEATURES, ConfidenceModel, default_confidence_model_path,
                                                  fit_confidence_model, pose_evidence)
from novel_pose_ros.estimation.crops import make_query_crop
from novel_pose_ros.estimation.verification import (RenderedChecks, evidence_mask, render_in_crop, rendered_checks,
                                                     silhouette_agreements)
from novel_pose_ros.geometry.crop import box_from_mask
from novel_pose_ros.geometry.se3 import make_T, rotation_from_axis_angle
from novel_pose_ros.objects import load_object
from novel_pose_ros.render import SHADED
from novel_pose_ros.types import Detection, Frame, PoseHypothesis

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def scene(gl_renderer):
    """The textured cereal box rendered shaded on grey, its detection, and right / wrong poses of it."""
    obj = load_object(MESHES / "cereal_box.obj", 3, "cereal_box", units="m")
    T_true = make_T(rotation_from_axis_angle(np.array([0.3, 1.0, 0.1]), 0.6), [0.02, -0.01, 0.45])
    result = gl_renderer.render([(obj, T_true)], K, 640, 480, SHADED)
    image = np.where(result.mask[..., None], result.rgb, np.uint8(110))
    detection = Detection("cereal_box", box_from_mask(result.mask), 1.0, result.mask)
    crop = make_query_crop(Frame(image, K), detection, 0, "cereal_box", 224, 1)
    # turned 180° about the object's own axis nearest the line of sight: a near-identical outline, other face
    axis = T_true[:3, :3].T @ np.array([0.0, 0.0, 1.0])
    axis = np.eye(3)[int(np.argmax(np.abs(axis)))]
    wrong = {"turned": T_true @ make_T(rotation_from_axis_angle(axis, np.pi), np.zeros(3)),
             "tilted": T_true @ make_T(rotation_from_axis_angle(np.array([1.0, 0.0, 0.0]), 0.8), np.zeros(3)),
             "shifted": make_T(T_true[:3, :3], T_true[:3, 3] + [0.03, 0.0, 0.04])}
    return obj, T_true, wrong, detection, crop


def _evidence(renderer, obj, T, candidates, detection, crop):
    """The evidence of pose T among `candidates` (every hypothesis with the same PnP support)."""
    hypotheses = [PoseHypothesis(c, 0.5, f"pnp:view{i}", 200, 400) for i, c in enumerate(candidates)]
    evidence = evidence_mask(crop, detection)
    agreements = silhouette_agreements(renderer, obj, candidates, K, crop, evidence)
    chosen = next(i for i, c in enumerate(candidates) if c is T)
    return pose_evidence(T, hypotheses[chosen], agreements[chosen], hypotheses, agreements, detection.bbox_xywh,
                         rendered_checks(render_in_crop(renderer, obj, T, K, crop, SHADED), crop, evidence))


def test_the_shipped_model_scores_the_right_pose_above_wrong_ones(scene, gl_renderer):
    obj, T_true, wrong, detection, crop = scene
    model = ConfidenceModel.load(default_confidence_model_path())
    candidates = [T_true, *wrong.values()]
    confidence = {name: float(model.predict([_evidence(gl_renderer, obj, T, candidates, detection, crop)])[0])
                  for name, T in [("right", T_true), *wrong.items()]}
    assert all(confidence["right"] > confidence[name] for name in wrong), confidence


def test_inner_edges_tell_a_turned_pose_inside_the_same_outline(scene, gl_renderer):
    obj, T_true, wrong, detection, crop = scene
    evidence = evidence_mask(crop, detection)
    right, turned, shifted = (rendered_checks(render_in_crop(gl_renderer, obj, T, K, crop, SHADED), crop, evidence)
                              for T in (T_true, wrong["turned"], wrong["shifted"]))
    assert right.edge_agreement > turned.edge_agreement + 0.1
    assert right.edge_density == pytest.approx(turned.edge_density, abs=0.1)
    assert right.outline_offset < 0.01 and right.evidence_offset < 0.01  # the outlines coincide
    assert shifted.outline_offset > 0.03 and shifted.evidence_offset > 0.03
    behind = make_T(np.eye(3), [0, 0, -1.0])
    assert render_in_crop(gl_renderer, obj, behind, K, crop) is None
    assert rendered_checks(None, crop, evidence) == RenderedChecks()


def test_evidence_features_follow_the_hypotheses(scene, gl_renderer):
    obj, T_true, wrong, detection, crop = scene
    alone = _evidence(gl_renderer, obj, T_true, [T_true], detection, crop)
    assert set(alone) == set(FEATURES)
    assert alone["consensus"] == 1.0 and alone["iou_margin"] == pytest.approx(alone["iou"])  # no competitor
    assert alone["inlier_ratio"] == 0.5 and alone["fallback"] == 0.0 and alone["iou"] > 0.95
    crowded = _evidence(gl_renderer, obj, T_true, [T_true, wrong["turned"]], detection, crop)
    assert crowded["consensus"] == 0.5 and crowded["iou_margin"] < 0.1  # the turn fits the outline as well


def test_a_fitted_model_ranks_by_the_evidence_and_round_trips(tmp_path, rng):
    iou = rng.random(300)
    right = rng.random(300) < iou ** 2
    evidence = [{name: 0.0 for name in FEATURES} | {"iou": float(v), "edge_agreement": float(rng.random())} for v in iou]
    model = fit_confidence_model(evidence, right, FEATURES, fitted_on={"source": "test"})
    assert model.weights[FEATURES.index("iou")] > 0.5 and abs(model.weights[FEATURES.index("fallback")]) < 1e-6
    predicted = model.predict(evidence)
    assert np.all((predicted > 0) & (predicted < 1)) and np.corrcoef(predicted, iou)[0, 1] > 0.95
    model.save(tmp_path / "m.json")
    again = ConfidenceModel.load(tmp_path / "m.json")
    assert again == model and np.allclose(again.predict(evidence), predicted)
    with pytest.raises(ValueError, match="both outcomes"):
        fit_confidence_model(evidence, [True] * 300)
    with pytest.raises(KeyError, match="coverage"):
        model.predict([{"iou": 0.5}])


def test_model_files_are_checked(tmp_path):
    path = tmp_path / "bad.json"
    with pytest.raises(FileNotFoundError, match="confidence fit"):
        ConfidenceModel.load(path)
    path.write_text(json.dumps({"features": ["iou", "colour"], "mean": [0, 0], "scale": [1, 1], "weights": [1, 1],
                                "bias": 0}))
    with pytest.raises(ValueError, match="colour"):
        ConfidenceModel.load(path)
    path.write_text(json.dumps({"features": ["iou"]}))
    with pytest.raises(ValueError, match="malformed"):
        ConfidenceModel.load(path)


CALIBRATION_SAMPLES = REPO_ROOT / "models" / "pose_confidence" / "calibration_samples.jsonl"


def test_the_shipped_model_is_calibrated_on_held_out_synthetic_scenes():
    """Samples of a held-out synthetic set the model was not fitted on (the card says which), collected with
    the shipped weights and defaults: in every confidence bin with 20 poses or more, the mean confidence is
    within 0.1 of the share of right poses."""
    from novel_pose_ros.bop.confidence_eval import read_samples, reliability
    from novel_pose_ros.hashing import file_sha256

    samples = read_samples(CALIBRATION_SAMPLES)
    model = ConfidenceModel.load(default_confidence_model_path())
    assert file_sha256(CALIBRATION_SAMPLES) not in {f["sha256"] for f in model.fitted_on["samples"]}
    bins = [b for b in reliability(model.predict([s.evidence for s in samples]), [s.right() for s in samples])
            if b.count >= 20]
    assert len(bins) >= 2 and sum(b.count for b in bins) >= 0.8 * len(samples)
    assert all(abs(b.mean_confidence - b.observed) <= 0.1 for b in bins), bins

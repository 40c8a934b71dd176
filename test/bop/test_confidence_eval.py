"""Measuring a pose confidence: AUROC, reliability bins, precision/recall and labelled samples on a tiny BOP dataset."""
from __future__ import annotations

import numpy as np
import pytest

from novel_pose_ros.bop.confidence_eval import (auroc, confidence_report, label_samples, precision_recall, read_samples,
                                                reliability, reliability_image, write_samples)
from novel_pose_ros.bop.results import PoseResult
from bop.test_breakdown import FLIP_X, gt_pose, write_tiny_dataset


def _pairwise_auroc(scores, labels) -> float:
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    return float(np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg]))


def test_auroc_is_the_share_of_right_wrong_pairs_ranked_right(rng):
    scores = np.round(rng.random(200), 1)  # many ties
    labels = rng.random(200) < scores
    assert auroc(scores, labels) == pytest.approx(_pairwise_auroc(scores, labels))
    assert auroc([0.1, 0.2, 0.9], [False, False, True]) == 1.0
    assert auroc([0.9, 0.2, 0.1], [False, False, True]) == 0.0
    assert auroc([0.5, 0.6], [True, True]) is None


def test_reliability_bins_and_precision_recall():
    confidences = [0.05, 0.15, 0.55, 0.59, 0.95, 1.0]
    labels = [False, False, True, False, True, True]
    bins = reliability(confidences, labels, bins=5)
    assert [b.count for b in bins] == [2, 0, 2, 0, 2]
    assert bins[2].mean_confidence == pytest.approx(0.57) and bins[2].observed == 0.5
    assert bins[4].observed == 1.0 and bins[1].observed is None
    assert precision_recall(confidences, labels, 0.5) == (0.75, 1.0)
    assert precision_recall(confidences, labels, 1.1) == (None, 0.0)
    image = reliability_image([b.__dict__ for b in bins], "test")
    assert image.dtype == np.uint8 and image.ndim == 3


def test_samples_are_labelled_against_their_own_ground_truth(tmp_path):
    dataset = write_tiny_dataset(tmp_path / "ds", images=2)
    results, diagnostics = [], []
    for im in range(2):
        for obj_id, planted in ((1, np.eye(4)), (2, FLIP_X)):
            T_gt = gt_pose(im, obj_id)
            for T_est, label in ((T_gt, "exact"), (T_gt @ FLIP_X, "flipped")):
                results.append(PoseResult(0, im, obj_id, 1.0, T_est, 0.1))
                diagnostics.append({"T_gt": T_gt.ravel().tolist(), "evidence": {"iou": 0.5}, "confidence": 0.3,
                                    "detection_score": 0.9, "label": label})
    results.append(PoseResult(0, 0, 1, 1.0, gt_pose(0, 1), 0.1))
    diagnostics.append({"T_gt": None, "evidence": {}, "confidence": None, "detection_score": 1.0})  # no GT: no sample
    samples = label_samples(dataset, results, diagnostics)
    assert len(samples) == 8
    for sample, entry in zip(samples, diagnostics):
        if entry["label"] == "exact" or sample.obj_id == 2:  # object 2 declares the flip a symmetry
            assert sample.mssd_over_diameter == pytest.approx(0.0, abs=1e-9) and sample.right(0.1)
        else:
            assert sample.mssd_over_diameter > 0.2 and not sample.right(0.2)
    write_samples(tmp_path / "s.jsonl", samples)
    assert read_samples(tmp_path / "s.jsonl") == samples
    report = confidence_report(samples, [0.9 if s.right() else 0.1 for s in samples])
    assert report["0.2d"]["auroc"] == 1.0 and report["0.2d"]["precision"] == 1.0 and report["0.2d"]["recall"] == 1.0
    assert report["0.2d"]["auroc_detection_score"] == 0.5  # every detection score is 0.9
    with pytest.raises(ValueError, match="diagnostics entries"):
        label_samples(dataset, results[:-1], diagnostics)

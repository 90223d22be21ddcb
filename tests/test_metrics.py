"""Streaming metrics from a confusion matrix agree with sklearn on the same predictions; the probability
metrics (AUCs, calibration, curves) agree with sklearn and with hand-computed cases."""

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from lmpipe.evaluation.metrics import (
    CURVE_POINTS,
    check_probabilities,
    classification_from_confusion,
    classification_report,
    curves,
    probability_report,
    reliability,
)


@pytest.mark.parametrize("classes", [2, 4])
def test_confusion_metrics_match_sklearn(classes):
    rng = np.random.default_rng(classes)
    labels = rng.integers(0, classes, 500)
    predictions = np.where(rng.random(500) < 0.7, labels, rng.integers(0, classes, 500))
    predictions[predictions == classes - 1] = 0  # one class never predicted: zero_division path
    report = classification_report(labels, predictions, [f"c{i}" for i in range(classes)])
    assert report["accuracy"] == pytest.approx(accuracy_score(labels, predictions))
    for name, fn in [("precision_macro", precision_score), ("recall_macro", recall_score), ("f1_macro", f1_score)]:
        assert report[name] == pytest.approx(fn(labels, predictions, average="macro", zero_division=0)), name
    assert report["per_class"]["c0"]["support"] == int((labels == 0).sum())
    assert np.asarray(report["confusion_matrix"]).sum() == 500
    assert classification_from_confusion(report["confusion_matrix"])["f1_macro"] == report["f1_macro"]


# ------------------------------------------------------------------------------ from class probabilities


def _probabilities(n: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and informative (not perfect) probabilities."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), labels] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probs.astype(np.float32)


def test_reliability_points_agree_with_sklearn_calibration_curve():
    labels, probs = _probabilities(2000, 3)
    ece, points = reliability(labels, probs, n_bins=10)
    correct = probs.argmax(axis=1) == labels
    accuracy, confidence = calibration_curve(correct, probs.max(axis=1), n_bins=10, strategy="uniform")
    assert [p["accuracy"] for p in points] == pytest.approx(accuracy)
    assert [p["confidence"] for p in points] == pytest.approx(confidence)
    assert sum(p["examples"] for p in points) == 2000
    weights = np.array([p["examples"] for p in points]) / 2000
    assert ece == pytest.approx(float(np.sum(weights * np.abs(accuracy - confidence))))


def test_expected_calibration_error_on_known_cases():
    # confidence 0.8 and 8 of 10 right: perfectly calibrated
    probs = np.tile([0.8, 0.2], (10, 1))
    assert reliability(np.array([0] * 8 + [1] * 2), probs)[0] == pytest.approx(0.0)
    # 90% confident and always wrong: ECE 0.9
    assert reliability(np.ones(4, dtype=int), np.tile([0.9, 0.1], (4, 1)))[0] == pytest.approx(0.9)
    # two bins, half the examples each: |1.0 - 0.6| / 2 + |0.0 - 0.95| / 2
    probs = np.array([[0.6, 0.4]] * 2 + [[0.95, 0.05]] * 2)
    assert reliability(np.array([0, 0, 1, 1]), probs)[0] == pytest.approx(0.4 / 2 + 0.95 / 2)


def test_binary_report_has_aucs_from_the_positive_class():
    labels, probs = _probabilities(500, 2, seed=1)
    report = probability_report(labels, probs, ["neg", "pos"])
    assert report["roc_auc"] == pytest.approx(roc_auc_score(labels, probs[:, 1]))
    assert report["pr_auc"] == pytest.approx(average_precision_score(labels, probs[:, 1]))
    exact = probs.astype(np.float64) / probs.astype(np.float64).sum(axis=1, keepdims=True)
    assert report["log_loss"] == pytest.approx(log_loss(labels, exact))
    assert 0.5 < report["roc_auc"] < 1 and 0 < report["ece"] < 1
    assert report["accuracy"] == pytest.approx(float((probs.argmax(1) == labels).mean()))


def test_aucs_left_out_where_undefined():
    labels, probs = _probabilities(300, 3, seed=2)
    assert not {"roc_auc", "pr_auc"} & probability_report(labels, probs, ["a", "b", "c"]).keys()
    one_class = np.zeros(10, dtype=int)
    _, probs = _probabilities(10, 2)
    report = probability_report(one_class, probs, ["neg", "pos"])
    assert "roc_auc" not in report and "ece" in report
    assert curves(one_class, probs) == {"roc": [], "pr": []}


def test_curves_run_from_corner_to_corner_and_are_thinned():
    labels, probs = _probabilities(5000, 2, seed=3)
    points = curves(labels, probs)
    roc, pr = points["roc"], points["pr"]
    assert (roc[0]["fpr"], roc[0]["tpr"]) == (0.0, 0.0) and (roc[-1]["fpr"], roc[-1]["tpr"]) == (1.0, 1.0)
    assert all(a["fpr"] <= b["fpr"] for a, b in zip(roc, roc[1:]))
    assert pr[0]["recall"] == 0.0 and pr[-1]["recall"] == 1.0 and pr[-1]["precision"] == pytest.approx(labels.mean())
    assert all(a["recall"] <= b["recall"] for a, b in zip(pr, pr[1:]))
    assert len(pr) <= CURVE_POINTS and len(roc) <= CURVE_POINTS  # 5000 examples: thinned
    # more classes: the micro-average of one-vs-rest decisions
    labels, probs = _probabilities(400, 4, seed=4)
    roc = curves(labels, probs)["roc"]
    assert roc[-1] == {"fpr": 1.0, "tpr": 1.0} and len(roc) > 10


@pytest.mark.parametrize("probs, message", [
    (np.full((3, 2), 0.5), r"shape \(3, 2\), expected \(4, 2\)"),
    (np.array([[0.5, 0.5], [0.5, 0.5], [0.9, 0.3], [0.5, 0.5]]), "row 2 sums to 1.2"),
    (np.array([[np.nan, 1.0]] * 4), "finite"),
])
def test_bad_probabilities_are_named(probs, message):
    with pytest.raises(ValueError, match=f"finetune: .*{message}"):
        check_probabilities(np.array([0, 1, 0, 1]), probs, 2, "finetune")

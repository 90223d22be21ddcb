"""Streaming metrics from a confusion matrix agree with sklearn on the same predictions."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from lmpipe.metrics import classification_from_confusion, classification_report


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

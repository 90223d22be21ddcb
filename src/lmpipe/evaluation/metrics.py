"""Classification metrics: streaming ones from a confusion matrix, the full report from predictions, and
the probability-based ones (AUCs, calibration, curves) from class probabilities."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    log_loss,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from sklearn.preprocessing import label_binarize


def classification_from_confusion(confusion: np.ndarray) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 from a (true x predicted) count matrix.

    A class never predicted (or never present) scores 0 for that ratio, as sklearn's zero_division=0.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, actual, out=np.zeros_like(true_positive), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return {
        "accuracy": float(true_positive.sum() / max(confusion.sum(), 1)),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
    }


def classification_report(labels: np.ndarray, predictions: np.ndarray, label_names: list[str]) -> dict:
    """Accuracy, macro and per-class precision/recall/F1/support, and the confusion matrix."""
    ids = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=ids, zero_division=0)
    confusion = confusion_matrix(labels, predictions, labels=ids)
    report = classification_from_confusion(confusion)
    report["per_class"] = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i])}
        for i, name in enumerate(label_names)
    }
    report["confusion_matrix"] = confusion.tolist()
    return report


CURVE_POINTS = 500  # plotted curves are thinned to about this many points (the AUCs use every example)


def check_probabilities(labels: np.ndarray, probabilities: np.ndarray, num_labels: int, what: str) -> None:
    """Fail with `what` named when probabilities cannot be scored against labels."""
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape != (len(labels), num_labels):
        raise ValueError(f"{what}: probabilities of shape {probabilities.shape}, expected "
                         f"({len(labels)}, {num_labels}) (one row per example, one column per label)")
    if not np.isfinite(probabilities).all() or probabilities.min() < 0 or probabilities.max() > 1:
        raise ValueError(f"{what}: probabilities must be finite and in [0, 1]")
    sums = probabilities.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        row = int(np.argmax(np.abs(sums - 1.0)))
        raise ValueError(f"{what}: row {row} sums to {sums[row]:.4f}, not 1")
    if len(labels) and (np.min(labels) < 0 or np.max(labels) >= num_labels):
        raise ValueError(f"{what}: labels outside 0..{num_labels - 1}")


def reliability(labels: np.ndarray, probabilities: np.ndarray, n_bins: int = 15) -> tuple[float, list[dict]]:
    """Expected calibration error of the top-label confidence, and the reliability diagram's points.

    sklearn has no ECE; this uses the equal-width bins of sklearn.calibration.calibration_curve (which the
    tests check it against): ECE = sum over bins of (bin count / N) * |accuracy in bin - mean confidence|.
    """
    confidence = probabilities.max(axis=1).astype(np.float64)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], confidence)
    count = np.bincount(bins, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    used = count > 0
    mean_conf, accuracy = conf_sum[used] / count[used], correct_sum[used] / count[used]
    ece = float(np.sum(count[used] / max(len(labels), 1) * np.abs(accuracy - mean_conf)))
    points = [{"confidence": float(c), "accuracy": float(a), "examples": int(n)}
              for c, a, n in zip(mean_conf, accuracy, count[used])]
    return ece, points


def probability_report(labels: np.ndarray, probabilities: np.ndarray, label_names: list[str],
                       ece_bins: int = 15) -> dict:
    """`classification_report` of the argmax, plus log loss, expected calibration error and, for binary
    tasks, ROC-AUC and PR-AUC (average precision) of the second label (label id 1) as the positive class.

    The AUCs are left out when the split holds a single class (they are undefined there).
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)  # float32 softmax rows: 1 +- 1e-7
    ids = list(range(len(label_names)))
    report = classification_report(labels, probabilities.argmax(axis=1), label_names)
    report["log_loss"] = float(log_loss(labels, probabilities, labels=ids))
    report["ece"], _ = reliability(labels, probabilities, ece_bins)
    if len(label_names) == 2 and len(np.unique(labels)) == 2:
        report["roc_auc"] = float(roc_auc_score(labels, probabilities[:, 1]))
        report["pr_auc"] = float(average_precision_score(labels, probabilities[:, 1]))
    return report


def curves(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, list[dict]]:
    """ROC (fpr, tpr) and precision-recall (recall, precision) points for plotting.

    Binary: label id 1 is the positive class. More classes: the micro-average over one-vs-rest
    problems (every (example, class) pair is one binary decision), so every task has the same plots.
    Empty when the split holds a single class.
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    num_labels = probabilities.shape[1]
    if num_labels == 2:
        truth, score = labels == 1, probabilities[:, 1]
    else:
        truth, score = label_binarize(labels, classes=list(range(num_labels))).ravel() == 1, probabilities.ravel()
    if truth.all() or not truth.any():
        return {"roc": [], "pr": []}
    fpr, tpr, _ = roc_curve(truth, score)
    precision, recall, _ = precision_recall_curve(truth, score)
    roc = [{"fpr": float(f), "tpr": float(t)} for f, t in zip(fpr, tpr)]
    # sklearn lists PR points by decreasing recall; plot them left to right
    pr = [{"recall": float(r), "precision": float(p)} for r, p in zip(recall[::-1], precision[::-1])]
    return {"roc": _thin(roc), "pr": _thin(pr)}


def _thin(points: list[dict], limit: int = CURVE_POINTS) -> list[dict]:
    """At most about `limit` evenly spaced points, always keeping both ends: git-tracked plot data stays
    small on large test sets (IMDB's 25k examples) while the curve's shape is unchanged to the eye."""
    if len(points) <= limit:
        return points
    keep = np.unique(np.linspace(0, len(points) - 1, limit).round().astype(int))
    return [points[i] for i in keep]

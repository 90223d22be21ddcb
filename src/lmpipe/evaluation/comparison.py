"""The evaluate stage's work: score every variant's class probabilities and write the comparison.

Inputs are checked before any model is loaded; every report file is written atomically. What goes into
`metrics.json` is a pure function of the models and the split (no timings), so a forced rerun leaves
`dvc metrics diff` empty.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from lmpipe.config.schema import VARIANT_COMPARISONS
from lmpipe.evaluation.metrics import check_probabilities, curves, probability_report, reliability
from lmpipe.io import atomic_path, read_json, streaming_csv, write_json, write_rows_csv

BASELINE = "tfidf-baseline"


# metrics compared between variants in metrics.json's `comparison` and in the summary
COMPARED = ("accuracy", "f1_macro", "roc_auc", "pr_auc", "ece")


def require_files(paths: Mapping[str, str]) -> None:
    """Fail before any work when an input is missing: {path: what writes it}."""
    missing = [f"{path} (written by {producer})" for path, producer in paths.items() if not Path(path).exists()]
    if missing:
        raise FileNotFoundError("evaluate: missing inputs: " + "; ".join(missing)
                                + ". Run `dvc repro evaluate` to build them first.")


def score(labels: np.ndarray, probabilities: Mapping[str, np.ndarray], label_names: list[str],
          ece_bins: int) -> dict[str, dict]:
    """Every variant's full report (see metrics.probability_report), in the order given."""
    results = {}
    for variant, probs in probabilities.items():
        check_probabilities(labels, probs, len(label_names), variant)
        results[variant] = probability_report(labels, probs, label_names, ece_bins)
    return results


def _delta(a: Mapping, b: Mapping) -> dict[str, float]:
    return {k: float(a[k] - b[k]) for k in COMPARED if k in a and k in b}


def comparison(results: Mapping[str, Mapping], best_metric: str) -> dict:
    """Derived numbers that answer "was it worth it?" (deterministic, so they belong in metrics.json)."""
    out: dict = {}
    for key, _, variant, reference in VARIANT_COMPARISONS:
        if {variant, reference} <= results.keys():
            out[key] = _delta(results[variant], results[reference])
    best = best_variant(results, best_metric)
    if best is not None and BASELINE in results:
        out["best_minus_baseline"] = _delta(results[best], results[BASELINE])
    return out


def best_variant(results: Mapping[str, Mapping], metric: str) -> str | None:
    """The fine-tuned variant (not the baseline) with the highest `metric`; the first one on ties."""
    candidates = [v for v in results if v != BASELINE]
    return max(candidates, key=lambda v: results[v][metric]) if candidates else None


def metrics_json(results: Mapping[str, Mapping], pretrain: Mapping | None, best_metric: str) -> dict:
    """metrics.json: per variant every scalar and the per-class report (confusion matrices go elsewhere),
    the pretrained encoder's held-out masked-LM perplexity, and the comparison."""
    out: dict = {variant: {k: v for k, v in r.items() if k != "confusion_matrix"} for variant, r in results.items()}
    if pretrain is not None:
        out["pretrained_encoder"] = {k: pretrain[k] for k in ("heldout_perplexity", "heldout_loss",
                                                              "heldout_masked_accuracy") if k in pretrain}
    out["comparison"] = comparison(results, best_metric)
    return out


def write_reports(directory: str, labels: np.ndarray, label_names: list[str],
                  probabilities: Mapping[str, np.ndarray], results: Mapping[str, Mapping], ece_bins: int) -> None:
    """Confusion rows and matrices, and ROC / PR / reliability curves (the predictions file: open_predictions)."""
    # curves/ is one DVC output: written whole, so no temporary file ever lies inside it
    with atomic_path(f"{directory}/curves", directory=True) as curves_dir:
        for variant, probs in probabilities.items():
            predicted = probs.argmax(axis=1)
            with streaming_csv(f"{directory}/confusion_{variant}.csv", ["actual", "predicted"]) as writer:
                writer.writerows([label_names[a], label_names[p]] for a, p in zip(labels, predicted))
            points = curves(labels, probs)
            _, calibration = reliability(labels, probs, ece_bins)
            # header-only files on a single-class split, where the curves are undefined: DVC expects every out
            write_rows_csv(curves_dir / f"roc_{variant}.csv", points["roc"], ["fpr", "tpr"])
            write_rows_csv(curves_dir / f"pr_{variant}.csv", points["pr"], ["recall", "precision"])
            write_rows_csv(curves_dir / f"calibration_{variant}.csv", calibration,
                           ["confidence", "accuracy", "examples"])
    write_json(f"{directory}/confusion_matrices.json",
               {"labels": label_names, **{v: r["confusion_matrix"] for v, r in results.items()}})


class PredictionsWriter:
    """The rows of predictions.csv, one variant at a time (see open_predictions)."""

    def __init__(self, writer: Any, label_names: list[str]):
        self._writer, self._names = writer, label_names

    def write(self, variant: str, labels: np.ndarray, probabilities: np.ndarray, texts: Iterable[str]) -> None:
        """One row per example of `variant`; `texts` (any iterable, e.g. streamed from the split) must hold
        exactly one text per row of `probabilities`."""
        names = self._names
        predicted = probabilities.argmax(axis=1)
        for i, (row, text) in enumerate(zip(probabilities, texts, strict=True)):
            self._writer.writerow([i, variant, names[labels[i]], names[predicted[i]], *[f"{p:.6f}" for p in row],
                                   text])


@contextlib.contextmanager
def open_predictions(path: str, label_names: list[str]) -> Iterator[PredictionsWriter]:
    """predictions.csv, written variant by variant as each one's probabilities arrive (so no table of every
    row is ever built) and put in place atomically when the block ends: one row per (variant, example) with
    the true and predicted label, every class's probability and the text.

    Long format, so `df[df.variant == "finetune"]` or a groupby compares variants example by example.
    Probabilities are rounded to 6 decimals: enough to rank and calibrate, and stable text to diff.
    """
    columns = ["example", "variant", "label", "predicted", *[f"p_{name}" for name in label_names], "text"]
    with streaming_csv(path, columns) as writer:
        yield PredictionsWriter(writer, label_names)


def flatten(tree: Mapping, prefix: str = "") -> dict[str, float]:
    """Numeric leaves as {"finetune/per_class/negative/f1": 0.7, ...}: MLflow metric names."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def training_reports(stages: Sequence[str]) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Trainable fraction (reports/<stage>/metrics.json) and training seconds (reports/<stage>/telemetry.json,
    git-ignored: for MLflow only) per stage; None where a file or key is absent (e.g. a fresh clone)."""
    fractions, seconds = {}, {}
    for stage in stages:
        directory = "reports/pretrain" if stage == "pretrain-mlm" else f"reports/{stage}"
        fractions[stage] = _read_number(f"{directory}/metrics.json", "trainable_fraction")
        seconds[stage] = _read_number(f"{directory}/telemetry.json", "train_seconds")
    return fractions, seconds


def _read_number(path: str, key: str) -> float | None:
    try:
        value = read_json(path).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

"""evaluate: every variant (three fine-tuned classifiers and the TF-IDF baseline) on one split, side by side.

Writes reports/evaluate/ (metrics.json, confusion matrices, ROC / PR / reliability curves, predictions.csv)
and reports/summary.md; logs the whole comparison to MLflow and, with `evaluate.log_model`, registers the
best classifier.
"""

from __future__ import annotations

import logging
import tempfile

import numpy as np
import pandas as pd
from transformers import AutoModelForSequenceClassification

from lmpipe.config.loader import to_dict
from lmpipe.config.schema import VARIANTS
from lmpipe.evaluation import comparison
from lmpipe.evaluation.baseline import predict_proba as baseline_proba
from lmpipe.evaluation.baseline import tfidf_logistic_regression
from lmpipe.evaluation.comparison import BASELINE
from lmpipe.evaluation.inference import (
    encode_split_to_file,
    predict_proba,
    read_chunks,
    read_texts,
    require_finite_weights,
)
from lmpipe.evaluation.metrics import check_probabilities
from lmpipe.evaluation.registry import try_log_classifier
from lmpipe.evaluation.report import render_figures, render_summary
from lmpipe.io import atomic_outputs, read_json, write_json, write_text
from lmpipe.stage import start
from lmpipe.text.tokenizers import load_tokenizer
from lmpipe.tracking import Tracker, tracking_uri

TRAINING_STAGES = ("pretrain-mlm", *VARIANTS)
REPORTS, SUMMARY = "reports/evaluate", "reports/summary.md"
log = logging.getLogger("lmpipe")


def main() -> None:
    params = start("evaluate")
    cfg = params.evaluate
    raw = f"data/raw/{cfg.split}.parquet"
    comparison.require_files({
        "data/raw/labels.json": "download", "data/raw/train.parquet": "download", raw: "download",
        "reports/baseline/metrics.json": "baseline", "reports/pretrain/metrics.json": "pretrain-mlm",
        **{f"models/{v}/config.json": v for v in VARIANTS}})
    with Tracker("evaluate", {"seed": params.seed, "evaluate": to_dict(cfg)}, experiment=params.tracking.experiment,
                 enabled=params.tracking.enabled) as tracker:
        label_names = read_json("data/raw/labels.json")
        labels = pd.read_parquet(raw, columns=["label"])["label"].to_numpy()

        # Memory stays flat in the split's size: texts and token ids are read chunk by chunk and never held
        # whole; what is kept is one row of class probabilities per example and variant (what the metrics
        # need). Each variant's rows of predictions.csv are written as soon as its probabilities exist.
        probabilities: dict[str, np.ndarray] = {}
        with atomic_outputs():  # every report replaced together, or (on any failure) none of them
            with comparison.open_predictions(f"{REPORTS}/predictions.csv", label_names) as predictions:
                # The baseline first (seconds): refit exactly as the baseline stage does, for its probabilities,
                # and checked against that stage's reported accuracy so the two never silently disagree.
                baseline = _baseline(params.seed, raw, labels, label_names, cfg.split)
                for variant in VARIANTS:
                    probabilities[variant] = _predict(f"models/{variant}", variant, raw, labels, cfg.batch_size)
                    check_probabilities(labels, probabilities[variant], len(label_names), variant)
                    predictions.write(variant, labels, probabilities[variant], read_texts(raw))
                probabilities[BASELINE] = baseline  # table order: baseline last
                predictions.write(BASELINE, labels, baseline, read_texts(raw))

            results = comparison.score(labels, probabilities, label_names, cfg.ece_bins)
            metrics = comparison.metrics_json(results, read_json("reports/pretrain/metrics.json"), cfg.best_metric)
            best = comparison.best_variant(results, cfg.best_metric)
            fractions, seconds = comparison.training_reports(TRAINING_STAGES)
            comparison.write_reports(REPORTS, labels, label_names, probabilities, results, cfg.ece_bins)
            write_json(f"{REPORTS}/metrics.json", metrics)
            write_text(SUMMARY, render_summary(results, metrics, best, cfg.best_metric, fractions, cfg.split,
                                               label_names))
        for variant, r in results.items():
            log.info("%16s: accuracy=%.4f f1_macro=%.4f roc_auc=%s ece=%.4f", variant, r["accuracy"],
                     r["f1_macro"], f"{r['roc_auc']:.4f}" if "roc_auc" in r else "n/a", r["ece"])

        # MLflow: the whole comparison in this one run
        tracker.log_metrics(comparison.flatten(metrics) | {
            f"{stage}/train_seconds": s for stage, s in seconds.items() if s is not None})
        tracker.set_tags({"best_variant": best})
        tracker.log_artifact(SUMMARY)
        for name in ("metrics.json", "confusion_matrices.json", "curves"):
            tracker.log_artifact(f"{REPORTS}/{name}", "evaluate" if name != "curves" else "evaluate/curves")
        if tracker.active:
            with tempfile.TemporaryDirectory() as tmp:
                try:  # figures exist for the MLflow UI only: a plotting failure must not fail the stage
                    figures = render_figures(tmp, labels, probabilities, label_names)
                except Exception as e:  # noqa: BLE001
                    log.warning("MLflow figures skipped: %s: %s", type(e).__name__, e)
                    figures = []
                for figure in figures:
                    tracker.log_artifact(figure, "plots")
        if cfg.log_model:
            if tracker.run_id is None:
                log.warning("evaluate.log_model is set but MLflow tracking is off or failed: nothing registered")
            else:
                tracker.flush()
                r = results[best]
                try_log_classifier(f"models/{best}", tracker.run_id, tracking_uri(), cfg.registered_model_name,
                                   cfg.model_alias, description=f"lmpipe `{best}`: {cfg.split} accuracy "
                                   f"{r['accuracy']:.4f}, macro F1 {r['f1_macro']:.4f}")


def _predict(path: str, variant: str, raw: str, labels: np.ndarray, batch_size: int) -> np.ndarray:
    """One fine-tuned classifier's class probabilities on the split, with a progress bar."""
    model = AutoModelForSequenceClassification.from_pretrained(path)
    require_finite_weights(model, path)
    tokenizer = load_tokenizer(path)
    # Each model reads the split as it read its training data: its own tokenizer (another base model,
    # pretrain.init_from) and its stage's truncation; with the defaults these are data/tokenized's ids.
    log.info("%s: encoding %s", variant, raw)
    ids, variant_labels = encode_split_to_file(path, raw, tokenizer)
    with ids:
        if not np.array_equal(variant_labels, labels):
            raise ValueError(f"{path}: re-encoding {raw} changed the labels")
        return predict_proba(model, ids, tokenizer.pad_token_id, batch_size, progress=True, desc=variant,
                             unit="example")


def _baseline(seed: int, raw: str, labels: np.ndarray, label_names: list[str], split: str) -> np.ndarray:
    log.info("%s: refitting on data/raw/train.parquet", BASELINE)  # long on a large train split: say so
    model = tfidf_logistic_regression(pd.read_parquet("data/raw/train.parquet"), seed=seed)
    # row by row the same probabilities as one call on every text, without holding every text
    probabilities = np.concatenate([baseline_proba(model, chunk.column("text").to_pylist(), len(label_names))
                                    for chunk in read_chunks(raw, ["text"])])
    reported = read_json("reports/baseline/metrics.json")[split]["accuracy"]
    refit = float((probabilities.argmax(axis=1) == labels).mean())
    if abs(refit - reported) > 1e-9:
        raise RuntimeError(f"reports/baseline/metrics.json: {split} accuracy {reported} but the refit baseline "
                           f"scores {refit}; stages/baseline.py and stages/evaluate.py must fit it the same way")
    return probabilities


if __name__ == "__main__":
    main()

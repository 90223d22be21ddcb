"""reports/summary.md (one page that answers "was it worth it?") and PNG figures for MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from lmpipe.config.schema import VARIANT_COMPARISONS
from lmpipe.evaluation.comparison import BASELINE, COMPARED

COLUMNS = [("accuracy", "accuracy"), ("precision_macro", "precision (macro)"), ("recall_macro", "recall (macro)"),
           ("f1_macro", "F1 (macro)"), ("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("ece", "ECE"),
           ("log_loss", "log loss")]


DELTAS = [(key, title) for key, title in COLUMNS if key in COMPARED]  # the metrics evaluation compares


COMPARISONS = [(key, f"{title}: {variant} − {reference}") for key, title, variant, reference in VARIANT_COMPARISONS]


def _number(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4f}"


def render_summary(results: Mapping[str, Mapping], metrics: Mapping, best: str | None, best_metric: str,
                   fractions: Mapping[str, float | None], split: str, label_names: list[str]) -> str:
    """The markdown page. `metrics` is metrics.json (for the comparison and the pretrained encoder). Only
    deterministic numbers: a rerun with the same inputs rewrites the same bytes (training times are in MLflow
    and each stage's git-ignored telemetry.json)."""
    n = sum(c["support"] for c in next(iter(results.values()))["per_class"].values())
    lines = [
        "# Evaluation summary",
        "",
        f"Every variant on the **{split}** split ({n} examples; labels: {', '.join(label_names)}). "
        "Written by the `evaluate` stage; the scores are in `reports/evaluate/metrics.json`, the per-example "
        "probabilities in `reports/evaluate/predictions.csv`.",
        "",
        "| variant | " + " | ".join(title for _, title in COLUMNS) + " | trainable weights |",
        "|---|" + "---:|" * (len(COLUMNS) + 1),
    ]
    for variant, r in results.items():
        name = f"**{variant}** (best {best_metric})" if variant == best else variant
        fraction = fractions.get(variant)
        trainable = "all (fit from scratch)" if variant == BASELINE else (
            "–" if fraction is None else f"{100 * fraction:.1f}%")
        lines.append(f"| {name} | " + " | ".join(_number(r.get(key)) for key, _ in COLUMNS) + f" | {trainable} |")
    lines += ["", "ROC-AUC and PR-AUC (average precision) take the second label "
              f"(`{label_names[1]}`) as the positive class and are left out for more than two labels; "
              "ECE is the expected calibration error of the top-label confidence (lower is better)."
              if len(label_names) == 2 else
              "ROC-AUC and PR-AUC are reported for binary tasks only; ECE is the expected calibration error "
              "of the top-label confidence (lower is better)."]
    encoder = metrics.get("pretrained_encoder")
    if encoder:
        lines += ["", f"Pretrained encoder (`pretrain-mlm`): held-out masked-LM perplexity "
                  f"**{encoder['heldout_perplexity']:.2f}** (loss {encoder.get('heldout_loss', float('nan')):.4f})."]

    comparison = metrics.get("comparison", {})
    rows = [(key, title) for key, title in COMPARISONS if key in comparison]
    if best is not None and "best_minus_baseline" in comparison:
        rows.append(("best_minus_baseline", f"best fine-tuned ({best}) − TF-IDF baseline"))
    if rows:
        lines += ["", "## Was it worth it?", "",
                  "| comparison | " + " | ".join(f"Δ {title}" for _, title in DELTAS) + " |",
                  "|---|" + "---:|" * len(DELTAS)]
        for key, title in rows:
            lines.append(f"| {title} | " + " | ".join(_signed(comparison[key].get(m)) for m, _ in DELTAS) + " |")
        lines += ["", "Positive: the first beats the second, except for ECE, where negative is better."]

    return "\n".join(lines) + "\n"


def render_figures(directory: str | Path, labels: np.ndarray, probabilities: Mapping[str, np.ndarray],
                   label_names: list[str]) -> list[Path]:
    """PNG figures (sklearn's displays) for MLflow: confusion matrices and, for binary tasks, ROC and PR
    curves of every variant on one axis each. DVC renders its own from the CSVs; these are for the MLflow UI."""
    import matplotlib

    matplotlib.use("Agg")  # no display in a pipeline stage
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if len(label_names) == 2 and len(np.unique(labels)) == 2:
        for title, display in [("roc", RocCurveDisplay), ("pr", PrecisionRecallDisplay)]:
            fig, ax = plt.subplots(figsize=(6, 5))
            for variant, probs in probabilities.items():
                display.from_predictions(labels, probs[:, 1], pos_label=1, name=variant, ax=ax)
            ax.set_title(f"{'ROC' if title == 'roc' else 'Precision-recall'} curve (positive class: {label_names[1]})")
            written.append(directory / f"{title}.png")
            fig.savefig(written[-1], dpi=100, bbox_inches="tight")
            plt.close(fig)
    for variant, probs in probabilities.items():
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ConfusionMatrixDisplay.from_predictions(labels, probs.argmax(axis=1), labels=list(range(len(label_names))),
                                                display_labels=label_names, ax=ax, colorbar=False)
        ax.set_title(variant)
        written.append(directory / f"confusion_{variant}.png")
        fig.savefig(written[-1], dpi=100, bbox_inches="tight")
        plt.close(fig)
    return written

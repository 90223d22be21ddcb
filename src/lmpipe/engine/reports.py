"""What a training stage writes when the engine returns: metrics DVC compares, curves DVC plots, telemetry."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lmpipe.engine.loop import TrainResult
from lmpipe.io import write_json, write_rows_csv
from lmpipe.models.build import count_parameters
from lmpipe.models.save import save_model

log = logging.getLogger(__name__)
TRAIN_CURVE_COLUMNS = ["step", "loss", "lr", "tokens"]  # throughput goes to telemetry and MLflow, not to git


def write_training_reports(directory: str | Path, metrics: dict[str, Any], result: TrainResult, tracker: Any) -> None:
    """metrics.json and the train / eval curves: deterministic, so a rerun with the same inputs rewrites the same
    bytes and `git status` stays clean. telemetry.json (time, throughput, memory) differs run to run: it is
    git-ignored and not a DVC output; MLflow keeps it for every run."""
    write_json(f"{directory}/metrics.json", metrics)
    write_json(f"{directory}/telemetry.json", result.telemetry)
    write_rows_csv(f"{directory}/train_curve.csv", [{k: row[k] for k in TRAIN_CURVE_COLUMNS} for row in result.history],
                   columns=TRAIN_CURVE_COLUMNS)
    write_rows_csv(f"{directory}/eval_curve.csv", result.evals)
    numbers = {k: v for k, v in {**metrics, **result.telemetry}.items() if isinstance(v, (int, float))}
    tracker.log_metrics(numbers)
    log.info("%s: %s", directory, " ".join(f"{k}={v:.4g}" for k, v in numbers.items()))


def save_pretrained(out: str | Path, reports: str | Path, model, tokenizer, result: TrainResult, tracker: Any) -> None:
    """The end of a pretraining stage (main process only): the Hugging Face model directory, then reports with
    the last evaluation's held-out metrics, the training summary and the parameter count."""
    save_model(model, tokenizer, out)
    final = {f"heldout_{k}": v for k, v in result.evals[-1].items() if k not in ("step", "epoch")}
    write_training_reports(reports, {**final, **result.summary, "parameters": count_parameters(model)[1]}, result,
                           tracker)

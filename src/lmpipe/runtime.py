"""What every stage script does first: logging, params, seeds, distributed set-up, the tracking run."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .io import remove_stale_temps_under
from .params import PARAMS_FILE, Params, load_params

CHECKPOINT_ROOT = Path(".cache") / "checkpoints"
OUTPUT_ROOTS = ("data", "models", "reports")  # where the stages write (both pipelines)


def start(stage: str, params_file: str | Path = PARAMS_FILE,
          load: Callable[[str | Path], Any] = load_params) -> Any:
    """Configure one-line-per-event logging, load and validate params.yaml, seed every generator.

    params_file/load: another pipeline's params file and schema (clm/params.yaml with load_clm_params)."""
    logging.basicConfig(level=os.environ.get("LMPIPE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    import transformers

    # Our own log says what matters (e.g. the classifier head is newly initialised); keep HF's reports quiet.
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("lmpipe").info("stage %s: params from %s", stage, os.path.abspath(params_file))
    params = load(params_file)
    # Temporaries of this project's writers whose process is gone (a kill -9): removed before anything else.
    remove_stale_temps_under(*OUTPUT_ROOTS, depth=2)
    seed_everything(params.seed)
    return params


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def checkpoint_dir(stage: str, fingerprint: str) -> Path:
    """A git-ignored directory for resumable state, under the real repository when run as a DVC experiment."""
    from .tracking import repo_root

    return repo_root() / CHECKPOINT_ROOT / f"{stage}-{fingerprint}"


def write_training_reports(directory: str, metrics: dict, result, tracker) -> None:
    """A training stage's reports: metrics.json (deterministic, what `dvc metrics diff` compares),
    telemetry.json (time, throughput, memory: differs run to run), and the curves DVC plots."""
    from .io import write_json, write_rows_csv

    write_json(f"{directory}/metrics.json", metrics)
    write_json(f"{directory}/telemetry.json", result.telemetry)
    write_rows_csv(f"{directory}/train_curve.csv", result.history)
    write_rows_csv(f"{directory}/eval_curve.csv", result.evals)
    numbers = {k: v for k, v in {**metrics, **result.telemetry}.items() if isinstance(v, (int, float))}
    tracker.log_metrics(numbers)
    logging.getLogger("lmpipe").info("%s: %s", directory, " ".join(f"{k}={v:.4g}" for k, v in numbers.items()))


def save_pretrained(out: str | Path, reports: str, model, tokenizer, result, tracker) -> None:
    """The end of a pretraining stage (main process only): the Hugging Face model directory, then reports with
    the last evaluation's held-out metrics, the training summary and the parameter count."""
    from .modeling import count_parameters, save_model

    save_model(model, tokenizer, out)
    final = {f"heldout_{k}": v for k, v in result.evals[-1].items() if k not in ("step", "epoch")}
    write_training_reports(reports, {**final, **result.summary, "parameters": count_parameters(model)[1]}, result,
                           tracker)

"""What every stage script does first: logging, params, seeds, distributed set-up, the tracking run."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from lmpipe.config.loader import PARAMS_FILE
from lmpipe.config.schema import load_params
from lmpipe.hub import hub_ids, use_hub_offline_if_unreachable
from lmpipe.io import remove_stale_temps_under
from lmpipe.tracking import set_pipeline_params_file

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
    set_pipeline_params_file(params_file)  # MLflow groups the runs of this file's pipeline
    if hub_ids(params):
        use_hub_offline_if_unreachable()
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
    from lmpipe.tracking import repo_root

    return repo_root() / CHECKPOINT_ROOT / f"{stage}-{fingerprint}"

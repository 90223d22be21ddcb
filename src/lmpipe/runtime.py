"""What every stage script does first: logging, params, seeds, distributed set-up, the tracking run."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .params import PARAMS_FILE, Params, load_params

CHECKPOINT_ROOT = Path(".cache") / "checkpoints"


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

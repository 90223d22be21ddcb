"""What every stage script does first: logging, params, seeds, distributed set-up, the tracking run."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import numpy as np
import torch

from .params import PARAMS_FILE, Params, load_params

CHECKPOINT_ROOT = Path(".cache") / "checkpoints"


def start(stage: str) -> Params:
    """Configure one-line-per-event logging, load and validate params.yaml, seed every generator."""
    logging.basicConfig(level=os.environ.get("LMPIPE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    import transformers

    # Our own log says what matters (e.g. the classifier head is newly initialised); keep HF's reports quiet.
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("lmpipe").info("stage %s: params from %s", stage, os.path.abspath(PARAMS_FILE))
    params = load_params(PARAMS_FILE)
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

"""What every stage script does first: logging, params, seeds, distributed set-up, the tracking run."""

from __future__ import annotations

import logging
import os
import random
import socket
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .io import remove_stale_temps_under
from .params import BASE_MODEL_KEYWORDS, FINETUNE_SECTIONS, PARAMS_FILE, Params, load_params

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
    if hub_ids(params):
        use_hub_offline_if_unreachable()
    # Temporaries of this project's writers whose process is gone (a kill -9): removed before anything else.
    remove_stale_temps_under(*OUTPUT_ROOTS, depth=2)
    seed_everything(params.seed)
    return params


HUB_PROBE_TIMEOUT_S = 2.0


def hub_ids(params: Any) -> list[str]:
    """The model and dataset ids in `params` (either pipeline's) that would be fetched from the hub, not read from
    a local directory."""
    candidates = [getattr(getattr(params, "pretrain", None), "init_from", None), getattr(params, "base_model", None)]
    candidates += [getattr(params, section).base_model for section in FINETUNE_SECTIONS if hasattr(params, section)]
    data = getattr(params, "data", None)
    if data is not None and data.source == "hub":
        candidates += [data.hub.path, data.hub.corpus_path]
    return [c for c in candidates if c and c not in BASE_MODEL_KEYWORDS and not Path(c).expanduser().exists()]


def use_hub_offline_if_unreachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Turn on the Hugging Face hub's offline mode (HF_HUB_OFFLINE: the local cache only) when the hub (or the
    proxy to it) does not accept a connection within `timeout` seconds; True when offline. Without this, every
    hub call retries for 25-50 s before it fails."""
    from urllib.parse import urlparse
    from urllib.request import getproxies

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    via = urlparse(getproxies().get(endpoint.scheme, "")) if getproxies().get(endpoint.scheme) else endpoint
    host, port = via.hostname or "huggingface.co", via.port or (443 if via.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return False
    except OSError as error:
        reason = error.strerror or type(error).__name__
    os.environ["HF_HUB_OFFLINE"] = "1"
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = True  # read at import; transformers asks it at call time
    if "datasets" in sys.modules:
        sys.modules["datasets"].config.HF_HUB_OFFLINE = True
    logging.getLogger("lmpipe").warning("hub %s:%d unreachable (%s): offline mode, models and datasets come from "
                                        "the local cache only", host, port, reason)
    return True


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def checkpoint_dir(stage: str, fingerprint: str) -> Path:
    """A git-ignored directory for resumable state, under the real repository when run as a DVC experiment."""
    from .tracking import repo_root

    return repo_root() / CHECKPOINT_ROOT / f"{stage}-{fingerprint}"

"""The model and dataset hub: go offline at once when it cannot be reached, instead of waiting for retries."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from lmpipe.config.schema import BASE_MODEL_KEYWORDS, FINETUNE_SECTIONS

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

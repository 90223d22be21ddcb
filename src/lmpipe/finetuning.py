"""Fine-tuning strategies: which parameters of a sequence classifier train.

The head (pooler and classifier) always trains: a classifier loaded from a masked-LM checkpoint gets a
freshly initialised pooler, and a frozen random pooler ruins a linear probe.
"""

from __future__ import annotations

import re

from torch import nn

from .params import FinetuneParams

HEAD_PATTERN = re.compile(r"(^|\.)(pooler|classifier|score|pre_classifier)\.")
LAYER_PATTERN = re.compile(r"\.layer\.(\d+)\.")


def is_head(name: str) -> bool:
    return bool(HEAD_PATTERN.search(name))


def is_embedding(name: str) -> bool:
    return ".embeddings." in name or name.startswith("embeddings.")


def layer_index(name: str) -> int | None:
    match = LAYER_PATTERN.search(name)
    return int(match.group(1)) if match else None


def apply_strategy(model: nn.Module, cfg: FinetuneParams) -> None:
    """Set requires_grad on every parameter of `model` according to `cfg.strategy`."""
    for name, param in model.named_parameters():
        param.requires_grad = trains(name, cfg)


def trains(name: str, cfg: FinetuneParams) -> bool:
    if is_head(name) or cfg.strategy == "full":
        return True
    if cfg.strategy == "frozen_encoder":
        return False
    if cfg.strategy == "freeze_embeddings":
        return not is_embedding(name)
    if cfg.strategy == "freeze_bottom":
        layer = layer_index(name)
        return not is_embedding(name) and (layer is None or layer >= cfg.freeze_layers)
    raise ValueError(f"unknown strategy {cfg.strategy!r}")

"""Fine-tuning strategies: which parameters of a sequence classifier train, at which learning rate, and how
the result is saved.

The head (pooler and classifier) always trains: a classifier loaded from a masked-LM checkpoint gets a
freshly initialised pooler, and a frozen random pooler ruins a linear probe.

Parameter names are matched by pattern, so the same code works for BERT (`bert.encoder.layer.3.`),
RoBERTa-PreLayerNorm (`roberta_prelayernorm.encoder.layer.3.`), DistilBERT (`distilbert.transformer.layer.3.`)
and the same names inside a peft wrapper (`base_model.model.bert.encoder.layer.3.`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel

from lmpipe.config.loader import ParamsError
from lmpipe.config.schema import FinetuneParams
from lmpipe.engine.objectives.classification import Classification
from lmpipe.finetune.lora import HEAD_MODULES, apply_lora
from lmpipe.models.load import require_tracked

log = logging.getLogger(__name__)


# ModernBERT's classifier puts a `head` (dense + norm, initialised from its MLM head) before `classifier`.


HEAD_PATTERN = re.compile(rf"(^|\.)({'|'.join(HEAD_MODULES)})\.")


LAYER_PATTERN = re.compile(r"\.layers?\.(\d+)\.")  # BERT/RoBERTa: encoder.layer.N; ModernBERT: layers.N


def is_head(name: str) -> bool:
    return bool(HEAD_PATTERN.search(name))


def is_embedding(name: str) -> bool:
    return ".embeddings." in name or name.startswith("embeddings.")


def layer_index(name: str) -> int | None:
    match = LAYER_PATTERN.search(name)
    return int(match.group(1)) if match else None


def num_layers(model: nn.Module) -> int:
    """Encoder layers, counted from the parameter names (works for any architecture we match)."""
    indices = [i for i in (layer_index(n) for n, _ in model.named_parameters()) if i is not None]
    if not indices:
        raise ValueError(f"{type(model).__name__}: no parameters named like '.layer.<i>.' (unknown encoder layout)")
    return max(indices) + 1


def depth(name: str, layers: int) -> int:
    """0 for embeddings, i + 1 for encoder layer i, layers + 1 for the head and anything above the layers
    (RoBERTa-PreLayerNorm's final LayerNorm)."""
    if is_head(name):
        return layers + 1
    if is_embedding(name):
        return 0
    index = layer_index(name)
    return layers + 1 if index is None else index + 1


def apply_strategy(model: PreTrainedModel, cfg: FinetuneParams, section: str = "finetune") -> nn.Module:
    """Set requires_grad on every parameter of `model` according to `cfg.strategy`; returns the module to
    train: `model` itself, or for `lora` a peft model around it (the head trains in full, see apply_lora).

    gradual_unfreezing leaves every parameter trainable here, so the optimizer holds them all; the
    GradualUnfreezing hook then freezes and releases layers by step (see there)."""
    if cfg.strategy == "linear_probe":
        raise ValueError("linear_probe trains nothing by gradient: its head is fitted (lmpipe.finetune.probe)")
    if cfg.strategy == "lora":
        return apply_lora(model, cfg.lora, f"{section}.lora")
    if cfg.strategy == "freeze_bottom":
        layers = num_layers(model)
        if cfg.freeze_layers > layers:
            raise ParamsError(f"{section}.freeze_layers: {cfg.freeze_layers} exceeds the model's {layers} layers")
    for name, param in model.named_parameters():
        param.requires_grad = trains(name, cfg)
    return model


def trains(name: str, cfg: FinetuneParams) -> bool:
    if is_head(name) or cfg.strategy in ("full", "gradual_unfreezing"):
        return True
    if cfg.strategy == "frozen_encoder":
        return False
    if cfg.strategy == "freeze_embeddings":
        return not is_embedding(name)
    if cfg.strategy == "freeze_bottom":
        layer = layer_index(name)
        return not is_embedding(name) and (layer is None or layer >= cfg.freeze_layers)
    raise ValueError(f"unknown strategy {cfg.strategy!r}")


class GradualUnfreezing:
    """ULMFiT's gradual unfreezing as the engine's `on_step` hook: the head alone first, then one more layer
    group from the top (top layer, ..., bottom layer, embeddings) every `period` optimizer steps.

    Every parameter is in the optimizer from the start (apply_strategy leaves them all trainable); a frozen
    one has requires_grad=False, so it gets no gradient, and torch's optimizers skip parameters without a
    gradient: no update, no weight decay, no moment statistics until it is released. The schedule is a
    pure function of the step, so a resumed run freezes exactly what the uninterrupted one did.
    Single process only: DDP fixes the set of parameters it reduces when it wraps the model (the stage
    refuses it under torchrun).
    """

    def __init__(self, model: nn.Module, period_steps: int):
        self.period = max(1, int(period_steps))
        layers = num_layers(model)
        self.params = dict(model.named_parameters())
        # Group k (0 = unfrozen first) holds the parameters at depth layers - k: layers + 1 is the head.
        self.groups: list[list[str]] = [[] for _ in range(layers + 1)]
        self.head: list[str] = []
        for name in self.params:
            d = depth(name, layers)
            if is_head(name):
                self.head.append(name)
            else:
                self.groups[max(layers - d, 0)].append(name)
        self.unfrozen: int | None = None

    def unfrozen_groups(self, step: int) -> int:
        return min(step // self.period, len(self.groups))

    def __call__(self, step: int, objective: object = None) -> None:
        k = self.unfrozen_groups(step)
        if k == self.unfrozen:
            return
        for index, names in enumerate(self.groups):
            for name in names:
                self.params[name].requires_grad = index < k
                if index >= k:
                    self.params[name].grad = None
        for name in self.head:
            self.params[name].requires_grad = True
        if self.unfrozen is not None:
            log.info("gradual unfreezing: step %d, %d of %d layer groups train", step, k, len(self.groups))
        self.unfrozen = k

    def released_parameters(self) -> int:
        """Parameters that trained at some point so far: the head and the groups released by now."""
        k = self.unfrozen or 0
        names = self.head + [n for group in self.groups[:k] for n in group]
        return sum(self.params[n].numel() for n in names)


def unfreeze_period_steps(cfg: FinetuneParams, train_size: int) -> int:
    """`unfreeze_every` in optimizer steps; an epoch is the engine's epoch (train_size // batch_size steps)."""
    if cfg.unfreeze_unit == "steps":
        return max(1, round(cfg.unfreeze_every))
    steps_per_epoch = max(1, train_size // cfg.train.batch_size)
    return max(1, round(cfg.unfreeze_every * steps_per_epoch))


def layer_lr_scale(model: nn.Module, decay: float) -> Callable[[str], float] | None:
    """Layer-wise learning-rate decay (Sun et al. 2019; ELECTRA): the head and anything above the layers get
    the full rate, layer i of L gets decay**(L - i), the embeddings decay**(L + 1). None when decay is 1."""
    if decay >= 1.0:
        return None
    layers = num_layers(model)
    return lambda name: decay ** (layers + 1 - depth(name, layers))


def class_weights(spec: str | list[float] | None, labels: np.ndarray, num_labels: int,
                  path: str = "finetune.class_weights") -> torch.Tensor | None:
    """None, `balanced` (n / (classes * count), as scikit-learn) or an explicit list, as a float tensor."""
    if spec is None:
        return None
    if spec == "balanced":
        counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
        if (counts == 0).any():
            raise ValueError(f"{path}: balanced weights need every class in the train split; missing: "
                             f"{np.flatnonzero(counts == 0).tolist()}")
        return torch.tensor(len(labels) / (num_labels * counts), dtype=torch.float32)
    if len(spec) != num_labels:
        raise ParamsError(f"{path}: {len(spec)} weights for {num_labels} labels")
    return torch.tensor(spec, dtype=torch.float32)


def make_objective(model: nn.Module, train_ids: list[np.ndarray], train_labels: np.ndarray,
                   val_ids: list[np.ndarray], val_labels: np.ndarray, *, num_labels: int, pad_token_id: int,
                   cfg: FinetuneParams, section: str = "finetune") -> Classification:
    weights = class_weights(cfg.class_weights, train_labels, num_labels, f"{section}.class_weights")
    return Classification(model, train_ids, train_labels, val_ids, val_labels, num_labels=num_labels,
                          pad_token_id=pad_token_id, select_metric=cfg.metric, class_weights=weights)


def base_source(cfg: FinetuneParams, pretrained_dir: str | Path) -> tuple[str, bool]:
    """(where to load the model and its tokenizer from, whether to re-initialise it randomly)."""
    if cfg.base_model in ("pretrained", "scratch"):
        return str(pretrained_dir), cfg.base_model == "scratch"
    return cfg.base_model, False


def check_stage_setup(cfg: FinetuneParams, section: str, world: int, repo: Path | None = None) -> None:
    """What the schema cannot know: the process count, and whether DVC sees a local base model change."""
    if cfg.strategy == "gradual_unfreezing" and world > 1:
        raise ParamsError(f"{section}.strategy: gradual_unfreezing runs in one process only (DDP fixes the "
                          f"trained parameters when it wraps the model); run without torchrun, or pick another "
                          f"strategy")
    if cfg.strategy == "linear_probe" and world > 1:
        raise ParamsError(f"{section}.strategy: linear_probe runs in one process (one forward pass over the data, "
                          f"then a fit on the CPU); run without torchrun")
    if cfg.base_model not in ("pretrained", "scratch"):
        require_tracked(cfg.base_model, f"{section}.base_model", repo)

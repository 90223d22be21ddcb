"""Build models from params or load them from Hugging Face directories; save them as such directories."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from .io import atomic_path
from .params import ModelParams

log = logging.getLogger(__name__)


def bert_config(cfg: ModelParams, tokenizer: PreTrainedTokenizerBase) -> BertConfig:
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        intermediate_size=cfg.intermediate,
        max_position_embeddings=cfg.max_position,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.attention_dropout,
        initializer_range=cfg.init_std,
        pad_token_id=tokenizer.pad_token_id,
        type_vocab_size=2,
    )


def build_masked_lm(cfg: ModelParams, tokenizer: PreTrainedTokenizerBase) -> BertForMaskedLM:
    """A randomly initialised BERT encoder with its masked-LM head, using scaled-dot-product attention."""
    return BertForMaskedLM._from_config(bert_config(cfg, tokenizer), attn_implementation="sdpa")


def load_classifier(path: str | Path, label_names: list[str], classifier_dropout: float | None = None,
                    scratch: bool = False) -> PreTrainedModel:
    """A sequence classifier from a Hugging Face directory, with `id2label`/`label2id` set from `label_names`.

    From a masked-LM checkpoint the pooler and classifier are newly initialised: they always train
    (see finetuning.py). `scratch=True` builds the same architecture with random weights, as a control.
    A directory that already has a classification head must agree with `label_names`.
    """
    id2label = dict(enumerate(label_names))
    label2id = {name: i for i, name in id2label.items()}
    kwargs = dict(num_labels=len(label_names), id2label=id2label, label2id=label2id)
    if classifier_dropout is not None:
        kwargs["classifier_dropout"] = classifier_dropout
    config = AutoConfig.from_pretrained(str(path))
    existing = getattr(config, "id2label", None)
    is_classifier = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    if is_classifier and existing and [existing[i] for i in sorted(existing)] != label_names:
        raise ValueError(
            f"{path}: the model's labels {[existing[i] for i in sorted(existing)]} do not match the data's "
            f"labels {label_names}"
        )
    config.update(kwargs)
    if scratch:
        log.info("%s: the classifier is randomly initialised (scratch control)", path)
        return AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
    model, info = AutoModelForSequenceClassification.from_pretrained(
        str(path), config=config, attn_implementation="sdpa", output_loading_info=True)
    if info["missing_keys"]:
        log.info("%s: newly initialised (they always train): %s", path, ", ".join(sorted(info["missing_keys"])))
    return model


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, path: str | Path) -> None:
    """Write a Hugging Face directory (config.json, model.safetensors, tokenizer files) atomically."""
    model = getattr(model, "module", model)  # unwrap DDP
    with atomic_path(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total

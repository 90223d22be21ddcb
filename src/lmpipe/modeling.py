"""Build models from params or load them from Hugging Face directories; save them as such directories."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ModernBertConfig,
    ModernBertForMaskedLM,
    RobertaPreLayerNormConfig,
    RobertaPreLayerNormForMaskedLM,
)

from .io import atomic_path
from .params import ModelParams, ParamsError

log = logging.getLogger(__name__)


MASKED_LM_CLASSES = {"bert": (BertConfig, BertForMaskedLM),
                     "roberta-prelayernorm": (RobertaPreLayerNormConfig, RobertaPreLayerNormForMaskedLM),
                     "modernbert": (ModernBertConfig, ModernBertForMaskedLM)}


def encoder_config(cfg: ModelParams, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    """The Hugging Face config of `cfg.architecture` with the sizes from params."""
    config_class, _ = MASKED_LM_CLASSES[cfg.architecture]
    if cfg.architecture == "modernbert":
        return _modernbert_config(cfg, tokenizer)
    max_positions = cfg.max_position
    if cfg.architecture != "bert":  # RoBERTa numbers positions from pad_token_id + 1
        max_positions += tokenizer.pad_token_id + 1
    return config_class(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        intermediate_size=cfg.intermediate,
        max_position_embeddings=max_positions,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.attention_dropout,
        initializer_range=cfg.init_std,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        type_vocab_size=2 if cfg.architecture == "bert" else 1,
    )


def _modernbert_config(cfg: ModelParams, tokenizer: PreTrainedTokenizerBase) -> ModernBertConfig:
    """ModernBERT (pre-LayerNorm, GeGLU, rotary positions) with global attention in every layer and a
    classifier that mean-pools the token states: an MLM-only encoder has no trained [CLS] summary, so
    pooling over tokens gives frozen and fully fine-tuned classifiers a usable sentence vector."""
    return ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        intermediate_size=cfg.intermediate,
        max_position_embeddings=cfg.max_position,
        layer_types=["full_attention"] * cfg.layers,
        local_attention=cfg.max_position,
        embedding_dropout=cfg.dropout,
        mlp_dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        initializer_range=cfg.init_std,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        cls_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        sep_token_id=tokenizer.sep_token_id,
        classifier_pooling="mean",
    )


def build_masked_lm(cfg: ModelParams, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A randomly initialised encoder with its masked-LM head, using scaled-dot-product attention."""
    _, model_class = MASKED_LM_CLASSES[cfg.architecture]
    return model_class._from_config(encoder_config(cfg, tokenizer), attn_implementation="sdpa")


TRACKED_MODEL_ROOT = Path("data/external")  # a dependency of the stages that read outside models


def require_tracked(model: str, key: str, repo: Path | None = None) -> None:
    """A local model directory must live under data/external/ (a DVC dependency); hub ids pass."""
    local = Path(model).expanduser()
    if local.is_dir():
        root = (repo or Path.cwd()).resolve() / TRACKED_MODEL_ROOT
        if not local.resolve().is_relative_to(root):
            raise ParamsError(f"{key}: {model} is outside {TRACKED_MODEL_ROOT}/, so DVC would "
                              f"not rerun the stage when it changes; copy (or symlink the files of) the model "
                              f"directory under {TRACKED_MODEL_ROOT}/")


def load_error(error: Exception, model: str, key: str) -> OSError:
    """A base model that could not be loaded, as one line naming the params key, the model and the reason."""
    import huggingface_hub.constants

    if huggingface_hub.constants.HF_HUB_OFFLINE and not Path(model).expanduser().exists():
        reason = "the hub is unreachable: offline mode, and it is not in the local cache"
    else:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return OSError(f"{key}: {model}: cannot load ({reason})")


def load_masked_lm(path: str, revision: str | None = None) -> PreTrainedModel:
    """A pretrained masked LM (directory or hub id) to continue training; never runs remote code."""
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(path, revision=revision, attn_implementation="sdpa")


def load_classifier(path: str | Path, label_names: list[str], classifier_dropout: float | None = None,
                    scratch: bool = False, revision: str | None = None) -> PreTrainedModel:
    """A sequence classifier from a Hugging Face directory, with `id2label`/`label2id` set from `label_names`.

    From a masked-LM checkpoint the pooler and classifier are newly initialised: they always train
    (see finetuning.py). `scratch=True` builds the same architecture with random weights, as a control.
    A directory that already has a classification head must agree with `label_names`. `path` may also be a
    hub id (`revision` pins it); remote code is never trusted.
    """
    id2label = dict(enumerate(label_names))
    label2id = {name: i for i, name in id2label.items()}
    kwargs = dict(num_labels=len(label_names), id2label=id2label, label2id=label2id)
    if classifier_dropout is not None:
        kwargs["classifier_dropout"] = classifier_dropout
    config = AutoConfig.from_pretrained(str(path), revision=revision)
    existing = getattr(config, "id2label", None)
    is_classifier = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    # transformers' placeholder names (LABEL_0, ...) carry no label map to check: such a head is re-made
    # when its size differs (ignore_mismatched_sizes below).
    unnamed = not existing or all(str(v) == f"LABEL_{k}" for k, v in existing.items())
    if is_classifier and not unnamed and [existing[i] for i in sorted(existing)] != label_names:
        raise ValueError(
            f"{path}: the model's labels {[existing[i] for i in sorted(existing)]} do not match the data's "
            f"labels {label_names}"
        )
    resize_head = is_classifier and unnamed and len(existing or {}) != len(label_names)
    config.update(kwargs)
    if scratch:
        log.info("%s: the classifier is randomly initialised (scratch control)", path)
        return AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
    model, info = AutoModelForSequenceClassification.from_pretrained(
        str(path), config=config, revision=revision, attn_implementation="sdpa", output_loading_info=True,
        ignore_mismatched_sizes=resize_head)
    if resize_head:
        log.info("%s: its unnamed %d-label head is re-made for the data's %d labels", path, len(existing or {}),
                 len(label_names))
    if info["missing_keys"]:
        log.info("%s: newly initialised (they always train): %s", path, ", ".join(sorted(info["missing_keys"])))
    return model


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, path: str | Path) -> None:
    """Write a Hugging Face directory (config.json, model.safetensors, tokenizer files) atomically."""
    model = getattr(model, "module", model)  # unwrap DDP
    with atomic_path(path, directory=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; for a peft model the total counts the head once (peft keeps a
    frozen copy of every module it trains in full) and includes the adapters."""
    trainable = total = 0
    for name, param in model.named_parameters():
        if ".original_module." in name:
            continue
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return trainable, total


def effective_max_length(requested: int, tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> int:
    """The requested length, capped by what the model's positions allow (e.g. 512 for bert-base)."""
    limit = getattr(tokenizer, "model_max_length", None) or math.inf
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is not None and model.config.model_type in ("roberta", "roberta-prelayernorm", "xlm-roberta"):
        positions -= (model.config.pad_token_id or 0) + 1  # RoBERTa numbers positions from pad_token_id + 1
    return int(min(requested, limit if limit < 1e9 else math.inf, positions or math.inf))

"""Hugging Face model directories and hub ids: load them, check them, describe them."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from lmpipe.config.loader import ParamsError


def base_context_length(base_model: str) -> int:
    """The longest sequence the base model's positions allow (n_positions / max_position_embeddings)."""
    try:
        config = AutoConfig.from_pretrained(base_model)
    except (OSError, ValueError) as error:
        raise ValueError(f"base_model {base_model!r}: cannot load its config: {error}") from None
    return position_limit(config) or 2 ** 31  # unstated: relative positions, no hard limit


def position_limit(config: PretrainedConfig) -> int | None:
    """The longest input the model's positions allow (n_positions / max_position_embeddings / n_ctx); None if
    unstated."""
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            if config.model_type in ("roberta", "roberta-prelayernorm", "xlm-roberta"):
                value -= (config.pad_token_id or 0) + 1  # RoBERTa numbers positions from pad_token_id + 1
            return value
    return None


def load_causal_lm(path: str, context_length: int | None = None) -> PreTrainedModel:
    """A causal LM from a directory or hub id (continued training, evaluation, generation), with SDPA attention."""
    if context_length is not None and context_length > base_context_length(path):
        raise ValueError(f"model.context_length {context_length} exceeds {path!r}'s {base_context_length(path)} positions")
    try:
        return AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa")
    except (OSError, ValueError) as error:
        raise ValueError(f"{path!r}: cannot load a causal language model: {error}") from None


def describe(model: PreTrainedModel) -> str:
    c = model.config
    layers = getattr(c, "n_layer", getattr(c, "num_hidden_layers", "?"))
    width = getattr(c, "n_embd", getattr(c, "hidden_size", "?"))
    return f"{type(model).__name__} {layers} layers x {width}, vocab {c.vocab_size}"


log = logging.getLogger(__name__)


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
    (see finetune/strategies.py). `scratch=True` builds the same architecture with random weights, as a control.
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


def effective_max_length(requested: int, tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> int:
    """The requested length, capped by what the model's positions allow (e.g. 512 for bert-base), with a warning."""
    limit = getattr(tokenizer, "model_max_length", None) or math.inf
    positions = position_limit(model.config)
    length = int(min(requested, limit if limit < 1e9 else math.inf, positions or math.inf))
    if length < requested:
        log.warning("max_length %d requested; the model takes at most %d tokens (positions %s, tokenizer "
                    "model_max_length %s): examples are cut at %d", requested, length, positions, limit, length)
    return length


class ModelDirError(ValueError):
    """A path that is not a usable Hugging Face model directory: the message names the path and what is wrong."""


def check_model_dir(path: str | Path, head: str | tuple[str, ...] | None = "ForSequenceClassification",
                    tokenizer: bool = False):
    """The model's config, or a ModelDirError that says what is wrong with the directory, before any weights load.

    head: the architecture name ending(s) the caller needs (None: any); tokenizer: the directory must hold one too.
    """
    from transformers import AutoConfig

    path = Path(path)
    if not path.is_dir():
        raise ModelDirError(f"{path}: model directory not found")
    if not (path / "config.json").is_file():
        raise ModelDirError(f"{path}: no config.json, not a Hugging Face model directory")
    if tokenizer and not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        raise ModelDirError(f"{path}: has no tokenizer (tokenizer.json)")
    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as e:  # noqa: BLE001 - transformers raises several types for a bad config
        raise ModelDirError(f"{path}/config.json: cannot be read ({type(e).__name__}: {e})") from None
    architectures = config.architectures or []
    if head and architectures and not any(a.endswith(head) for a in architectures):
        if head == "ForSequenceClassification":
            wanted = "a text classifier (a *ForSequenceClassification model, e.g. models/finetune)"
        else:
            wanted = f"a {' or '.join(f'*{h}' for h in ([head] if isinstance(head, str) else head))} model"
        raise ModelDirError(f"{path}: a {', '.join(architectures)}, not {wanted}")
    return config

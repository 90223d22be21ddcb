"""Save a model (and its tokenizer) as a Hugging Face directory: config.json, model.safetensors, tokenizer.json."""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lmpipe.io import atomic_path
from lmpipe.models.load import position_limit


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, path: str | Path) -> None:
    """Write a Hugging Face directory (config.json, model.safetensors, tokenizer files) atomically.

    The saved tokenizer's model_max_length is the model's position limit, not the block length it trained on
    (tokenizer.max_length): fine-tuning reads up to model.max_position tokens, as AutoTokenizer users expect."""
    model = getattr(model, "module", model)  # unwrap DDP
    with atomic_path(path, directory=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            trained_length, limit = tokenizer.model_max_length, position_limit(model.config)
            tokenizer.model_max_length = limit or trained_length
            try:
                tokenizer.save_pretrained(tmp)
            finally:
                tokenizer.model_max_length = trained_length

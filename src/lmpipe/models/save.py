"""Save a model (and its tokenizer) as a Hugging Face directory: config.json, model.safetensors, tokenizer.json."""

from __future__ import annotations

from pathlib import Path

from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from lmpipe.io import atomic_path


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, path: str | Path) -> None:
    """Write a Hugging Face directory (config.json, model.safetensors, tokenizer files) atomically."""
    model = getattr(model, "module", model)  # unwrap DDP
    with atomic_path(path, directory=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)

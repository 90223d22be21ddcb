"""Fine-tuned models on disk: the plain Hugging Face directory (LoRA merged or kept as an adapter) and how its inputs were encoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn
from transformers import PreTrainedTokenizerBase

from lmpipe.finetune.lora import is_peft, plain_model
from lmpipe.io import atomic_path, read_json, write_json, write_rows_csv
from lmpipe.text.encoding import encode_split

ADAPTER_DIR = "adapter"  # models/<stage>/adapter: the LoRA adapter with the head (peft format)


PREPROCESSING_FILE = "lmpipe_preprocessing.json"  # how the model's inputs were encoded (for evaluation)


def save_finetuned(model: nn.Module, tokenizer: PreTrainedTokenizerBase, path: str | Path,
                   preprocessing: dict, label_names: list[str], save_adapter: bool = True,
                   tables: dict[str, list[dict]] | None = None) -> None:
    """models/<stage>: always a plain Hugging Face classification directory (LoRA merged), which
    AutoModelForSequenceClassification loads; a LoRA run also writes its adapter with the head to adapter/.
    `tables`: CSV files saved with the classifier (file name -> rows), e.g. how a probe chose its head."""
    model = getattr(model, "module", model)
    with atomic_path(path, directory=True) as tmp:
        plain_model(model).save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(Path(tmp) / PREPROCESSING_FILE, preprocessing)
        if is_peft(model) and save_adapter:
            model.save_pretrained(str(Path(tmp) / ADAPTER_DIR), safe_serialization=True)
            write_json(Path(tmp) / ADAPTER_DIR / "labels.json", label_names)
        for name, rows in (tables or {}).items():
            write_rows_csv(Path(tmp) / name, rows)


def encode_for_model(model_dir: str | Path, path: str | Path, tokenizer: PreTrainedTokenizerBase | None = None
                     ) -> tuple[list[np.ndarray], np.ndarray]:
    """A raw labelled split encoded exactly as the fine-tuned model in `model_dir` saw its training data: with
    its own tokenizer (loaded from `model_dir` unless given) and the stage's truncation
    (lmpipe_preprocessing.json). For evaluating a model whose base had another tokenizer; with this project's
    tokenizer and head truncation it equals data/tokenized."""
    from transformers import AutoTokenizer

    saved = read_json(Path(model_dir) / PREPROCESSING_FILE)
    tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(str(model_dir))
    return encode_split(tokenizer, path, saved["max_length"], saved["truncation"], saved["head_fraction"])

"""Texts to token ids: labelled splits (with head+tail truncation) and batched encoding through the Rust encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from transformers import PreTrainedTokenizerBase

ENCODE_BATCH = 2048  # texts per call into the Rust encoder (it parallelises within a call)


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int | None,
                 special_tokens: bool = True) -> list[list[int]]:
    """Token ids of each text, in batches through the fast (Rust) encoder; truncated when max_length is set."""
    ids: list[list[int]] = []
    for start in range(0, len(texts), ENCODE_BATCH):
        batch = list(texts[start:start + ENCODE_BATCH])
        out = tokenizer(batch, add_special_tokens=special_tokens, truncation=max_length is not None,
                        max_length=max_length, return_attention_mask=False, return_token_type_ids=False)
        ids.extend(out["input_ids"])
    return ids


def encode_labelled(tokenizer: PreTrainedTokenizerBase, frame: pd.DataFrame, max_length: int,
                    truncation: str = "head", head_fraction: float = 0.25) -> pa.Table:
    """`input_ids` (special tokens included, at most max_length) and `label` of a frame[text, label].

    truncation `head` keeps the first tokens; `head_tail` keeps head_fraction of the budget from the start and
    the rest from the end of the document (Sun et al. 2019: the middle of a long review says least).
    """
    if truncation == "head":
        ids = encode_texts(tokenizer, frame["text"].tolist(), max_length)
    elif truncation == "head_tail":
        ids = encode_head_tail(tokenizer, frame["text"].tolist(), max_length, head_fraction)
    else:
        raise ValueError(f"unknown truncation {truncation!r} (head | head_tail)")
    return pa.table({
        "input_ids": pa.array(ids, type=pa.list_(pa.int32())),
        "label": pa.array(frame["label"].to_numpy(), type=pa.int64()),
    })


def special_affixes(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a single text ([CLS] / [SEP], <s> / </s>)."""
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    body = tokenizer("a", add_special_tokens=False)["input_ids"]
    for start in range(len(full) - len(body) + 1):
        if full[start:start + len(body)] == body:
            return full[:start], full[start + len(body):]
    raise ValueError(f"{type(tokenizer).__name__}: cannot locate the text between its special tokens")


def encode_head_tail(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int,
                     head_fraction: float) -> list[list[int]]:
    """Documents longer than the budget keep their first head_fraction and their last tokens."""
    prefix, suffix = special_affixes(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    head = max(1, round(budget * head_fraction))
    tail = budget - head
    out = []
    for ids in encode_texts(tokenizer, texts, None, special_tokens=False):
        if len(ids) > budget:
            ids = ids[:head] + (ids[-tail:] if tail else [])
        out.append(prefix + ids + suffix)
    return out


def read_labelled(path: str | Path) -> tuple[list[np.ndarray], np.ndarray]:
    table = pq.read_table(path)
    column = table.column("input_ids").combine_chunks()
    flat, offsets = column.values.to_numpy(), column.offsets.to_numpy()
    ids = [flat[offsets[i]:offsets[i + 1]].astype(np.int64) for i in range(len(column))]
    return ids, table.column("label").to_numpy().astype(np.int64)


def encode_split(tokenizer: PreTrainedTokenizerBase, path: str | Path, max_length: int, truncation: str,
                 head_fraction: float) -> tuple[list[np.ndarray], np.ndarray]:
    """A raw labelled split (text, label) encoded with the base model's tokenizer and the stage's truncation."""
    import pandas as pd

    table = encode_labelled(tokenizer, pd.read_parquet(path), max_length, truncation, head_fraction)
    column = table.column("input_ids").combine_chunks()
    flat, offsets = column.values.to_numpy(), column.offsets.to_numpy()
    ids = [flat[offsets[i]:offsets[i + 1]].astype(np.int64) for i in range(len(column))]
    return ids, table.column("label").to_numpy().astype(np.int64)

"""Token streams to fixed-length training blocks for both objectives, held-out splits, and block files."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from transformers import (
    PreTrainedTokenizerBase,
)

from lmpipe.io import write_table
from lmpipe.text.encoding import encode_texts


def pack_blocks(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], block_length: int,
                what: str = "the corpus") -> np.ndarray:
    """Concatenate documents (separated by [SEP]) and cut into `[CLS] ... [SEP]` blocks of block_length tokens.

    The tail shorter than a block is dropped, as in Hugging Face's run_mlm `group_texts`. `what` names the
    documents in the error when they do not fill one block.
    """
    body = block_length - 2
    stream: list[int] = []
    for ids in encode_texts(tokenizer, texts, None, special_tokens=False):
        if ids:
            stream.extend(ids)
            stream.append(tokenizer.sep_token_id)
    n_blocks = len(stream) // body
    if n_blocks == 0:
        raise ValueError(f"{what} hold {len(stream)} tokens, fewer than one block of {block_length} "
                         "(tokenizer.max_length): give more documents or lower tokenizer.max_length")
    tokens = np.asarray(stream[: n_blocks * body], dtype=np.int32).reshape(n_blocks, body)
    blocks = np.empty((n_blocks, block_length), dtype=np.int32)
    blocks[:, 0] = tokenizer.cls_token_id
    blocks[:, 1:-1] = tokens
    blocks[:, -1] = tokenizer.sep_token_id
    return blocks


def split_heldout(texts: Sequence[str], fraction: float, seed: int,
                  source: str = "the corpus") -> tuple[list[str], list[str]]:
    """Hold out whole documents (not blocks) so held-out text never appears in training blocks; at least one
    document on each side, else a ValueError with the numbers (checked before any work on the documents)."""
    order = np.random.default_rng(seed).permutation(len(texts))
    n_heldout = max(1, int(round(len(texts) * fraction)))
    if len(texts) - n_heldout < 1:
        raise ValueError(f"{source}: {len(texts)} document(s); tokenizer.heldout_fraction={fraction:g} holds out "
                         f"{n_heldout}, leaving none to train on: give at least 2 documents (a few hundred for a "
                         "useful tokenizer)")
    heldout = set(order[:n_heldout].tolist())
    train = [t for i, t in enumerate(texts) if i not in heldout]
    return train, [texts[i] for i in sorted(heldout)]


def write_blocks(path: str | Path, blocks: np.ndarray) -> None:
    flat = pa.array(blocks.reshape(-1), type=pa.int32())
    column = pa.FixedSizeListArray.from_arrays(flat, blocks.shape[1])
    write_table(path, pa.table({"input_ids": column}))


def read_blocks(path: str | Path) -> np.ndarray:
    column = pq.read_table(path, columns=["input_ids"]).column("input_ids").combine_chunks()
    width = column.type.list_size
    return column.flatten().to_numpy().reshape(-1, width).astype(np.int64)


def pack_documents(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], block_length: int,
                   what: str = "the corpus") -> np.ndarray:
    """One stream `eot doc1 eot doc2 eot ...` cut into blocks of block_length tokens (the tail is dropped).

    Every document is preceded by end-of-text, so its first token is predicted from a document start, as an
    empty prompt is at generation time; its last token predicts end-of-text, which is how generation stops."""
    eot = tokenizer.eos_token_id
    stream: list[int] = [eot]
    for ids in encode_texts(tokenizer, texts, None, special_tokens=False):
        if ids:
            stream.extend(ids)
            stream.append(eot)
    n_blocks = len(stream) // block_length
    if n_blocks == 0:
        raise ValueError(f"{what} hold {len(stream)} tokens, fewer than one block of {block_length} "
                         "(lower model.context_length or give more documents)")
    return np.asarray(stream[:n_blocks * block_length], dtype=np.int32).reshape(n_blocks, block_length)

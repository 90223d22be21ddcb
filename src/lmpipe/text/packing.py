"""Token streams to fixed-length training blocks for both objectives, held-out splits, and block files.

`BlockPacker` is the one packing rule, fed a batch of documents at a time: the in-memory `pack_blocks` /
`pack_documents` and the file packer of `text.sharded` both go through it, so they give the same blocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from transformers import (
    PreTrainedTokenizerBase,
)

from lmpipe.io import atomic_path, write_table
from lmpipe.text.encoding import encode_texts


class BlockPacker:
    """Cuts a token stream into blocks of block_length as documents arrive, keeping the partial block between
    calls. The stream is `start`, then every non-empty document followed by `separator`; each block is `first`,
    a slice of the stream, `last`. The tail shorter than a block is dropped."""

    def __init__(self, block_length: int, separator: int, *, start: Sequence[int] = (), first: Sequence[int] = (),
                 last: Sequence[int] = (), hint: str = ""):
        self.block_length, self.separator, self.hint = block_length, separator, hint
        self.start, self.first, self.last = list(start), list(first), list(last)
        self.body = block_length - len(self.first) - len(self.last)
        if self.body < 1:
            raise ValueError(f"blocks of {block_length} tokens leave no room between {self.first} and {self.last}")
        self._carry = np.asarray(self.start, dtype=np.int64)

    def count(self, tokens: int, nonempty: int, what: str) -> int:
        """The number of blocks of documents holding `tokens` in `nonempty` non-empty documents; a ValueError
        naming `what` when they do not fill one."""
        stream = len(self.start) + tokens + nonempty
        if stream < self.body:
            raise ValueError(f"{what} hold {stream} tokens, fewer than one block of {self.block_length} {self.hint}")
        return stream // self.body

    def blocks(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The blocks [n, block_length] (int64) completed by the next documents: `ids` concatenated, `lengths`
        tokens each."""
        lengths = np.asarray(lengths, dtype=np.int64)
        ends = np.cumsum(lengths)[lengths > 0]  # a separator after each non-empty document
        stream = np.concatenate([self._carry, np.insert(np.asarray(ids, dtype=np.int64), ends, self.separator)])
        n = len(stream) // self.body
        self._carry = stream[n * self.body:]
        out = np.empty((n, self.block_length), dtype=np.int64)
        out[:, :len(self.first)] = self.first
        out[:, len(self.first):len(self.first) + self.body] = stream[:n * self.body].reshape(n, self.body)
        out[:, len(self.first) + self.body:] = self.last
        return out


def mlm_packer(tokenizer: PreTrainedTokenizerBase, block_length: int) -> BlockPacker:
    """Documents separated by [SEP], cut into `[CLS] ... [SEP]` blocks (Hugging Face's run_mlm `group_texts`)."""
    return BlockPacker(block_length, tokenizer.sep_token_id, first=[tokenizer.cls_token_id],
                       last=[tokenizer.sep_token_id],
                       hint="(tokenizer.max_length): give more documents or lower tokenizer.max_length")


def clm_packer(tokenizer: PreTrainedTokenizerBase, block_length: int) -> BlockPacker:
    """One stream `eot doc1 eot doc2 eot ...` cut into blocks.

    Every document is preceded by end-of-text, so its first token is predicted from a document start, as an
    empty prompt is at generation time; its last token predicts end-of-text, which is how generation stops."""
    eot = tokenizer.eos_token_id
    return BlockPacker(block_length, eot, start=[eot], hint="(lower model.context_length or give more documents)")


def _pack_in_memory(packer: BlockPacker, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                    what: str) -> np.ndarray:
    ids = encode_texts(tokenizer, texts, None, special_tokens=False)
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    packer.count(int(lengths.sum()), int(np.count_nonzero(lengths)), what)
    flat = np.fromiter((token for row in ids for token in row), dtype=np.int64, count=int(lengths.sum()))
    return packer.blocks(flat, lengths).astype(np.int32)


def pack_blocks(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], block_length: int,
                what: str = "the corpus") -> np.ndarray:
    """Concatenate documents (separated by [SEP]) and cut into `[CLS] ... [SEP]` blocks of block_length tokens,
    in memory (see `mlm_packer`; the stages pack from token files, `text.sharded`).

    The tail shorter than a block is dropped, as in Hugging Face's run_mlm `group_texts`. `what` names the
    documents in the error when they do not fill one block.
    """
    return _pack_in_memory(mlm_packer(tokenizer, block_length), tokenizer, texts, what)


def split_heldout(texts: Sequence[str], fraction: float, seed: int,
                  source: str = "the corpus") -> tuple[list[str], list[str]]:
    """Hold out whole documents (not blocks) so held-out text never appears in training blocks; at least one
    document on each side, else a ValueError with the numbers (checked before any work on the documents)."""
    heldout = heldout_mask(len(texts), fraction, seed, source)
    return [t for t, held in zip(texts, heldout) if not held], [t for t, held in zip(texts, heldout) if held]


def heldout_mask(documents: int, fraction: float, seed: int, source: str = "the corpus") -> np.ndarray:
    """Which of `documents` documents are held out (a boolean mask; `split_heldout`'s choice, for a corpus that is
    not in memory): round(fraction * documents), at least one, chosen by a seeded permutation."""
    order = np.random.default_rng(seed).permutation(documents)
    n_heldout = max(1, round(documents * fraction))
    if documents - n_heldout < 1:
        raise ValueError(f"{source}: {documents} document(s); tokenizer.heldout_fraction={fraction:g} holds out "
                         f"{n_heldout}, leaving none to train on: give at least 2 documents (a few hundred for a "
                         "useful tokenizer)")
    mask = np.zeros(documents, dtype=bool)
    mask[order[:n_heldout]] = True
    return mask


def write_blocks(path: str | Path, blocks: np.ndarray) -> None:
    """Blocks as Parquet (a fixed-size list column), or as a memory-mappable int64 .npy when path ends in .npy."""
    if Path(path).suffix == ".npy":
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(blocks, dtype=np.int64))
        return
    flat = pa.array(blocks.reshape(-1), type=pa.int32())
    column = pa.FixedSizeListArray.from_arrays(flat, blocks.shape[1])
    write_table(path, pa.table({"input_ids": column}))


def read_blocks(path: str | Path) -> np.ndarray:
    """Blocks [n, length] as int64. A .npy file is memory-mapped, not read: rows are paged in as a batch indexes
    them, so a process holds the rows it uses, not the file (copy-on-write: writable, never written back)."""
    path = Path(path)
    if path.suffix == ".parquet" and not path.exists() and path.with_suffix(".npy").exists():
        path = path.with_suffix(".npy")  # callers that still name the Parquet block files of before the .npy ones
    if path.suffix == ".npy":
        blocks = np.load(path, mmap_mode="c")
        if blocks.ndim != 2 or blocks.dtype != np.int64:
            raise ValueError(f"{path}: expected int64 blocks [n, length], got {blocks.dtype} {blocks.shape}")
        return blocks
    column = pq.read_table(path, columns=["input_ids"]).column("input_ids").combine_chunks()
    width = column.type.list_size
    return column.flatten().to_numpy().reshape(-1, width).astype(np.int64)


def pack_documents(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], block_length: int,
                   what: str = "the corpus") -> np.ndarray:
    """One stream `eot doc1 eot doc2 eot ...` cut into blocks of block_length tokens (the tail is dropped), in
    memory (see `clm_packer`)."""
    return _pack_in_memory(clm_packer(tokenizer, block_length), tokenizer, texts, what)

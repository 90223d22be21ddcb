"""Train a WordPiece tokenizer on the corpus, encode the labelled splits, pack the corpus into MLM blocks.

Encoded data is stored as Parquet: the labelled splits as `input_ids` (list<int32>, truncated to max_length)
plus `label`; the MLM corpus as fixed-length blocks, `[CLS] tokens... [SEP]`, documents joined by [SEP],
so no position is wasted on padding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from .io import write_table
from .params import TokenizerParams

ENCODE_BATCH = 2048  # texts per call into the Rust encoder (it parallelises within a call)


def train_tokenizer(texts: Sequence[str], cfg: TokenizerParams) -> PreTrainedTokenizerFast:
    """A BERT-style WordPiece tokenizer trained on `texts`, wrapped so `save_pretrained` writes tokenizer.json.

    Deterministic: the same texts and params give a byte-identical tokenizer.json in any process, with any
    thread count. The `tokenizers` trainer alone is not (tokenizers#1794): it numbers the continuation pieces
    (`##x`) in hash-map order and breaks ties between equally frequent merges by id, so each process learns a
    different vocabulary. Here a first pass with no merges finds the continuation alphabet, the real training
    reserves those pieces first, in sorted order (as special tokens, which the trainer numbers in the order
    given), and they are then turned back into ordinary vocabulary.
    """
    sp = cfg.special_tokens
    specials = [sp.pad, sp.unk, sp.cls, sp.sep, sp.mask]
    alphabet = _new_wordpiece(cfg)
    alphabet.train_from_iterator(texts, trainer=trainers.WordPieceTrainer(
        vocab_size=0, special_tokens=specials, show_progress=False))
    continuation = sorted(t for t in alphabet.get_vocab() if t.startswith(CONTINUATION_PREFIX))
    tok = _new_wordpiece(cfg)
    trainer = trainers.WordPieceTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                        special_tokens=specials + continuation, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok = _only_added_tokens(tok, specials)
    cls_id, sep_id = tok.token_to_id(sp.cls), tok.token_to_id(sp.sep)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{sp.cls} $A {sp.sep}",
        pair=f"{sp.cls} $A {sp.sep} $B:1 {sp.sep}:1",
        special_tokens=[(sp.cls, cls_id), (sp.sep, sep_id)],
    )
    tok.decoder = decoders.WordPiece(prefix=CONTINUATION_PREFIX)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=sp.unk,
        pad_token=sp.pad,
        cls_token=sp.cls,
        sep_token=sp.sep,
        mask_token=sp.mask,
        model_max_length=cfg.max_length,
    )


CONTINUATION_PREFIX = "##"


def _new_wordpiece(cfg: TokenizerParams) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token=cfg.special_tokens.unk, continuing_subword_prefix=CONTINUATION_PREFIX))
    tok.normalizer = normalizers.BertNormalizer(lowercase=cfg.lowercase, strip_accents=cfg.lowercase or None)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


def _only_added_tokens(tok: Tokenizer, keep: Sequence[str]) -> Tokenizer:
    """The same tokenizer with every added token but `keep` turned into ordinary vocabulary (an added token is
    matched in raw text before normalisation and dropped by `skip_special_tokens`)."""
    state = json.loads(tok.to_str())
    state["added_tokens"] = [t for t in state["added_tokens"] if t["content"] in keep]
    return Tokenizer.from_str(json.dumps(state))


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(str(path))


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


def read_labelled(path: str | Path) -> tuple[list[np.ndarray], np.ndarray]:
    table = pq.read_table(path)
    column = table.column("input_ids").combine_chunks()
    flat, offsets = column.values.to_numpy(), column.offsets.to_numpy()
    ids = [flat[offsets[i]:offsets[i + 1]].astype(np.int64) for i in range(len(column))]
    return ids, table.column("label").to_numpy().astype(np.int64)

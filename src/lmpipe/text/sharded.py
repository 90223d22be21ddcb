"""A sharded corpus to flat token files, in parallel, and token files to packed blocks, without holding either.

A token file is a pair of .npy files: `<name>_ids.npy`, every document's token ids concatenated, in the smallest
unsigned dtype that holds the vocabulary (`id_dtype`), and `<name>_offsets.npy` (int64, one more than the
documents): document i is ids[offsets[i]:offsets[i + 1]]. Both are memory-mappable (`np.load(mmap_mode="r")`).

`encode_shards` gives each shard to one worker process, which writes its documents' ids into part files; the
parts are joined in shard order, so the bytes are the same for any number of workers. `pack_token_file` streams a
token file through a `BlockPacker` into an int64 .npy of blocks, the array the pretraining stages memory-map.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import tempfile
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator, Sequence

import numpy as np
import pyarrow.parquet as pq
from tokenizers import Tokenizer

from lmpipe.io import atomic_path

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from lmpipe.text.packing import BlockPacker

ENCODE_BATCH = 2048  # texts per call into the Rust encoder
PACK_DOCUMENTS = 16_384  # documents read per step when packing a token file
_COPY_BYTES = 8 << 20


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every id of a vocabulary of vocab_size."""
    for dtype in (np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


@dataclass
class TokenFile:
    """A token file pair and its sizes."""

    ids: Path
    offsets: Path
    documents: int
    tokens: int
    nonempty: int  # documents with at least one token (each is followed by a separator when packed)
    text_bytes: int  # UTF-8 bytes of the documents' text

    def ids_array(self) -> np.ndarray:
        return np.load(self.ids, mmap_mode="r")

    def offsets_array(self) -> np.ndarray:
        return np.load(self.offsets, mmap_mode="r")


def backend_tokenizer(tokenizer: PreTrainedTokenizerBase | Tokenizer) -> Tokenizer:
    """The Rust tokenizer behind a Hugging Face fast tokenizer, with no truncation or padding: it encodes a text
    to the ids `tokenizer(text, add_special_tokens=False)` gives."""
    backend = tokenizer if isinstance(tokenizer, Tokenizer) else tokenizer.backend_tokenizer
    backend = Tokenizer.from_str(backend.to_str())  # a copy: the caller's settings stay as they are
    backend.no_truncation()
    backend.no_padding()
    return backend


def encode_shards(tokenizer: PreTrainedTokenizerBase | Tokenizer, shards: Sequence[Path], assignment: np.ndarray,
                  outputs: Sequence[str | Path], workers: int = 1) -> list[TokenFile]:
    """Encode every document of `shards` (Parquet, column `text`) without special tokens into the token file
    `outputs[k]` (`<prefix>_ids.npy` + `<prefix>_offsets.npy`) of its stream k = assignment[i] (an int8 array over
    the documents of all shards, in order; -1: not encoded).

    workers > 1 encodes that many shards at a time in forked processes (one Rust thread each); workers == 1 in
    this process (the Rust encoder then uses every core). The output does not depend on it."""
    backend = backend_tokenizer(tokenizer)
    dtype = id_dtype(backend.get_vocab_size(with_added_tokens=True))
    counts = [pq.ParquetFile(path).metadata.num_rows for path in shards]
    if sum(counts) != len(assignment):
        raise ValueError(f"{len(assignment)} stream assignments for {sum(counts)} documents in {len(shards)} shards")
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    first_output = Path(outputs[0])
    first_output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".parts-", dir=first_output.parent) as parts:
        tasks = [(str(path), assignment[starts[i]:starts[i + 1]], f"{parts}/{i:05d}", len(outputs), dtype.str)
                 for i, path in enumerate(shards)]
        if workers <= 1 or len(tasks) <= 1:
            _set_worker_tokenizer(backend)
            results = [_encode_shard(task) for task in tasks]
        else:
            with _single_threaded_children(), _process_pool(min(workers, len(tasks)), backend.to_str()) as pool:
                results = pool.map(_encode_shard, tasks, chunksize=1)
        return [_join_parts(Path(f"{output}_ids.npy"), Path(f"{output}_offsets.npy"), dtype,
                            [f"{task[2]}.{k}" for task in tasks], [result[k] for result in results])
                for k, output in enumerate(outputs)]


def training_sample(keep: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """A boolean mask of at most `limit` of the documents set in `keep`, chosen by `seed` (all of them when limit
    is None or not smaller): the documents a tokenizer trains on."""
    chosen = np.flatnonzero(keep)
    if limit is None or limit >= len(chosen):
        return keep.copy()
    sample = np.zeros_like(keep, dtype=bool)
    sample[np.random.default_rng([seed, len(keep)]).choice(chosen, size=limit, replace=False)] = True
    return sample


def pack_token_file(token_file: TokenFile, packer: BlockPacker, path: str | Path, what: str) -> int:
    """Pack a token file into an int64 .npy of blocks [n, block_length] at `path`, a few documents at a time;
    the number of blocks. Raises (before writing) when the documents do not fill one block."""
    n_blocks = packer.count(token_file.tokens, token_file.nonempty, what)
    dtype = token_file.ids_array().dtype
    written = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as out, _npy_data(token_file.ids) as ids, \
            _npy_data(token_file.offsets) as offsets:
        _write_npy_header(out, np.dtype(np.int64), (n_blocks, packer.block_length))
        previous = int(np.fromfile(offsets, dtype=np.int64, count=1)[0])
        for start in range(0, token_file.documents, PACK_DOCUMENTS):
            ends = np.fromfile(offsets, dtype=np.int64, count=min(PACK_DOCUMENTS, token_file.documents - start))
            lengths = np.diff(ends, prepend=previous)
            previous = int(ends[-1])
            chunk = np.fromfile(ids, dtype=dtype, count=int(lengths.sum()))
            blocks = packer.blocks(chunk, lengths)
            out.write(blocks.tobytes())
            written += len(blocks)
    if written != n_blocks:
        raise RuntimeError(f"{path}: packed {written} blocks, expected {n_blocks}")
    return n_blocks


# ----------------------------------------------------------------------------- workers

_worker_tokenizer: Tokenizer | None = None


def _set_worker_tokenizer(tokenizer: Tokenizer | str) -> None:
    global _worker_tokenizer
    _worker_tokenizer = Tokenizer.from_str(tokenizer) if isinstance(tokenizer, str) else tokenizer


def _encode_shard(task: tuple[str, np.ndarray, str, int, str]) -> list[tuple[int, int, int, int]]:
    """One shard's documents, encoded, appended to the part files `<prefix>.<k>.ids` / `.lengths` of their
    stream k; per stream (documents, tokens, non-empty documents, UTF-8 bytes of text)."""
    path, assignment, prefix, streams, dtype = task
    sizes = np.zeros((streams, 4), dtype=np.int64)
    with contextlib.ExitStack() as stack:
        files = [(stack.enter_context(open(f"{prefix}.{k}.ids", "wb")),
                  stack.enter_context(open(f"{prefix}.{k}.lengths", "wb"))) for k in range(streams)]
        position = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=ENCODE_BATCH, columns=["text"]):
            texts = batch.column(0).to_pylist()
            stream_of = assignment[position:position + len(texts)]
            position += len(texts)
            for k, (ids_file, lengths_file) in enumerate(files):
                selected = np.flatnonzero(stream_of == k)
                if not len(selected):
                    continue
                chosen = [texts[i] for i in selected]
                encoded = [e.ids for e in _worker_tokenizer.encode_batch_fast(chosen, add_special_tokens=False)]
                lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
                ids = np.fromiter(chain.from_iterable(encoded), dtype=dtype, count=int(lengths.sum()))
                ids_file.write(ids.tobytes())
                lengths_file.write(lengths.tobytes())
                sizes[k] += (len(chosen), len(ids), np.count_nonzero(lengths),
                             sum(len(text.encode("utf-8")) for text in chosen))
    return [tuple(int(x) for x in row) for row in sizes]


@contextlib.contextmanager
def _single_threaded_children() -> Iterator[None]:
    """TOKENIZERS_PARALLELISM=false while forking: each worker encodes on one thread (the workers are the
    parallelism), and `tokenizers` does not warn that a process which used its thread pool was forked."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def _process_pool(processes: int, tokenizer_json: str) -> multiprocessing.pool.Pool:
    # fork where it is safe (Linux): a worker starts in milliseconds, without importing the stage again
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method).Pool(processes, initializer=_set_worker_tokenizer,
                                                    initargs=(tokenizer_json,))


# ----------------------------------------------------------------------------- files


def _join_parts(ids_path: Path, offsets_path: Path, dtype: np.dtype, parts: list[str],
                sizes: list[tuple[int, int, int, int]]) -> TokenFile:
    """The part files of one stream, in order, as one token file (copied through a buffer, not mapped)."""
    documents, tokens, nonempty, text_bytes = (sum(size[i] for size in sizes) for i in range(4))
    with open(ids_path, "wb") as out:
        _write_npy_header(out, dtype, (tokens,))
        for part in parts:
            with open(f"{part}.ids", "rb") as f:
                while chunk := f.read(_COPY_BYTES):
                    out.write(chunk)
    with open(offsets_path, "wb") as out:
        _write_npy_header(out, np.dtype(np.int64), (documents + 1,))
        total = np.zeros(1, dtype=np.int64)
        out.write(total.tobytes())
        for part in parts:
            with open(f"{part}.lengths", "rb") as f:
                while chunk := f.read(_COPY_BYTES):
                    ends = np.cumsum(np.frombuffer(chunk, dtype=np.int64)) + total[0]
                    out.write(ends.tobytes())
                    total[0] = ends[-1]
    return TokenFile(ids_path, offsets_path, documents, tokens, nonempty, text_bytes)


def _write_npy_header(out: BinaryIO, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(out, header)  # the header np.save writes


@contextlib.contextmanager
def _npy_data(path: Path) -> Iterator[BinaryIO]:
    """A .npy file opened at its first array element, for sequential reads (np.fromfile)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(f)
        yield f

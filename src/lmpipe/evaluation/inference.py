"""Batched class probabilities from a sequence classifier, sorted by length to minimise padding, and a split's
token ids encoded chunk by chunk into a flat temporary file, so evaluation holds only their lengths in memory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterator, Self, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from lmpipe.engine.accel.cpu_kernels import keep_freed_memory
from lmpipe.engine.objectives.base import pad_batch
from lmpipe.engine.precision import resolve_precision
from lmpipe.finetune.saving import PREPROCESSING_FILE
from lmpipe.io import read_json
from lmpipe.text.encoding import encode_labelled

CHUNK_ROWS = 4096  # rows of a split read (and encoded) at a time


def require_finite_weights(model: torch.nn.Module, source: str) -> None:
    """A ValueError naming `source` when any weight is NaN or infinite (a diverged training run): its
    predictions would be NaN probabilities."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{source}: weight {name} holds NaN or infinite values (training diverged); "
                             "retrain it, e.g. with a lower learning rate")


def read_chunks(path: str | Path, columns: Sequence[str], rows: int = CHUNK_ROWS) -> Iterator[pa.Table]:
    """`columns` of a Parquet file, `rows` rows at a time, in file order."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows, columns=list(columns)):
        yield pa.Table.from_batches([batch])


def read_texts(path: str | Path, column: str = "text", rows: int = CHUNK_ROWS) -> Iterator[str]:
    """The texts of a Parquet file one by one, read `rows` at a time."""
    for table in read_chunks(path, [column], rows):
        yield from table.column(column).to_pylist()


class TokenIdFile(Sequence[np.ndarray]):
    """Token id sequences appended chunk by chunk to an anonymous temporary file, flat (int32): only each
    sequence's length and offset stay in memory, and indexing reads that one sequence back (as int64).
    Close it (or use it as a context manager) to free the file."""

    def __init__(self) -> None:
        # unlinked at once: removed by the system whenever the process ends, even when killed
        self._file = tempfile.TemporaryFile(prefix="lmpipe-token-ids-")  # noqa: SIM115 - closed by close()
        self._chunk_lengths: list[np.ndarray] = []
        self._lengths = np.zeros(0, dtype=np.int64)
        self._offsets = np.zeros(1, dtype=np.int64)

    def append(self, ids: pa.ListArray | pa.ChunkedArray) -> None:
        """Add the sequences of an Arrow list column (e.g. encode_labelled's `input_ids`)."""
        for chunk in ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]:
            self._file.write(chunk.flatten().to_numpy(zero_copy_only=False).astype(np.int32, copy=False).tobytes())
            self._chunk_lengths.append(np.diff(chunk.offsets.to_numpy()).astype(np.int64))

    @property
    def lengths(self) -> np.ndarray:
        """Every sequence's length, in order (int64)."""
        if self._chunk_lengths:  # fold what was appended since the last read
            self._file.flush()
            self._lengths = np.concatenate([self._lengths, *self._chunk_lengths])
            self._offsets = np.concatenate([[0], np.cumsum(self._lengths)])
            self._chunk_lengths = []
        return self._lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        length = int(self.lengths[index])  # folds pending appends, so _offsets is current
        data = os.pread(self._file.fileno(), 4 * length, 4 * int(self._offsets[index]))
        return np.frombuffer(data, dtype=np.int32).astype(np.int64)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode_split_to_file(model_dir: str | Path, path: str | Path, tokenizer: PreTrainedTokenizerBase,
                         rows: int = CHUNK_ROWS) -> tuple[TokenIdFile, np.ndarray]:
    """A raw labelled split encoded as finetune.saving.encode_for_model encodes it (the model's tokenizer and
    its stage's truncation, lmpipe_preprocessing.json), the same ids, but read and encoded `rows` at a time
    into a TokenIdFile: (ids, labels as int64)."""
    saved = read_json(Path(model_dir) / PREPROCESSING_FILE)
    ids, labels = TokenIdFile(), []
    try:
        for table in read_chunks(path, ["text", "label"], rows):
            encoded = encode_labelled(tokenizer, table.to_pandas(), saved["max_length"], saved["truncation"],
                                      saved["head_fraction"])
            ids.append(encoded.column("input_ids"))
            labels.append(encoded.column("label").to_numpy().astype(np.int64))
    except BaseException:
        ids.close()
        raise
    return ids, np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)


@torch.no_grad()
def predict_proba(model: torch.nn.Module, ids: Sequence[np.ndarray], pad_token_id: int, batch_size: int = 128,
                  precision: str = "auto", device: torch.device | None = None, progress: bool = False,
                  desc: str = "predict", unit: str = "batch") -> np.ndarray:
    """Probabilities (N x num_labels, float32) in the order of `ids`.

    Batches hold sequences of similar length: a stable sort by length over all of `ids` (a TokenIdFile's
    lengths are read without reading its ids), so the batches, and the probabilities, do not depend on how
    `ids` is stored. progress: a tqdm bar named `desc` on stderr that counts batches, or with
    unit="example" examples (its rate and ETA then in examples/s)."""
    if unit not in ("batch", "example"):
        raise ValueError(f"unit must be 'batch' or 'example', not {unit!r}")
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    # Without autograd each batch frees its activations at once and the next maps them afresh: page faults
    # were a fifth of evaluate's CPU time (bench/EVALUATE.md). The same numbers either way.
    keep_freed_memory()
    dtype = resolve_precision(precision, device)
    lengths = ids.lengths if isinstance(ids, TokenIdFile) else np.fromiter(map(len, ids), np.int64, len(ids))
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(order), model.config.num_labels), dtype=np.float32)
    by_example = unit == "example"
    total = len(order) if by_example else -(-len(order) // batch_size)
    with tqdm(total=total, disable=not progress, desc=desc, unit=" examples" if by_example else "batch",
              dynamic_ncols=True) as bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in pad_batch([ids[i] for i in chunk], pad_token_id).items()}
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = model(**batch).logits
            out[chunk] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            bar.update(len(chunk) if by_example else 1)
    return out

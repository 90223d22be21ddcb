"""The pretraining corpus as a stream: read in batches from any source, written and read back as Parquet shards.

Nothing here holds a whole corpus: text, CSV/TSV and JSON Lines files are decoded a few megabytes at a time,
Parquet files a record batch at a time, `datasets` splits through their memory-mapped Arrow cache, and the
builtin generator one batch at a time. The rules are those of `sources` (blank documents skipped, trailing
whitespace stripped, a non-text value refused with its file and row), so `load_corpus_file` returns exactly the
documents these batches hold. A .json file (one JSON array) is the exception: it is parsed whole.

The download stage writes the stream as `shard-00000.parquet`, `shard-00001.parquet`, ... (column `text`,
`data.shard_documents` documents each) into data/raw/corpus/; `CorpusShards` reads them back, in order.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lmpipe.data.sources import (
    FILE_TYPES,
    DataError,
    _hub_source,
    _is_missing,
    _load_splits,
    _pick_split,
    _read_frame,
    _require_columns,
    _require_unique_columns,
    _row_error,
    _unique_keys,
)
from lmpipe.io import write_table

BATCH_DOCUMENTS = 10_000  # documents per batch read from a file, a dataset or the generator
CHUNK_BYTES = 8 << 20  # bytes of a text file decoded at a time (whole lines)
SHARD_PATTERN = "shard-*.parquet"
_BOM = b"\xef\xbb\xbf"


# ----------------------------------------------------------------------------- reading


def iter_corpus_file(path: str | Path, text_column: str = "text",
                     batch_documents: int = BATCH_DOCUMENTS) -> Iterator[list[str]]:
    """The non-blank documents of one file in batches, read in chunks (.json arrays are parsed whole)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    suffix = path.suffix.lower()
    if suffix not in FILE_TYPES:
        raise DataError(f"{path}: unsupported file type {suffix or '(none)'!r}; expected one of {list(FILE_TYPES)}")
    rows = {".txt": _txt_rows, ".jsonl": _jsonl_rows, ".csv": _delimited_rows, ".tsv": _delimited_rows,
            ".parquet": _parquet_rows}.get(suffix, _whole_file_rows)
    documents = _Documents(str(path), text_column)
    for first_row, values in rows(path, text_column, batch_documents):
        batch = documents.add(values, first_row)
        if batch:
            yield batch
    documents.finish()


def iter_corpus_files(paths: Iterable[str | Path], text_column: str = "text",
                      batch_documents: int = BATCH_DOCUMENTS) -> Iterator[list[str]]:
    """The documents of several files, one after another (each file must hold at least one)."""
    for path in paths:
        yield from iter_corpus_file(path, text_column, batch_documents)


def iter_corpus_hub(path: str, name: str | None, split: str, text_column: str = "text",
                    revision: str | None = None, batch_documents: int = BATCH_DOCUMENTS) -> Iterator[list[str]]:
    """The non-blank documents of one split of a `datasets` dataset, read in batches from its memory-mapped
    Arrow files (the hub cache, or a save_to_disk directory)."""
    ds = _pick_split(_load_splits(path, name, revision), path, name, split)
    source = _hub_source(path, name, split)
    _require_columns(ds.column_names, [text_column], source)
    documents = _Documents(source, text_column)
    first_row = 1
    for batch in ds.select_columns([text_column]).iter(batch_size=batch_documents):
        values = batch[text_column]
        kept = documents.add(values, first_row)
        first_row += len(values)
        if kept:
            yield kept
    documents.finish()


def capped(batches: Iterable[list[str]], max_documents: int | None) -> Iterator[list[str]]:
    """The first max_documents documents of a stream of batches (all of them when None)."""
    if max_documents is not None and max_documents < 1:
        raise ValueError(f"max_documents must be positive or None, got {max_documents}")
    left = max_documents
    for batch in batches:
        if left is not None:
            batch = batch[:left]
            left -= len(batch)
        if batch:
            yield batch
        if left == 0:
            return


def rebatched(documents: Iterable[str], batch_documents: int = BATCH_DOCUMENTS) -> Iterator[list[str]]:
    """A stream of documents as lists of at most batch_documents."""
    iterator = iter(documents)
    while batch := list(islice(iterator, batch_documents)):
        yield batch


class _Documents:
    """The corpus rules over a file or split read in pieces: text values only (None/NaN count as blank), trailing
    whitespace stripped, blank documents skipped; at the end, a source with no rows or no document is an error."""

    def __init__(self, source: str, text_column: str):
        self.source, self.text_column = source, text_column
        self.rows = self.documents = 0

    def add(self, values: list, first_row: int) -> list[str]:
        not_text = [row for row, value in enumerate(values, first_row)
                    if not (_is_missing(value) or isinstance(value, str))]
        if not_text:
            value = values[not_text[0] - first_row]
            raise _row_error(self.source, not_text, f"text in column {self.text_column!r} is {type(value).__name__} "
                                                    f"{value!r}, expected a string")
        self.rows += len(values)
        kept = [text for text in (value.rstrip() for value in values if isinstance(value, str)) if text]
        self.documents += len(kept)
        return kept

    def finish(self) -> None:
        if self.rows == 0:
            raise DataError(f"{self.source}: no data rows (empty file or split)")
        if self.documents == 0:
            raise DataError(f"{self.source}: no non-empty documents in column {self.text_column!r}")


def _text_pieces(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, str]]:
    """(number of the first line, text of whole lines) of a UTF-8 file, about chunk_bytes at a time. A leading
    BOM is dropped; an invalid byte or a NUL byte is a DataError naming the line and byte offset, as for a file
    read whole (`lmpipe.io.decode_text`). Cutting after a newline byte never splits a UTF-8 character."""
    offset, line, pending = 0, 1, b""
    with open(path, "rb") as f:
        head = f.read(len(_BOM))
        if head == _BOM:
            offset = len(_BOM)
        else:
            pending = head
        while True:
            block = f.read(chunk_bytes)
            data = pending + block
            cut = data.rfind(b"\n") + 1 if block else len(data)
            if block and cut == 0:  # one line longer than a chunk: read on
                pending = data
                continue
            piece, pending = data[:cut], data[cut:]
            if piece:
                yield line, _decode(piece, path, offset, line)
                line += piece.count(b"\n")
                offset += len(piece)
            if not block:
                return


def _decode(piece: bytes, path: Path, offset: int, line: int) -> str:
    try:
        text = piece.decode("utf-8")
    except UnicodeDecodeError as e:
        where = line + piece.count(b"\n", 0, e.start)
        raise DataError(f"{path}: line {where}: not valid UTF-8 (byte offset {offset + e.start}: {e.reason}); "
                        "binary data, or re-encode the text as UTF-8") from None
    nul = piece.find(b"\0")
    if nul >= 0:
        where = line + piece.count(b"\n", 0, nul)
        raise DataError(f"{path}: line {where}: a NUL byte (byte offset {offset + nul}): binary data, not text")
    return text


def _txt_rows(path: Path, text_column: str, batch_documents: int) -> Iterator[tuple[int, list]]:
    """One document per line (split at "\\n" only, as `sources` does); blank lines are not rows."""
    first_row = 1
    for _, text in _text_pieces(path):
        for batch in rebatched((line for line in text.split("\n") if line.strip()), batch_documents):
            yield first_row, batch
            first_row += len(batch)


def _jsonl_rows(path: Path, text_column: str, batch_documents: int) -> Iterator[tuple[int, list]]:
    """One JSON object per non-blank line; a record without the text column counts as blank, a file in which no
    record has it is refused like a missing column."""
    first_row, seen_column, keys = 1, False, {}  # keys: the columns a frame of the records would have
    for line_number, text in _text_pieces(path):
        values = []
        for number, line in enumerate(text.split("\n"), line_number):
            if not line.strip():
                continue
            try:
                record = json.loads(line, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: line {number}: invalid JSON: {e.msg}") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}: line {number}: expected a JSON object, got {type(record).__name__}")
            seen_column = seen_column or text_column in record
            if not seen_column:
                keys.update(dict.fromkeys(record))
            values.append(record.get(text_column))
        if values:
            yield first_row, values
            first_row += len(values)
    if first_row == 1:
        raise DataError(f"{path}: file is empty")
    if not seen_column:
        _require_columns(list(keys), [text_column], str(path))


class _PieceReader(io.TextIOBase):
    """A text stream over `_text_pieces`, so pandas parses a large CSV in chunks from the checked text."""

    def __init__(self, pieces: Iterator[tuple[int, str]]):
        self.pieces, self.current, self.position = pieces, "", 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        whole = size is None or size < 0
        parts, wanted = [], 0 if whole else size
        while whole or wanted > 0:
            if self.position >= len(self.current):
                piece = next(self.pieces, None)
                if piece is None:
                    break
                self.current, self.position = piece[1], 0
            end = len(self.current) if whole else min(len(self.current), self.position + wanted)
            parts.append(self.current[self.position:end])
            wanted -= end - self.position
            self.position = end
        return "".join(parts)


def _delimited_rows(path: Path, text_column: str, batch_documents: int) -> Iterator[tuple[int, list]]:
    """CSV (quoted fields, IMDB) or TSV (no quoting, GLUE) with the options `sources` reads labelled files with."""
    pieces = _text_pieces(path)
    first = next(pieces, None)
    if first is None:
        raise DataError(f"{path}: file is empty")
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        options: dict[str, Any] = {"sep": "\t", "quoting": csv.QUOTE_NONE}
        header = first[1].split("\n", 1)[0].rstrip("\r").split("\t")
    else:
        options = {"sep": ","}
        try:
            header = next(csv.reader(io.StringIO(first[1])), [])
        except csv.Error:
            header = []
    _require_unique_columns([name.strip() for name in header], f"{path}: line 1 (the header)")

    def with_first() -> Iterator[tuple[int, str]]:
        yield first
        yield from pieces

    first_row = 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            reader = pd.read_csv(_PieceReader(with_first()), **options, dtype={text_column: str},
                                 keep_default_na=False, index_col=False, chunksize=batch_documents)
            for chunk in reader:
                _require_columns(list(chunk.columns), [text_column], str(path))
                values = chunk[text_column].tolist()
                yield first_row, values
                first_row += len(values)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as e:
        raise DataError(f"{path}: cannot parse {suffix[1:].upper()}: {e}") from None
    if first_row == 1:  # a header and no rows: pandas yields no chunk
        _require_columns([name.strip() for name in header], [text_column], str(path))


def _parquet_rows(path: Path, text_column: str, batch_documents: int) -> Iterator[tuple[int, list]]:
    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
    except Exception as e:  # pyarrow raises several unrelated types for corrupt files
        raise DataError(f"{path}: cannot read Parquet file: {e}") from e
    _require_unique_columns(names, f"{path}: the schema")
    _require_columns(names, [text_column], str(path))
    first_row = 1
    try:
        for batch in parquet.iter_batches(batch_size=batch_documents, columns=[text_column]):
            values = batch.column(0).to_pylist()
            yield first_row, values
            first_row += len(values)
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"{path}: cannot read Parquet file: {e}") from e


def _whole_file_rows(path: Path, text_column: str, batch_documents: int) -> Iterator[tuple[int, list]]:
    """A .json file (one array of objects): parsed whole, then handed out in batches."""
    frame = _read_frame(path, text_column, None)
    _require_columns(list(frame.columns), [text_column], str(path))
    values = frame[text_column].tolist()
    for start in range(0, len(values), batch_documents):
        yield start + 1, values[start:start + batch_documents]


# ----------------------------------------------------------------------------- shards


@dataclass
class ShardedCorpus:
    """What `write_corpus_shards` wrote: the shard files, in order, and the corpus statistics."""

    shards: list[Path]
    documents: int
    words: int


def write_corpus_shards(directory: str | Path, batches: Iterable[list[str]], shard_documents: int) -> ShardedCorpus:
    """The documents of `batches`, in order, as Parquet shards (column `text`) of shard_documents each; at most
    one shard is held in memory. A stream without a document is a DataError."""
    if shard_documents < 1:
        raise ValueError(f"shard_documents must be >= 1, got {shard_documents}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shards: list[Path] = []
    pending: list[str] = []
    documents = words = 0

    def flush(count: int) -> None:
        nonlocal pending
        path = directory / f"shard-{len(shards):05d}.parquet"
        write_table(path, pa.table({"text": pa.array(pending[:count], type=pa.string())}))
        shards.append(path)
        pending = pending[count:]

    for batch in batches:
        documents += len(batch)
        words += sum(len(text.split()) for text in batch)
        pending.extend(batch)
        while len(pending) >= shard_documents:
            flush(shard_documents)
    if pending:
        flush(len(pending))
    if documents == 0:
        raise DataError("the corpus holds no document")
    return ShardedCorpus(shards, documents, words)


class CorpusShards:
    """The Parquet shards of a corpus directory (data/raw/corpus), read back in order.

    `counts` (documents per shard) come from the Parquet footers, so sizes are known before any text is read;
    `batches(keep)` yields the documents whose global index is set in the boolean mask `keep`."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.paths = sorted(self.directory.glob(SHARD_PATTERN))
        if not self.paths:
            raise DataError(f"{self.directory}: no corpus shards ({SHARD_PATTERN}); rerun the download stage")
        self.counts = [pq.ParquetFile(path).metadata.num_rows for path in self.paths]
        self.starts = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    @property
    def documents(self) -> int:
        return int(self.starts[-1])

    def shard_batches(self, index: int, batch_documents: int = BATCH_DOCUMENTS) -> Iterator[list[str]]:
        """The documents of shard `index`, in batches."""
        for batch in pq.ParquetFile(self.paths[index]).iter_batches(batch_size=batch_documents, columns=["text"]):
            yield batch.column(0).to_pylist()

    def batches(self, keep: np.ndarray | None = None, batch_documents: int = BATCH_DOCUMENTS) -> Iterator[list[str]]:
        """Every document (or those set in `keep`, a boolean mask over the whole corpus), in order, in batches."""
        for index in range(len(self.paths)):
            start = int(self.starts[index])
            for batch in self.shard_batches(index, batch_documents):
                if keep is not None:
                    mask = keep[start:start + len(batch)]
                    start += len(batch)
                    batch = [text for text, kept in zip(batch, mask) if kept]
                if batch:
                    yield batch

    def selection(self, keep: np.ndarray | None = None) -> CorpusSelection:
        """The documents set in `keep` as a collection each iteration of which reads them again, in batches (what
        tokenizer training, which reads its texts twice, takes)."""
        return CorpusSelection(self, keep)


@dataclass
class CorpusSelection:
    corpus: CorpusShards
    keep: np.ndarray | None

    def __iter__(self) -> Iterator[list[str]]:
        return self.corpus.batches(self.keep)

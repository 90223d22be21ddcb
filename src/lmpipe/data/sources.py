"""Load labelled splits and unlabelled corpora from local files or `datasets.load_dataset`.

Every path ends in `_validate_rows`, so files and hub datasets fail the same way: a `DataError`
naming the file/dataset, the row (1-based data row; line number for text files) and the reason.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import numbers
import re
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from lmpipe.io import decode_text

SPLITS = ("train", "validation", "test")
FILE_TYPES = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt")
# Raw string labels that have a conventional order, so IMDB's strings get GLUE's ids (negative=0).
_ORDERED_PAIRS = (("negative", "positive"), ("neg", "pos"))
_INT = re.compile(r"[+-]?\d+")
MIN_CLASS_EXAMPLES = 5  # fewer train examples of a class than this: a typo, or a class that cannot be learned
log = logging.getLogger(__name__)


class DataError(ValueError):
    """Bad input data; message names the file/dataset, the row (1-based data row, or the line
    number for text files) and the reason."""


# ----------------------------------------------------------------------------- files


def read_table(path: str | Path, text_column: str, label_column: str | None = None) -> pd.DataFrame:
    """Read a .csv/.tsv/.jsonl/.json/.parquet/.txt file into a validated frame `text` (+ raw `label`).

    `.txt` holds one document per non-empty line and cannot carry labels.
    """
    frame = _read_frame(Path(path), text_column, label_column)
    return _validate_rows(frame, str(path), text_column, label_column)


def load_corpus_file(path: str | Path, text_column: str = "text", max_documents: int | None = None) -> list[str]:
    """Unlabelled documents from a file; blank documents are skipped (WikiText has many)."""
    from lmpipe.data.corpus import capped, iter_corpus_file  # the streaming reader, whole

    return [text for batch in capped(iter_corpus_file(path, text_column), max_documents) for text in batch]


def load_labelled_files(
    train: str,
    test: str | None,
    validation: str | None,
    text_column: str,
    label_column: str,
    label_names: list[str] | None,
    validation_fraction: float,
    seed: int,
    strict_labels: bool = False,
    *,
    test_fraction: float | None = None,
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Read the split files; label map from TRAIN (or `label_names`); carve test (`test_fraction`, required
    then) and validation from train where not given (see `carve_held_out`).

    Suspicious train classes (see check_classes) are logged, or refused with `strict_labels`."""
    paths = {"train": train, "validation": validation, "test": test}
    raw = {split: read_table(p, text_column, label_column) for split, p in paths.items() if p is not None}
    label_map = build_label_map(raw["train"]["label"], label_names)
    encoded = {split: encode_labels(frame, label_map, str(paths[split])) for split, frame in raw.items()}
    check_classes(raw["train"]["label"] if label_names is None else None, encoded["train"]["label"], label_map,
                  str(train), label_column, strict_labels)
    return carve_held_out(encoded, validation_fraction, test_fraction, seed, str(train)), label_map


def _read_frame(path: Path, text_column: str, label_column: str | None) -> pd.DataFrame:
    """Parse a file by extension into an unvalidated frame of its columns."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    suffix = path.suffix.lower()
    if suffix not in FILE_TYPES:
        raise DataError(f"{path}: unsupported file type {suffix or '(none)'!r}; expected one of {list(FILE_TYPES)}")
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            _require_unique_columns(names, f"{path}: the schema")
            return pd.read_parquet(path)
        except DataError:
            raise
        except Exception as e:  # pyarrow raises several unrelated types for corrupt files
            raise DataError(f"{path}: cannot read Parquet file: {e}") from e

    text = _read_utf8(path)
    if suffix == ".txt":
        if label_column is not None:
            raise DataError(f"{path}: .txt files hold unlabelled text, so label column {label_column!r} cannot be read")
        # split("\n") rather than splitlines(): the latter also breaks on \x0c, \u2028 etc. inside documents.
        return pd.DataFrame({text_column: [line for line in text.split("\n") if line.strip()]}, dtype=object)
    if suffix in (".jsonl", ".json"):
        return pd.DataFrame(_json_records(text, path), dtype=object)
    return _read_delimited(text, path, suffix, text_column, label_column)


def _read_utf8(path: Path) -> str:
    """Decode the whole file as UTF-8 ourselves, so a bad (or NUL) byte is reported with its line and offset."""
    try:
        return decode_text(path.read_bytes(), str(path))
    except ValueError as e:
        raise DataError(str(e)) from None


def _read_delimited(text: str, path: Path, suffix: str, text_column: str, label_column: str | None) -> pd.DataFrame:
    if suffix == ".tsv":  # GLUE layout: sentences contain bare " characters, so no quoting at all
        options: dict[str, Any] = {"sep": "\t", "quoting": csv.QUOTE_NONE}
        header = text.split("\n", 1)[0].rstrip("\r").split("\t")
    else:  # IMDB layout: quoted fields with commas and newlines inside
        options = {"sep": ","}
        try:
            header = next(csv.reader(io.StringIO(text)), [])
        except csv.Error:
            header = []  # pandas reports the parse error below
    # pandas would rename a second `label` to `label.1`, silently reading one of the two
    _require_unique_columns([name.strip() for name in header], f"{path}: line 1 (the header)")
    try:
        with warnings.catch_warnings():
            # With index_col=False pandas only *warns* (and drops fields) when the first data row is too long.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                io.StringIO(text),
                **options,
                # Text stays text ("NA", "null", "1e5" are sentences too); only an empty label cell is missing,
                # while the label column keeps pandas' type inference (GLUE's 0/1 come back as ints).
                dtype={text_column: str},
                keep_default_na=False,
                na_values={label_column: [""]} if label_column else None,
                low_memory=False,
                index_col=False,  # a row with an extra field is an error, not a silent index column
            )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as e:
        raise DataError(f"{path}: cannot parse {suffix[1:].upper()}: {e}") from None


def _require_unique_columns(names: list, where: str) -> None:
    seen: set = set()
    for name in names:
        if name in seen:
            raise DataError(f"{where}: column {name!r} appears twice; rename or remove one (only one would be read)")
        seen.add(name)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object whose keys are unique (json keeps the last of a repeated key without a word)."""
    keys = [key for key, _ in pairs]
    duplicated = next((key for i, key in enumerate(keys) if key in keys[:i]), None)
    if duplicated is not None:
        raise json.JSONDecodeError(f"key {duplicated!r} appears twice in one object", "", 0)
    return dict(pairs)


def _json_records(text: str, path: Path) -> list[dict]:
    """JSON Lines (one object per line), or a .json file holding one array of objects."""
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            records = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {e.lineno}: invalid JSON: {e.msg}") from None
        numbered = list(enumerate(records, 1))
        where = "row"
    else:
        numbered = []
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                numbered.append((number, json.loads(line, object_pairs_hook=_unique_keys)))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: line {number}: invalid JSON: {e.msg}") from None
        where = "line"
    for number, record in numbered:
        if not isinstance(record, dict):
            raise DataError(f"{path}: {where} {number}: expected a JSON object, got {type(record).__name__}")
    if not numbered:
        raise DataError(f"{path}: file is empty")
    return [record for _, record in numbered]


# ----------------------------------------------------------------------------- hub / datasets


def load_labelled_hub(
    path: str,
    name: str | None,
    train_split: str,
    test_split: str | None,
    validation_split: str | None,
    text_column: str,
    label_column: str,
    label_names: list[str] | None,
    validation_fraction: float,
    seed: int,
    revision: str | None = None,
    strict_labels: bool = False,
    *,
    test_fraction: float | None = None,
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Like `load_labelled_files`, via `datasets` (hub id, data directory or save_to_disk directory).

    A ClassLabel feature supplies the label names (unless `label_names` is given) and its values are ids.
    """
    splits = _load_splits(path, name, revision)
    wanted = {"train": train_split, "validation": validation_split, "test": test_split}
    chosen = {split: _pick_split(splits, path, name, s) for split, s in wanted.items() if s is not None}
    class_names = _class_label_names(chosen["train"], label_column)

    frames: dict[str, pd.DataFrame] = {}
    sources: dict[str, str] = {}
    for split, ds in chosen.items():
        sources[split] = _hub_source(path, name, wanted[split])
        frames[split] = _validate_rows(_hub_frame(ds, sources[split], [text_column, label_column]),
                                       sources[split], text_column, label_column)

    if class_names is None:
        label_map = build_label_map(frames["train"]["label"], label_names)
        encoded = {s: encode_labels(f, label_map, sources[s]) for s, f in frames.items()}
    else:
        label_map = build_label_map([], label_names) if label_names is not None else list(class_names)
        if len(label_map) != len(class_names):
            raise DataError(f"{sources['train']}: label_names has {len(label_map)} names but the ClassLabel "
                            f"column {label_column!r} has {len(class_names)} classes {class_names}")
        # ClassLabel values are ids already; matching them by name would misread names like "1".."5".
        encoded = {s: _with_ids(f, [_as_int(v) for v in f["label"]], label_map, sources[s])
                   for s, f in frames.items()}
    inferred = class_names is None and label_names is None
    check_classes(frames["train"]["label"] if inferred else None, encoded["train"]["label"], label_map,
                  sources["train"], label_column, strict_labels)
    return carve_held_out(encoded, validation_fraction, test_fraction, seed, sources["train"]), label_map


def load_corpus_hub(
    path: str,
    name: str | None,
    split: str,
    text_column: str = "text",
    max_documents: int | None = None,
    revision: str | None = None,
) -> list[str]:
    """Unlabelled documents from one split of a `datasets` dataset; blank documents are skipped."""
    from lmpipe.data.corpus import capped, iter_corpus_hub  # the streaming reader, whole

    return [text for batch in capped(iter_corpus_hub(path, name, split, text_column, revision), max_documents)
            for text in batch]


def _load_splits(path: str, name: str | None, revision: str | None) -> dict[str, Any]:
    """All splits of a dataset: save_to_disk directories via load_from_disk, anything else via load_dataset."""
    import datasets  # imported lazily: it is slow to import and only these paths need it

    local = Path(path)
    if local.is_dir() and ((local / "dataset_dict.json").is_file() or (local / "state.json").is_file()):
        if name is not None:
            raise DataError(f"{path}: a save_to_disk directory has no configs, but config {name!r} was requested")
        loaded = datasets.load_from_disk(str(local))
        # A single saved Dataset has no split names; call it "train" like load_dataset does for one file.
        return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    try:
        return dict(datasets.load_dataset(path, name, revision=revision))
    except (FileNotFoundError, ConnectionError, ValueError) as e:  # not found / offline / unknown config
        config = f" config {name!r}" if name else ""
        raise DataError(f"cannot load dataset {path!r}{config}: {e}") from e


def _pick_split(splits: dict[str, Any], path: str, name: str | None, split: str) -> Any:
    if split not in splits:
        raise DataError(f"{_hub_source(path, name, split)}: no such split; available splits: {sorted(splits)}")
    return splits[split]


def _hub_source(path: str, name: str | None, split: str) -> str:
    config = f" config {name!r}" if name else ""
    return f"dataset {path!r}{config} split {split!r}"


def _hub_frame(ds: Any, source: str, columns: list[str]) -> pd.DataFrame:
    """Only the needed columns go through Arrow -> pandas (hub datasets can carry large extra columns)."""
    _require_columns(ds.column_names, columns, source)
    return ds.select_columns(list(dict.fromkeys(columns))).to_pandas()


def _class_label_names(ds: Any, label_column: str) -> list[str] | None:
    import datasets

    feature = ds.features.get(label_column)
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


# ----------------------------------------------------------------------------- validation


def _validate_rows(
    frame: pd.DataFrame,
    source: str,
    text_column: str,
    label_column: str | None,
    *,
    skip_blank: bool = False,
) -> pd.DataFrame:
    """The one row check for every source: frame `text` (trailing whitespace stripped) + raw `label`.

    Blank text is an error for labelled data, but skipped when `skip_blank` (corpora).
    """
    _require_columns(list(frame.columns), [text_column] + ([label_column] if label_column else []), source)
    if len(frame) == 0:
        raise DataError(f"{source}: no data rows (empty file or split)")

    texts = frame[text_column].tolist()
    not_text = [row for row, value in enumerate(texts, 1) if not (_is_missing(value) or isinstance(value, str))]
    if not_text:
        value = texts[not_text[0] - 1]
        raise _row_error(source, not_text, f"text in column {text_column!r} is {type(value).__name__} {value!r}, "
                                           "expected a string")
    # Only trailing whitespace goes (line ends, SST-2's trailing spaces); the rest of the text is kept as is.
    texts = ["" if _is_missing(value) else value.rstrip() for value in texts]
    out = pd.DataFrame({"text": pd.Series(texts, dtype=object)})
    if label_column is not None:
        out["label"] = pd.Series([_clean_label(v) for v in frame[label_column].tolist()], dtype=object)

    blank = [row for row, text in enumerate(texts, 1) if not text]
    if blank and skip_blank:
        out = out[out["text"] != ""].reset_index(drop=True)
        if len(out) == 0:
            raise DataError(f"{source}: no non-empty documents in column {text_column!r}")
    elif blank:
        raise _row_error(source, blank, f"empty or whitespace-only text in column {text_column!r}")

    if label_column is not None:
        missing = [row for row, label in enumerate(out["label"].tolist(), 1) if label is None]
        if missing:
            raise _row_error(source, missing, f"missing label in column {label_column!r}")
        _require_one_label_kind(out["label"].tolist(), source, label_column)
        out["label"] = out["label"].infer_objects()  # all-int labels become an int column again
    return out


def _require_one_label_kind(labels: list, source: str, column: str) -> None:
    """All labels of a file are class ids (integers) or all are names: a lone `1` among names would become a class
    of its own and shift every id."""
    numbers = [row for row, value in enumerate(labels, 1) if _as_int(value) is not None]
    if not numbers or len(numbers) == len(labels):
        return
    names = [row for row, value in enumerate(labels, 1) if _as_int(value) is None]
    odd, usual, kind, other = ((numbers, names, "a number", "names") if len(numbers) <= len(names)
                               else (names, numbers, "a name", "numbers"))
    examples = sorted({str(labels[row - 1]) for row in usual})
    shown = ", ".join(examples[:3]) + (", ..." if len(examples) > 3 else "")
    raise _row_error(source, odd, f"label {labels[odd[0] - 1]!r} in column {column!r} is {kind}, but the other "
                                  f"labels are {other} ({shown}); use one kind throughout")


def check_classes(raw_labels: Iterable | None, ids: Iterable[int], label_map: list[str], source: str, column: str,
                  strict: bool) -> None:
    """Train classes that are probably mistakes: names that differ only in case or spaces (`Positive` beside
    `positive`; checked on `raw_labels` when the names were inferred from them), and classes with fewer than
    MIN_CLASS_EXAMPLES examples. Logged as one warning each, or (strict) a DataError naming the file, column and
    rows."""
    problems = []
    if raw_labels is not None:
        keys = [_label_key(value) for value in raw_labels]
        variants: dict[str, dict[str, list[int]]] = {}
        for row, key in enumerate(keys, 1):
            variants.setdefault(" ".join(key.split()).casefold(), {}).setdefault(key, []).append(row)
        for group in variants.values():
            if len(group) > 1:
                spelled = sorted(group.items(), key=lambda item: -len(item[1]))
                problems.append(f"column {column!r}: classes " + " and ".join(
                    f"{name!r} ({_rows(rows)})" for name, rows in spelled) + " differ only in case or spaces; fix the "
                    "rows, or list the classes in data.label_names")
    rows_of: dict[int, list[int]] = {i: [] for i in range(len(label_map))}
    for row, i in enumerate(ids, 1):
        rows_of[int(i)].append(row)
    for i, rows in rows_of.items():
        if len(rows) < MIN_CLASS_EXAMPLES:
            problems.append(f"column {column!r}: class {label_map[i]!r} has {len(rows)} example(s)"
                            f"{f' ({_rows(rows)})' if rows else ''}, fewer than {MIN_CLASS_EXAMPLES}: a typo, or a class "
                            "too rare to learn")
    for problem in problems:
        if strict:
            raise DataError(f"{source}: {problem} (data.strict_labels is true)")
        log.warning("%s: %s", source, problem)


def _rows(rows: list[int]) -> str:
    shown = ", ".join(map(str, rows[:5]))
    return f"row{'s' if len(rows) > 1 else ''} {shown}{f' and {len(rows) - 5} more' if len(rows) > 5 else ''}"


def _require_columns(available: list, required: list[str], source: str) -> None:
    for column in required:
        if column not in available:
            raise DataError(f"{source}: column {column!r} not found; available columns: {[str(c) for c in available]}")


def _row_error(source: str, rows: list[int], reason: str) -> DataError:
    more = f" ({len(rows)} rows affected)" if len(rows) > 1 else ""
    return DataError(f"{source}: row {rows[0]}: {reason}{more}")


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _clean_label(value: Any) -> Any:
    """Raw label with blanks as None, surrounding spaces stripped and integral floats (NaN-widened ints) as int."""
    if isinstance(value, np.generic):
        value = value.item()
    if _is_missing(value):
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ----------------------------------------------------------------------------- labels


def build_label_map(labels: Iterable, label_names: list[str] | None = None) -> list[str]:
    """Ordered label names (id -> name): `label_names` if given, else inferred from the raw labels.

    Integers sort numerically ("0", "1", ...), negative/positive keep that order, other strings sort.
    """
    if label_names is not None:
        names = [str(name) for name in label_names]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if not names or duplicated:
            raise DataError(f"label_names must be a non-empty list of unique names; got {names}")
        return names

    keys = {_label_key(value) for value in labels if not _is_missing(value)}
    if not keys:
        raise DataError("no labels to build a label map from")
    if len(keys) < 2:
        raise DataError(f"only one label value {sorted(keys)} in the training data; a classifier needs at least "
                        "two (pass label_names to declare the full label set)")
    if all(_INT.fullmatch(key) for key in keys):
        return sorted(keys, key=int)
    by_lower = {key.lower(): key for key in keys}
    for pair in _ORDERED_PAIRS:
        if len(keys) == 2 and set(by_lower) == set(pair):
            return [by_lower[name] for name in pair]
    return sorted(keys)


def encode_labels(frame: pd.DataFrame, label_map: list[str], source: str) -> pd.DataFrame:
    """Replace raw `label` values by int ids 0..K-1 (matched by name; 1 == "1").

    When the names are not integers (e.g. ["negative", "positive"]), integer labels are taken as ids.
    """
    by_name = {name: i for i, name in enumerate(label_map)}
    ints_are_ids = not all(_INT.fullmatch(name) for name in label_map)

    def lookup(value: Any) -> int | None:
        i = by_name.get(_label_key(value))
        return _as_int(value) if i is None and ints_are_ids else i

    return _with_ids(frame, [lookup(value) for value in frame["label"].tolist()], label_map, source)


def _with_ids(frame: pd.DataFrame, ids: list[int | None], label_map: list[str], source: str) -> pd.DataFrame:
    """`frame` with `label` replaced by `ids`; a None or out-of-range id is reported with its raw value."""
    bad = [row for row, i in enumerate(ids, 1) if i is None or not 0 <= i < len(label_map)]
    if bad:
        value = frame["label"].tolist()[bad[0] - 1]  # tolist: plain Python values read better than np.int64(0)
        hint = " (-1 usually marks a test split whose labels are hidden, e.g. GLUE)" if _as_int(value) == -1 else ""
        raise _row_error(source, bad, f"label {value!r} is not one of the allowed labels {label_map}{hint}")
    out = frame.reset_index(drop=True)
    out["label"] = np.asarray(ids, dtype=np.int64)
    return out


def _label_key(value: Any) -> str:
    """Canonical string form of a raw label, so 1, 1.0, "1" and " 1" all match the name "1"."""
    number = _as_int(value)
    return str(number) if number is not None else str(value).strip()


def _as_int(value: Any) -> int | None:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):  # bool is an int subclass, but True is not id 1 of anything meaningful
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value)
    return None


# ----------------------------------------------------------------------------- splits


def carve_validation(train: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic (stratified where possible) split of `train` into (train, validation), in file order."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be between 0 and 1, got {fraction}")
    return _carve(train, math.ceil(fraction * len(train)), seed, f"a {fraction:g} validation fraction")


def _carve(train: pd.DataFrame, n_out: int, seed: int, what: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split  # lazy: sklearn import is slow

    n_train = len(train) - n_out
    if n_out == 0 or n_train <= 0:
        raise DataError(f"cannot carve {what} from {len(train)} training rows")
    counts = train["label"].value_counts() if "label" in train else pd.Series(dtype=int)
    # sklearn refuses to stratify with a singleton class or with fewer rows per side than classes.
    stratify = len(counts) > 0 and counts.min() >= 2 and min(n_out, n_train) >= len(counts)
    train_idx, out_idx = train_test_split(
        np.arange(len(train)), test_size=n_out, random_state=seed,
        stratify=train["label"].to_numpy() if stratify else None,
    )
    # Sorting keeps the original row order inside each part; membership is what the seed decides.
    return (train.iloc[np.sort(train_idx)].reset_index(drop=True),
            train.iloc[np.sort(out_idx)].reset_index(drop=True))


def carve_held_out(encoded: dict[str, pd.DataFrame], validation_fraction: float, test_fraction: float | None,
                   seed: int, source: str) -> dict[str, pd.DataFrame]:
    """Splits in the order train, validation, test. A missing test split is carved from train first
    (test_fraction of its rows, seed + 1), then a missing validation split (validation_fraction of the original
    train rows, seed): with a test split given, validation is what carve_validation alone would carve."""
    total = len(encoded["train"])
    if "test" not in encoded:
        if test_fraction is None:
            raise DataError(f"{source}: the source has no test split; set data.test_fraction to carve one")
        encoded["train"], encoded["test"] = _carve(encoded["train"], math.ceil(test_fraction * total), seed + 1,
                                                   f"a {test_fraction:g} test fraction")
    if "validation" not in encoded:
        encoded["train"], encoded["validation"] = _carve(
            encoded["train"], math.ceil(validation_fraction * total), seed,
            f"a {validation_fraction:g} validation fraction" + (" after the test split" if total > len(
                encoded["train"]) else ""))
    return {split: encoded[split] for split in SPLITS}


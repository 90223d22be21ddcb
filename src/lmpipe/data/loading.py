"""One entry point over the three data sources: labelled splits, their label names, and the corpus.

The labelled splits are held in memory (they are read whole to build the label map and carve validation); the
corpus is a stream of document batches that the download stage writes out shard by shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import pandas as pd

from lmpipe.config.schema import DataParams, corpus_files
from lmpipe.data import builtin, sources
from lmpipe.data.corpus import BATCH_DOCUMENTS, capped, iter_corpus_files, iter_corpus_hub, rebatched
from lmpipe.data.markup import clean_markup
from lmpipe.data.sources import DataError


@dataclass
class LoadedData:
    splits: dict[str, pd.DataFrame]  # "train", "validation", "test" -> frame[text: str, label: int]
    label_names: list[str]  # id -> name
    corpus_batches: Callable[[], Iterator[list[str]]]  # a new pass over the corpus, in order, in batches

    @property
    def corpus(self) -> list[str]:
        """The whole corpus in one list: for small corpora (tests, benchmarks); the stages stream it."""
        return [text for batch in self.corpus_batches() for text in batch]


def load_data(cfg: DataParams, seed: int) -> LoadedData:
    """The labelled splits (markup cleaned if data.clean_markup) and the corpus stream: the source's corpus (or
    the train split's texts), capped at data.max_corpus_documents, cleaned, then the train split's texts if
    data.corpus_add_train."""
    if cfg.source == "builtin":
        splits, names = _builtin_splits(cfg, seed)
        b = cfg.builtin

        def source() -> Iterator[list[str]]:
            return builtin.iter_corpus(b.corpus_documents, seed=seed * 10 + 4)
    elif cfg.source == "files":
        f = cfg.files
        splits, names = sources.load_labelled_files(
            train=f.train, test=f.test, validation=f.validation, text_column=f.text_column,
            label_column=f.label_column, label_names=cfg.label_names,
            validation_fraction=cfg.validation_fraction, seed=seed, strict_labels=cfg.strict_labels,
            test_fraction=cfg.test_fraction)
        if f.corpus is not None:
            entries = [f.corpus] if isinstance(f.corpus, str) else f.corpus
            paths = [path for entry in entries for path in corpus_files(entry)]

            def source() -> Iterator[list[str]]:
                return iter_corpus_files(paths, f.corpus_text_column)
        else:
            source = None
    else:
        h = cfg.hub
        splits, names = sources.load_labelled_hub(
            path=h.path, name=h.name, train_split=h.train_split, test_split=h.test_split,
            validation_split=h.validation_split, text_column=h.text_column, label_column=h.label_column,
            label_names=cfg.label_names, validation_fraction=cfg.validation_fraction, seed=seed,
            revision=h.revision, strict_labels=cfg.strict_labels, test_fraction=cfg.test_fraction)
        if h.corpus_path is not None:
            def source() -> Iterator[list[str]]:
                return iter_corpus_hub(h.corpus_path, h.corpus_name, h.corpus_split, h.corpus_text_column,
                                       revision=h.revision)
        else:
            source = None
    if cfg.clean_markup:
        splits = {split: _cleaned_split(frame, split) for split, frame in splits.items()}
    train_texts = splits["train"]["text"].tolist()

    def corpus_batches() -> Iterator[list[str]]:
        batches = source() if source is not None else rebatched(train_texts)
        batches = capped(batches, cfg.max_corpus_documents)
        if cfg.clean_markup and source is not None:  # the train texts are cleaned already
            batches = _cleaned_batches(batches)
        yield from batches
        if cfg.corpus_add_train:
            yield from rebatched(train_texts, BATCH_DOCUMENTS)

    return LoadedData(splits, names, corpus_batches)


def _builtin_splits(cfg: DataParams, seed: int) -> tuple[dict[str, pd.DataFrame], list[str]]:
    b = cfg.builtin
    # Distinct, fixed sub-seeds: growing one split never changes the others.
    splits = {
        "train": builtin.generate_reviews(b.train_size, seed=seed * 10 + 1, label_noise=b.label_noise),
        "validation": builtin.generate_reviews(b.validation_size, seed=seed * 10 + 2, label_noise=b.label_noise),
        "test": builtin.generate_reviews(b.test_size, seed=seed * 10 + 3, label_noise=b.label_noise),
    }
    return splits, list(builtin.LABEL_NAMES)


def _cleaned_split(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    texts = [clean_markup(text) for text in frame["text"].tolist()]
    blank = [row for row, text in enumerate(texts, 1) if not text.strip()]
    if blank:
        more = f" ({len(blank)} rows affected)" if len(blank) > 1 else ""
        raise DataError(f"the {split} split: row {blank[0]}: nothing but markup is left after data.clean_markup"
                        f"{more}; remove the row, or set data.clean_markup: false")
    out = frame.copy()
    out["text"] = pd.Series(texts, dtype=object, index=frame.index)
    return out


def _cleaned_batches(batches: Iterator[list[str]]) -> Iterator[list[str]]:
    for batch in batches:
        cleaned = [text for text in map(clean_markup, batch) if text.strip()]
        if cleaned:
            yield cleaned

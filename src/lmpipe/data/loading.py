"""One entry point over the three data sources: labelled splits, their label names, and the corpus."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from lmpipe.config.schema import DataParams
from lmpipe.data import builtin, sources


@dataclass
class LoadedData:
    splits: dict[str, pd.DataFrame]  # "train", "validation", "test" -> frame[text: str, label: int]
    label_names: list[str]  # id -> name
    corpus: list[str]  # unlabelled documents for pretraining


def load_data(cfg: DataParams, seed: int) -> LoadedData:
    if cfg.source == "builtin":
        data = _builtin(cfg, seed)
    elif cfg.source == "files":
        f = cfg.files
        splits, names = sources.load_labelled_files(
            train=f.train, test=f.test, validation=f.validation, text_column=f.text_column,
            label_column=f.label_column, label_names=cfg.label_names,
            validation_fraction=cfg.validation_fraction, seed=seed, strict_labels=cfg.strict_labels)
        corpus = (sources.load_corpus_file(f.corpus, f.corpus_text_column, cfg.max_corpus_documents)
                  if f.corpus else None)
        data = LoadedData(splits, names, corpus if corpus is not None else splits["train"]["text"].tolist())
    else:
        h = cfg.hub
        splits, names = sources.load_labelled_hub(
            path=h.path, name=h.name, train_split=h.train_split, test_split=h.test_split,
            validation_split=h.validation_split, text_column=h.text_column, label_column=h.label_column,
            label_names=cfg.label_names, validation_fraction=cfg.validation_fraction, seed=seed,
            revision=h.revision, strict_labels=cfg.strict_labels)
        corpus = (sources.load_corpus_hub(h.corpus_path, h.corpus_name, h.corpus_split, h.corpus_text_column,
                                          cfg.max_corpus_documents, revision=h.revision)
                  if h.corpus_path else None)
        data = LoadedData(splits, names, corpus if corpus is not None else splits["train"]["text"].tolist())
    if cfg.max_corpus_documents is not None:
        data.corpus = data.corpus[:cfg.max_corpus_documents]
    return data


def _builtin(cfg: DataParams, seed: int) -> LoadedData:
    b = cfg.builtin
    # Distinct, fixed sub-seeds: growing one split never changes the others.
    splits = {
        "train": builtin.generate_reviews(b.train_size, seed=seed * 10 + 1, label_noise=b.label_noise),
        "validation": builtin.generate_reviews(b.validation_size, seed=seed * 10 + 2, label_noise=b.label_noise),
        "test": builtin.generate_reviews(b.test_size, seed=seed * 10 + 3, label_noise=b.label_noise),
    }
    corpus = builtin.generate_corpus(b.corpus_documents, seed=seed * 10 + 4)
    return LoadedData(splits, list(builtin.LABEL_NAMES), corpus)

"""The built-in data source: labelled reviews and an unlabelled pretraining corpus, from a seeded grammar."""

from __future__ import annotations

import random
from typing import Iterator

import pandas as pd

from lmpipe.data.builtin.grammar import REVIEW_STRUCTURES, Film, filler, plot_sentence
from lmpipe.data.builtin.lexicon import FILLERS

LABEL_NAMES: tuple[str, str] = ("negative", "positive")  # label id 0, 1

# Mixture of review structures (see `_review`). Tuned so that a unigram TF-IDF logistic regression
# lands around 0.7 accuracy while the rule stays exact.
_STRUCTURE_WEIGHTS = {"simple": 0.55, "contrast": 0.22, "verdict": 0.13, "intensity": 0.10}
_STRUCTURE_NAMES = tuple(_STRUCTURE_WEIGHTS)
_STRUCTURE_PROBS = tuple(_STRUCTURE_WEIGHTS.values())


def generate_reviews(n: int, seed: int, label_noise: float = 0.0) -> pd.DataFrame:
    """n labelled reviews: columns `text` (str) and `label` (int 0/1, see LABEL_NAMES).

    Deterministic for (n, seed, label_noise); uses private RNGs, never global state. The text only
    depends on (n, seed): label noise flips exactly round(label_noise * n) labels chosen by a
    separate seeded RNG, so noisy and clean frames differ in labels only.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1], got {label_noise}")
    rng = random.Random(f"lmpipe-reviews:{seed}")
    texts, labels = [], []
    for _ in range(n):
        sentences, label = _review(rng)
        texts.append(" ".join(sentences))
        labels.append(label)
    n_flip = round(label_noise * n)
    if n_flip:
        for i in random.Random(f"lmpipe-label-noise:{seed}").sample(range(n), n_flip):
            labels[i] = 1 - labels[i]
    return pd.DataFrame({"text": pd.Series(texts, dtype=object),
                         "label": pd.Series(labels, dtype="int64")})


def generate_corpus(n_documents: int, seed: int) -> list[str]:
    """Unlabelled documents for masked-LM pretraining, 2-8 sentences each: `iter_corpus` in one list."""
    return [document for batch in iter_corpus(n_documents, seed) for document in batch]


def iter_corpus(n_documents: int, seed: int, batch_documents: int = 10_000) -> Iterator[list[str]]:
    """The documents of `generate_corpus(n_documents, seed)`, in the same order, as lists of at most
    batch_documents, so a corpus larger than memory can be written out as it is generated.

    About 60% are reviews from the same grammar as `generate_reviews` (both polarities, labels
    dropped, sometimes with a plot summary attached); the rest are neutral descriptive texts (plot
    summaries, production notes). Uses its own RNG stream, so for the same seed the corpus does not
    replay the labelled reviews.
    """
    if n_documents < 0:
        raise ValueError(f"n_documents must be >= 0, got {n_documents}")
    if batch_documents < 1:
        raise ValueError(f"batch_documents must be >= 1, got {batch_documents}")
    rng = random.Random(f"lmpipe-corpus:{seed}")  # one stream over all batches: batching changes nothing
    documents: list[str] = []
    for _ in range(n_documents):
        documents.append(_corpus_document(rng))
        if len(documents) == batch_documents:
            yield documents
            documents = []
    if documents:
        yield documents


def _corpus_document(rng: random.Random) -> str:
    if rng.random() < 0.6:
        film = Film.sample(rng)
        sentences, _label = _review(rng, film)
        extra = rng.choice((0, 0, 1, 2, 3))
        if len(sentences) + extra < 2:
            extra = 2 - len(sentences)
        sentences = sentences + [plot_sentence(rng, film) for _ in range(extra)]
        sentences = sentences[:8]
    else:
        film = Film.sample(rng)
        n_sent = rng.randint(2, 8)
        sentences = [filler(rng, film) if rng.random() < 0.4 else plot_sentence(rng, film)
                     for _ in range(n_sent)]
    return " ".join(sentences)


def _review(rng: random.Random, film: Film | None = None) -> tuple[list[str], int]:
    """Sentences of one review and its noise-free label (0 negative, 1 positive)."""
    film = film or Film.sample(rng)
    polarity = rng.choice((-1, 1))  # balanced by construction
    structure = rng.choices(_STRUCTURE_NAMES, weights=_STRUCTURE_PROBS)[0]
    core = REVIEW_STRUCTURES[structure](rng, film, polarity)
    # Neutral filler around the evaluative block, keeping reviews within 1-6 sentences.
    room = max(0, 6 - len(core))
    n_fill = min(room, rng.choice((0, 1, 1, 2, 2, 3, 3)))
    fillers = [filler(rng, film, template) for template in rng.sample(FILLERS, n_fill)]
    before = rng.randint(0, n_fill)
    sentences = fillers[:before] + core + fillers[before:]
    return sentences, int(polarity > 0)

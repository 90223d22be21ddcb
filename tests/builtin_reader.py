"""Reference reader for the built-in review generator: recovers the noise-free label from the text alone.

It knows only the generator's word lists (`lmpipe.data.builtin.lexicon`), not its grammar, and applies
the rules stated in `lmpipe.data.builtin`: negation flips a clause, contrast and verdict markers pick the
deciding clause, and intensity breaks ties between opposing clauses. tests/test_builtin.py uses it to
show that every clean label is a function of the text.
"""

from __future__ import annotations

import re

from lmpipe.data.builtin.lexicon import (
    COORD_CONTRASTS,
    DESPITE_LEADING,
    DESPITE_TRAILING,
    LEXICON,
    NEGATORS,
    NUMBERS,
    SENTENCE_CONTRASTS,
    STRONG_INTENSIFIERS,
    SUB_LEADING,
    SUB_TRAILING,
    VERDICT_MARKERS,
    WEAK_INTENSIFIERS,
)

_TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+")
_CLAUSE_SPLIT_RE = re.compile(r", and |; | and ")
STRONG_RE = re.compile(r"\b(?:" + "|".join(STRONG_INTENSIFIERS) + r")\b")
RATING_RE = re.compile(r"\b(" + "|".join(NUMBERS) + r")(?: stars?)? out of (ten|five)\b")
WEAK_RE = re.compile(r"\b(?:" + "|".join(WEAK_INTENSIFIERS) + r")\b")


def _lower(markers: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(m.lower() for m in markers)


def _clause_polarity(clause: str) -> tuple[int, int] | None:
    """(polarity, strength) of a clause, or None if it carries no sentiment word."""
    rating = RATING_RE.search(clause)
    if rating:
        score = NUMBERS.index(rating.group(1)) + 1
        return (1 if score / (10 if rating.group(2) == "ten" else 5) > 0.5 else -1), 2
    tokens = _TOKEN_RE.findall(clause)
    hits = [i for i, tok in enumerate(tokens) if tok in LEXICON]
    if not hits:
        return None
    i = hits[0]
    n_neg = sum(tok in NEGATORS or tok.endswith("n't") for tok in tokens[:i])
    polarity = LEXICON[tokens[i]] * (-1) ** n_neg
    strength = 3 if STRONG_RE.search(clause) else 1 if WEAK_RE.search(clause) else 2
    return polarity, strength


def _deciding_clauses(sentence: str) -> tuple[list[str], bool]:
    """Clauses of a sentence that survive its connectives, and whether it overrides earlier ones."""
    s = sentence
    override = False
    for marker in _lower(SENTENCE_CONTRASTS):
        if s.startswith(marker + " "):
            s, override = s[len(marker) + 1:], True
            break
    for marker in _lower(SUB_LEADING + DESPITE_LEADING):
        if s.startswith(marker + " "):
            s = s.split(", ", 1)[1]  # main clause follows the subordinate one
            break
    else:
        for marker in _lower(SUB_TRAILING + DESPITE_TRAILING):
            if marker + " " in s:
                s = s.split(marker + " ", 1)[0]
                break
    for marker in _lower(COORD_CONTRASTS):
        if marker + " " in s:
            s = s.rsplit(marker + " ", 1)[1]  # the clause after the last "but" decides
    return _CLAUSE_SPLIT_RE.split(s), override


def review_sentiment(text: str) -> int:
    """Noise-free label of a generated review, computed from its text (0 negative, 1 positive)."""
    sentences = [s.rstrip(".!?") for s in _SENTENCE_SPLIT_RE.split(text.lower().strip())]
    evaluative = [s for s in sentences
                  if RATING_RE.search(s) or any(t in LEXICON for t in _TOKEN_RE.findall(s))]
    verdicts = [s for s in evaluative if s.startswith(_lower(VERDICT_MARKERS))]
    if verdicts:  # a marked verdict overrides everything else
        sentence = verdicts[-1]
        marker = next(m for m in _lower(VERDICT_MARKERS) if sentence.startswith(m))
        evaluative = [sentence[len(marker):].strip()]
    clauses: list[str] = []
    for sentence in evaluative:
        deciding, override = _deciding_clauses(sentence)
        clauses = deciding if override else clauses + deciding
    scored = [p for p in map(_clause_polarity, clauses) if p is not None]
    if not scored:
        raise ValueError(f"no evaluative clause in {text!r}")
    polarities = {p for p, _ in scored}
    if len(polarities) == 1:
        return int(polarities.pop() > 0)
    return int(max(scored, key=lambda ps: ps[1])[0] > 0)  # opposing unmarked clauses: strongest wins

"""The grammar of the built-in review generator: evaluative clauses, review structures and neutral sentences.

Every builder draws from the `random.Random` it is given, in a fixed order, so a seed fixes the text.
Evaluative builders take the clause's *effective* polarity (+1/-1); a negated clause carries a
sentiment word of the opposite polarity ("the pacing was never dull" is positive).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from lmpipe.data.builtin.lexicon import (
    ASPECTS,
    COORD_CONTRASTS,
    DESPITE_LEADING,
    DESPITE_TRAILING,
    DURATIONS,
    FILLERS,
    FIRST_NAMES,
    GENRES,
    LANGUAGES,
    LAST_NAMES,
    MASS_NOUNS,
    MINUTES,
    NAMED_ASPECTS,
    NEGATIVE_ADJECTIVES,
    NEGATIVE_FILM_VERBS,
    NEGATIVE_NOUNS,
    NEGATIVE_VERBS,
    NUMBERS,
    OBJECT_MODIFIERS,
    OBJECT_NOUNS,
    ORDINALS,
    PERIODS,
    PLACE_NOUNS,
    PLACES,
    PLOT_EVENTS,
    PLOT_FOLLOWUPS,
    PLOT_LOCATIONS,
    PLOT_OBJECTS,
    PLOT_VERBS,
    POSITIVE_ADJECTIVES,
    POSITIVE_FILM_VERBS,
    POSITIVE_NOUNS,
    POSITIVE_VERBS,
    PROFESSION_MODIFIERS,
    PROFESSION_NOUNS,
    PROFESSIONS,
    RELATIVES,
    SEASONS,
    SENTENCE_CONTRASTS,
    SETTINGS,
    SOURCES,
    STRONG_INTENSIFIERS,
    SUB_LEADING,
    SUB_TRAILING,
    TITLE_ADJECTIVES,
    TITLE_NOUNS,
    VERDICT_MARKERS,
    WEAK_INTENSIFIERS,
    WEEKDAYS,
    WHEN,
    WHERE,
)

_P_NEGATE = 0.35  # chance that an evaluative clause is expressed through negation
_P_NEGATE_SIMPLE = 0.15  # single-opinion reviews: mostly plain, the "easy" part bag-of-words gets


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------

def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _sentence(text: str, rng: random.Random) -> str:
    """Capitalise and terminate; '!' is sprinkled independently of sentiment so it carries no signal."""
    return _cap(text) + ("!" if rng.random() < 0.06 else ".")


def _intensifier(rng: random.Random, strength: int) -> str:
    """Modifier string (with trailing space) for intensity tier 1 (weak), 2 (none) or 3 (strong)."""
    if strength == 3:
        return rng.choice(STRONG_INTENSIFIERS) + " "
    if strength == 1:
        return rng.choice(WEAK_INTENSIFIERS) + " "
    return ""


def _random_strength(rng: random.Random) -> int:
    return rng.choice((1, 2, 2, 3, 3))


@dataclass
class Film:
    """Names shared by all sentences of one review, so that a review talks about one film."""

    title: str
    director: str
    actor: str
    actor2: str
    actor3: str
    composer: str
    writer: str
    cinematographer: str
    genre: str
    character: str

    @classmethod
    def sample(cls, rng: random.Random) -> Film:
        def person() -> str:
            return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"

        return cls(title=_title(rng), director=person(), actor=person(), actor2=person(),
                   actor3=person(), composer=person(), writer=person(), cinematographer=person(),
                   genre=rng.choice(GENRES), character=rng.choice(FIRST_NAMES))


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _title(rng: random.Random) -> str:
    form = rng.randrange(6)
    noun, noun2 = rng.choice(TITLE_NOUNS), rng.choice(TITLE_NOUNS)
    if form == 0:
        return f"The {noun}"
    if form == 1:
        return f"The {rng.choice(TITLE_ADJECTIVES)} {noun}"
    if form == 2:
        return f"The {noun} of {rng.choice(PLACES)}"
    if form == 3:
        return f"{rng.choice(FIRST_NAMES)}'s {noun}"
    if form == 4:
        return f"{rng.choice(TITLE_ADJECTIVES)} {_plural(noun)}"
    return f"A {noun} for the {noun2}"


# --------------------------------------------------------------------------------------------------
# Evaluative clauses. Each takes the clause's *effective* polarity (+1/-1) and whether to express it
# through negation (then a word of the opposite polarity is negated).
# --------------------------------------------------------------------------------------------------

def _aspect(rng: random.Random, film: Film) -> tuple[str, str, bool]:
    """(determiner, noun, plural) for a film aspect; sometimes tied to a named person."""
    if rng.random() < 0.2:
        role, noun = rng.choice(NAMED_ASPECTS)
        return f"{getattr(film, role)}'s", noun, False
    return rng.choice(ASPECTS)


def _adjective(rng: random.Random, surface: int) -> str:
    return rng.choice(POSITIVE_ADJECTIVES if surface > 0 else NEGATIVE_ADJECTIVES)


_NEGATED_COPULA = ("{cop} not", "{cop} not very", "{cop} not particularly", "{cop} not especially",
                   "{cop} not at all", "{cop} not exactly", "{cop} not really", "{cop}n't",
                   "{cop}n't very", "{cop}n't particularly", "{cop} never", "{cop} never really",
                   "{cop} hardly", "{cop} far from", "{cop} by no means", "{cop} not once")
_NEGATED_JUDGE = ("I would not call {np}", "I wouldn't call {np}", "no one would call {np}",
                  "nobody could call {np}", "I never found {np}", "I did not find {np}",
                  "I didn't find {np}", "I cannot say I found {np}")


def _aspect_clause(rng: random.Random, film: Film, polarity: int, negate: bool,
                   strength: int, aspect: tuple[str, str, bool] | None = None) -> str:
    """A clause judging one aspect: 'the pacing was utterly sluggish', 'I never found the plot dull'."""
    det, noun, plural = aspect or _aspect(rng, film)
    np_ = f"{det} {noun}"
    surface = -polarity if negate else polarity
    adj = _adjective(rng, surface)
    cop = rng.choice(("were", "are") if plural else ("was", "is"))
    kind = rng.random()
    if negate:
        if kind < 0.55:
            neg = rng.choice(_NEGATED_COPULA).format(cop=cop)
            return f"{np_} {neg} {adj}"
        if kind < 0.75:
            verb = rng.choice(("never felt", "did not feel", "didn't feel", "never seemed",
                               "did not seem", "never once felt"))
            return f"{np_} {verb} {adj}"
        if kind < 0.9 or det != "the":
            return rng.choice(_NEGATED_JUDGE).format(np=np_) + f" {adj}"
        # Attributive: "it does not have a sluggish score".
        subject = rng.choice(("it", "the film", film.title))
        art = "" if plural or noun in MASS_NOUNS else _article(adj) + " "
        verb = rng.choice(("never offers", "does not have", "doesn't have", "does not offer"))
        return f"{subject} {verb} {art}{adj} {noun}"
    mod = _intensifier(rng, strength)
    if kind < 0.55:
        return f"{np_} {cop} {mod}{adj}"
    if kind < 0.7:
        verb = rng.choice(("felt", "seemed", "came across as", "proved"))
        return f"{np_} {verb} {mod}{adj}"
    if kind < 0.85 or det != "the":
        return f"I found {np_} {mod}{adj}"
    subject = rng.choice(("it", "the film", film.title))
    verb = rng.choice(("has", "offers", "boasts", "comes with"))
    art = "" if plural or noun in MASS_NOUNS else _article(mod + adj) + " "
    return f"{subject} {verb} {art}{mod}{adj} {noun}"


def _film_clause(rng: random.Random, film: Film, polarity: int, negate: bool, strength: int) -> str:
    """A clause judging the whole film: 'I did not enjoy it', 'it is hardly worth the ticket'."""
    surface = -polarity if negate else polarity
    subject = rng.choice(("it", "the film", "the movie", film.title, "this one", "the picture"))
    kind = rng.randrange(7 if negate else 8)  # ratings (kind 7) are never negated
    if kind == 7:
        return _rating(rng, polarity)
    return _FILM_CLAUSE_KINDS[kind](rng, film, subject, surface, negate, strength)


# The kinds of `_film_clause`. Each takes (rng, film, subject, surface polarity, negate, strength), the
# polarity being that of the sentiment word itself (the opposite of the clause's when it is negated).

def _film_noun_clause(rng: random.Random, film: Film, subject: str, surface: int, negate: bool,
                      strength: int) -> str:
    """'it was an utterly dull thriller'."""
    adj = _adjective(rng, surface)
    noun = rng.choice([n for n in ("film", "movie", "picture", film.genre, "watch", "experience")
                       if not subject.endswith(n)])
    cop = rng.choice(("was", "is"))
    if negate:
        neg = rng.choice(("not", "hardly", "far from", "by no means", "never", "not really"))
        return f"{subject} {cop} {neg} {_article(adj)} {adj} {noun}"
    mod = _intensifier(rng, strength)
    return f"{subject} {cop} {_article(mod + adj)} {mod}{adj} {noun}"


def _liking_clause(rng: random.Random, film: Film, subject: str, surface: int, negate: bool,
                   strength: int) -> str:
    """'I loved it'."""
    past, base = rng.choice(POSITIVE_VERBS if surface > 0 else NEGATIVE_VERBS)
    obj = rng.choice(("it", "this film", "the film", film.title, "the whole thing", "the experience"))
    if negate:
        return rng.choice((f"I did not {base} {obj}", f"I didn't {base} {obj}",
                           f"I never {past} {obj}", f"I cannot say I {past} {obj}",
                           f"I can't say I {past} {obj}"))
    adv = {3: rng.choice(("really ", "truly ", "absolutely ", "thoroughly ", "genuinely ")),
           1: rng.choice(("somewhat ", "mildly ", "sort of ", "kind of ")), 2: ""}[strength]
    if strength > 1 and rng.random() < 0.2:  # "I somewhat hated every minute of it" reads oddly
        return f"I {adv}{past} every minute of it"
    return f"I {adv}{past} {obj}{rng.choice(('', '', ' from start to finish'))}"


def _film_verb_clause(rng: random.Random, film: Film, subject: str, surface: int, negate: bool,
                      strength: int) -> str:
    """Verbs with the film as subject: 'it never drags'."""
    third, base = rng.choice(POSITIVE_FILM_VERBS if surface > 0 else NEGATIVE_FILM_VERBS)
    if negate:
        return rng.choice((f"{subject} does not {base}", f"{subject} doesn't {base}",
                           f"{subject} never {third}", f"{subject} never once {third}"))
    adv = {3: rng.choice(("really ", "truly ", "utterly ")), 1: "somewhat ", 2: ""}[strength]
    return f"{subject} {adv}{third}"


def _verdict_noun_clause(rng: random.Random, film: Film, subject: str, surface: int, negate: bool,
                         strength: int) -> str:
    """Verdict nouns: 'it was a real gem', 'it was far from a disaster'."""
    noun = rng.choice(POSITIVE_NOUNS if surface > 0 else NEGATIVE_NOUNS)
    cop = rng.choice(("was", "is"))
    tail = rng.choice(("", "", " to watch", " from start to finish"))
    if negate:
        neg = rng.choice(("not", "never", "hardly", "far from", "by no means", "not exactly"))
        return f"{subject} {cop} {neg} {_article(noun)} {noun}{tail}"
    mod = {3: rng.choice(("real ", "true ", "absolute ", "complete ", "total ")),
           1: rng.choice(("minor ", "small ", "modest ")), 2: ""}[strength]
    return f"{subject} {cop} {_article(mod + noun)} {mod}{noun}{tail}"


def _recommendation_clause(rng: random.Random, film: Film, subject: str, surface: int, negate: bool,
                           strength: int) -> str:
    """'I would highly recommend it', 'skip it'."""
    if surface > 0:
        if negate:
            return rng.choice(("I would not recommend it", "I wouldn't recommend it",
                               "I would never recommend it", "I cannot recommend it",
                               "I can't recommend it", "I would hardly recommend it"))
        adv = {3: rng.choice(("highly ", "strongly ", "wholeheartedly ")),
               1: rng.choice(("cautiously ", "mildly ")), 2: ""}[strength]
        who = rng.choice(("", " to anyone", " to my friends", f" to fans of the {film.genre}",
                          " without hesitation"))
        return f"I would {adv}recommend it{who}"
    if negate:
        return rng.choice(("do not skip it", "don't skip it", "I would not skip it",
                           "nobody should skip it"))
    return rng.choice(("skip it", "I would skip it", "you can safely skip it",
                       "I would tell friends to skip it"))


def _worth_clause(rng: random.Random, film: Film, subject: str, surface: int, negate: bool,
                  strength: int) -> str:
    """Worth / waste: 'it is well worth watching', 'it was a complete waste of time'."""
    cop = rng.choice(("was", "is"))
    if surface > 0:
        what = rng.choice(("watching", "seeing", "your time", "the ticket price", "a look",
                           "the wait", "a rental", "the two hours"))
        if negate:
            neg = rng.choice(("not", "hardly", "not really", "by no means", "never"))
            return f"{subject} {cop} {neg} worth {what}"
        adv = {3: rng.choice(("well ", "absolutely ", "truly ")), 1: "probably ", 2: ""}[strength]
        return f"{subject} {cop} {adv}worth {what}"
    what = rng.choice(("time", "money", "an evening", "two hours", "a perfectly good evening"))
    if negate:
        neg = rng.choice(("not", "hardly", "by no means", "far from", "never"))
        return f"{subject} {cop} {neg} a waste of {what}"
    mod = {3: rng.choice(("complete ", "total ", "colossal ")), 1: "bit of a ", 2: ""}[strength]
    return f"{subject} {cop} a {mod}waste of {what}"


def _regret_or_adjective_clause(rng: random.Random, film: Film, subject: str, surface: int, negate: bool,
                                strength: int) -> str:
    """Regret, or an adjective about the whole film: 'I regret watching it', 'the film was dull'."""
    if surface < 0 and rng.random() < 0.5:
        what = rng.choice(("watching it", "seeing it", "buying a ticket", "renting it"))
        if negate:
            return rng.choice((f"I do not regret {what}", f"I don't regret {what}",
                               f"I never regretted {what}", f"I did not regret {what}"))
        return rng.choice((f"I regret {what}", f"I regretted {what}"))
    adj = _adjective(rng, surface)
    cop = rng.choice(("was", "is"))
    if negate:
        neg = rng.choice(_NEGATED_COPULA).format(cop=cop)
        return f"{subject} {neg} {adj}"
    return f"{subject} {cop} {_intensifier(rng, strength)}{adj}"


# Indexed by `kind` in `_film_clause` (kind 7, the rating, is handled there).
_FILM_CLAUSE_KINDS = (_film_noun_clause, _liking_clause, _film_verb_clause, _verdict_noun_clause,
                      _recommendation_clause, _worth_clause, _regret_or_adjective_clause)


def _rating(rng: random.Random, polarity: int) -> str:
    """'I would give it seven out of ten': high scores are positive; the middle is never used."""
    if rng.random() < 0.7:
        score = rng.choice(NUMBERS[6:] if polarity > 0 else NUMBERS[:4])
        scale = "ten"
    else:
        score = rng.choice(NUMBERS[3:5] if polarity > 0 else NUMBERS[:2])
        scale = "five"
        score += " star" if score == "one" else " stars"
    return rng.choice((f"I would give it {score} out of {scale}", f"{score} out of {scale}",
                       f"my rating is {score} out of {scale}", f"I give it {score} out of {scale}"))


def _clause(rng: random.Random, film: Film, polarity: int, negate: bool | None = None,
            strength: int | None = None, film_share: float = 0.35,
            p_negate: float = _P_NEGATE) -> str:
    """An evaluative clause of the given effective polarity, about an aspect or the whole film."""
    if negate is None:
        negate = rng.random() < p_negate
    if strength is None:
        strength = _random_strength(rng)
    if rng.random() < film_share:
        return _film_clause(rng, film, polarity, negate, strength)
    return _aspect_clause(rng, film, polarity, negate, strength)


def _despite_phrase(rng: random.Random, film: Film, polarity: int) -> str:
    """Noun phrase for 'despite ...': 'its sluggish pacing', 'Mara Vance's wooden performance'."""
    det, noun, _plural = _aspect(rng, film)
    if det == "the":
        det = rng.choice(("the", "its"))
    return f"{det} {_intensifier(rng, _random_strength(rng))}{_adjective(rng, polarity)} {noun}"


# --------------------------------------------------------------------------------------------------
# Review structures. Each returns a list of sentences whose deciding clause has polarity `polarity`.
# --------------------------------------------------------------------------------------------------

def _contrast(rng: random.Random, film: Film, polarity: int) -> list[str]:
    """X (overturned) + Y (decides), with the deciding clause marked by the connective."""
    other = _clause(rng, film, -polarity)
    decider = _clause(rng, film, polarity)
    form = rng.randrange(6)
    if form == 0:  # "X, but Y."
        return [_sentence(f"{other}{rng.choice(COORD_CONTRASTS)} {decider}", rng)]
    if form == 1:  # "X. However, Y."
        return [_sentence(other, rng), _sentence(f"{rng.choice(SENTENCE_CONTRASTS)} {decider}", rng)]
    if form == 2:  # "Although X, Y."
        return [_sentence(f"{rng.choice(SUB_LEADING)} {other}, {decider}", rng)]
    if form == 3:  # "Y, even though X."
        return [_sentence(f"{decider}{rng.choice(SUB_TRAILING)} {other}", rng)]
    phrase = _despite_phrase(rng, film, -polarity)
    if form == 4:  # "Despite its dull plot, Y."
        return [_sentence(f"{rng.choice(DESPITE_LEADING)} {phrase}, {decider}", rng)]
    return [_sentence(f"{decider}{rng.choice(DESPITE_TRAILING)} {phrase}", rng)]  # "Y, despite ..."


def _intensity(rng: random.Random, film: Film, polarity: int) -> list[str]:
    """Two unnegated aspect clauses of opposite polarity; the strongly intensified one decides."""
    first, second = rng.sample(ASPECTS, 2)
    strong = _aspect_clause(rng, film, polarity, False, 3, aspect=first)
    weak = _aspect_clause(rng, film, -polarity, False, 1, aspect=second)
    a, b = (strong, weak) if rng.random() < 0.5 else (weak, strong)
    return [_sentence(f"{a}{rng.choice((', and', ';', ' and'))} {b}", rng)]


def _simple(rng: random.Random, film: Film, polarity: int) -> list[str]:
    """One to three clauses that all share the review's polarity (each possibly negated)."""
    n_clauses = rng.choice((1, 2, 2, 3, 3))
    clauses = [_clause(rng, film, polarity, p_negate=_P_NEGATE_SIMPLE) for _ in range(n_clauses)]
    if n_clauses > 1 and rng.random() < 0.4:  # join two clauses: "the plot was gripping and I loved it"
        clauses[:2] = [f"{clauses[0]}{rng.choice((' and', ', and', ';'))} {clauses[1]}"]
    if rng.random() < 0.3:  # a score at the end, as many real reviews have
        clauses.append(_rating(rng, polarity))
    return [_sentence(_opinion_prefix(rng, c), rng) for c in clauses]


_OPINION_PREFIXES = ("Honestly,", "Frankly,", "In my opinion,", "For me,", "To my mind,", "Personally,",
                     "If you ask me,", "To be honest,")
_THAT_PREFIXES = ("I have to say", "I must say", "I think", "I felt that", "It seemed to me that")


def _opinion_prefix(rng: random.Random, clause: str) -> str:
    """Sometimes hedge a clause ("Frankly, the plot was dull"); imperatives are left alone."""
    if rng.random() >= 0.25 or clause.startswith(("skip", "do not", "don't", "you ", "my rating")):
        return clause
    if clause.startswith(("I ", "nobody", "no one")):  # "I think I found ..." reads badly
        return f"{rng.choice(_OPINION_PREFIXES)} {clause}"
    return f"{rng.choice(_OPINION_PREFIXES + _THAT_PREFIXES)} {clause}"


def _verdict(rng: random.Random, film: Film, polarity: int) -> list[str]:
    """Aspect sentences of arbitrary polarity plus a marked verdict sentence that decides."""
    body: list[str] = []
    for _ in range(rng.choice((1, 2, 2, 3))):
        aspect_polarity = rng.choice((-1, 1))
        style = rng.random()
        if style < 0.6:
            clause = _clause(rng, film, aspect_polarity, film_share=0.1)
            body.append(_sentence(_opinion_prefix(rng, clause), rng))
        elif style < 0.85:
            body.extend(_contrast(rng, film, aspect_polarity))
        else:
            body.extend(_intensity(rng, film, aspect_polarity))
    marker = rng.choice(VERDICT_MARKERS)
    style = rng.random()
    if style < 0.65:
        verdict = f"{marker} {_clause(rng, film, polarity, film_share=0.8)}"
    elif style < 0.85:  # a contrast inside the verdict: "Overall, X, but Y."
        other = _clause(rng, film, -polarity, film_share=0.5)
        verdict = f"{marker} {other}{rng.choice(COORD_CONTRASTS)} {_clause(rng, film, polarity)}"
    elif style < 0.9:  # "All in all, seven out of ten."
        verdict = f"{marker} {_rating(rng, polarity)}"
    else:  # fragment: "In short, not a great thriller."
        negate = rng.random() < _P_NEGATE
        adj = _adjective(rng, -polarity if negate else polarity)
        noun = rng.choice(("film", "movie", film.genre, "effort", "picture"))
        if negate:
            verdict = f"{marker} {rng.choice(('not', 'hardly', 'far from'))} {_article(adj)} {adj} {noun}"
        else:
            mod = _intensifier(rng, _random_strength(rng))
            verdict = f"{marker} {_article(mod + adj)} {mod}{adj} {noun}"
    verdict_sentence = _sentence(verdict, rng)
    return [verdict_sentence, *body] if rng.random() < 0.2 else [*body, verdict_sentence]


# Review structures by name (the generator mixes them; see `generator._STRUCTURE_WEIGHTS`).
REVIEW_STRUCTURES: dict[str, Callable[[random.Random, Film, int], list[str]]] = {
    "simple": _simple, "contrast": _contrast, "verdict": _verdict, "intensity": _intensity}


# --------------------------------------------------------------------------------------------------
# Neutral sentences: filler about the film or the viewing, plot summaries.
# --------------------------------------------------------------------------------------------------


def _event(rng: random.Random) -> str:
    """A plot event, from a fixed list or composed ("hides a rare violin under the floorboards")."""
    if rng.random() < 0.4:
        return rng.choice(PLOT_EVENTS)
    if rng.random() < 0.4:
        thing = rng.choice(PLOT_OBJECTS)
    else:
        thing = _noun_phrase(rng, OBJECT_MODIFIERS, OBJECT_NOUNS)
    if rng.random() < 0.5:
        where = rng.choice(PLOT_LOCATIONS)
    else:
        preposition = rng.choice(("in", "behind", "under", "near", "outside"))
        where = f"{preposition} the {rng.choice(PLACE_NOUNS)}"
    return f"{rng.choice(PLOT_VERBS)} {thing} {where}"


def _noun_phrase(rng: random.Random, modifiers: tuple[str, ...], nouns: tuple[str, ...]) -> str:
    modifier = rng.choice(modifiers)
    return f"{_article(modifier)} {modifier} {rng.choice(nouns)}"


def _profession(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(PROFESSIONS)
    return _noun_phrase(rng, PROFESSION_MODIFIERS, PROFESSION_NOUNS)


class _LazyFields(dict):
    """Template fields computed on first use, so a filler only spends random draws on its own slots."""

    def __init__(self, factories: dict[str, Callable[[], str]]) -> None:
        super().__init__()
        self._factories = factories

    def __missing__(self, key: str) -> str:
        value = self[key] = self._factories[key]()
        return value


def filler(rng: random.Random, film: Film, template: str | None = None) -> str:
    """A neutral sentence about the film or the viewing (no sentiment words)."""
    template = template or rng.choice(FILLERS)

    def genre(exclude: str = "") -> str:
        name = rng.choice([g for g in GENRES if not exclude.endswith(" " + g)])
        return f"{_article(name)} {name}"

    fields = _LazyFields({
        "title": lambda: film.title, "director": lambda: film.director, "actor": lambda: film.actor,
        "actor2": lambda: film.actor2, "actor3": lambda: film.actor3,
        "composer": lambda: film.composer, "writer": lambda: film.writer,
        "ordinal": lambda: rng.choice(ORDINALS), "source": lambda: rng.choice(SOURCES),
        "prof": lambda: _profession(rng), "event": lambda: _event(rng),
        "place": lambda: rng.choice(PLACES), "period": lambda: rng.choice(PERIODS),
        "setting": lambda: rng.choice(SETTINGS), "when": lambda: rng.choice(WHEN),
        "minutes": lambda: rng.choice(MINUTES), "duration": lambda: rng.choice(DURATIONS),
        "relative": lambda: rng.choice(RELATIVES),
        "season": lambda: rng.choice(SEASONS), "language": lambda: rng.choice(LANGUAGES),
        "genre_a": genre, "genre_b": lambda: genre(exclude=fields["genre_a"]),
        "season_count": lambda: rng.choice(("two", "three", "four", "six", "eight")),
        "weekday": lambda: rng.choice(WEEKDAYS), "other_title": lambda: _title(rng),
        "price": lambda: rng.choice(("eight", "twelve", "fifteen", "twenty", "nine")),
        "where": lambda: rng.choice(WHERE).format_map(fields),
    })
    return _cap(template.format_map(fields))


def plot_sentence(rng: random.Random, film: Film) -> str:
    """A neutral plot-summary sentence (used for the pretraining corpus)."""
    pron, poss = rng.choice((("he", "his"), ("she", "her")))  # singular: templates use 3sg verbs
    name = film.character
    template = rng.choice(PLOT_FOLLOWUPS)
    return _cap(template.format(
        pron=pron, poss=poss, name=name, prof=_profession(rng), event=_event(rng),
        relative=rng.choice(RELATIVES), period=rng.choice(PERIODS), setting=rng.choice(SETTINGS),
        place=rng.choice(PLACES), actor2=film.actor2,
    ))

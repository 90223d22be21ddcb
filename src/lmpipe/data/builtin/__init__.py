"""Built-in, offline data source: a seeded generator of English-like movie reviews.

The reviews come from a small grammar designed so that the sentiment label *cannot* be read off a bag
of words but *can* be computed exactly by a reader that follows word order:

* negation flips a clause ("the pacing was never dull" is positive);
* contrast picks the deciding clause: the clause after "but" / "yet" / "however" / "still" wins, and
  in "although X, Y" / "Y, even though X" / "despite X, Y" the main clause Y wins;
* intensity breaks ties between unmarked clauses of opposite polarity: "the plot was slightly dull,
  and the acting was truly superb" is positive because the strongly intensified clause wins;
* an explicitly marked verdict sentence ("Overall, ...", "In the end, ...") overrides every other
  sentence of the review;
* a score ("I would give it seven out of ten") is a clause like any other: high is positive.

Negation and overturned clauses put sentiment words on the "wrong" side: about a third of all
occurrences of positive words are in negative reviews (and vice versa), so a bag of words only gets
the easy part of the data (single-opinion reviews, which are mostly unnegated); tests/test_builtin.py
pins how far TF-IDF + logistic regression gets, while the rule is exact. The reference reader in
tests/builtin_reader.py recovers the noise-free label from the text alone; the tests use it to show
that the label is a function of the text.

Modules: `lexicon` (word lists and the sentiment lexicon), `grammar` (clause and sentence builders),
`generator` (reviews and the pretraining corpus). Public API: `LABEL_NAMES`, `generate_reviews`,
`generate_corpus`, `iter_corpus`.
"""

from lmpipe.data.builtin.generator import LABEL_NAMES, generate_corpus, generate_reviews, iter_corpus

__all__ = ["LABEL_NAMES", "generate_corpus", "generate_reviews", "iter_corpus"]

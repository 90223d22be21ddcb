"""The optional markup cleaning step (`data.clean_markup`): HTML tags and entities left in scraped text.

IMDB's reviews carry `<br /><br />` between paragraphs and entities such as `&amp;` or `&#39;`; a tokenizer
trained on them spends vocabulary on `br` and the model learns to predict tag fragments. Each run of tags (with
the whitespace around it) becomes one space, each entity its character; nothing else in the text changes.
"""

from __future__ import annotations

import html
import re

# A tag name follows `<` or `</` at once, so comparisons such as "a < b" and "<3" stay as they are.
_TAG = r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>"
_TAG_RUN = re.compile(rf"\s*(?:{_TAG}\s*)+")
_ENTITY = re.compile(r"&(?:#\d+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);")


def clean_markup(text: str) -> str:
    """`text` with every run of HTML tags replaced by one space and HTML entities by their characters; a tag
    run at either end of the text is removed."""
    if "<" in text:
        end = len(text)
        text = _TAG_RUN.sub(lambda match: "" if match.start() == 0 or match.end() == end else " ", text)
    if "&" in text:
        text = _ENTITY.sub(lambda match: html.unescape(match.group()), text)
    return text

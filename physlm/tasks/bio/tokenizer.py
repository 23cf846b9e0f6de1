"""A word-level tokenizer for biographies, QA and the Part 3.2 tasks.

Why word-level rather than GPT-2 BPE: the corpus is closed (pools + templates + question words), so a word
vocabulary of ~3k tokens covers it exactly, much like the 3,275 GPT-2 ids the paper's bioS uses (Part 3.3
App. A); it needs no download; and every value starts at a word boundary, so "first token of a value" is a
word. Dates split the way GPT-2 splits them: month, day and year are single tokens (GPT-2 BPE also makes
" 1996" and " 2" single tokens), so partial retrieval of the year or day behaves as in the paper's GPT-2
runs, not as Llama's digit-by-digit tokenizer would. Multi-word values (``Massachusetts Institute of
Technology``, ``Menlo Park, CA``) are several tokens, so whole-attribute and first-token accuracy differ as in
the paper.

Splitting rule: ``'s`` is a token, runs of letters/digits are tokens, and every other non-space character is
a token of its own. Text <-> tokens: tokens are joined by spaces except before punctuation (see
:func:`detokenize`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from physlm.tasks.base import TokenTable
from physlm.tasks.bio.pools import DAYS, MONTHS, PRONOUNS, YEARS, load_pools

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<mask>")
MARKERS = ("[Q]", "[A]", "[HINT]", "[DIRECT]")
"""QA markers: question start, answer start, and Part 3.2's "answer with a hint" / "answer directly" switches."""

EXTRA_WORDS = (
    "The person",
    "The person's name is .",
    "What is the birth date of ? Answer : .",
    "What is the birth city of ?",
    "Which university did study ?",
    "What major did study ?",
    "Which company did work for ?",
    "Where did work ?",
    "What is the birth day year month of ? ;",
    "What are the and of ?",
    "Was born in an even odd month ? Yes No",
    "What is the of modulo the luckiness of 's major the birth month",
    "Was born in a month in a year later than ? earlier",
    "Does have a luckier major than ? How many months later was born than ? How much luckier is 's major",
    "Who was born on in and studied at worked for ? Give the first full name of the person",
    "Whose first name full name person with birth date birth city university major employer",
    "- +",
    "Give the of person born on in who studied at and worked for ; What are the and of",
    "How many days later in the month was born on a later day of the month than",
)
"""Words of the question and task templates (a superset; unused words cost one embedding row each)."""

_TOKEN = re.compile(r"'s|[A-Za-z0-9\u00C0-\u024F]+|\S")
NO_SPACE_BEFORE = frozenset((".", ",", ";", "?", "'s", ":", "!"))


def tokenize(text: str) -> list[str]:
    """Split text into bio tokens (does not check that they are in the vocabulary)."""
    return _TOKEN.findall(text)


def detokenize(tokens: Sequence[str]) -> str:
    """Join tokens back into readable text (spaces before words, none before punctuation)."""
    out: list[str] = []
    for token in tokens:
        if out and token not in NO_SPACE_BEFORE:
            out.append(" ")
        out.append(token)
    return "".join(out)


def _corpus_strings() -> list[str]:
    pools = load_pools()
    strings: list[str] = []
    strings += pools.first_names + pools.middle_names + pools.last_names
    strings += pools.cities + pools.universities + pools.majors + pools.companies + pools.company_cities
    for templates in pools.templates.values():
        strings += [t.replace("{name}", " ").replace("{value}", " ") for t in templates]
    strings += list(MONTHS) + [str(d) for d in DAYS] + [str(y) for y in YEARS] + list(PRONOUNS)
    strings += [str(i) for i in range(100)]  # classification / subtraction answers (signs are tokens)
    strings += list(EXTRA_WORDS)
    return strings


class TokenizeError(ValueError):
    """Text holding a word the bio vocabulary does not have."""


@functools.lru_cache(maxsize=1)
def bio_token_table() -> TokenTable:
    """The bio vocabulary: special tokens (ids 0-3), markers, then every corpus word, sorted (fixed for all
    configs, so every bio model reads the same ids)."""
    words = sorted({t for s in _corpus_strings() for t in tokenize(s)} - set(SPECIAL_TOKENS) - set(MARKERS))
    return TokenTable(task="bio", tokens=SPECIAL_TOKENS + MARKERS + tuple(words))


def encode_text(text: str) -> list[int]:
    """Text to token ids; raises :class:`TokenizeError` naming the first unknown word."""
    table = bio_token_table()
    tokens = tokenize(text)
    index = table._index()
    missing = [t for t in tokens if t not in index]
    if missing:
        raise TokenizeError(f"{missing[0]!r} is not in the bio vocabulary (text: {text[:80]!r})")
    return [index[t] for t in tokens]

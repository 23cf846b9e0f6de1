"""A compact word-level tokenizer for iGSM text in the papers' format.

Every item and category name is one token, as are the numbers 0-22, the 52 solution symbols, the template
words, the operators and the punctuation ("'s" is a token, as in GPT-2 BPE). The official code uses GPT-2 BPE
(spec §1.8); this vocabulary is a documented deviation (spec §8.3, pitfall 7) and ``export_text`` gives the
plain text for any other tokenizer. Layout of a document: ``[PROB] problem [SOL] solution [ANS] answer`` (the
official ``222 problem 223 solution 224 answer``); the trainer adds ``<bos>``/``<eos>``.

Text <-> tokens: tokens are joined by single spaces, except that "'s", ".", ",", ";" and "?" attach to the
token before them; the retry word "BACK" is the token ``[BACK]``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from physlm.tasks.base import TokenTable
from physlm.tasks.igsm.catalog import load_catalog
from physlm.tasks.igsm.config import MOD

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<mask>")
MARKERS = ("[PROB]", "[SOL]", "[ANS]", "[BACK]", "[START]", "[MID]", "[END]")
"""Section markers (the official 222/223/224), the retry marker, and the V-probe markers."""
SYMBOLS = tuple("abcdefghijklmnopqrstuvwxyz") + tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
"""The 52 solution symbols, in the official ``feasible_symbols`` order."""
NUMBERS = tuple(str(i) for i in range(MOD))
OPERATORS = ("+", "-", "*", "=")
PUNCTUATION = (".", ",", ";", "?", "'s")
WORDS = (
    "The",
    "number",
    "of",
    "each",
    "equals",
    "the",
    "sum",
    "difference",
    "and",
    "more",
    "than",
    "times",
    "as",
    "much",
    "How",
    "many",
    "does",
    "have",
    "Define",
    "so",
)
NO_SPACE_BEFORE = frozenset((".", ",", ";", "?", "'s"))
TEXT_FORM = {"[BACK]": "BACK"}
"""Tokens written differently in text (the official retry step is the plain word " BACK")."""


class TokenizeError(ValueError):
    """Text that the iGSM vocabulary cannot represent."""


@functools.lru_cache(maxsize=1)
def igsm_token_table() -> TokenTable:
    """The iGSM vocabulary: special tokens (ids 0-3), markers, numbers, symbols, operators, punctuation,
    template words, the 16 category names and every item name (sorted)."""
    catalog = load_catalog()
    tokens = (
        SPECIAL_TOKENS
        + MARKERS
        + NUMBERS
        + SYMBOLS
        + OPERATORS
        + PUNCTUATION
        + WORDS
        + catalog.categories
        + catalog.item_names
    )
    return TokenTable(task="igsm", tokens=tokens)


def detokenize(tokens: Sequence[str]) -> str:
    """Token strings to text (no leading space; the official strings start with one)."""
    parts: list[str] = []
    for tok in tokens:
        text = TEXT_FORM.get(tok, tok)
        if parts and tok not in NO_SPACE_BEFORE:
            parts.append(" ")
        parts.append(text)
    return "".join(parts)


def _trie_pattern(words: Sequence[str]) -> str:
    """A regex matching any of ``words`` (longest first) built as a character trie, far faster than a flat
    alternation of ~1,500 names."""
    trie: dict = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = True

    def build(node: dict) -> str:
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch != ""]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return "(?:" + body + ")?" if "" in node else body

    return build(trie)


@functools.lru_cache(maxsize=1)
def _scanner() -> re.Pattern[str]:
    catalog = load_catalog()
    names = _trie_pattern(catalog.item_names + catalog.categories)
    # A name must end at a word boundary; "'s" may follow directly ("Trader Joe's's Milk").
    return re.compile(
        rf"\s*(?:(?P<name>{names})(?![A-Za-z0-9&\-])|(?P<other>'s|\[[A-Z]+\]|<[a-z]+>|[A-Za-z]+|\d+|[+\-*=.,;?]))"
    )


def tokenize(text: str) -> list[str]:
    """Text in the iGSM format to token strings (TokenizeError naming the position of anything unknown)."""
    scanner = _scanner()
    table = igsm_token_table()
    index = table._index()
    out: list[str] = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        m = scanner.match(text, pos)
        if m is None or m.end() == pos:
            raise TokenizeError(f"cannot tokenize iGSM text at position {pos}: {text[pos : pos + 30]!r}")
        tok = m.group("name") or m.group("other")
        tok = "[BACK]" if tok == "BACK" else tok
        if tok not in index:
            raise TokenizeError(f"{tok!r} (position {m.start()}) is not in the iGSM vocabulary")
        out.append(tok)
        pos = m.end()
    return out


def encode(text: str) -> list[int]:
    """Text to iGSM token ids."""
    return igsm_token_table().encode(tokenize(text))


def decode(ids: Sequence[int]) -> str:
    """iGSM token ids to text."""
    return detokenize(igsm_token_table().decode(ids))

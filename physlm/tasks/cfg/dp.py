"""Exact dynamic programs over a layered CFG: membership, probability, parses, next-token distributions.

All functions take a sentence as terminal symbols 1..T (not model token ids; see
``physlm.tasks.cfg.ids_to_symbols``). They are exact: a sparse inside chart in log space
(:mod:`physlm.tasks.cfg.dp_chart`) built level by level, followed for the next-token distribution by the prefix DP
of the spec (§4.3), which pushes "symbol A starts at position i" weights from the root down the levels.
Log-space weights cannot underflow, so long sentences (cfg3j/k, 2000 tokens) are as exact as short ones.

Rows of :func:`next_token_distribution` are conditional distributions given a prefix; after a prefix that
the grammar cannot produce they are undefined (the official code divides by zero there), so by default
such a sentence is refused with its first impossible position; ``on_invalid="nan"`` fills those rows
with NaN instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from jaxtyping import Float64

from physlm.tasks.cfg.dp_chart import Chart, build_chart, compile_grammar, terminal_starts
from physlm.tasks.cfg.grammar import Grammar
from physlm.tasks.cfg.sample import ParseNode

__all__ = ["count_parses", "is_valid", "log_prob", "next_token_distribution", "parse_tree"]


def _as_symbols(grammar: Grammar, symbols: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Validate a sentence of terminal symbols and return it as an int64 array."""
    t = grammar.num_terminals
    if isinstance(symbols, (str, bytes)):
        raise ValueError(f"symbols must be a sequence of integers 1..{t}, got a string")
    if isinstance(symbols, np.ndarray):
        if symbols.ndim != 1:
            raise ValueError(f"symbols must be a flat sequence of integers, got an array of shape {symbols.shape}")
        if symbols.dtype == np.bool_ or not np.issubdtype(symbols.dtype, np.integer):
            raise ValueError(f"symbols must be integers 1..{t}, got an array of dtype {symbols.dtype}")
        arr = symbols.astype(np.int64)
    elif not isinstance(symbols, Sequence):
        raise ValueError(f"symbols must be a list, tuple or 1-D array of integers 1..{t}, got {type(symbols).__name__}")
    else:
        # One pass over the element types (fast in C) instead of a Python-level check per element.
        kinds = set(map(type, symbols))
        if any(k is bool or not issubclass(k, (int, np.integer)) for k in kinds):
            i, bad = next((i, s) for i, s in enumerate(symbols)
                          if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)))
            raise ValueError(
                f"symbols[{i}] = {bad!r} is not an integer terminal symbol 1..{t} (type {type(bad).__name__})"
            )
        arr = np.array(symbols, dtype=np.int64)
    if arr.size == 0:
        raise ValueError("symbols is empty; a sentence has at least one terminal")
    out = np.flatnonzero((arr < 1) | (arr > t))
    if out.size:
        i = int(out[0])
        raise ValueError(
            f"symbols[{i}] = {int(arr[i])} is outside the terminals 1..{t} of grammar {grammar.name!r} "
            f"({out.size} such position(s)); model token ids must be converted with ids_to_symbols first"
        )
    return arr


def _chart(grammar: Grammar, symbols: Sequence[Any] | np.ndarray, with_counts: bool = False) -> Chart:
    return build_chart(compile_grammar(grammar), _as_symbols(grammar, symbols), with_counts)


def log_prob(grammar: Grammar, symbols: Sequence[Any] | np.ndarray) -> float:
    """Natural log of the probability that the grammar generates exactly ``symbols`` (all parses summed).

    ``-inf`` when the sentence is not in the language.
    """
    chart = _chart(grammar, symbols)
    return float(chart.root_logw()[chart.n])


def is_valid(grammar: Grammar, symbols: Sequence[Any] | np.ndarray) -> bool:
    """Whether the grammar can generate exactly this sentence."""
    return log_prob(grammar, symbols) > -math.inf


def next_token_distribution(
    grammar: Grammar,
    symbols: Sequence[Any] | np.ndarray,
    on_invalid: Literal["raise", "nan"] = "raise",
) -> Float64[np.ndarray, "rows vocab"]:
    """Ground-truth next-symbol distributions along a sentence (spec §4.3).

    Row i (i = 0..n) is the distribution of what follows the first i symbols, over (EOS, 1, .., T):
    ``P(EOS) = P(sentence = x[:i]) / P(prefix x[:i])`` and ``P(t) = P(prefix x[:i] t) / P(prefix x[:i])``.
    Row 0 is the first-symbol distribution. Rows after a prefix the grammar cannot produce are undefined:
    ``on_invalid="raise"`` raises ValueError naming the first impossible symbol; ``"nan"`` makes them NaN.
    """
    if on_invalid not in ("raise", "nan"):
        raise ValueError(f"on_invalid must be 'raise' or 'nan', got {on_invalid!r}")
    chart = _chart(grammar, symbols)
    logits = np.concatenate([chart.root_logw()[:, None], terminal_starts(chart)], axis=1)
    peak = logits.max(axis=1, keepdims=True)
    dead = ~np.isfinite(peak[:, 0])
    if dead.any() and on_invalid == "raise":
        first = int(np.argmax(dead))
        raise ValueError(
            f"the first {first} symbols are not a prefix of any sentence of grammar {grammar.name!r} "
            f"(symbol {int(chart.x[first - 1])} at position {first - 1} is impossible there), so rows "
            f"{first}.. are undefined; pass on_invalid='nan' to get NaN rows instead"
        )
    with np.errstate(invalid="ignore"):
        probs = np.exp(logits - np.where(dead[:, None], 0.0, peak))
    total = probs.sum(axis=1, keepdims=True)
    return np.divide(probs, total, out=np.full_like(probs, np.nan), where=~dead[:, None])


def count_parses(grammar: Grammar, symbols: Sequence[Any] | np.ndarray) -> int:
    """Exact number of parse trees of the sentence (0 if it is not in the language)."""
    chart = _chart(grammar, symbols, with_counts=True)
    root = chart.symbols[0]
    hit = np.flatnonzero(root.end == chart.n)
    return int(root.count[hit[0]]) if hit.size else 0


def parse_tree(grammar: Grammar, symbols: Sequence[Any] | np.ndarray) -> ParseNode:
    """One parse tree of a sentence in the language (ValueError otherwise).

    Chosen greedily from the root: at each node the rule, then the split points, with the largest
    probability mass (the most probable tree when the sentence has a unique parse). Leaves are terminals
    (``symbol`` = terminal − 1) at depth L − 1, as in :class:`physlm.tasks.cfg.sample.ParseNode`.
    """
    chart = _chart(grammar, symbols)
    if not np.isfinite(chart.root_logw()[chart.n]):
        raise ValueError(
            f"the sentence of {chart.n} symbols is not in the language of grammar {grammar.name!r}; "
            "it has no parse tree (check with is_valid first)"
        )
    leaf = grammar.num_levels - 1
    spans = {
        d: dict(zip(zip(it.label.tolist(), it.start.tolist(), it.end.tolist()), it.logw.tolist()))
        for d, it in chart.symbols.items()
    }
    partial_w: dict[int, dict[tuple[int, int, int], float]] = {}
    ends: dict[int, dict[tuple[int, int], list[tuple[int, float]]]] = {}
    for d, part in chart.partials.items():
        rows = list(zip(part.label.tolist(), part.start.tolist(), part.end.tolist(), part.logw.tolist()))
        partial_w[d] = {(pid, i, e): w for pid, i, e, w in rows}
        ends[d] = {}
        for pid, i, e, w in rows:
            ends[d].setdefault((pid, i), []).append((e, w))
    pids = chart.comp.pid

    def build(d: int, a: int, i: int, e: int) -> ParseNode:
        if d == leaf:
            return ParseNode(d, a, i, e, None, ())
        scores = [
            math.log(p) + partial_w[d].get((pids[d][rule], i, e), -math.inf)
            for p, rule in zip(grammar.probabilities(d, a), grammar.rules[d][a])
        ]
        r = max(range(len(scores)), key=scores.__getitem__)
        rule = grammar.rules[d][a][r]
        children: list[ParseNode] = []
        end = e
        for s in range(len(rule) - 1, 0, -1):
            last = rule[s]
            k = max(
                ((k, w + spans[d + 1].get((last, k, end), -math.inf)) for k, w in ends[d][(pids[d][rule[:s]], i)]),
                key=lambda kw: kw[1],
            )[0]
            children.append(build(d + 1, last, k, end))
            end = k
        children.append(build(d + 1, rule[0], i, end))
        return ParseNode(d, a, i, e, r, tuple(reversed(children)))

    return build(0, 0, 0, chart.n)

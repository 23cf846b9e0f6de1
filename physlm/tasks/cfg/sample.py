"""Sampling sentences with their generating trees and per-token labels.

The sampler reproduces the official ``CFG_Node.generate`` stream exactly: depth-first, left to right, one
``rng.randint(0, k - 1)`` per nonterminal in pre-order (``randrange(k)`` draws the same numbers), so
``random.Random(7711)`` gives the official cfg3f and cfg3k test sentences. Labels come from the generating
tree, never from a re-parse (ambiguous sentences have several trees).

Label layout (DEVELOPERS.md): arrays of shape (L − 2, n), row r is level ℓ = r + 2:
``ancestor`` (0-based symbol index of s_ℓ(i)), ``ancestor_index`` (p_ℓ(i), 1-based),
``end`` (b_ℓ(i) ∈ {0, 1}); and ``end_level`` (n,) = b♯(i) ∈ {2..L−1}, or 0 when i ends no NT.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import random
from functools import cached_property

import numpy as np
from jaxtyping import Int

from physlm.tasks.cfg.grammar import Grammar
from physlm.tasks.cfg.grammar_io import official_ids


@dataclasses.dataclass(frozen=True)
class ParseNode:
    """One node of a parse tree: ``symbol`` at ``depth`` (0 = root) spanning terminals ``[start, end)``."""

    depth: int
    symbol: int
    start: int
    end: int
    rule: int | None
    """index of the rule used (None for terminals)"""
    children: tuple[ParseNode, ...]


@dataclasses.dataclass(frozen=True)
class TreeLevels:
    """A generating tree stored level by level: the nodes of each depth in left-to-right order.

    Nodes of one depth tile the sentence, so ``starts[d][j]`` (first terminal of node j) determines the spans.
    """

    symbols: tuple[tuple[int, ...], ...]
    starts: tuple[tuple[int, ...], ...]
    rules: tuple[tuple[int, ...], ...]


@dataclasses.dataclass(frozen=True)
class CFGSample:
    """One sentence, its per-token labels and its generating tree."""

    symbols: tuple[int, ...]
    """terminal symbols 1..T (not model token ids)"""
    ancestor: Int[np.ndarray, "nt_levels n"]
    ancestor_index: Int[np.ndarray, "nt_levels n"]
    end: Int[np.ndarray, "nt_levels n"]
    end_level: Int[np.ndarray, " n"]
    levels: TreeLevels

    def __len__(self) -> int:
        return len(self.symbols)

    @cached_property
    def tree(self) -> ParseNode:
        """The generating tree as nested :class:`ParseNode` objects (built on first access)."""
        return build_tree(self.levels, self.symbols)


@dataclasses.dataclass(frozen=True)
class _SamplerTables:
    counts: tuple[tuple[int, ...], ...]
    cumulative: tuple[tuple[tuple[float, ...], ...], ...] | None
    """cumulative rule probabilities, None for uniform choice (the official randint stream)"""
    reversed_rules: tuple[tuple[tuple[tuple[int, ...], ...], ...], ...]


def _tables(grammar: Grammar) -> _SamplerTables:
    """Per-grammar lookup tables, cached on the (frozen) grammar instance."""
    cached = grammar.__dict__.get("_sampler_tables")
    if cached is None:
        cached = _SamplerTables(
            counts=tuple(tuple(len(sym) for sym in level) for level in grammar.rules),
            cumulative=None
            if grammar.rule_probs is None
            else tuple(tuple(tuple(itertools.accumulate(p)) for p in level) for level in grammar.rule_probs),
            reversed_rules=tuple(
                tuple(tuple(tuple(reversed(r)) for r in sym) for sym in level) for level in grammar.rules
            ),
        )
        object.__setattr__(grammar, "_sampler_tables", cached)
    return cached


def sample_tree(grammar: Grammar, rng: random.Random) -> tuple[list[int], TreeLevels]:
    """Draw one sentence and its generating tree (level by level). Consumes ``rng`` like the official code."""
    last = grammar.num_levels - 1
    tables = _tables(grammar)
    counts, cumulative, rev_rules = tables.counts, tables.cumulative, tables.reversed_rules
    out: list[int] = []
    syms: list[list[int]] = [[] for _ in range(last)]
    starts: list[list[int]] = [[] for _ in range(last)]
    chosen: list[list[int]] = [[] for _ in range(last)]
    stack = [(0, 0)]
    while stack:
        d, s = stack.pop()
        if d == last:
            out.append(s + 1)
            continue
        if cumulative is None:
            j = rng.randrange(counts[d][s])  # == randint(0, k - 1): same draws as the official sampler
        else:
            cum = cumulative[d][s]
            j = min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)
        syms[d].append(s)
        starts[d].append(len(out))
        chosen[d].append(j)
        child_depth = d + 1
        stack.extend([(child_depth, c) for c in rev_rules[d][s][j]])
    levels = TreeLevels(
        symbols=tuple(map(tuple, syms)), starts=tuple(map(tuple, starts)), rules=tuple(map(tuple, chosen))
    )
    return out, levels


def sample_symbols(grammar: Grammar, rng: random.Random) -> list[int]:
    """Only the terminal symbols of one sentence (same rng stream as :func:`sample_sentence`)."""
    return sample_tree(grammar, rng)[0]


def labels_from_levels(
    levels: TreeLevels, n: int
) -> tuple[
    Int[np.ndarray, "nt_levels n"],
    Int[np.ndarray, "nt_levels n"],
    Int[np.ndarray, "nt_levels n"],
    Int[np.ndarray, " n"],
]:
    """Per-token labels (ancestor, ancestor_index, end, end_level) of a tree given level by level."""
    n_nt = len(levels.symbols) - 1  # probed levels ℓ = 2..L−1 are depths 1..L−2
    ancestor = np.empty((n_nt, n), dtype=np.int64)
    ancestor_index = np.empty((n_nt, n), dtype=np.int64)
    end = np.zeros((n_nt, n), dtype=np.int64)
    for r in range(n_nt):
        starts = np.asarray(levels.starts[r + 1], dtype=np.int64)
        lengths = np.diff(np.append(starts, n))
        ancestor[r] = np.repeat(np.asarray(levels.symbols[r + 1], dtype=np.int64), lengths)
        ancestor_index[r] = np.repeat(np.arange(1, len(starts) + 1, dtype=np.int64), lengths)
        end[r, starts[1:] - 1] = 1
        end[r, n - 1] = 1
    # b♯(i): the level closest to the root at which i is an NT-end; ends nest, so count the 1s per column.
    n_ends = end.sum(axis=0)
    end_level = np.where(n_ends > 0, n_nt + 2 - n_ends, 0).astype(np.int64)
    return ancestor, ancestor_index, end, end_level


def sample_sentence(grammar: Grammar, rng: random.Random) -> CFGSample:
    """Sample one sentence with its labels and generating tree (official rng stream)."""
    symbols, levels = sample_tree(grammar, rng)
    ancestor, ancestor_index, end, end_level = labels_from_levels(levels, len(symbols))
    return CFGSample(
        symbols=tuple(symbols),
        ancestor=ancestor,
        ancestor_index=ancestor_index,
        end=end,
        end_level=end_level,
        levels=levels,
    )


def build_tree(levels: TreeLevels, symbols: tuple[int, ...] | list[int]) -> ParseNode:
    """Nested ParseNodes from a level-by-level tree; leaves are terminals (symbol = terminal − 1)."""
    n = len(symbols)
    leaf_depth = len(levels.symbols)
    below = [ParseNode(leaf_depth, t - 1, i, i + 1, None, ()) for i, t in enumerate(symbols)]
    # Bottom-up: a node's children are the next depth's nodes that start inside its span (spans tile).
    for d in range(leaf_depth - 1, -1, -1):
        stops = [*levels.starts[d][1:], n]
        nodes = []
        cursor = 0
        for sym, start, stop, rule in zip(levels.symbols[d], levels.starts[d], stops, levels.rules[d]):
            first = cursor
            while cursor < len(below) and below[cursor].start < stop:
                cursor += 1
            nodes.append(ParseNode(d, sym, start, stop, rule, tuple(below[first:cursor])))
        below = nodes
    (root,) = below
    return root


def official_label_rows(grammar: Grammar, sample: CFGSample) -> list[list[int]]:
    """Per-token rows in the official ``generate_onedata`` format, leaf to root with official ids.

    Row i is ``[x_i, −c_L, id(s_{L−1}), −c_{L−1}, ..., id(root), −c_1]`` with counters c = p_ℓ(i) + 1.
    """
    ids = official_ids(grammar)
    n = len(sample.symbols)
    root_id = ids[0][0]
    rows = []
    for i, x in enumerate(sample.symbols):
        row = [x, -(i + 2)]
        for r in range(sample.ancestor.shape[0] - 1, -1, -1):
            row += [ids[r + 1][int(sample.ancestor[r, i])], -(int(sample.ancestor_index[r, i]) + 1)]
        row += [root_id, -2]
        rows.append(row)
    assert len(rows) == n
    return rows

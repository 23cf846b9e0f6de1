"""Numeric core of the exact CFG dynamic programs (:mod:`physlm.tasks.cfg.dp`): sparse log-space charts.

A chart holds, level by level, only the spans that some symbol actually derives: for cfg3f sentences a
few hundred (start, end, symbol) items per level out of the ~10^5 a dense CYK table over the per-level span
bounds would hold (measured: 120 of 407,040 at depth 1). Levels are strictly layered, so each level
is built from the one below it with vectorised joins: a rule prefix over [i, k) meets a child item that
starts at k (a CSR index on (symbol, start)), duplicates merge with log-sum-exp. Weights are natural-log
probabilities, so nothing under- or overflows at any sentence length; parse counts ride along as exact
Python integers when asked for.

Rule prefixes ("partials"): for the rules of the depth-d symbols, every distinct tuple of first children
gets a prefix id (pid); the first ``sizes[d + 1]`` pids are the single children themselves. Partials are
both the intermediate products of the inside pass and what the prefix DP (spec §4.3) needs: a rule's
child c_s starts where the partial (c_0..c_{s−1}) ends.
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

import numpy as np
from jaxtyping import Float64, Int64

from physlm.tasks.cfg.grammar import Grammar

Key = tuple[int, ...]
"""A rule prefix: the first few children of a rule (all on the same depth)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Csr:
    """Rows of a table grouped by an integer key: rows ``order[offsets[k]:offsets[k + 1]]`` have key k."""

    order: Int64[np.ndarray, " rows"]
    offsets: Int64[np.ndarray, " keys_plus_1"]


def csr(keys: Int64[np.ndarray, " rows"], n_keys: int) -> Csr:
    """Index rows by key (keys in 0..n_keys − 1)."""
    order = np.argsort(keys, kind="stable")
    offsets = np.zeros(n_keys + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n_keys), out=offsets[1:])
    return Csr(order=order.astype(np.int64), offsets=offsets)


def expand(queries: Int64[np.ndarray, " q"], index: Csr) -> tuple[Int64[np.ndarray, " m"], Int64[np.ndarray, " m"]]:
    """All (query row, indexed row) pairs with equal keys: the join of the queries with the index."""
    lo = index.offsets[queries]
    counts = index.offsets[queries + 1] - lo
    q_rows = np.repeat(np.arange(len(queries), dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    within = np.arange(len(q_rows), dtype=np.int64) - np.repeat(first, counts)
    return q_rows, index.order[np.repeat(lo, counts) + within]


def group_logsumexp(
    keys: Int64[np.ndarray, " m"], logw: Float64[np.ndarray, " m"], counts: np.ndarray | None
) -> tuple[Int64[np.ndarray, " u"], Float64[np.ndarray, " u"], np.ndarray | None]:
    """Merge rows with equal keys: log-sum-exp of the weights (and the sum of the counts)."""
    if len(keys) == 0:
        return keys, logw, counts
    order = np.argsort(keys, kind="stable")
    k, w = keys[order], logw[order]
    new = np.concatenate(([True], k[1:] != k[:-1]))
    if new.all():  # the common case on cfg3 grammars: nothing to merge
        return k, w, None if counts is None else counts[order]
    first = np.flatnonzero(new)
    peak = np.maximum.reduceat(w, first)
    sizes = np.diff(np.append(first, len(k)))
    total = np.add.reduceat(np.exp(w - np.repeat(peak, sizes)), first)
    merged = None if counts is None else np.add.reduceat(counts[order], first)
    return k[first], peak + np.log(total), merged


@dataclasses.dataclass(frozen=True, eq=False)
class Level:
    """Compiled rules of the depth-d symbols (children on depth d + 1)."""

    prefixes: tuple[Key, ...]
    """pid -> prefix; pids 0..sizes[d+1]−1 are the single children"""
    extensions: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, Csr], ...]
    """per prefix length 2, 3, ...: (parent pid, new pid, appended child) arrays, indexed by parent pid"""
    full: tuple[np.ndarray, np.ndarray, Csr]
    """per rule: (parent symbol, log probability), indexed by the pid of its whole right-hand side"""
    steps: tuple[np.ndarray, np.ndarray, np.ndarray, Csr]
    """prefix DP moves per (symbol, prefix P, child c): (pid of P or −1 if empty, c, log P(rule extends
    P + c)), indexed by symbol"""


@dataclasses.dataclass(frozen=True, eq=False)
class Compiled:
    """A grammar preprocessed for the DPs (cached per grammar by :func:`compile_grammar`)."""

    grammar: Grammar
    levels: tuple[Level, ...]
    pid: tuple[dict[Key, int], ...]

    @property
    def num_levels(self) -> int:
        return self.grammar.num_levels


def _i64(values: list[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _compile_level(grammar: Grammar, d: int) -> tuple[Level, dict[Key, int]]:
    n_child = grammar.sizes[d + 1]
    keys: set[Key] = set()
    for sym_rules in grammar.rules[d]:
        for rule in sym_rules:
            keys.update(rule[:j] for j in range(2, len(rule) + 1))
    prefixes = tuple((c,) for c in range(n_child)) + tuple(sorted(keys, key=lambda k: (len(k), k)))
    pid = {key: i for i, key in enumerate(prefixes)}
    n_pid = len(prefixes)
    extensions = []
    for length in range(2, max(len(k) for k in prefixes) + 1):
        group = [k for k in prefixes if len(k) == length]
        parent = _i64([pid[k[:-1]] for k in group])
        extensions.append((parent, _i64([pid[k] for k in group]), _i64([k[-1] for k in group]), csr(parent, n_pid)))
    full_pid, full_sym, full_logp = [], [], []
    step_sym, step_pid, step_child, step_logw = [], [], [], []
    for a, sym_rules in enumerate(grammar.rules[d]):
        probs = grammar.probabilities(d, a)
        weight: dict[Key, float] = {}
        for rule, p in zip(sym_rules, probs):
            full_pid.append(pid[rule])
            full_sym.append(a)
            full_logp.append(math.log(p))
            for j in range(1, len(rule) + 1):
                weight[rule[:j]] = weight.get(rule[:j], 0.0) + p
        for key, w in sorted(weight.items()):
            step_sym.append(a)
            step_pid.append(pid[key[:-1]] if len(key) > 1 else -1)
            step_child.append(key[-1])
            step_logw.append(math.log(w))
    full_pid_arr = _i64(full_pid)
    level = Level(
        prefixes=prefixes,
        extensions=tuple(extensions),
        full=(_i64(full_sym), np.asarray(full_logp), csr(full_pid_arr, n_pid)),
        steps=(_i64(step_pid), _i64(step_child), np.asarray(step_logw), csr(_i64(step_sym), grammar.sizes[d])),
    )
    return level, pid


@lru_cache(maxsize=64)
def compile_grammar(grammar: Grammar) -> Compiled:
    """Prefix ids, joins and prefix-DP moves of every level of a grammar."""
    levels, pids = zip(*(_compile_level(grammar, d) for d in range(grammar.num_levels - 1)))
    return Compiled(grammar=grammar, levels=tuple(levels), pid=tuple(pids))


@dataclasses.dataclass(frozen=True, eq=False)
class Spans:
    """Sparse chart items: ``label`` (a symbol or a prefix id) derives x[start:end] with log weight ``logw``.

    ``count`` (object array of Python ints, optional) is the number of derivations.
    """

    label: Int64[np.ndarray, " m"]
    start: Int64[np.ndarray, " m"]
    end: Int64[np.ndarray, " m"]
    logw: Float64[np.ndarray, " m"]
    count: np.ndarray | None

    def take(self, rows: np.ndarray) -> Spans:
        return Spans(self.label[rows], self.start[rows], self.end[rows], self.logw[rows],
                     None if self.count is None else self.count[rows])

    @staticmethod
    def merged(label: np.ndarray, start: np.ndarray, end: np.ndarray, logw: np.ndarray,
               count: np.ndarray | None, n: int) -> Spans:
        """Items with duplicates (same label and span) merged."""
        key, logw, count = group_logsumexp((label * (n + 1) + start) * (n + 1) + end, logw, count)
        return Spans(key // (n + 1) ** 2, key // (n + 1) % (n + 1), key % (n + 1), logw, count)

    @staticmethod
    def concat(parts: list[Spans]) -> Spans:
        count = None if parts[0].count is None else np.concatenate([p.count for p in parts])
        return Spans(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("label", "start", "end", "logw")),
                     count)


@dataclasses.dataclass(frozen=True, eq=False)
class Chart:
    """Inside chart of one sentence: ``symbols[d]`` and ``partials[d]`` (rule prefixes of depth-d rules)."""

    comp: Compiled
    x: np.ndarray
    symbols: dict[int, Spans]
    partials: dict[int, Spans]

    @property
    def n(self) -> int:
        return len(self.x)

    def root_logw(self) -> Float64[np.ndarray, " n1"]:
        """log P(the root derives x[:e]) for e = 0..n (−inf where it cannot)."""
        out = np.full(self.n + 1, -np.inf)
        root = self.symbols[0]
        out[root.end] = root.logw
        return out


def build_chart(comp: Compiled, x: Int64[np.ndarray, " n"], with_counts: bool = False) -> Chart:
    """Inside pass, terminals up to the root (whose items all start at 0)."""
    n = len(x)
    ones = np.array([1] * n, dtype=object) if with_counts else None
    items = Spans(x - 1, np.arange(n, dtype=np.int64), np.arange(1, n + 1, dtype=np.int64), np.zeros(n), ones)
    symbols, partials = {comp.num_levels - 1: items}, {}
    for d in range(comp.num_levels - 2, -1, -1):
        level, child = comp.levels[d], items
        by_start = csr(child.label * (n + 1) + child.start, comp.grammar.sizes[d + 1] * (n + 1))
        cur = child if d > 0 else child.take(np.flatnonzero(child.start == 0))
        parts = [cur]
        for _parent, new_pid, appended, index in level.extensions:
            q_rows, e_rows = expand(cur.label, index)
            c_rows, k_rows = expand(appended[e_rows] * (n + 1) + cur.end[q_rows], by_start)
            src, ext = q_rows[c_rows], e_rows[c_rows]
            count = None if cur.count is None else cur.count[src] * child.count[k_rows]
            cur = Spans.merged(new_pid[ext], cur.start[src], child.end[k_rows],
                               cur.logw[src] + child.logw[k_rows], count, n)
            parts.append(cur)
        partial = Spans.concat(parts)
        full_sym, full_logp, full_index = level.full
        p_rows, r_rows = expand(partial.label, full_index)
        count = None if partial.count is None else partial.count[p_rows]
        items = Spans.merged(full_sym[r_rows], partial.start[p_rows], partial.end[p_rows],
                             partial.logw[p_rows] + full_logp[r_rows], count, n)
        symbols[d], partials[d] = items, partial
    return Chart(comp=comp, x=x, symbols=symbols, partials=partials)


def terminal_starts(chart: Chart) -> Float64[np.ndarray, "n1 terminals"]:
    """Prefix DP (spec §4.3): log P(x[:i] is a prefix and terminal t comes next), for i = 0..n.

    Level by level from the root: symbol A starting at i passes its weight to each rule's child c_s,
    which starts where the rule's first s children (a partial) end.
    """
    comp, n = chart.comp, chart.n
    label, pos, logw = np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1)
    for d in range(comp.num_levels - 1):
        step_pid, step_child, step_logw, by_symbol = comp.levels[d].steps
        partial = chart.partials[d]
        q_rows, s_rows = expand(label, by_symbol)
        pid, kid = step_pid[s_rows], step_child[s_rows]
        w, at = logw[q_rows] + step_logw[s_rows], pos[q_rows]
        first = pid < 0
        rest = np.flatnonzero(~first)
        index = csr(partial.label * (n + 1) + partial.start, len(comp.levels[d].prefixes) * (n + 1))
        m_rows, p_rows = expand(pid[rest] * (n + 1) + at[rest], index)
        keys = np.concatenate((kid[first] * (n + 1) + at[first], kid[rest][m_rows] * (n + 1) + partial.end[p_rows]))
        key, logw, _ = group_logsumexp(keys, np.concatenate((w[first], w[rest][m_rows] + partial.logw[p_rows])), None)
        label, pos = key // (n + 1), key % (n + 1)
    out = np.full((n + 1, comp.grammar.num_terminals), -np.inf)
    out[pos, label] = logw
    return out

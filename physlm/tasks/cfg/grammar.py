"""The layered context-free grammar type of the paper's cfg3 family.

Levels are numbered as in the paper: level 1 is the root, level L the terminals; the JSON
"depth" d of the official files is ℓ − 1. Every rule of a level-ℓ symbol has 2 or more children
on level ℓ + 1 (no unary or empty rules, no recursion), which is what makes exact vectorised
dynamic programs possible.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from physlm.config import Config

Rule = tuple[int, ...]

_RESERVED_NAME_CHARS = set("|@#") | {" ", "\t", "\n"}


class GrammarError(ValueError):
    """A grammar (or grammar file) is not a valid layered CFG; the message names the problem and where."""


def _as_tuples(value: Any) -> Any:
    """Nested lists -> nested tuples, so grammars built from JSON or by hand compare and hash alike."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value


@dataclasses.dataclass(frozen=True)
class Grammar(Config):
    """A strictly layered CFG.

    ``rules[d][k]`` holds the rules of the k-th symbol at depth ``d`` (d = 0 is the root level,
    d = L − 2 the last nonterminal level). A rule is a tuple of 0-based indices into the symbols
    of depth ``d + 1``; at the last nonterminal depth, child ``c`` is terminal symbol ``c + 1``.
    ``rule_probs`` has the same nesting (None = uniform choice, as the paper samples).
    """

    name: str
    sizes: tuple[int, ...]
    """symbols per level, root level first, terminals last (cfg3f: 1,3,3,3,3,3,3)"""
    rules: tuple[tuple[tuple[Rule, ...], ...], ...]
    rule_probs: tuple[tuple[tuple[float, ...], ...], ...] | None = None
    symbol_names: tuple[tuple[str, ...], ...] | None = None
    """optional display names per nonterminal level"""

    def __post_init__(self) -> None:
        for name in ("sizes", "rules", "rule_probs", "symbol_names"):
            object.__setattr__(self, name, _as_tuples(getattr(self, name)))
        _check_structure(self)

    @property
    def num_levels(self) -> int:
        """L: levels including the root and the terminals."""
        return len(self.sizes)

    @property
    def num_terminals(self) -> int:
        """T: terminal symbols are numbered 1..T."""
        return self.sizes[-1]

    @property
    def nt_levels(self) -> tuple[int, ...]:
        """Paper level numbers of the probed nonterminal levels, ℓ = 2..L−1."""
        return tuple(range(2, self.num_levels))

    def probabilities(self, depth: int, symbol: int) -> tuple[float, ...]:
        """Probabilities of the rules of ``symbol`` at ``depth`` (uniform unless given)."""
        if self.rule_probs is not None:
            return self.rule_probs[depth][symbol]
        n = len(self.rules[depth][symbol])
        return tuple(1.0 / n for _ in range(n))

    def name_of(self, depth: int, symbol: int) -> str:
        """Display name of a symbol (terminals print as their number)."""
        if depth == self.num_levels - 1:
            return str(symbol + 1)
        if self.symbol_names is not None:
            return self.symbol_names[depth][symbol]
        return f"N{depth + 1}_{symbol}"

    @cached_property
    def span_bounds(self) -> tuple[tuple[int, int], ...]:
        """(min, max) number of terminals a symbol of each depth can span (depth-indexed)."""
        bounds: list[tuple[int, int]] = [(1, 1)] * self.num_levels
        for d in range(self.num_levels - 2, -1, -1):
            lo_child, hi_child = bounds[d + 1]
            lens = [len(r) for sym_rules in self.rules[d] for r in sym_rules]
            bounds[d] = (min(lens) * lo_child, max(lens) * hi_child)
        return tuple(bounds)

    @cached_property
    def length_range(self) -> tuple[int, int]:
        """Exact (shortest, longest) sentence length, by recursion over each symbol's rules.

        Tighter than ``span_bounds[0]``, which mixes the shortest rules of different symbols.
        """
        lo = [1] * self.num_terminals
        hi = [1] * self.num_terminals
        for d in range(self.num_levels - 2, -1, -1):
            lo, hi = (
                [min(sum(lo[c] for c in r) for r in rules) for rules in self.rules[d]],
                [max(sum(hi[c] for c in r) for r in rules) for rules in self.rules[d]],
            )
        return lo[0], hi[0]

    # -- derived views --------------------------------------------------------------------------
    @property
    def num_nonterminals(self) -> int:
        """Number of nonterminal symbols, root included."""
        return sum(self.sizes[:-1])

    @property
    def num_rules(self) -> int:
        """Total number of rules over all nonterminals."""
        return sum(len(sym_rules) for level in self.rules for sym_rules in level)

    def level_of_depth(self, depth: int) -> int:
        """Paper level ℓ of JSON depth d (ℓ = d + 1)."""
        return depth + 1

    def reachable(self) -> tuple[frozenset[int], ...]:
        """Per depth, the symbols that some derivation from the root uses."""
        reach: list[set[int]] = [{0}]
        for d in range(self.num_levels - 1):
            nxt: set[int] = set()
            for sym in reach[d]:
                for rule in self.rules[d][sym]:
                    nxt.update(rule)
            reach.append(nxt)
        return tuple(frozenset(r) for r in reach)

    def unreachable_symbols(self) -> tuple[tuple[int, int], ...]:
        """(depth, symbol) pairs that no derivation from the root reaches."""
        reach = self.reachable()
        return tuple(
            (d, k) for d in range(self.num_levels) for k in range(self.sizes[d]) if k not in reach[d]
        )

    @cached_property
    def expected_length(self) -> float:
        """Exact expected sentence length (terminals) under the rule probabilities."""
        expect = [1.0] * self.num_terminals
        for d in range(self.num_levels - 2, -1, -1):
            expect = [
                sum(p * sum(expect[c] for c in rule) for p, rule in zip(self.probabilities(d, k), rules))
                for k, rules in enumerate(self.rules[d])
            ]
        return expect[0]

    @cached_property
    def derivation_entropy(self) -> float:
        """Exact entropy (nats) of the root's derivation: H(A) = H(rule choice) + E[Σ H(children)].

        An upper bound on the string entropy (equal when every sentence has one parse).
        """
        ent = [0.0] * self.num_terminals
        for d in range(self.num_levels - 2, -1, -1):
            ent = [
                sum(
                    p * (-math.log(p) + sum(ent[c] for c in rule))
                    for p, rule in zip(self.probabilities(d, k), rules)
                    if p > 0
                )
                for k, rules in enumerate(self.rules[d])
            ]
        return ent[0]


def _where(grammar: Grammar, depth: int, symbol: int) -> str:
    """Human-readable location of a symbol, for error messages."""
    names = grammar.symbol_names
    name = (
        names[depth][symbol]
        if names is not None and depth < len(names) and symbol < len(names[depth])
        else f"N{depth + 1}_{symbol}"
    )
    return f"symbol {name!r} (level {depth + 1}, index {symbol})"


def _check_structure(g: Grammar) -> None:
    """Shape and index checks every Grammar must pass (reachability is checked by the file loaders)."""
    if not isinstance(g.name, str) or not g.name:
        raise GrammarError("grammar name must be a non-empty string")
    if len(g.sizes) < 2 or any(not isinstance(s, int) or s < 1 for s in g.sizes):
        raise GrammarError(
            f"grammar {g.name!r}: sizes {g.sizes} must list at least 2 levels (root .. terminals), "
            "each with at least one symbol"
        )
    if g.sizes[0] != 1:
        raise GrammarError(f"grammar {g.name!r}: the root level must hold exactly 1 symbol, got {g.sizes[0]}")
    n_nt_levels = len(g.sizes) - 1
    if len(g.rules) != n_nt_levels:
        raise GrammarError(
            f"grammar {g.name!r}: rules cover {len(g.rules)} nonterminal levels but sizes {g.sizes} "
            f"imply {n_nt_levels}"
        )
    for d, level in enumerate(g.rules):
        if len(level) != g.sizes[d]:
            raise GrammarError(
                f"grammar {g.name!r}: level {d + 1} has {len(level)} rule lists "
                f"but sizes says {g.sizes[d]} symbols"
            )
        n_children = g.sizes[d + 1]
        for k, sym_rules in enumerate(level):
            if len(sym_rules) == 0:
                raise GrammarError(f"grammar {g.name!r}: {_where(g, d, k)} has no rules")
            seen: set[Rule] = set()
            for j, rule in enumerate(sym_rules):
                if len(rule) == 0:
                    raise GrammarError(f"grammar {g.name!r}: rule {j + 1} of {_where(g, d, k)} is empty")
                if len(rule) == 1:
                    raise GrammarError(
                        f"grammar {g.name!r}: rule {j + 1} of {_where(g, d, k)} has a single child; layered "
                        "cfg3-style grammars need 2 or more children per rule (no unary rules)"
                    )
                for c in rule:
                    if not isinstance(c, int) or not 0 <= c < n_children:
                        raise GrammarError(
                            f"grammar {g.name!r}: rule {j + 1} of {_where(g, d, k)} names unknown child "
                            f"{c!r}; "
                            f"level {d + 2} has symbols 0..{n_children - 1}"
                        )
                if rule in seen:
                    raise GrammarError(
                        f"grammar {g.name!r}: {_where(g, d, k)} lists rule {list(rule)} twice; "
                        "give it once (use rule_probs for unequal weights)"
                    )
                seen.add(rule)
    if g.rule_probs is not None:
        _check_probs(g)
    if g.symbol_names is not None:
        _check_names(g)


def _check_probs(g: Grammar) -> None:
    probs = g.rule_probs
    assert probs is not None
    if len(probs) != len(g.rules):
        raise GrammarError(
            f"grammar {g.name!r}: rule_probs has {len(probs)} levels, rules has {len(g.rules)}"
        )
    for d, level in enumerate(g.rules):
        if len(probs[d]) != len(level):
            raise GrammarError(
                f"grammar {g.name!r}: rule_probs level {d + 1} has the wrong number of symbols"
            )
        for k, sym_rules in enumerate(level):
            p = probs[d][k]
            if len(p) != len(sym_rules):
                raise GrammarError(
                    f"grammar {g.name!r}: {_where(g, d, k)} has {len(sym_rules)} rules "
                    f"but {len(p)} probabilities"
                )
            if any(not isinstance(x, (int, float)) or not x > 0 for x in p) or abs(sum(p) - 1.0) > 1e-9:
                raise GrammarError(
                    f"grammar {g.name!r}: rule probabilities {list(p)} of {_where(g, d, k)} must be positive "
                    "and sum to 1"
                )


def _check_names(g: Grammar) -> None:
    names = g.symbol_names
    assert names is not None
    if len(names) != len(g.sizes) - 1 or any(len(n) != s for n, s in zip(names, g.sizes)):
        raise GrammarError(
            f"grammar {g.name!r}: symbol_names must give one name per nonterminal, level by level "
            f"(sizes {g.sizes[:-1]})"
        )
    seen: dict[str, int] = {}
    terminal_names = {str(t) for t in range(1, g.num_terminals + 1)}
    for d, level in enumerate(names):
        for name in level:
            if not isinstance(name, str) or not name or set(name) & _RESERVED_NAME_CHARS or "->" in name:
                raise GrammarError(
                    f"grammar {g.name!r}: symbol name {name!r} on level {d + 1} must be non-empty, without "
                    "spaces, '|', '@', '#' or '->'"
                )
            if name in terminal_names:
                raise GrammarError(
                    f"grammar {g.name!r}: nonterminal name {name!r} on level {d + 1} clashes with terminal "
                    f"{name}; terminals are written as 1..{g.num_terminals}"
                )
            if name in seen:
                raise GrammarError(
                    f"grammar {g.name!r}: symbol name {name!r} is used on levels {seen[name] + 1} and {d + 1}"
                )
            seen[name] = d


def grammar_from_rules(
    name: str,
    sizes: Sequence[int],
    rules: Sequence[Sequence[Sequence[Sequence[int]]]],
    rule_probs: Sequence[Sequence[Sequence[float]]] | None = None,
    symbol_names: Sequence[Sequence[str]] | None = None,
) -> Grammar:
    """Build a Grammar from nested lists (converted to tuples and validated)."""
    return Grammar(
        name=name,
        sizes=tuple(sizes),
        rules=_as_tuples(rules),
        rule_probs=_as_tuples(rule_probs),
        symbol_names=_as_tuples(symbol_names),
    )

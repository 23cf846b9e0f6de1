"""The layered context-free grammar type of the paper's cfg3 family.

Levels are numbered as in the paper: level 1 is the root, level L the terminals; the JSON
"depth" d of the official files is ℓ − 1. Every rule of a level-ℓ symbol has 2 or more children
on level ℓ + 1 (no unary or empty rules, no recursion), which is what makes exact vectorised
dynamic programs possible.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property

from physlm.config import Config

Rule = tuple[int, ...]


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

"""Fixtures of the analysis tests: a toy grammar small enough to enumerate, and an exact oracle built from
the enumeration (independent of physlm.tasks.cfg.dp), so every expected number is derived, not typed in."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pytest

from physlm.tasks.cfg.grammar import Grammar


def toy_grammar() -> Grammar:
    """4 levels (root, two NT levels, 2 terminals), 1,248 derivations, sentences of 8..27 tokens."""
    return Grammar(
        name="toy",
        sizes=(1, 2, 2, 2),
        rules=(
            (((0, 1), (1, 0, 1)),),
            (((0, 1), (1, 1)), ((1, 0), (0, 0, 1))),
            (((0, 1), (1, 0)), ((0, 0), (1, 1, 0))),
        ),
    )


def _expansions(grammar: Grammar, depth: int, symbol: int) -> list[tuple[tuple[int, ...], float]]:
    """All (terminal string, probability) derivations of one symbol, by brute force."""
    if depth == grammar.num_levels - 1:
        return [((symbol + 1,), 1.0)]
    out = []
    for rule, p in zip(grammar.rules[depth][symbol], grammar.probabilities(depth, symbol)):
        parts = [_expansions(grammar, depth + 1, c) for c in rule]
        for combo in itertools.product(*parts):
            out.append((sum((s for s, _ in combo), ()), p * math.prod(q for _, q in combo)))
    return out


class EnumeratedDP:
    """is_valid / log_prob / next_token_distribution of a small grammar from its full string distribution."""

    def __init__(self, grammar: Grammar):
        self.grammar = grammar
        dist: dict[tuple[int, ...], float] = defaultdict(float)
        for s, p in _expansions(grammar, 0, 0):
            dist[s] += p
        self.dist = dict(dist)
        self.prefix_mass: dict[tuple[int, ...], float] = defaultdict(float)
        for s, p in self.dist.items():
            for i in range(len(s) + 1):
                self.prefix_mass[s[:i]] += p

    def is_valid(self, grammar: Grammar, symbols: Sequence[int]) -> bool:
        return tuple(symbols) in self.dist

    def log_prob(self, grammar: Grammar, symbols: Sequence[int]) -> float:
        p = self.dist.get(tuple(symbols), 0.0)
        return math.log(p) if p > 0 else -math.inf

    def next_token_distribution(self, grammar: Grammar, symbols: Sequence[int]) -> np.ndarray:
        s = tuple(symbols)
        rows = []
        for i in range(len(s) + 1):
            pre = s[:i]
            mass = self.prefix_mass[pre]
            row = [self.dist.get(pre, 0.0) / mass]
            row += [self.prefix_mass.get(pre + (t,), 0.0) / mass for t in range(1, grammar.num_terminals + 1)]
            rows.append(row)
        return np.asarray(rows)

    def entropy_per_token(self) -> float:
        """Exact E[-log p(x)] / E[|x|] (the quantity the Monte-Carlo grammar entropy estimates)."""
        h = -sum(p * math.log(p) for p in self.dist.values())
        return h / sum(p * len(s) for s, p in self.dist.items())


@pytest.fixture(scope="session")
def toy() -> Grammar:
    return toy_grammar()


@pytest.fixture(scope="session")
def toy_dp(toy: Grammar) -> EnumeratedDP:
    return EnumeratedDP(toy)


@pytest.fixture
def toy_model():
    """A tiny seeded HookedTransformer (physlm.training.build_model) over the toy grammar's 6-token vocabulary."""
    # submodule imports: under pytest's default import mode tests/training shadows the package's __init__
    from physlm.training.model import build_model
    from physlm.training.model_config import ModelConfig

    config = ModelConfig(n_layers=2, d_model=32, n_heads=4, d_mlp=64, n_ctx=48, d_vocab=6, positional="rotary", seed=0)
    return build_model(config).eval()

"""Fixtures of the analysis tests: a toy grammar small enough to enumerate, and an exact oracle built from
the enumeration (independent of physlm.tasks.cfg.dp), so every expected number is derived, not typed in."""

from __future__ import annotations

import pytest
from factory import EnumeratedDP, tiny_model, toy_grammar

from physlm.tasks.cfg.grammar import Grammar


@pytest.fixture(scope="session")
def toy() -> Grammar:
    return toy_grammar()


@pytest.fixture(scope="session")
def toy_dp(toy: Grammar) -> EnumeratedDP:
    return EnumeratedDP(toy)


@pytest.fixture
def toy_model():
    """A tiny seeded HookedTransformer (physlm.training.build_model) over the toy grammar's 6-token vocabulary."""
    return tiny_model(n_ctx=48, d_vocab=6).eval()

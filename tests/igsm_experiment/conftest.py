"""Fixtures for the iGSM experiment tests: tiny seeded models over the iGSM vocabulary and labelled problems."""

from __future__ import annotations

import random

import pytest


@pytest.fixture(scope="module")
def igsm_vocab() -> int:
    from physlm.tasks.igsm import igsm_token_table

    return igsm_token_table().d_vocab


@pytest.fixture
def tiny_igsm_model(igsm_vocab):
    """A 2-layer, 32-dim rotary model over the iGSM vocabulary with a 384-token context (seeded)."""
    from physlm.training import ModelConfig, build_model

    config = ModelConfig(n_layers=2, d_model=32, n_heads=4, d_mlp=64, n_ctx=384, d_vocab=igsm_vocab, seed=0)
    return build_model(config).eval()


@pytest.fixture(scope="module")
def tiny_problems():
    """Five tiny-preset problems (train split) drawn with a fixed seed."""
    from physlm.tasks.igsm import generate_problem, preset

    rng = random.Random("igsm-experiment-tests")
    return [generate_problem(preset("tiny"), rng) for _ in range(5)]


@pytest.fixture(scope="module")
def tiny_records(tiny_problems):
    from physlm.tasks.igsm import problem_record

    return [problem_record(p) for p in tiny_problems]

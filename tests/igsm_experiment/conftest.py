"""Fixtures for the iGSM experiment tests: tiny seeded models over the iGSM vocabulary and labelled problems
(built by tests/factory.py)."""

from __future__ import annotations

import factory
import pytest


@pytest.fixture(scope="module")
def igsm_vocab() -> int:
    return factory.igsm_vocab()


@pytest.fixture
def tiny_igsm_model():
    """A 2-layer, 32-dim rotary model over the iGSM vocabulary with a 384-token context (seeded)."""
    return factory.tiny_igsm_model()


@pytest.fixture(scope="module")
def tiny_problems():
    """Five tiny-preset problems drawn with a fixed seed."""
    return factory.igsm_problems(5)


@pytest.fixture(scope="module")
def tiny_records(tiny_problems):
    return factory.igsm_records(tiny_problems)

"""Fixtures for the probing tests: tiny seeded HookedTransformers built straight from TransformerLens."""

from __future__ import annotations

import pytest
from factory import hooked_transformer as make_hooked


@pytest.fixture
def hooked_tiny():
    """A 2-layer, 32-dim rotary HookedTransformer with a 10-token vocabulary (seeded)."""
    return make_hooked()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Probe fits are many small ops: on a shared 2-core machine a second intra-op thread mostly spins."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

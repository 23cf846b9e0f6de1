"""Fixtures for the probing tests: tiny seeded HookedTransformers built straight from TransformerLens."""

from __future__ import annotations

import pytest


def make_hooked(seed: int = 0, n_layers: int = 2, d_vocab: int = 10, positional: str = "rotary"):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=n_layers, d_model=32, n_heads=4, d_head=8, d_mlp=64, n_ctx=64, d_vocab=d_vocab,
        act_fn="gelu", normalization_type="LN", positional_embedding_type=positional, seed=seed,
    )
    model = HookedTransformer(cfg)
    model.eval()
    return model


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

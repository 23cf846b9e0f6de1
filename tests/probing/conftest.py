"""Fixtures for the probing tests: tiny seeded HookedTransformers built straight from TransformerLens."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# pytest's rootdir-relative sys.path puts tests/ first, so tests/<name>/ folders without __init__.py shadow
# the packages of the same name (training, probing, analysis) as empty namespace packages. Put the repository
# first and drop such shadows. (The lasting fix is `pythonpath = ["."]` in pytest's ini options.)
_ROOT = str(Path(__file__).resolve().parents[2])
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)
for _name in ("training", "probing", "analysis", "tasks", "physlm", "experiments"):
    _mod = sys.modules.get(_name)
    if _mod is not None and getattr(_mod, "__file__", None) is None:
        for _key in [k for k in sys.modules if k == _name or k.startswith(_name + ".")]:
            del sys.modules[_key]


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

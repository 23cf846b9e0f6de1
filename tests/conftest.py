"""Shared fixtures. Runtime shape/type checking (jaxtyping + beartype) is switched on here for
every physlm package, before any of them is imported by a test. The tiny objects come from tests/factory.py."""

from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from jaxtyping import install_import_hook  # noqa: E402

# Every function annotated in these packages is checked at call time during the tests.
_HOOK = install_import_hook(["physlm"], "beartype.beartype")

import factory  # noqa: E402  (after the hook: it imports physlm)
import pytest  # noqa: E402
import torch  # noqa: E402

# One thread unless OMP_NUM_THREADS says otherwise: on a busy 2-core machine, two threads per test process
# oversubscribe the cores and make small tensor work many times slower.
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


@pytest.fixture
def tiny_model_config():
    """A 2-layer, 32-dim ModelConfig with a 10-token vocabulary (seeded)."""
    return factory.tiny_model_config()


@pytest.fixture
def tiny_model(tiny_model_config):
    """A tiny seeded HookedTransformer built from :func:`tiny_model_config`."""
    return factory.build_model(tiny_model_config)


@pytest.fixture
def tiny_model_factory():
    """Build tiny seeded HookedTransformers with any ModelConfig overrides: ``factory(positional="alibi")``."""
    return factory.tiny_model

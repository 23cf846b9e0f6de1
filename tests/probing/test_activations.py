"""Streamed activation collection against a whole-batch run_with_cache."""

from __future__ import annotations

import pytest
import torch

from physlm.probing.activations import Activations, collect_activations, layer_hook, rows_to_padded
from physlm.probing.align import SentenceLayout
from physlm.tasks.base import TokenTable


def _tokens(n=7, seq=12, seed=0):
    return torch.randint(3, 10, (n, seq), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("to_disk", [False, True])
def test_matches_full_cache_at_kept_positions(hooked_tiny, tmp_path, to_disk):
    tokens = _tokens()
    mask = torch.rand(tokens.shape, generator=torch.Generator().manual_seed(1)) < 0.5
    hooks = [layer_hook(-1), layer_hook(0), layer_hook(1), "blocks.1.hook_mlp_out"]
    acts = collect_activations(
        hooked_tiny, tokens, hooks, positions=mask, batch_size=3, out=tmp_path / "acts" if to_disk else None,
        progress=False,
    )
    _, cache = hooked_tiny.run_with_cache(tokens)
    rows, cols = mask.nonzero(as_tuple=True)
    assert acts.n_rows == int(mask.sum())
    assert torch.equal(acts.sequence_index, rows) and torch.equal(acts.position_index, cols)
    for hook in hooks:
        torch.testing.assert_close(acts.get(hook), cache[hook][rows, cols], rtol=1e-5, atol=1e-5)
    stacked = acts.stack(hooks[:3])
    assert stacked.shape == (acts.n_rows, 3, 32)
    torch.testing.assert_close(stacked[:, 2], cache[layer_hook(1)][rows, cols], rtol=1e-5, atol=1e-5)
    if to_disk:
        again = Activations.load(tmp_path / "acts")
        assert len(again.shards) == 3
        torch.testing.assert_close(again.get(layer_hook(0)), acts.get(layer_hook(0)))


def test_layout_input_keeps_terminals_and_pads_back(hooked_tiny):
    sentences = [[4, 5, 6, 7], [8, 9], [5]]
    table = TokenTable("toy", ("<pad>", "<bos>", "<eos>", "<mask>", *"abcdef"))  # <bos> = 1, <eos> = 2
    layout = SentenceLayout.from_sentences(sentences, table)
    acts = collect_activations(hooked_tiny, layout, [layer_hook(1)], batch_size=2, progress=False)
    assert acts.n_rows == 7
    col = layout.token_index[acts.sequence_index, acts.position_index]
    grid = rows_to_padded(acts.get(layer_hook(1)), acts.sequence_index, col, 3, layout.max_length)
    # Right padding does not change a causal model's activations: compare with an unpadded run.
    single = torch.tensor([[1, 8, 9, 2]])
    _, cache = hooked_tiny.run_with_cache(single)
    torch.testing.assert_close(grid[1, :2], cache[layer_hook(1)][0, 1:3], rtol=1e-5, atol=1e-5)
    assert bool((grid[2, 1:] == 0).all())


def test_streams_an_iterable_of_batches_with_a_position_callable(hooked_tiny):
    batches = (_tokens(2, 6, seed=s) for s in range(4))
    acts = collect_activations(
        hooked_tiny, batches, ["hook_embed"], positions=lambda t: t == 5, progress=False, dtype=torch.float16
    )
    expected = sum(int((_tokens(2, 6, seed=s) == 5).sum()) for s in range(4))
    assert acts.n_rows == expected and acts.get("hook_embed", torch.float16).dtype == torch.float16
    assert int(acts.sequence_index.max()) <= 7


def test_bad_inputs_are_reported(hooked_tiny):
    with pytest.raises(ValueError, match="no hook"):
        collect_activations(hooked_tiny, _tokens(), ["blocks.9.hook_resid_post"], progress=False)
    with pytest.raises(ValueError, match=r"\[batch, pos"):
        collect_activations(hooked_tiny, _tokens(), ["blocks.0.attn.hook_pattern"], progress=False)
    with pytest.raises(KeyError, match="not collected"):
        collect_activations(hooked_tiny, _tokens(), ["hook_embed"], progress=False).get("x")

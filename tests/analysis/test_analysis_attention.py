"""Attention statistics on planted patterns whose answers are known, checked against brute-force loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from physlm.analysis.attention_stats import (
    AttentionStats,
    accumulate_attention,
    adjacency_table,
    end_pair_table,
    head_summary,
    near_end_table,
    position_table,
)
from physlm.analysis.layout import fresh_sentences, stack_windows, window_batches
from physlm.tasks.cfg import cfg_token_table

N_CTX = 40


def _batches(grammar, n_windows=6, batch_size=3, seed=0):
    return list(window_batches(fresh_sentences(grammar, seed), cfg_token_table(grammar), n_windows, N_CTX, batch_size))


def _stats(grammar, n_heads, **kw):
    return AttentionStats(1, n_heads, N_CTX, grammar.num_levels - 2, **kw)


def _previous_token(w: int) -> torch.Tensor:
    pos = torch.arange(N_CTX)
    p = torch.zeros(w, N_CTX, N_CTX)
    p[:, pos[1:], pos[:-1]] = 1.0
    p[:, 0, 0] = 1.0
    return p


def _most_recent_end(batch) -> torch.Tensor:
    """Each query attends to the most recent NT-end strictly before it (itself when there is none)."""
    w = batch.tokens.shape[0]
    p = torch.zeros(w, N_CTX, N_CTX)
    for b in range(w):
        last = None
        for j in range(N_CTX):
            p[b, j, j if last is None else last] = 1.0
            if batch.end_level[b, j] > 0:
                last = j
    return p


def _random_pattern(w: int, h: int, gen: torch.Generator) -> torch.Tensor:
    scores = torch.randn(w, h, N_CTX, N_CTX, generator=gen)
    causal = torch.tril(torch.ones(N_CTX, N_CTX, dtype=torch.bool))
    return torch.softmax(scores.masked_fill(~causal, -torch.inf), dim=-1)


def test_windows_follow_the_training_layout(toy):
    table = cfg_token_table(toy)
    batches = _batches(toy, n_windows=5, batch_size=2)
    assert [b.tokens.shape[0] for b in batches] == [2, 2, 1]
    stream = torch.cat([b.tokens for b in batches]).reshape(-1).tolist()
    expected: list[int] = []
    ends: list[int] = []
    for s in fresh_sentences(toy, 0):
        expected += [table.bos_id, *[t + 3 for t in s.symbols], table.eos_id]
        ends += [0, *s.end_level.tolist(), 0]
        if len(expected) >= len(stream):
            break
    assert stream == expected[: len(stream)]
    assert torch.cat([b.end_level for b in batches]).reshape(-1).tolist() == ends[: len(stream)]


def test_position_average_matches_a_loop(toy):
    batches = _batches(toy)
    stats = _stats(toy, 2)
    gen = torch.Generator().manual_seed(0)
    patterns = []
    for batch in batches:
        index = stats.pair_index(batch)
        patterns.append(_random_pattern(batch.tokens.shape[0], 2, gen))
        stats.add_pattern(0, patterns[-1], index)
    allp = torch.cat(patterns).double()
    abar = stats.position_attention()
    for p in (0, 1, 7, N_CTX - 1):
        loop = np.mean([allp[:, :, j, j - p].numpy() for j in range(p, N_CTX)], axis=(0, 1))
        np.testing.assert_allclose(abar[0, :, p], loop, rtol=1e-10)
    rows = position_table(stats)
    assert len(rows) == 2 * N_CTX and all(0.0 <= r["mean_attention"] <= 1.0 for r in rows)


def test_parse_statistics_match_brute_force(toy):
    batches = _batches(toy, n_windows=4, batch_size=4)
    batch = stack_windows(batches)
    stats = _stats(toy, 2)
    pattern = _random_pattern(batch.tokens.shape[0], 2, torch.Generator().manual_seed(1))
    stats.add_pattern(0, pattern, stats.pair_index(batch))
    abar = stats.position_attention()[0]
    bvals = pattern.double().numpy() - np.stack(
        [[[abar[h, j - i] if j >= i else np.nan for i in range(N_CTX)] for j in range(N_CTX)] for h in range(2)]
    )
    sid, term = batch.sentence_id.numpy(), batch.is_terminal.numpy()
    end, anc = batch.end_level.numpy(), batch.ancestor_index.numpy()

    def pairs():
        for w in range(sid.shape[0]):
            for j in range(N_CTX):
                for i in range(j):
                    if sid[w, i] == sid[w, j] and term[w, i] and term[w, j]:
                        yield w, j, i

    # end_pair: query non-end -> key at level 3; adjacency offset 1: level 3 -> level 3 at r = 0
    sel_pair = [(w, j, i) for w, j, i in pairs() if end[w, j] == 0 and end[w, i] == 3]
    sel_adj = [(w, j, i) for w, j, i in pairs() if end[w, j] == 3 and end[w, i] == 3 and anc[w, 0, j] == anc[w, 0, i]]
    sel_near = [  # δ = +1 at level 3: key i with b♯(i + 1) = 3 in the same sentence
        (w, j, i) for w, j, i in pairs() if i + 1 < N_CTX and sid[w, i + 1] == sid[w, i] and end[w, i + 1] == 3
    ]
    assert sel_pair and sel_adj and sel_near
    expect = {
        name: [np.mean([bvals[w, h, j, i] for w, j, i in sel]) for h in range(2)]
        for name, sel in (("pair", sel_pair), ("adj", sel_adj), ("near", sel_near))
    }
    got_pair = [r for r in end_pair_table(stats) if r["query_level"] == 0 and r["key_level"] == 3]
    got_adj = [
        r
        for r in adjacency_table(stats)
        if r["r_level_offset"] == 1 and r["query_level"] == 3 and r["key_level"] == 3 and r["r"] == 0
    ]
    got_near = [r for r in near_end_table(stats) if r["level"] == 3 and r["delta"] == 1]
    for name, got, sel in (
        ("pair", got_pair, sel_pair),
        ("adj", got_adj, sel_adj),
        ("near", got_near, sel_near),
    ):
        assert [r["n_pairs"] for r in got] == [len(sel)] * 2
        np.testing.assert_allclose([r["B"] for r in got], expect[name], rtol=1e-9, atol=1e-12)


def test_distance_only_attention_has_no_parse_effect(toy):
    stats = _stats(toy, 1)
    for batch in _batches(toy):
        stats.add_pattern(0, _previous_token(batch.tokens.shape[0])[:, None], stats.pair_index(batch))
    for table in (near_end_table(stats), end_pair_table(stats), adjacency_table(stats)):
        values = [r["B"] for r in table if r["B"] is not None]
        assert values and np.allclose(values, 0.0, atol=1e-12)
    (row,) = head_summary(stats)
    assert abs(row["end_excess"]) < 1e-12 and abs(row["delta0_peak"]) < 1e-12


def test_planted_end_head_ranks_first_and_peaks_at_delta_zero(toy):
    stats = _stats(toy, 3)
    gen = torch.Generator().manual_seed(2)
    for batch in _batches(toy, n_windows=8, batch_size=4):
        w = batch.tokens.shape[0]
        planted = torch.stack([_previous_token(w), _random_pattern(w, 1, gen)[:, 0], _most_recent_end(batch)], 1)
        stats.add_pattern(0, planted, stats.pair_index(batch))
    summary = head_summary(stats)
    assert (summary[0]["layer"], summary[0]["head"]) == (0, 2)
    assert summary[0]["end_excess"] > 0.05 and summary[0]["delta0_peak"] > 0.0
    near = {(r["level"], r["delta"]): r["B"] for r in near_end_table(stats) if r["head"] == 2}
    for level in (2, 3):
        assert near[(level, 0)] > max(near[(level, -1)], near[(level, 1)])
    # offset 0 measures r at the key's own level: a key ending that subtree is always r >= 1 behind
    assert not [r for r in adjacency_table(stats) if r["r_level_offset"] == 0 and r["r"] == 0]
    assert [r for r in adjacency_table(stats) if r["r_level_offset"] == 1 and r["r"] == 0]


def test_hooked_accumulation_equals_direct_and_sees_interventions(toy, toy_model):
    batches = _batches(toy, n_windows=4, batch_size=2)
    hooked = AttentionStats(toy_model.cfg.n_layers, toy_model.cfg.n_heads, N_CTX, toy.num_levels - 2)
    direct = AttentionStats(toy_model.cfg.n_layers, toy_model.cfg.n_heads, N_CTX, toy.num_levels - 2)
    planted = {}

    def force_ends(pattern, hook):
        # layer 0, head 1 attends to the most recent NT-end: the planted parse-following head
        pattern = pattern.clone()
        pattern[:, 1] = planted["p"]
        return pattern

    for batch in batches:
        planted["p"] = _most_recent_end(batch)
        with toy_model.hooks(fwd_hooks=[("blocks.0.attn.hook_pattern", force_ends)]):
            accumulate_attention(toy_model, [batch], hooked)
            with torch.no_grad():
                _, cache = toy_model.run_with_cache(batch.tokens, names_filter=lambda n: n.endswith("hook_pattern"))
        index = direct.pair_index(batch)
        for layer in range(toy_model.cfg.n_layers):
            direct.add_pattern(layer, cache[f"blocks.{layer}.attn.hook_pattern"], index)
    np.testing.assert_allclose(hooked.pos_sum, direct.pos_sum, rtol=1e-6, atol=1e-9)
    summary = head_summary(hooked)
    assert (summary[0]["layer"], summary[0]["head"]) == (0, 1)
    assert hooked.n_windows == 4


def test_mismatched_window_length_is_refused(toy):
    with pytest.raises(ValueError, match="n_ctx"):
        AttentionStats(1, 1, N_CTX + 1, toy.num_levels - 2).pair_index(_batches(toy, 1, 1)[0])

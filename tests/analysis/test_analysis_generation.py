"""Generation metrics on stub samplers and an exact "oracle" language model whose answers are known."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from physlm.analysis.cli import analyze_generation
from physlm.analysis.config import GenerationConfig
from physlm.analysis.generation import (
    diversity,
    evaluate_generation,
    fresh_symbol_sentences,
    grammar_entropy,
    kl_to_grammar,
    model_entropy,
    prefix_length,
    run_completions,
    smoothed_kl_rows,
)
from physlm.analysis.sampling import Continuations, ModelSampler, sample_continuations
from physlm.rundir import RunDir
from physlm.tasks.cfg import cfg_token_table, load_grammar

OFFSET = 3  # terminal t is token id t + 3


class OracleLM(nn.Module):
    """A "model" with the grammar's exact next-token distribution (uniform after impossible prefixes)."""

    def __init__(self, dp, table):
        super().__init__()
        self.dp, self.table = dp, table
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the evaluation a device to read
        self.T = dp.grammar.num_terminals
        self.memo: dict[tuple[int, ...], torch.Tensor] = {}

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        b, n = ids.shape
        logits = torch.empty((b, n, self.table.d_vocab), dtype=torch.float64)
        for r, row in enumerate(ids.tolist()):
            symbols = tuple(t - OFFSET for t in row[1:])
            logits[r] = torch.stack([self._row(symbols[:pos]) for pos in range(n)])
        return logits

    def _row(self, prefix: tuple[int, ...]) -> torch.Tensor:
        if prefix not in self.memo:
            row = torch.full((self.table.d_vocab,), -1e9, dtype=torch.float64)
            mass = self.dp.prefix_mass.get(prefix, 0.0)
            if mass == 0.0:
                row[OFFSET + 1 :] = 0.0
            else:
                probs = [self.dp.dist.get(prefix, 0.0) / mass]
                probs += [self.dp.prefix_mass.get(prefix + (t,), 0.0) / mass for t in range(1, self.T + 1)]
                ids_ = [self.table.eos_id] + [t + OFFSET for t in range(1, self.T + 1)]
                for i, p in zip(ids_, probs):
                    if p > 0:
                        row[i] = math.log(p)
            self.memo[prefix] = row
        return self.memo[prefix]


class ScriptedSampler:
    """Returns pre-written continuations in order, whatever the prefixes."""

    def __init__(self, scripted: list[tuple[list[int], bool]]):
        self.scripted = list(scripted)

    def __call__(self, prefixes, temperature, generator):
        batch = [self.scripted.pop(0) for _ in range(prefixes.shape[0])]
        return Continuations([t for t, _ in batch], [e for _, e in batch], [0.0] * len(batch))


def test_prefix_length_rule(toy):
    assert prefix_length(load_grammar("cfg3b"), GenerationConfig()) == 50
    assert toy.span_bounds[0][0] == 8
    assert prefix_length(toy, GenerationConfig()) == 4  # half of the shortest sentence
    assert prefix_length(toy, GenerationConfig(prefix_tokens=5)) == 5
    assert prefix_length(toy, GenerationConfig(prefix_fraction=0.9)) == 7


def test_accuracy_counts_only_complete_sentences(toy, toy_dp):
    table = cfg_token_table(toy)
    sentences = fresh_symbol_sentences(toy, 5, 8)
    cut = 4
    scripted = []
    for k, s in enumerate(sentences):
        rest = [t + OFFSET for t in s[cut:]]
        if k % 4 == 0:
            scripted.append((rest, True))  # the true completion
        elif k % 4 == 1:
            scripted.append((rest, False))  # right tokens but no EOS within the context
        elif k % 4 == 2:
            scripted.append((rest[:1] + [table.bos_id] + rest[1:], True))  # a non-terminal inside
        else:
            scripted.append((rest[:-1], True))  # one token short
            assert not toy_dp.is_valid(toy, s[:-1])
    result = run_completions(
        ScriptedSampler(scripted),
        [s[:cut] for s in sentences],
        table,
        toy.num_terminals,
        lambda x: toy_dp.is_valid(toy, x),
        1.0,
        torch.Generator(),
        batch_size=3,
    )
    assert result["valid"] == [k % 4 == 0 for k in range(8)]
    assert result["accuracy"] == 0.25 and result["n_no_eos"] == 2


def test_diversity_counts_and_birthday_estimate():
    d = diversity([[1], [1], [2], [3], [3], [3]])
    assert (d["distinct"], d["duplicates"], d["duplicate_pairs"]) == (3, 3, 4)
    assert d["support_estimate"] == pytest.approx(15 / 4)
    clean = diversity([[i] for i in range(100)])
    assert clean["duplicates"] == 0 and clean["support_estimate"] is None
    assert clean["support_lower_bound_95"] == pytest.approx(4950 / math.log(20))


def test_smoothed_kl_rows_by_hand():
    p = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    assert np.allclose(smoothed_kl_rows(p, p.copy(), 1e-5), 0.0)
    q = np.array([[0.25, 0.75, 0.0], [0.5, 0.5, 0.0]])
    got = smoothed_kl_rows(p, q, 0.0)
    assert got == pytest.approx([0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75), math.log(2)])
    assert smoothed_kl_rows(p, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), 1e-5).min() > 0


def test_exact_dp_agrees_with_enumeration(toy, toy_dp):
    from physlm.tasks.cfg import dp

    for s in fresh_symbol_sentences(toy, 11, 5):
        assert dp.is_valid(toy, s)
        assert dp.log_prob(toy, s) == pytest.approx(toy_dp.log_prob(toy, s), abs=1e-9)
        np.testing.assert_allclose(
            dp.next_token_distribution(toy, s), toy_dp.next_token_distribution(toy, s), atol=1e-9
        )
    # valid sentences and their one-token flips: a mix of members and non-members
    strings = []
    for k, x in enumerate(fresh_symbol_sentences(toy, 12, 20)):
        strings += [x, x[: k % len(x)] + [3 - x[k % len(x)]] + x[k % len(x) + 1 :]]
    verdicts = [toy_dp.is_valid(toy, x) for x in strings]
    assert any(verdicts) and not all(verdicts)
    assert [dp.is_valid(toy, x) for x in strings] == verdicts


def test_kl_is_zero_for_the_exact_model_and_positive_for_uniform(toy, toy_dp):
    table = cfg_token_table(toy)
    sentences = fresh_symbol_sentences(toy, 3, 6)
    truth = lambda s: toy_dp.next_token_distribution(toy, s)
    exact = kl_to_grammar(OracleLM(toy_dp, table), sentences, truth, table, toy.num_terminals, n_ctx=40)
    assert exact["n"] == 6 and abs(exact["kl"]) < 1e-12
    uniform = kl_to_grammar(
        lambda ids: torch.zeros(*ids.shape, table.d_vocab),
        sentences,
        truth,
        table,
        toy.num_terminals,
        n_ctx=40,
    )
    by_hand = np.mean([smoothed_kl_rows(truth(s), np.full((len(s) + 1, 3), 1 / 3), 1e-5).mean() for s in sentences])
    assert uniform["kl"] == pytest.approx(by_hand) and uniform["kl"] > 0.1
    short = kl_to_grammar(lambda ids: torch.zeros(*ids.shape, 6), sentences, truth, table, 2, n_ctx=8)
    assert short["n"] == 0 and short["n_skipped_too_long"] == 6 and short["kl"] is None


def test_entropies(toy, toy_dp):
    est = grammar_entropy(fresh_symbol_sentences(toy, 7, 400), lambda s: toy_dp.log_prob(toy, s))
    assert est["per_token"] == pytest.approx(toy_dp.entropy_per_token(), rel=0.05)
    samples = Continuations(tokens=[[4, 5], [4, 5, 5, 4], [4]], ended=[True, True, False], logprob=[-1.0, -3.0, -9.0])
    m = model_entropy(samples)
    assert m["per_token"] == pytest.approx(4.0 / 6) and m["per_sentence"] == 2.0 and m["n_incomplete"] == 1


def test_kv_cache_sampling_matches_recomputation(toy_model):
    prefixes = torch.tensor([[1, 4, 5, 4]] * 3 + [[1, 5, 5, 5]])
    runs = [
        sample_continuations(toy_model, prefixes, 2, 20, 1.0, torch.Generator().manual_seed(9), use_kv_cache=kv)
        for kv in (True, False)
    ]
    assert runs[0].tokens == runs[1].tokens and runs[0].ended == runs[1].ended
    np.testing.assert_allclose(runs[0].logprob, runs[1].logprob, rtol=1e-4)
    again = sample_continuations(toy_model, prefixes, 2, 20, 1.0, torch.Generator().manual_seed(9))
    assert again.tokens == runs[0].tokens
    assert all(len(t) + 4 <= 20 for t in again.tokens)


def test_exact_model_is_perfect(toy, toy_dp):
    table = cfg_token_table(toy)
    oracle = OracleLM(toy_dp, table)
    config = GenerationConfig(
        n_samples=24,
        n_kl_sentences=4,
        n_entropy_sentences=50,
        batch_size=12,
        use_kv_cache=False,
        corruption_fractions=(0.5,),
        robust_temperatures=(1.0,),
    )
    result = evaluate_generation(oracle, toy, table, config, n_ctx=40, dp=toy_dp)
    assert result["accuracy_cut0"] == 1.0 and result["accuracy_cut50"] == 1.0 and result["cut"] == 4
    assert abs(result["kl"]) < 1e-12
    assert result["model_entropy"] == pytest.approx(toy_dp.entropy_per_token(), rel=0.3)
    clean, corrupted = result["robustness"]
    assert clean["flip_fraction"] == 0.0 and clean["accuracy_clean_prefix"] == 1.0
    assert corrupted["flip_fraction"] == 0.5 and 0.0 <= corrupted["accuracy_as_given"] <= 1.0


def test_cli_writes_generation_json(tmp_path, monkeypatch, toy, toy_dp, toy_model):
    import physlm.analysis.generation as generation
    import physlm.analysis.runs as runs

    table = cfg_token_table(toy)
    loaded = runs.AnalysisRun(toy_model, table, toy, 48, {"grammar": "toy"}, tmp_path)
    monkeypatch.setattr(runs, "load_analysis_run", lambda path, device="cpu": loaded)
    monkeypatch.setattr(generation, "exact_dp", lambda: toy_dp)
    RunDir.create(tmp_path / "run", {})
    config = GenerationConfig(
        n_samples=16,
        n_kl_sentences=4,
        n_entropy_sentences=20,
        batch_size=8,
        corruption_fractions=(0.25,),
        robust_temperatures=(1.0, 0.2),
        seed=random.Random(0).randrange(100),
    )
    assert analyze_generation(tmp_path / "run", config) == 0
    out = json.loads((tmp_path / "run" / "generation.json").read_text())
    for key in (
        "accuracy_cut0",
        "accuracy_cut50",
        "kl",
        "n_samples",
        "duplicates",
        "model_entropy",
        "grammar_entropy",
    ):
        assert key in out
    assert 0.0 <= out["accuracy_cut0"] <= 1.0 and 0.0 <= out["accuracy_cut50"] <= 1.0
    assert out["n_samples"] == 16 and 0 <= out["duplicates"] < 16
    assert out["kl"] > 0 and out["grammar_entropy"] > 0
    assert out["model_entropy"] is None or out["model_entropy"] > 0
    assert len(out["robustness"]) == 4
    assert (tmp_path / "run" / "COMPLETE.generation").exists()
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert GenerationConfig.from_dict(record["configs"]["generation"]) == config
    assert GenerationConfig.from_dict(out["config"]) == config


def test_model_sampler_respects_context(toy_model):
    sampler = ModelSampler(toy_model, eos_id=2, n_ctx=10)
    out = sampler(torch.tensor([[1, 4]] * 2), 1.0, torch.Generator().manual_seed(0))
    assert all(len(t) <= 8 for t in out.tokens)
    with pytest.raises(ValueError, match="no room"):
        sampler(torch.ones(1, 10, dtype=torch.long), 1.0, torch.Generator())


def test_compare_robustness_labels_both_runs(tmp_path, monkeypatch, toy, toy_dp):
    import physlm.analysis.runs as runs

    table = cfg_token_table(toy)
    oracle = OracleLM(toy_dp, table)
    seen = []

    def fake_load(path, device="cpu"):
        seen.append(str(path))
        rate = 0.1 if "corrupt" in str(path) else 0.0
        return runs.AnalysisRun(oracle, table, toy, 40, {"grammar": "toy", "corrupt_rate": rate}, tmp_path)

    monkeypatch.setattr(runs, "load_analysis_run", fake_load)
    monkeypatch.setattr(runs, "exact_dp", lambda: toy_dp)
    config = GenerationConfig(
        n_samples=6, batch_size=6, use_kv_cache=False, corruption_fractions=(0.5,), robust_temperatures=(1.0,)
    )
    rows = runs.compare_robustness(tmp_path / "clean", tmp_path / "corrupt", config)
    assert seen == [str(tmp_path / "clean"), str(tmp_path / "corrupt")]
    assert [(r["run"], r["flip_fraction"]) for r in rows] == [
        ("clean", 0.0),
        ("clean", 0.5),
        ("corrupted", 0.0),
        ("corrupted", 0.5),
    ]
    assert [r["corrupt_rate"] for r in rows] == [0.0, 0.0, 0.1, 0.1]
    # the exact model completes every clean prefix; both runs saw identical prefixes and flips
    assert rows[0]["accuracy_clean_prefix"] == rows[2]["accuracy_clean_prefix"] == 1.0
    assert rows[1]["accuracy_as_given"] == rows[3]["accuracy_as_given"]

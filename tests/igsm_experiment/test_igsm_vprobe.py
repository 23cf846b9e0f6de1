"""The iGSM V-probe recipe: example layout at the spec's positions, the prefix cache, fitting and scoring."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from physlm.probing.cfg_recipe import CSV_COLUMNS
from physlm.probing.fit import FitConfig
from physlm.probing.igsm_vprobe import (
    TARGETS,
    CachedVProbe,
    IGSMProbeConfig,
    PrefixCache,
    assemble_examples,
    build_examples,
    fit_vprobe,
    layerwise_igsm_figure,
    probe_igsm_models,
    problem_beliefs,
)
from physlm.probing.vprobe import LowRankEmbeddingProbe


def _decode(ids):
    from physlm.tasks.igsm import igsm_token_table

    return igsm_token_table().decode([int(i) for i in ids])


@pytest.mark.parametrize("target", TARGETS)
def test_examples_sit_at_the_spec_positions(tiny_records, target):
    ex = build_examples(tiny_records, target, 3, seed=0, update_scope="suffix")
    suffix_len = 9 if target == "dep" else 5
    assert ex.suffix.shape == (len(ex), suffix_len)
    for i in range(len(ex)):
        record = tiny_records[int(ex.group[i])]
        prefix = ex.prefixes[int(ex.prefix_id[i])]
        row = ex.tokens[i, : int(ex.read_pos[i]) + 1].tolist()
        assert row == prefix + ex.suffix[i].tolist()
        words = _decode(prefix)
        assert words[:2] == ["<bos>", "[PROB]"]
        if target == "nece":  # pq: the end of the question
            assert words[-1] == "?" and "[SOL]" not in words
        elif target == "dep":  # before the question
            assert words[-1] == "." and "How" not in words
        else:  # a solution-sentence boundary
            assert words[-1] in ("[SOL]", ".") and "[SOL]" in words
        suffix = _decode(ex.suffix[i])
        assert suffix[0] == "[START]" and suffix[-1] == "[END]"
        names = [record["param_names"][a] for a in ex.params[i]]
        if target == "dep":
            assert suffix[4] == "[MID]"
            assert " ".join(suffix[1:4]).replace(" 's", "'s") == names[0]
            assert " ".join(suffix[5:8]).replace(" 's", "'s") == names[1]
        else:
            assert " ".join(suffix[1:4]).replace(" 's", "'s") == names[0]
        # suffix-only update: exactly the suffix tokens are marked
        assert ex.update_mask[i].nonzero().flatten().tolist() == list(range(len(prefix), len(row)))


def test_labels_come_from_the_generator(tiny_records):
    ex = build_examples(tiny_records, "can_next", 4, seed=1)
    for i in range(len(ex)):
        record = tiny_records[int(ex.group[i])]
        step = record["pos_steps"].index(ex.positions[i])
        assert int(ex.labels[i]) == record["can_next"][step][ex.params[i][0]]
    ex = build_examples(tiny_records, "dep", 4, seed=1)
    for i in range(len(ex)):
        a, b = ex.params[i]
        assert a != b and int(ex.labels[i]) == tiny_records[int(ex.group[i])]["dep"][a][b]


def test_draws_are_seeded_and_without_replacement(tiny_records):
    a = build_examples(tiny_records, "nece", 5, seed=0)
    b = build_examples(tiny_records, "nece", 5, seed=0)
    c = build_examples(tiny_records, "nece", 5, seed=1)
    assert a.params == b.params and a.params != c.params
    for g in range(len(tiny_records)):
        drawn = [p for p, grp in zip(a.params, a.group.tolist()) if grp == g]
        assert len(drawn) == len(set(drawn)) == 5


def test_update_scope_all_marks_every_token(tiny_records):
    ex = build_examples(tiny_records, "nece", 2, seed=0, update_scope="all")
    for i in range(len(ex)):
        assert ex.update_mask[i].sum() == ex.read_pos[i] + 1


def test_context_limit_drops_long_examples(tiny_records):
    full = build_examples(tiny_records, "nece", 2, seed=0)
    width = int(full.read_pos.max()) + 1
    cut = build_examples(tiny_records, "nece", 2, seed=0, n_ctx=width - 1)
    assert len(cut) < len(full) and int(cut.read_pos.max()) < width - 1
    with pytest.raises(ValueError, match="fit the context"):
        build_examples(tiny_records, "nece", 2, seed=0, n_ctx=5)


def test_cached_forward_equals_the_full_forward(tiny_igsm_model, tiny_records):
    for target in ("nece", "dep"):
        ex = build_examples(tiny_records[:3], target, 3, seed=0, update_scope="suffix")
        cache = PrefixCache.build(tiny_igsm_model, ex.prefixes, batch_size=2)  # mixed lengths, left-padded
        for layer in (0, 1):
            probe = CachedVProbe(tiny_igsm_model, 2, rank=4, layer=layer, seed=0)
            with torch.no_grad():
                probe.up.normal_(generator=torch.Generator().manual_seed(layer))
            cached = probe.forward_cached(cache, ex.prefix_id, ex.suffix)
            full = LowRankEmbeddingProbe.forward(probe, ex.tokens, ex.update_mask, ex.read_pos)
            torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)
            shuffled = probe.forward_cached(cache, ex.prefix_id.roll(1), ex.suffix)
            assert (shuffled - full).abs().max() > 1e-3  # the prefix matters


@pytest.mark.slow
def test_cached_probe_learns_a_planted_label(tiny_model_factory):
    """Label = parity of the first suffix token; the suffix-only update must carry it to the read-out."""
    model = tiny_model_factory().eval()
    g = torch.Generator().manual_seed(0)
    n = 400
    prefixes = [torch.randint(0, 10, (int(k),), generator=g).tolist() for k in torch.randint(3, 9, (40,), generator=g)]
    prefix_id = torch.randint(0, 40, (n,), generator=g)
    suffix = torch.stack([torch.randint(0, 10, (n,), generator=g), torch.full((n,), 9)], dim=1)
    labels = (suffix[:, 0] % 2 == 0).long()
    cache = PrefixCache.build(model, prefixes)
    probe = CachedVProbe(model, 2, rank=4, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe.fit_cached(cache, prefix_id[:300], suffix[:300], labels[:300],
                     config=FitConfig(lr=1e-2, batch_size=32, max_epochs=15, patience=3))
    acc = (probe.predict_cached(cache, prefix_id[300:], suffix[300:]) == labels[300:]).float().mean()
    assert acc > 0.85, acc
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model stays frozen


def test_probe_rows_with_controls(tiny_igsm_model, tiny_model_factory, tiny_records, igsm_vocab):
    other = tiny_model_factory(d_vocab=igsm_vocab, n_ctx=384, seed=1).eval()
    config = IGSMProbeConfig(n_train=4, n_test=1, draws_per_problem=3, n_boot=50, layerwise=("nece",),
                             fit=FitConfig(max_epochs=1, batch_size=8))
    rows = probe_igsm_models({"trained": tiny_igsm_model, "random_init": other},
                             tiny_records[:4], tiny_records[4:], config, log=lambda m: None)
    assert {r["target"] for r in rows} == set(TARGETS)
    assert {r["features"] for r in rows} == {"trained", "random_init", "majority"}
    assert all(set(r) == set(CSV_COLUMNS) for r in rows)
    assert all(0.0 <= r["ci_low"] <= r["value"] <= r["ci_high"] <= 1.0 for r in rows)
    assert {r["layer"] for r in rows if r["target"] == "nece"} == {0, 1}
    assert {r["layer"] for r in rows if r["target"] == "dep"} == {1}
    # the majority control predicts the most frequent training label for every test example
    train = build_examples(tiny_records[:4], "known", 3, 0)
    test = build_examples(tiny_records[4:], "known", 3, 1)
    majority = int(torch.bincount(train.labels).argmax())
    expected = float((test.labels == majority).float().mean())
    got = [r for r in rows if (r["target"], r["features"], r["metric"]) == ("known", "majority", "accuracy")]
    assert got and got[0]["value"] == pytest.approx(expected)
    fig = layerwise_igsm_figure(rows, "nece")
    assert {t.name for t in fig.data} == {"trained", "random_init", "majority"}


def test_problem_beliefs_cover_every_pair(tiny_igsm_model, tiny_records):
    config = IGSMProbeConfig(n_train=2, n_test=1, fit=FitConfig(max_epochs=1, batch_size=8))
    train = build_examples(tiny_records, "nece", 3, 0)
    nece = fit_vprobe(tiny_igsm_model, train, 2, 1, config)
    dep = fit_vprobe(tiny_igsm_model, build_examples(tiny_records, "dep", 3, 0), 2, 1, config)
    beliefs = problem_beliefs(nece, dep, tiny_records[0], [0, 1, 2])
    assert set(beliefs["nece"]) == {0, 1, 2}
    assert set(beliefs["dep"]) == {(a, b) for a in range(3) for b in range(3) if a != b}
    assert all(v in (0, 1) for v in [*beliefs["nece"].values(), *beliefs["dep"].values()])
    # the same predictions as the recipe's batched path
    ex = assemble_examples(tiny_records, "nece", [(0, 0, (a,)) for a in (0, 1, 2)], "suffix")
    assert nece.predict(ex).tolist() == [beliefs["nece"][a] for a in (0, 1, 2)]


def test_config_validation():
    with pytest.raises(ValueError, match="layerwise"):
        IGSMProbeConfig(targets=("nece",), layerwise=("dep",))
    with pytest.raises(ValueError):
        IGSMProbeConfig(n_train=1)
    assert dataclasses.replace(IGSMProbeConfig(), rank=8).rank == 8

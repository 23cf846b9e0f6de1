"""The iGSM V-probe: example layout at the spec's positions, populations, the two embedding updates, the prefix
cache, fitting (a planted signal), and the recipe's rows with controls, cells, populations and distance bins."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from physlm.probing.fit import FitConfig
from physlm.probing.igsm_examples import examples_from_rows
from physlm.probing.igsm_vprobe import (
    TARGETS,
    CachedVProbe,
    FullVProbe,
    IGSMProbeConfig,
    PrefixCache,
    assemble_examples,
    build_examples,
    cells_table,
    distance_examples,
    distance_figure,
    fit_vprobe,
    is_headline,
    layerwise_igsm_figure,
    probe_igsm_models,
    problem_beliefs,
)
from physlm.probing.vprobe import LowRankEmbeddingProbe
from physlm.results import CSV_COLUMNS

FAST = FitConfig(max_epochs=1, batch_size=8)


def _decode(ids):
    from physlm.tasks.igsm import igsm_token_table

    return igsm_token_table().decode([int(i) for i in ids])


@pytest.mark.parametrize("target", TARGETS)
def test_examples_sit_at_the_spec_positions(tiny_records, target):
    ex = build_examples(tiny_records, target, 3, seed=0, embedding_update="suffix")
    suffix_len = 9 if target == "dep" else 5
    assert ex.suffix.shape == (len(ex), suffix_len)
    for i in range(len(ex)):
        record = tiny_records[int(ex.group[i])]
        prefix = ex.docs[int(ex.doc_id[i])][: int(ex.prefix_len[i])]
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


def test_define_layout_reads_right_after_define_as(tiny_records):
    ex = build_examples(tiny_records, "can_next", 4, seed=0, layout="define")
    for i in range(len(ex)):
        words = _decode(ex.suffix[i])
        assert words[0] == "Define" and words[-1] == "as" and int(ex.read_pos[i]) == int(ex.prefix_len[i]) + 4
    with pytest.raises(ValueError, match="one parameter"):
        build_examples(tiny_records, "dep", 2, seed=0, layout="define")


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


def test_graph_labels_and_distances_agree(tiny_records):
    for r in tiny_records:
        assert r["in_graph"][r["query_index"]] == 1 and r["query_distance"][r["query_index"]] == 0
        for a in range(len(r["params"])):
            assert (r["query_distance"][a] >= 0) == bool(r["nece"][a])
            if not r["in_graph"][a] and r["params"][a][0] == 0:  # an instance slot without an edge: trivial
                assert r["nece"][a] == 0 and all(row[a] == 1 for row in r["can_next"])
        # a distance-t parameter has a direct dependent at distance t - 1 (shortest path)
        dep = r["dep"]
        for a, t in enumerate(r["query_distance"]):
            if t > 0:
                assert dep[r["query_index"]][a] == 1


def test_populations_draw_from_their_sets(tiny_records):
    for pop, ok in (("G_d", lambda r, a: r["in_graph"][a]),
                    ("necessary", lambda r, a: r["nece"][a]),
                    ("unnecessary", lambda r, a: r["in_graph"][a] and not r["nece"][a])):
        for target in ("dep", "can_next"):
            try:
                ex = build_examples(tiny_records, target, 6, seed=0, population=pop)
            except ValueError:
                continue  # no such parameter in these five problems
            for g, params in zip(ex.group.tolist(), ex.params):
                assert ok(tiny_records[g], params[0])
                if target == "dep":
                    assert tiny_records[g]["in_graph"][params[1]]
    necessary = build_examples(tiny_records, "nece", 50, seed=0, population="necessary")
    assert bool((necessary.labels == 1).all())


def test_distance_examples_are_necessary_parameters_binned_by_t(tiny_records):
    ex, t = distance_examples(tiny_records, 8)
    assert bool((ex.labels == 1).all()) and int(t.min()) >= 1
    expected = sum(1 for r in tiny_records for d in r["query_distance"] if 1 <= d <= 8)
    assert len(ex) == expected
    for g, p, d in zip(ex.group.tolist(), ex.params, t.tolist()):
        assert tiny_records[g]["query_distance"][p[0]] == d


def test_embedding_update_all_marks_every_token(tiny_records):
    ex = build_examples(tiny_records, "nece", 2, seed=0, embedding_update="all")
    for i in range(len(ex)):
        assert ex.update_mask[i].sum() == ex.read_pos[i] + 1


def test_context_limit_drops_long_examples(tiny_records):
    full = build_examples(tiny_records, "nece", 2, seed=0)
    width = int(full.read_pos.max()) + 1
    cut = build_examples(tiny_records, "nece", 2, seed=0, n_ctx=width - 1)
    assert len(cut) < len(full) and int(cut.read_pos.max()) < width - 1
    with pytest.raises(ValueError, match="fit the context"):
        build_examples(tiny_records, "nece", 2, seed=0, n_ctx=5)


@pytest.mark.parametrize("positional", ["rotary", "standard"])
def test_cached_and_whole_embedding_forwards_equal_the_reference(tiny_model_factory, tiny_records, igsm_vocab,
                                                                  positional):
    model = tiny_model_factory(d_vocab=igsm_vocab, n_ctx=384, positional=positional).eval()
    for target in ("nece", "dep", "known"):
        ex = build_examples(tiny_records[:3], target, 4, seed=0, embedding_update="suffix")
        cache = PrefixCache.build(model, ex.docs, batch_size=2)  # mixed lengths, left-padded
        full_ex = build_examples(tiny_records[:3], target, 4, seed=0, embedding_update="all")
        rows = torch.randperm(len(ex), generator=torch.Generator().manual_seed(0))  # documents interleaved
        for layer in (0, 1):
            probe = CachedVProbe(model, 2, rank=4, layer=layer, seed=0)
            with torch.no_grad():
                probe.up.normal_(generator=torch.Generator().manual_seed(layer))
            reference = LowRankEmbeddingProbe.forward(probe, ex.tokens, ex.update_mask, ex.read_pos)[rows]
            fused = probe.forward_cached(cache, ex.doc_id[rows], ex.suffix[rows], ex.prefix_len[rows])
            probe.reference = True  # TransformerLens' own KV-cache path
            hooked = probe.forward_cached(cache, ex.doc_id[rows], ex.suffix[rows], ex.prefix_len[rows])
            probe.reference = False
            torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(hooked, reference, atol=1e-5, rtol=1e-5)
            shuffled = probe.forward_cached(cache, ex.doc_id.roll(1), ex.suffix, ex.prefix_len.roll(1))
            assert (shuffled - reference[rows.argsort()]).abs().max() > 1e-3  # the prefix matters
            # the paper's update: ΔE on every token equals the hooked reference with a full update mask, on
            # padded rows (fused fast path) and packed per document alike
            whole = FullVProbe(model, 2, rank=4, layer=layer, seed=0)
            whole.load_state_dict(probe.state_dict())
            expected = LowRankEmbeddingProbe.forward(whole, full_ex.tokens, full_ex.update_mask, full_ex.read_pos)
            torch.testing.assert_close(whole.forward_full(full_ex.tokens, full_ex.read_pos), expected,
                                       atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(whole.forward_rows(full_ex, rows), expected[rows], atol=1e-5, rtol=1e-5)
            # ... and differs from the suffix-only update: the prefix is embedded with E + ΔE too
            assert (expected[rows] - reference).abs().max() > 1e-4


def test_whole_embedding_probe_learns_a_planted_label(tiny_model_factory):
    """Label = parity of a prefix token, read through a frozen random model at the last suffix token."""
    model = tiny_model_factory().eval()
    g = torch.Generator().manual_seed(0)
    n = 320
    docs = [[1, *torch.randint(4, 10, (int(k),), generator=g).tolist()] for k in torch.randint(3, 7, (n,), generator=g)]
    rows = [(i, len(d), [2, 3], int(d[1] % 2), (0,), -1) for i, d in enumerate(docs)]
    train = examples_from_rows(docs[:240], rows[:240], "all")
    test = examples_from_rows(docs[240:], [(i - 240, *r[1:]) for i, r in enumerate(rows[240:], 240)], "all")
    config = IGSMProbeConfig(rank=4, fit=FitConfig(lr=1e-2, batch_size=32, max_epochs=25, patience=4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fitted = fit_vprobe(model, train, 2, 1, config, curve_on=test)
    accuracy = float((fitted.predict(test) == test.labels).float().mean())
    assert accuracy > 0.85, accuracy
    assert fitted.curve[-1]["test_accuracy"] > fitted.curve[0]["test_accuracy"] - 0.05  # the curve is recorded
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model stays frozen


def test_early_stopping_holds_out_whole_problems(tiny_igsm_model, tiny_records):
    from physlm.probing.fit import split_indices

    train = build_examples(tiny_records, "nece", 6, seed=0)
    tr, va = split_indices(len(train), 0.2, torch.Generator().manual_seed(0), groups=train.group)
    assert not set(train.group[tr].tolist()) & set(train.group[va].tolist())


@pytest.mark.parametrize("mode", ["suffix", "all"])
def test_probe_rows_with_controls_cells_populations_and_distance(
    tiny_igsm_model, tiny_model_factory, tiny_records, igsm_vocab, mode
):
    other = tiny_model_factory(d_vocab=igsm_vocab, n_ctx=384, seed=1).eval()
    config = IGSMProbeConfig(n_train=3, n_test=2, draws_per_problem=3, n_boot=50, layerwise=("nece",),
                             embedding_update=mode, fit=FAST)
    info: dict = {}
    cells = {"op<=4": tiny_records[3:], "op=6": tiny_records[4:]}
    rows = probe_igsm_models({"trained": tiny_igsm_model, "random_init": other}, tiny_records[:3], cells, config,
                             log=lambda m: None, info=info)
    assert {r["target"] for r in rows} == set(TARGETS)
    assert {r["features"] for r in rows} == {"trained", "random_init", "majority"}
    assert all(set(CSV_COLUMNS) | {"cell", "population", "n_examples"} == set(r) for r in rows)
    assert all(0.0 <= r["ci_low"] <= r["value"] <= r["ci_high"] <= 1.0 for r in rows)
    assert {r["cell"] for r in rows if r["level"] == 0} == {"op<=4", "op=6"}
    assert {r["population"] for r in rows if r["target"] == "nece" and r["level"] == 0} == {"all_param", "G_d"}
    assert {"necessary", "unnecessary"} & {r["population"] for r in rows if r["target"] == "can_next"}
    assert {r["layer"] for r in rows if r["target"] == "nece"} == {0, 1}
    assert {r["layer"] for r in rows if r["target"] == "dep"} == {1}
    distance = [r for r in rows if r["level"] > 0]
    assert distance and all(r["target"] == "nece" and r["population"] == "necessary" for r in distance)
    assert {r["layer"] for r in distance} == {0, 1} and {r["cell"] for r in distance} == {"all cells"}
    # the majority control predicts the most frequent training label (same population) for every test example
    train = build_examples(tiny_records[:3], "known", 3, 0, mode, 384)
    test = build_examples(tiny_records[3:], "known", 3, 1, mode, 384)
    majority = int(torch.bincount(train.labels).argmax())
    expected = float((test.labels == majority).float().mean())
    got = [r for r in rows if (r["target"], r["features"], r["metric"], r["cell"], r["population"])
           == ("known", "majority", "accuracy", "op<=4", "all_param")]
    assert len(got) == 1 and got[0]["value"] == pytest.approx(expected)
    # the convergence curve of every target's final-layer fit (trained model)
    assert set(info["curves"]) == set(TARGETS)
    assert all(c["epochs"][0]["test_accuracy"] >= 0 for c in info["curves"].values())
    fig = layerwise_igsm_figure(rows, "nece")
    assert {t.name for t in fig.data} == {"trained", "random_init", "majority"}
    assert all(len(t.x) == 2 for t in fig.data)  # the headline rows only: one point per layer
    assert distance_figure(rows).data
    table = cells_table(rows)
    assert {(e["target"], e["cell"]) for e in table} >= {("nece", "op<=4"), ("nece", "op=6")}
    assert sum(is_headline(r) for r in rows) < len(rows)


def test_problem_beliefs_cover_every_pair(tiny_igsm_model, tiny_records):
    config = IGSMProbeConfig(n_train=2, n_test=1, embedding_update="suffix", fit=FAST)
    nece = fit_vprobe(tiny_igsm_model, build_examples(tiny_records, "nece", 3, 0, "suffix"), 2, 1, config)
    dep = fit_vprobe(tiny_igsm_model, build_examples(tiny_records, "dep", 3, 0, "suffix"), 2, 1, config)
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
    with pytest.raises(ValueError, match="all_param"):
        IGSMProbeConfig(populations=("G_d",))
    assert IGSMProbeConfig().embedding_update == "all"  # the paper's V-probe by default
    assert dataclasses.replace(IGSMProbeConfig(), rank=8).rank == 8
    assert IGSMProbeConfig.from_json(IGSMProbeConfig().to_json()) == IGSMProbeConfig()

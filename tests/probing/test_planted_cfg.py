"""Planted-signal check of the CFG probe recipe: a hook writes the generator's true labels into the residual
stream of a tiny random model after one block; the recipe's default probes must read them at that layer and
after it (the residual carries them on), and far less well before it.

A misalignment between tokens and labels (an off-by-one, BOS handling, another sentence's labels) or between
layers and their index fails here in seconds: shifting the plant by one token in either direction drops the
NT-end probe's balanced accuracy at the planted layer to 0.84-0.94 (the threshold is 0.98).
"""

from __future__ import annotations

import random

import pytest
from factory import planted_cfg_labels, tiny_model

from physlm.probing.cfg_recipe import ProbeConfig, probe_cfg_model, sample_probe_data
from physlm.tasks.cfg import DEFAULT_GRAMMAR, cfg_token_table, load_grammar, sample_sentence

N_LAYERS, PLANTED, N_CTX = 3, 1, 128
N_TRAIN, N_TEST = 200, 100
"""fewer sentences than ProbeConfig's 400 + 200, for time; every probe setting is the default"""


@pytest.fixture(scope="module")
def planted():
    """The default grammar's probe data, its labelled sentences and a random model with the labels planted."""
    grammar = load_grammar(DEFAULT_GRAMMAR)
    table = cfg_token_table(grammar)
    seed = ProbeConfig().seed
    data = sample_probe_data(grammar, N_TRAIN + N_TEST, seed, N_CTX)
    # the recipe's sentence stream (physlm.probing.cfg_data), drawn again to know each sentence's labels
    rng = random.Random(f"physlm-probe:{seed}")
    samples = [sample_sentence(grammar, rng) for _ in range(N_TRAIN + N_TEST)]
    assert data.n_cut == 0
    model = tiny_model(n_layers=N_LAYERS, n_ctx=N_CTX, d_vocab=table.d_vocab).eval()
    return data, samples, model, table


def _probe(planted, tmp_path, targets):
    data, samples, model, table = planted
    config = ProbeConfig(n_train=N_TRAIN, n_test=N_TEST, targets=targets, controls=("majority",))
    with planted_cfg_labels(model, samples, PLANTED, scale=5.0):
        rows = probe_cfg_model({"trained": model}, data, config, tmp_path / "cache", table.d_vocab, log=lambda m: None)
    return rows


def _check(rows, targets):
    metric = {"ancestor": "accuracy", "ancestor_at_end": "accuracy", "end": "balanced_accuracy"}
    seen = set()
    for r in rows:
        if r["features"] != "trained" or r["metric"] != metric[r["target"]]:
            continue
        seen.add((r["target"], r["level"], r["layer"]))
        where = f'{r["target"]} level {r["level"]} layer {r["layer"]}: {r["value"]:.3f}'
        if r["layer"] >= PLANTED:
            assert r["value"] >= 0.98, f"the planted labels are not read at or after layer {PLANTED}: {where}"
        else:
            assert r["value"] <= 0.9, f"the probe reads labels that are not planted before layer {PLANTED}: {where}"
    assert seen == {(t, lv, layer) for t in targets for lv in (2, 3, 4) for layer in range(-1, N_LAYERS)}


def test_multihead_ancestor_probe_reads_the_planted_ancestors(planted, tmp_path):
    _check(_probe(planted, tmp_path, ("ancestor",)), ("ancestor",))


def test_nt_end_probes_read_the_planted_labels_where_they_sit(planted, tmp_path):
    targets = ("ancestor_at_end", "end")
    _check(_probe(planted, tmp_path, targets), targets)

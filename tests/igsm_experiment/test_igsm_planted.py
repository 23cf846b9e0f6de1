"""Planted-signal check of the iGSM V-probe recipe: a hook writes nece(A), the generator's label of the queried
parameter A, into the residual stream at the query's [END] after one block of a tiny random model; the
recipe's default nece probe must read it at that layer and after it, and not before.

The plant finds the problem through the model itself (physlm's test factory, ``planted_igsm_nece``), so it
also reaches the probe through the suffix variant's prefix cache. Planting the label of another parameter of
the same problem, or of the same-named parameter of the next problem, leaves the probe at chance (0.5).
"""

from __future__ import annotations

import pytest
from factory import planted_igsm_nece, tiny_igsm_model

from physlm.probing.igsm_vprobe import CachedVProbe, FullVProbe, IGSMProbeConfig, probe_igsm_models, probe_records

N_LAYERS, PLANTED, N_CTX = 3, 1, 384
PRESET, N_TRAIN, N_TEST = "micro", 16, 12
"""the compact preset and fewer problems than IGSMProbeConfig's 200 + 100, for time; the probe settings are
the defaults"""


@pytest.fixture(scope="module")
def records():
    max_doc = N_CTX - 1 - 9  # room for <bos> and the longest suffix, as run_igsm_probes leaves
    return probe_records(PRESET, "train", N_TRAIN, 0, max_doc), probe_records(PRESET, "test", N_TEST, 0, max_doc)


@pytest.mark.parametrize("embedding_update", ["all", "suffix"])
def test_nece_probe_reads_the_planted_label_of_the_queried_parameter(records, embedding_update, monkeypatch):
    train, test = records
    # the probes' packed/fused forwards compute the same function as TransformerLens' own forward (tested in
    # test_igsm_vprobe.py) but run no hook points: the plant is read through the reference paths
    monkeypatch.setattr(FullVProbe, "reference", True)
    monkeypatch.setattr(CachedVProbe, "reference", True)
    model = tiny_igsm_model(n_layers=N_LAYERS, n_ctx=N_CTX)
    # one target and cell, no convergence curves: the parts of the recipe this check does not need
    config = IGSMProbeConfig(targets=("nece",), layerwise=("nece",), cells=("in_dist",), controls=("majority",),
                             curves=False, embedding_update=embedding_update)
    assert IGSMProbeConfig().fit == config.fit and IGSMProbeConfig().rank == config.rank
    # a large plant: the probe's loss reaches 0 within a few epochs, so early stopping ends the fit quickly
    with planted_igsm_nece(model, train + test, PLANTED, scale=1000.0):
        rows = probe_igsm_models({"trained": model}, train, test, config, log=lambda m: None)
    read = {(r["layer"], r["population"]): r["value"] for r in rows
            if (r["target"], r["features"], r["metric"], r["level"]) == ("nece", "trained", "balanced_accuracy", 0)}
    assert {layer for layer, _ in read} == set(range(N_LAYERS))
    for (layer, population), value in read.items():
        where = f"layer {layer}, {population}: balanced accuracy {value:.3f}"
        if layer >= PLANTED:
            assert value >= 0.98, f"the planted nece labels are not read at or after layer {PLANTED}: {where}"
        else:
            assert value <= 0.75, f"the probe reads nece labels that are not planted yet: {where}"


def test_fused_vprobe_forward_steps_aside_when_a_hook_is_attached():
    """The fused V-probe forwards skip hook points, so an attached hook must switch them off."""
    from physlm.probing.igsm_cache import fused_suffix_supported

    model = tiny_igsm_model()
    assert fused_suffix_supported(model)
    model.blocks[0].hook_resid_post.add_hook(lambda act, hook: act)
    try:
        assert not fused_suffix_supported(model)
    finally:
        model.reset_hooks()
    assert fused_suffix_supported(model)

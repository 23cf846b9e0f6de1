"""The CFG probing recipe end to end on a tiny run directory (an untrained model saved as a checkpoint)."""

from __future__ import annotations

import json

import pytest
from factory import checkpoint_run as _make_run

from physlm.probing.fit import FitConfig

QUICK = dict(
    n_train=40, n_test=20, n_heads=2, d_pos=8, n_boot=50,
    multihead_fit=FitConfig(lr=3e-2, batch_size=8, max_epochs=3, patience=1),
    linear_fit=FitConfig(lr=3e-2, batch_size=256, max_epochs=3, patience=1),
)


def test_recipe_writes_results_figures_and_config(tmp_path):
    from physlm.probing.cfg_recipe import CSV_COLUMNS, ProbeConfig, read_results, run_cfg_probes

    run = _make_run(tmp_path)
    csv_path = run_cfg_probes(run, ProbeConfig(**QUICK))
    assert csv_path == run / "probe_results.csv"
    assert csv_path.read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
    rows = read_results(csv_path)
    keys = {(r["target"], r["level"], r["layer"], r["features"]) for r in rows}
    for target, levels in [("ancestor", (2, 3)), ("ancestor_at_end", (2, 3)), ("end", (2, 3)), ("end_level", (0,))]:
        for level in levels:
            for layer in (-1, 0, 1):
                for features in ("trained", "random_init", "majority", "position", "position_token", "shuffled"):
                    assert (target, level, layer, features) in keys, (target, level, layer, features)
    for r in rows:
        if r["metric"] != "selectivity":
            assert 0.0 <= r["ci_low"] <= r["value"] + 1e-9 <= r["ci_high"] + 2e-9 <= 1.0 + 2e-9, r
    metrics = {(r["target"], r["metric"]) for r in rows}
    assert ("end", "balanced_accuracy") in metrics and ("ancestor", "class_0_accuracy") in metrics
    assert ("ancestor", "selectivity") in metrics
    # Layer-independent baselines are identical on every layer.
    majority = {r["value"] for r in rows if r["features"] == "majority" and r["target"] == "ancestor"
                and r["level"] == 2 and r["metric"] == "accuracy"}
    assert len(majority) == 1
    for name in ("probe_ancestor.json", "probe_end.json", "probes.html"):
        assert (run / name).is_file()
    assert json.loads((run / "probe_end_level.json").read_text())["data"]
    record = json.loads((run / "config.json").read_text())
    assert record["configs"]["probe"]["n_train"] == 40
    assert (run / "COMPLETE.probe").exists() and not (run / "probe_cache").exists()


def test_recipe_is_deterministic_and_checks_its_options(tmp_path):
    from physlm.probing.cfg_recipe import ProbeConfig, run_cfg_probes

    run = _make_run(tmp_path)
    small = ProbeConfig(**QUICK, layers=(1,), levels=(3,), targets=("ancestor_at_end", "end"),
                        controls=("majority",))
    first = run_cfg_probes(run, small).read_text()
    assert run_cfg_probes(run, small).read_text() == first
    assert {line.split(",")[3] for line in first.splitlines()[1:]} == {"trained", "majority"}
    with pytest.raises(ValueError, match="not NT levels"):
        run_cfg_probes(run, small.replace(levels=(5,)))
    assert (run / "FAILED").exists()
    with pytest.raises(ValueError, match="n_train >= 10"):
        ProbeConfig(n_train=2)


@pytest.mark.slow
def test_briefly_trained_model_beats_its_random_init_control(tmp_path):
    """Train a tiny model on cfg_tiny for a few hundred steps, then probe it: the NT-end flag at the
    last layer must be decoded better from the trained model than from the random-init control."""
    from physlm.probing.cfg_recipe import ProbeConfig, read_results, run_cfg_probes
    from physlm.training.cli import train
    from physlm.training.train_config import TrainConfig

    run = tmp_path / "run"
    train(out=run, config=TrainConfig(steps=300, batch_size=16, seq_len=64, lr=3e-3, eval_every=0, save_every=0,
                                      device="cpu"),
          grammar="cfg_tiny", preset="gpt_rot-tiny", model_option=("n_layers=2", "d_model=64", "n_ctx=64"))
    config = ProbeConfig(**{**QUICK, "n_train": 150, "n_test": 100}, controls=("random_init", "position_token"))
    rows = read_results(run_cfg_probes(run, config))

    def value(target, level, features, metric):
        (r,) = [r for r in rows if (r["target"], r["level"], r["layer"], r["features"], r["metric"])
                == (target, level, 1, features, metric)]
        return r["value"]

    assert value("end", 3, "trained", "balanced_accuracy") > value("end", 3, "random_init", "balanced_accuracy")
    assert value("ancestor", 2, "trained", "accuracy") > value("ancestor", 2, "random_init", "accuracy")

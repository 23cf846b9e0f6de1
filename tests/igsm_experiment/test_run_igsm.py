"""`physlm run igsm` end to end at smoke size, and its command line."""

from __future__ import annotations

import csv
import json

import pytest

from physlm.experiments.recipe import ModelOptions
from physlm.experiments.run_igsm import (
    IGSMExperimentConfig,
    IGSMTrainOptions,
    model_config,
    run_igsm_experiment,
    train_config,
)


def _smoke_config() -> IGSMExperimentConfig:
    from physlm.analysis.igsm_eval import IGSMEvalConfig
    from physlm.probing.fit import FitConfig
    from physlm.probing.igsm_vprobe import IGSMProbeConfig

    return IGSMExperimentConfig(
        model=ModelOptions(preset="gpt_rot-tiny", d_model=32), n_ctx=320, seq_len=256,
        train=IGSMTrainOptions(steps=3, batch_size=2, device="cpu"), png=False,
        eval=IGSMEvalConfig(n_problems=1, ood=True, reask=False, n_examples=1, length_factor=1.0),
        probe=IGSMProbeConfig(n_train=4, n_test=2, draws_per_problem=2, n_boot=20, layerwise=("nece",),
                              fit=FitConfig(max_epochs=1, batch_size=8)),
    )


def test_smoke_run_writes_every_artifact(tmp_path):
    from physlm.probing.cfg_recipe import CSV_COLUMNS
    from physlm.probing.igsm_vprobe import TARGETS

    run = run_igsm_experiment(tmp_path / "run", _smoke_config())
    for stage in ("train", "eval", "probe", "report"):
        assert (run.path / f"COMPLETE.{stage}").exists()
    assert not (run.path / "FAILED").exists()
    record = json.loads((run.path / "igsm_eval.json").read_text())
    assert [c["cell"] for c in record["cells"]] == ["op<=4", "op=4", "op=6", "op=7", "op=8"]
    assert [c["ood"] for c in record["cells"]] == [False, False, True, True, True]
    with (run.path / "probe_results.csv").open() as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == (*CSV_COLUMNS, "cell", "population", "n_examples")
        rows = list(reader)
    assert {r["target"] for r in rows} == set(TARGETS)
    assert {r["features"] for r in rows} == {"trained", "random_init", "majority"}
    assert {"class_0_accuracy", "class_1_accuracy", "balanced_accuracy"} <= {r["metric"] for r in rows}
    for target in TARGETS:
        assert (run.path / f"probe_{target}.json").is_file()
    html = (run.path / "report.html").read_text()
    for heading in ("What this run shows", "Solutions: accuracy by number of operations", "V-probes"):
        assert heading in html
    configs = json.loads((run.path / "config.json").read_text())["configs"]
    assert configs["experiment"]["preset"] == "tiny" and configs["probe"]["preset"] == "tiny"
    assert configs["experiment"]["model"]["preset"] == "gpt_rot-tiny" and configs["model_preset"] == "gpt_rot-tiny"
    trained_on = run.trained_on()
    assert (trained_on.task, trained_on.preset, trained_on.step) == ("igsm", "tiny", 3)
    with pytest.raises(FileExistsError):
        run_igsm_experiment(tmp_path / "run", _smoke_config())


def test_configs_follow_the_experiment():
    config = IGSMExperimentConfig(seq_len=128, n_ctx=256, model=ModelOptions(d_model=64),
                                  train=IGSMTrainOptions(steps=50, schedule="cosine"))
    tc = train_config(config)
    assert (tc.steps, tc.seq_len, tc.drop_long_documents, tc.min_lr_ratio) == (50, 128, True, 0.01)
    mc = model_config(config, d_vocab=100)
    assert (mc.d_model, mc.d_mlp, mc.n_ctx, mc.d_vocab, mc.positional) == (64, 256, 256, 100, "rotary")
    with pytest.raises(ValueError, match="seq_len"):
        IGSMExperimentConfig(seq_len=512, n_ctx=256)
    assert IGSMExperimentConfig.from_json(config.to_json()) == config


def test_cli_exposes_the_nested_options(capsys):
    from physlm.experiments.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["run", "igsm", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--preset", "--model.preset", "--model.d-model", "--steps", "--save-every", "--eval.n-problems",
                   "--probe.rank", "--probe.embedding-update"):
        assert option in out

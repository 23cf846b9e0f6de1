"""The model zoo: building an entry from a freshly trained run, and re-measuring every shipped entry."""

from __future__ import annotations

import json

import pytest
import torch

from physlm.experiments.cli import main as physlm
from physlm.experiments.zoo import (
    RUN_FILES,
    ZOO_FILE,
    ZooError,
    build_zoo_entry,
    check_zoo_entry,
    default_zoo_entry,
    list_zoo,
    load_zoo_model,
    notebook_model,
    read_zoo_record,
    reproduction_commands,
    zoo_path,
)
from physlm.rundir import RunDir
from physlm.training.checkpoint import STATE_FILE
from physlm.training.load import load_model

TINY_TRAIN = [
    "--task", "cfg", "--grammar", "cfg_tiny", "--preset", "gpt_rot-tiny",
    "--model-option", "n_layers=1", "d_model=16", "n_heads=2",
    "--steps", "3", "--batch-size", "2", "--seq-len", "32", "--eval-batches", "1", "--log-every", "1",
    "--device", "cpu",
]
TINY_GENERATION = ["--n-samples", "16", "--n-kl-sentences", "2", "--n-entropy-sentences", "2",
                   "--corruption-fractions"]
TINY_PROBE = ["--n-train", "20", "--n-test", "10", "--n-boot", "20", "--targets", "ancestor_at_end",
              "--controls", "random_init"]
COMMAND = "physlm train --out runs/tiny ... (test)"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run trained for a few steps, with generation and probe stages, as the CLI writes it."""
    out = tmp_path_factory.mktemp("zoo") / "run"
    assert physlm(["train", "--out", str(out), *TINY_TRAIN]) == 0
    assert physlm(["analyze", "generation", "--run", str(out), *TINY_GENERATION]) == 0
    assert physlm(["probe", "cfg", "--run", str(out), *TINY_PROBE]) == 0
    return out


@pytest.fixture(scope="module")
def tiny_entry(tiny_run, tmp_path_factory):
    zoo = tmp_path_factory.mktemp("zoo_dir")
    return build_zoo_entry("tiny", tiny_run, zoo_dir=zoo, command=COMMAND)


def test_builder_writes_a_loadable_entry_without_optimizer_state(tiny_run, tiny_entry):
    zoo = tiny_entry.parent
    assert list_zoo(zoo) == ["tiny"] and zoo_path("tiny", zoo) == tiny_entry
    for name in (*RUN_FILES, "model.safetensors", "checkpoint.json", ZOO_FILE):
        assert (tiny_entry / name).is_file(), name
    assert not (tiny_entry / STATE_FILE).exists()
    assert not list(tiny_entry.glob("checkpoints"))
    assert not [p for p in zoo.iterdir() if p.name.startswith(".tmp-")]

    loaded = load_zoo_model("tiny", zoo_dir=zoo)
    original = load_model(tiny_run)
    assert loaded.step == original.step == 3
    assert loaded.token_table.task == "cfg:cfg_tiny"
    state, ref = loaded.model.state_dict(), original.model.state_dict()
    assert state.keys() == ref.keys() and all(torch.equal(state[k], ref[k]) for k in ref)
    ids = torch.tensor([[loaded.token_table.bos_id, 4, 5, 6, 4]])
    assert torch.allclose(loaded.model(ids), original.model(ids))
    assert RunDir.open(tiny_entry).config("task")["config"]["grammar"] == "cfg_tiny"


def test_zoo_json_records_command_grammar_and_the_runs_numbers(tiny_run, tiny_entry):
    record = read_zoo_record("tiny", tiny_entry.parent)
    assert record["grammar"] == "cfg_tiny" and record["reproduce"] == COMMAND
    generation = json.loads((tiny_run / "generation.json").read_text())
    head = record["headline"]
    assert head["generation"]["accuracy_cut0"] == generation["accuracy_cut0"]
    assert head["generation"]["n_samples"] == 16
    rows = [line.split(",") for line in (tiny_run / "probe_results.csv").read_text().splitlines()[1:]]
    expected = {
        r[1]: float(r[5]) for r in rows
        if r[0] == "ancestor_at_end" and r[2] == "0" and r[3] == "trained" and r[4] == "accuracy"
    }
    assert set(expected) == {"2", "3"}  # cfg_tiny's NT levels; the 1-layer model's last layer is 0
    assert {k: v["accuracy"] for k, v in head["probe"]["levels"].items()} == pytest.approx(expected, abs=1e-6)
    assert head["probe"]["layer"] == 0 and head["probe"]["n_test"] == 10
    assert all(v["random_init"] is not None for v in head["probe"]["levels"].values())


def test_builder_refuses_incomplete_runs_existing_entries_and_unknown_commands(tiny_run, tiny_entry, tmp_path):
    zoo = tiny_entry.parent
    with pytest.raises(ZooError, match="--overwrite"):
        build_zoo_entry("tiny", tiny_run, zoo_dir=zoo, command=COMMAND)
    # the run was made in-process (argv is pytest's), so no physlm command line is on record
    with pytest.raises(ZooError, match="--command"):
        build_zoo_entry("other", tiny_run, zoo_dir=zoo)
    with pytest.raises(ZooError, match="letters"):
        build_zoo_entry("../evil", tiny_run, zoo_dir=zoo, command=COMMAND)
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("config.json", "log.txt", "metrics.jsonl", "COMPLETE.train"):
        (partial / name).write_bytes((tiny_run / name).read_bytes())
    with pytest.raises(ZooError, match="physlm analyze generation.*physlm probe cfg"):
        build_zoo_entry("partial", partial, zoo_dir=zoo, command=COMMAND)
    with pytest.raises(ZooError, match="no zoo entry 'missing'.*entries: tiny"):
        zoo_path("missing", zoo)
    assert list_zoo(zoo) == ["tiny"]


def test_physlm_zoo_commands(tiny_run, tmp_path, capsys):
    from physlm.experiments.zoo import main as zoo_main

    zoo = tmp_path / "zoo"
    assert physlm(["zoo", "build", "cli-entry", "--run", str(tiny_run), "--command", COMMAND,
                   "--zoo-dir", str(zoo)]) == 0
    out = capsys.readouterr().out
    assert f"zoo entry {zoo / 'cli-entry'}" in out and f"reproduce: {COMMAND}" in out
    assert read_zoo_record("cli-entry", zoo)["grammar"] == "cfg_tiny"
    assert physlm(["zoo", "list", "--zoo-dir", str(zoo)]) == 0
    assert capsys.readouterr().out == "cli-entry: grammar cfg_tiny, gpt_rot-tiny, step 3\n"
    code = physlm(["zoo", "check", "cli-entry", "--n-samples", "16", "--zoo-dir", str(zoo)])
    lines = [line for line in capsys.readouterr().out.splitlines() if ": recorded " in line]
    assert lines[0].startswith("generation accuracy_cut0: recorded") and len(lines) == 3
    assert code == (1 if any("MISMATCH" in line for line in lines) else 0)
    # the module's own entry point is the same command line
    assert zoo_main(["list", "--zoo-dir", str(zoo)]) == 0
    assert capsys.readouterr().out.startswith("cli-entry: grammar cfg_tiny")
    assert zoo_main(["check", "missing", "--zoo-dir", str(zoo)]) == 2
    assert "no zoo entry 'missing'" in capsys.readouterr().err


def test_reproduction_commands_come_from_the_physlm_command_lines():
    record = {"commands": [
        {"argv": "/repo/.venv/bin/physlm train --out runs/a --grammar cfg3b"},
        {"argv": "python -m physlm.experiments.cli probe cfg --run runs/a"},
        {"argv": "/repo/.venv/bin/physlm probe cfg --run runs/a"},
        {"argv": "pytest -q tests"},
    ]}
    assert reproduction_commands(record) == [
        "physlm train --out runs/a --grammar cfg3b", "physlm probe cfg --run runs/a"
    ]


def test_check_flags_numbers_that_do_not_match(tiny_entry):
    zoo = tiny_entry.parent
    results = check_zoo_entry("tiny", zoo, n_samples=16)
    assert [c.name for c in results][0] == "generation accuracy_cut0"
    assert len(results) == 1 + 2  # generation + two NT levels
    assert all(0 < c.tolerance < 1 for c in results)
    # a recorded number far from what the weights do must be caught
    path = tiny_entry / ZOO_FILE
    original = path.read_text()
    record = json.loads(original)
    record["headline"]["generation"]["accuracy_cut0"] = 0.0 if results[0].measured > 0.5 else 1.0
    path.write_text(json.dumps(record))
    try:
        flagged = check_zoo_entry("tiny", zoo, n_samples=16)[0]
    finally:
        path.write_text(original)
    assert not flagged.ok and "MISMATCH" in str(flagged)


def test_notebook_model_opens_the_zoo_or_trains_a_tiny_stand_in(tiny_entry, tmp_path):
    zoo = tiny_entry.parent
    nm = notebook_model(None, smoke=False, fallback_dir=tmp_path / "unused", zoo_dir=zoo)
    assert nm.from_zoo and nm.path == tiny_entry and nm.probe_results == tiny_entry / "probe_results.csv"
    assert "zoo model 'tiny'" in nm.description and COMMAND in nm.description
    assert nm.grammar.name == "cfg_tiny" and not (tmp_path / "unused").exists()

    fallback = notebook_model(None, smoke=True, fallback_dir=tmp_path / "tiny", fallback_grammar="cfg_tiny",
                              fallback_steps=2, zoo_dir=zoo)
    assert not fallback.from_zoo and fallback.loaded.step == 2 and fallback.probe_results is None
    assert "smoke mode" in fallback.description and "2 steps on cfg_tiny" in fallback.description
    with pytest.raises(ZooError, match="requested but the zoo .* is empty"):
        notebook_model("tiny", smoke=False, fallback_dir=tmp_path / "x", zoo_dir=tmp_path / "empty_zoo")


def test_default_entry_is_the_default_grammars_else_the_first(tmp_path):
    from physlm.tasks.cfg.presets import DEFAULT_GRAMMAR

    assert default_zoo_entry(tmp_path) is None
    for name, grammar in (("a-other", "cfg_tiny"), ("b-default", DEFAULT_GRAMMAR), ("c-other", "cfg3b")):
        (tmp_path / name).mkdir()
        record = {"format": "physlm-zoo", "format_version": 1, "grammar": grammar}
        (tmp_path / name / ZOO_FILE).write_text(json.dumps(record))
    assert default_zoo_entry(tmp_path) == "b-default"
    (tmp_path / "b-default" / ZOO_FILE).unlink()
    assert default_zoo_entry(tmp_path) == "a-other"


ENTRIES = list_zoo()


@pytest.mark.parametrize(
    "name",
    ENTRIES or [pytest.param(None, marks=pytest.mark.skip(
        reason="experiments/zoo/ holds no entries yet: nothing to re-measure "
               "(build one with `physlm zoo build NAME --run RUN_DIR`)"
    ))],
)
def test_every_zoo_entry_reproduces_its_recorded_numbers(name):
    """Generation accuracy (cut0, fresh seeded samples) and the last-layer ancestor_at_end probe accuracy
    (the recorded probe config on fresh sentences) agree with zoo.json within 4 standard errors."""
    # a sample of a long-sentence model (cfg3b: ~275 tokens, up to its 512-token context when it does not stop)
    # takes ~0.6 s on one core, so those entries get 60 samples here; the tolerance follows the sample size
    # iGSM entries re-solve 60 fresh in-distribution test problems greedily (fully correct and answer accuracy)
    long_context = read_zoo_record(name)["model"]["n_ctx"] > 128
    results = check_zoo_entry(name, n_samples=60 if long_context else 300, n_problems=60)
    assert len(results) >= 2
    bad = [str(c) for c in results if not c.ok]
    assert not bad, "\n".join(bad)


# -- iGSM entries ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_igsm_run(tmp_path_factory):
    """`physlm run igsm` at smoke size: 3 training steps, eval, V-probes (every stage finished)."""
    from physlm.analysis.igsm_eval import IGSMEvalConfig
    from physlm.experiments.recipe import ModelOptions
    from physlm.experiments.run_igsm import IGSMExperimentConfig, IGSMTrainOptions, run_igsm_experiment
    from physlm.probing.fit import FitConfig
    from physlm.probing.igsm_vprobe import IGSMProbeConfig

    config = IGSMExperimentConfig(
        model=ModelOptions(preset="gpt_rot-tiny", d_model=32), n_ctx=320, seq_len=256,
        train=IGSMTrainOptions(steps=3, batch_size=2, device="cpu"), png=False,
        eval=IGSMEvalConfig(n_problems=3, ood=True, reask=True, n_examples=1, length_factor=1.0),
        probe=IGSMProbeConfig(n_train=4, n_test=2, draws_per_problem=2, n_boot=20, layerwise=("nece",),
                              fit=FitConfig(max_epochs=1, batch_size=8)),
    )
    return run_igsm_experiment(tmp_path_factory.mktemp("zoo_igsm") / "run", config).path


def test_igsm_entry_records_the_runs_eval_and_probe_numbers_and_checks(tiny_igsm_run, tmp_path):
    from physlm.probing.igsm_figures import headline_metric
    from physlm.results import read_results

    zoo = tmp_path / "zoo"
    path = build_zoo_entry("igsm_tiny-gpt_rot-tiny", tiny_igsm_run, zoo_dir=zoo, command=COMMAND)
    for name in ("model.safetensors", "checkpoint.json", "config.json", "log.txt", "metrics.jsonl",
                 "igsm_eval.json", "probe_results.csv", ZOO_FILE):
        assert (path / name).is_file(), name
    assert not (path / STATE_FILE).exists()
    record = read_zoo_record("igsm_tiny-gpt_rot-tiny", zoo)
    assert (record["task"], record["preset"], record["step"], record["reproduce"]) == ("igsm", "tiny", 3, COMMAND)
    assert "grammar" not in record
    ev = record["headline"]["eval"]
    run_eval = json.loads((tiny_igsm_run / "igsm_eval.json").read_text())
    assert list(ev["cells"]) == [c["cell"] for c in run_eval["cells"]] == ["op<=4", "op=4", "op=6", "op=7",
                                                                           "op=8", "op=6 reask"]
    assert ev["in_distribution"] == "op<=4" and ev["seed"] == 0 and ev["n_ctx"] == 320
    for cell in run_eval["cells"]:
        got = ev["cells"][cell["cell"]]
        for key in ("n", "correct", "accuracy", "ci_low", "ci_high", "answer_accuracy", "mean_unnecessary_params",
                    "mean_unnecessary_available"):
            assert got[key] == cell[key], (cell["cell"], key)
        assert got["n"] == 3 and got["mean_unnecessary_available"] is not None

    probe = record["headline"]["probe"]
    assert probe["layer"] == 1 and set(probe["targets"]) == {"nece", "dep", "can_next"}
    rows = read_results(tiny_igsm_run / "probe_results.csv")
    for target, entries in probe["targets"].items():
        for entry in entries.values():
            match = [r for r in rows if r["target"] == target and r["layer"] == 1 and r["level"] == 0
                     and r["metric"] == headline_metric(target) and r["features"] == "trained"
                     and r.get("cell") == entry["cell"] and r.get("population") == entry["population"]]
            assert len(match) == 1
            assert entry["trained"]["value"] == pytest.approx(match[0]["value"], abs=1e-9)
            assert {"random_init", "majority"} <= set(entry)

    assert default_zoo_entry(zoo, task="igsm") == "igsm_tiny-gpt_rot-tiny"
    assert default_zoo_entry(zoo) is None  # the CFG default ignores iGSM entries
    results = check_zoo_entry("igsm_tiny-gpt_rot-tiny", zoo, n_problems=4)
    assert [c.name.split(",")[0] for c in results] == ["fully-correct accuracy", "answer accuracy"]
    assert all("op<=4" in c.name and 0 < c.tolerance for c in results)
    assert results[0].recorded == ev["cells"]["op<=4"]["accuracy"]


def test_igsm_entry_without_a_finished_probe_stage_records_no_probe_headline(tiny_igsm_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_igsm_run, run)
    (run / "COMPLETE.probe").unlink()  # an interrupted `physlm probe igsm` leaves a partial csv
    zoo = tmp_path / "zoo"
    assert physlm(["zoo", "build", "igsm_tiny-x-tiny", "--run", str(run), "--command", COMMAND,
                   "--zoo-dir", str(zoo)]) == 0
    assert "no probe headline" in capsys.readouterr().out
    assert read_zoo_record("igsm_tiny-x-tiny", zoo)["headline"]["probe"] is None
    assert not (zoo / "igsm_tiny-x-tiny" / "probe_results.csv").exists()
    assert physlm(["zoo", "list", "--zoo-dir", str(zoo)]) == 0
    assert capsys.readouterr().out == "igsm_tiny-x-tiny: iGSM preset tiny, gpt_rot-tiny, step 3\n"
    (run / "igsm_eval.json").unlink()
    with pytest.raises(ZooError, match="physlm analyze igsm"):
        build_zoo_entry("igsm_tiny-y-tiny", run, zoo_dir=zoo, command=COMMAND)

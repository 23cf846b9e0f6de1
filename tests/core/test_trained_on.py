"""`RunDir.trained_on()`: the one reader of what a run's model was trained on."""

from __future__ import annotations

import pytest

from physlm.experiments.cli import main
from physlm.rundir import RunDir, read_trained_on


def test_a_trained_cfg_run(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--task", "cfg", "--grammar", "cfg_tiny", "--preset", "gpt_rot-tiny",
                 "--model-option", "n_layers=1", "d_model=16", "n_heads=2", "--steps", "1", "--batch-size", "2",
                 "--seq-len", "24", "--eval-batches", "1", "--device", "cpu"]) == 0
    trained = RunDir.open(out).trained_on()
    assert (trained.task, trained.grammar, trained.preset, trained.step) == ("cfg", "cfg_tiny", None, 1)
    assert trained.options == {"grammar": "cfg_tiny"} and trained.task_config["grammar"] == "cfg_tiny"
    assert trained.token_table.task == "cfg:cfg_tiny" and trained.token_table.d_vocab == 7
    assert (trained.model_config.n_layers, trained.model_config.d_model) == (1, 16)
    assert trained.model_preset == "gpt_rot-tiny" and trained.path == out
    assert trained.load_grammar().name == "cfg_tiny"
    assert trained.require("cfg") is trained
    with pytest.raises(ValueError, match=r"trained on task 'cfg', not 'igsm'"):
        trained.require("igsm")


def test_a_run_before_its_first_checkpoint_reads_config_json(tmp_path):
    from physlm.training import model_preset

    task = {"name": "igsm", "options": {"preset": "tiny", "max_tokens": 254}, "config": None}
    model = model_preset("gpt_rot-tiny", d_vocab=100)
    RunDir.create(tmp_path / "run", {"task": task, "model": model, "model_preset": "gpt_rot-tiny"})
    trained = read_trained_on(tmp_path / "run")
    assert (trained.task, trained.preset, trained.grammar) == ("igsm", "tiny", None)
    assert trained.token_table is None and trained.step is None and trained.model_config == model
    with pytest.raises(ValueError, match="not 'cfg'"):
        trained.load_grammar()
    with pytest.raises(FileNotFoundError, match="not a physlm run directory"):
        read_trained_on(tmp_path / "missing")


def test_a_zoo_entry_is_read_without_writing_to_it():
    from physlm.experiments.zoo import default_zoo_entry, read_zoo_record, zoo_path

    name = default_zoo_entry()
    if name is None:
        pytest.skip("the zoo is empty")
    path = zoo_path(name)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in path.iterdir())
    trained = read_trained_on(path)
    assert trained.task == "cfg" and trained.grammar == read_zoo_record(name)["grammar"]
    assert trained.token_table.task == f"cfg:{trained.grammar}" and trained.step == read_zoo_record(name)["step"]
    assert sorted((p.name, p.stat().st_mtime_ns) for p in path.iterdir()) == before

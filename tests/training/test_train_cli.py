"""``physlm train``: run directory contents, overwrite protection, --resume, task registry errors."""

from __future__ import annotations

import json
import random
import shutil

import pytest
import torch

from physlm.experiments.cli import main
from physlm.rundir import RunDirExistsError, write_atomic
from physlm.training.checkpoint import latest_checkpoint, list_checkpoints
from physlm.training.load import load_model
from physlm.training.tasks_registry import available_tasks, build_task

TINY = ["--task", "cfg", "--grammar", "cfg_tiny", "--preset", "gpt_rot-tiny",
        "--model-option", "n_layers=1", "d_model=16", "n_heads=2",
        "--batch-size", "2", "--seq-len", "24", "--eval-batches", "1", "--log-every", "1", "--device", "cpu"]


def train(out, *extra: str) -> int:
    return main(["train", "--out", str(out), *TINY, *extra])


def test_train_writes_a_complete_run_directory(tmp_path):
    out = tmp_path / "run"
    assert train(out, "--steps", "2", "--lr", "0.001") == 0
    for name in ("config.json", "log.txt", "metrics.jsonl", "COMPLETE.train", "checkpoints/latest"):
        assert (out / name).is_file(), name
    assert not (out / "FAILED").exists()
    configs = json.loads((out / "config.json").read_text())["configs"]
    assert configs["train"]["steps"] == 2 and configs["train"]["lr"] == 0.001
    assert configs["model"]["n_layers"] == 1 and configs["model"]["d_vocab"] == 7
    assert configs["task"]["name"] == "cfg" and configs["task"]["config"]["grammar"] == "cfg_tiny"
    assert configs["model_preset"] == "gpt_rot-tiny"
    loaded = load_model(out)
    assert loaded.step == 2 and loaded.token_table.task == "cfg:cfg_tiny"
    assert loaded.task["options"] == {"grammar": "cfg_tiny"}
    assert "stage train complete" in (out / "log.txt").read_text()

    with pytest.raises(RunDirExistsError, match="--overwrite"):
        train(out, "--steps", "1")
    assert load_model(out).step == 2  # untouched
    assert train(out, "--steps", "1", "--overwrite") == 0
    assert load_model(out).step == 1


def test_resume_after_a_crash_matches_the_uninterrupted_run(tmp_path):
    out = tmp_path / "run"
    assert train(out, "--steps", "4", "--save-every", "2", "--keep-checkpoints", "0") == 0
    final = load_model(out)
    # simulate a crash right after the step-2 checkpoint: step 4 never happened
    shutil.rmtree(list_checkpoints(out / "checkpoints")[-1])
    write_atomic(out / "checkpoints" / "latest", "step_00000002\n")
    (out / "COMPLETE.train").unlink()
    assert main(["train", "--out", str(out), "--resume"]) == 0
    resumed = load_model(out)
    assert resumed.step == 4 and (out / "COMPLETE.train").is_file()
    for (name, a), b in zip(final.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    # resuming a finished run without more --steps does nothing; more steps extend it
    assert main(["train", "--out", str(out), "--resume"]) == 0
    assert latest_checkpoint(out / "checkpoints").name == "step_00000004"
    assert main(["train", "--out", str(out), "--resume", "--steps", "5"]) == 0
    assert load_model(out).step == 5
    assert len(json.loads((out / "config.json").read_text())["commands"]) == 4


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a physlm run directory"):
        main(["train", "--out", str(tmp_path / "missing"), "--resume"])
    with pytest.raises(ValueError, match="pass only one"):
        main(["train", "--out", str(tmp_path / "x"), "--resume", "--overwrite"])
    with pytest.raises(ValueError, match="unknown task 'nope'; choose one of bio, cfg, igsm"):
        main(["train", "--out", str(tmp_path / "y"), "--task", "nope"])
    with pytest.raises(FileNotFoundError, match="not a physlm run directory"):
        main(["train", "--out", str(tmp_path / "x"), "--resume", "--grammar", "cfg3b"])
    with pytest.raises(ValueError, match="no option"):
        build_task("cfg", grammar="cfg_tiny", depth=3)
    igsm = build_task("igsm", preset="tiny", max_tokens=400)
    assert igsm.config.max_op == 4 and 0 < len(igsm.sample_document(random.Random(0))) <= 400
    assert {"cfg", "igsm"} <= set(available_tasks())
    with pytest.raises(ValueError, match="key=value"):
        main(["train", "--out", str(tmp_path / "z"), "--task-option", "corrupt_rate"])


def test_resume_accepts_the_original_command_and_names_each_conflict(tmp_path):
    out = tmp_path / "run"
    assert train(out, "--steps", "2", "--save-every", "1") == 0
    commands = len(json.loads((out / "config.json").read_text())["commands"])
    # the original command with --resume: every task and model option matches the run, so it continues
    assert train(out, "--steps", "3", "--save-every", "1", "--resume") == 0
    assert load_model(out).step == 3
    assert main(["train", "--out", str(out), "--resume", "--task", "cfg", "--task-option", "grammar=cfg_tiny",
                 "corrupt_rate=0.0", "--model-option", "n_heads=2", "--steps", "4"]) == 0
    assert load_model(out).step == 4
    commands += 2

    with pytest.raises(ValueError, match="conflict") as info:
        main(["train", "--out", str(out), "--task", "cfg", "--grammar", "cfg3b", "--preset", "gpt-tiny",
              "--model-option", "n_layers=2", "d_model=16", "--resume", "--steps", "5"])
    message = str(info.value)
    assert "--grammar 'cfg3b' (the run was trained with 'cfg_tiny')" in message
    assert "--preset 'gpt-tiny' (the run was trained with 'gpt_rot-tiny')" in message
    assert "--model-option n_layers=2 (the run's model has n_layers=1)" in message
    assert "d_model" not in message  # matching options are not named
    with pytest.raises(ValueError, match=r"--task 'igsm' \(the run was trained on 'cfg'\)"):
        main(["train", "--out", str(out), "--task", "igsm", "--resume"])
    with pytest.raises(ValueError, match="--model-option depth=3 \\(the run's model has no field 'depth'\\)"):
        main(["train", "--out", str(out), "--model-option", "depth=3", "--resume"])
    # refused before anything ran: the run is where it was and no command was recorded
    assert load_model(out).step == 4
    assert len(json.loads((out / "config.json").read_text())["commands"]) == commands


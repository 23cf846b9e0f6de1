"""`physlm analyze igsm`: the eval stage of `physlm run igsm` on a run trained by `physlm train --task igsm`."""

from __future__ import annotations

import json

import pytest

from physlm.experiments.cli import main
from physlm.rundir import RunDir

EVAL = ["--n-problems", "1", "--no-reask", "--n-examples", "1", "--length-factor", "1.0", "--threads", "1"]


def test_analyze_igsm_writes_the_eval_record(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--task", "igsm", "--task-option", "preset=tiny", "max_tokens=254",
                 "--preset", "gpt_rot-tiny", "--model-option", "d_model=32", "n_ctx=320", "--steps", "2",
                 "--batch-size", "2", "--seq-len", "256", "--drop-long-documents", "--eval-batches", "1",
                 "--device", "cpu"]) == 0
    assert main(["analyze", "igsm", "--run", str(out), *EVAL]) == 0
    run = RunDir.open(out)
    assert run.is_complete("eval") and not (out / "FAILED").exists()
    record = json.loads((out / "igsm_eval.json").read_text())
    assert record["preset"] == "tiny" and record["n_ctx"] == 320
    assert [c["cell"] for c in record["cells"]] == ["op<=4", "op=4", "op=6", "op=7", "op=8"]
    assert all(c["n"] == 1 and len(c["examples"]) == 1 for c in record["cells"])
    assert run.config("eval")["n_problems"] == 1 and run.config("eval")["reask"] is False
    assert "eval accuracy: op<=4 " in (out / "log.txt").read_text()


def test_analyze_igsm_refuses_a_run_of_another_task(tmp_path):
    RunDir.create(tmp_path / "cfg", {"task": {"name": "cfg", "options": {"grammar": "cfg_tiny"}, "config": None}})
    with pytest.raises(ValueError, match=r"trained on task 'cfg', not 'igsm'"):
        main(["analyze", "igsm", "--run", str(tmp_path / "cfg"), *EVAL])
    with pytest.raises(FileNotFoundError, match="not a physlm run directory"):
        main(["analyze", "igsm", "--run", str(tmp_path / "missing"), *EVAL])

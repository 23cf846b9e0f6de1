"""`physlm run cfg` under torchrun: the shared train stage, rank 0's run directory and its errors on every rank."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from physlm.rundir import RunDirExistsError
from physlm.training.distributed import DistContext, call_on_main

REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class _FakeGroup(DistContext):
    """A DistContext of a 2-process group whose broadcast is simulated: rank 0 records what it sends, the
    other ranks receive ``received``."""

    sent: list = dataclasses.field(default_factory=list)
    received: Any = None

    def broadcast_object(self, obj: Any) -> Any:
        if self.is_main:
            self.sent.append(obj)
            return obj
        return self.received


def _refuse(path: str) -> None:
    raise RunDirExistsError(f"run directory {path} already exists and is not empty")


def test_call_on_main_alone_is_a_plain_call():
    assert call_on_main(DistContext(), lambda a, b=0: a + b, 1, b=2) == 3
    with pytest.raises(RunDirExistsError, match="already exists"):
        call_on_main(DistContext(), _refuse, "runs/x")


def test_call_on_main_raises_rank0_error_on_every_rank():
    main = _FakeGroup(rank=0, world_size=2)
    with pytest.raises(RunDirExistsError, match="runs/x already exists"):  # rank 0 re-raises its own error
        call_on_main(main, _refuse, "runs/x")
    assert main.sent == [("FileExistsError", "run directory runs/x already exists and is not empty")]

    calls: list[str] = []
    other = _FakeGroup(rank=1, world_size=2, received=main.sent[0])
    with pytest.raises(FileExistsError, match="^run directory runs/x already exists and is not empty$"):
        call_on_main(other, calls.append, "rank 1 must not call it")
    assert calls == []
    # success: rank 0 gets the result, the others None; errors without a shared type arrive as RuntimeError
    assert call_on_main(_FakeGroup(rank=0, world_size=2), lambda: 5) == 5
    assert call_on_main(_FakeGroup(rank=1, world_size=2), lambda: 5) is None
    with pytest.raises(RuntimeError, match="^boom$"):
        call_on_main(_FakeGroup(rank=1, world_size=2, received=("CheckpointError", "boom")), lambda: 5)
    with pytest.raises(KeyError) as info:
        call_on_main(_FakeGroup(rank=1, world_size=2, received=("KeyError", "no 'x' config")), lambda: 5)
    assert info.value.args == ("no 'x' config",)


def test_train_stage_alone_trains_into_a_new_run(tmp_path, monkeypatch):
    import torch

    from physlm.experiments.recipe import ModelOptions
    from physlm.experiments.run_cfg import CFGExperimentConfig, CFGTrainOptions
    from physlm.experiments.run_cfg import model_config as cfg_model_config
    from physlm.experiments.run_cfg import train_config as cfg_train_config
    from physlm.experiments.train_stage import run_train_stage
    from physlm.training.tasks_registry import build_task, task_record

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    config = CFGExperimentConfig(grammar="cfg_tiny", model=ModelOptions(preset="gpt-tiny"), n_ctx=32,
                                 train=CFGTrainOptions(steps=2, batch_size=2, device="cpu"))
    task = build_task("cfg", grammar="cfg_tiny")
    train_config, model_config = cfg_train_config(config), cfg_model_config(config, task.token_table.d_vocab)
    record = task_record("cfg", task, {"grammar": "cfg_tiny"})

    def stage():
        return run_train_stage(tmp_path / "run", {"train": train_config}, model_config, task, train_config, record,
                               intro=("hello",))

    result = stage()
    assert result is not None and result.run.path == tmp_path / "run"
    assert result.run.is_complete("train") and result.summary.step == 2 and result.summary.checkpoint is not None
    assert result.device == "cpu" and not result.model.training and result.seconds > 0
    assert not torch.distributed.is_initialized()
    assert "hello" in (tmp_path / "run" / "log.txt").read_text()
    with pytest.raises(RunDirExistsError, match="--overwrite"):
        stage()


def _launch(args: list[str], timeout_s: float) -> tuple[int, str, float]:
    """Run ``torchrun --standalone --nproc_per_node=2 -m physlm.experiments.cli ARGS``; (exit code, output, seconds).

    On timeout the whole process group (torchrun and its workers) is killed and the test fails.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "PHYSLM_DEBUG")}
    env["OMP_NUM_THREADS"] = "1"
    # torchrun stops the other workers once one has failed; polling every 2 s (not 0.1 s) lets a rank that fails
    # a moment after another still print its own error on a loaded machine
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "--monitor-interval=2", "-m", "physlm.experiments.cli", *args]
    start = time.monotonic()
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"torchrun {' '.join(args)} still running after {timeout_s} s (hang?):\n{output[-4000:]}")
    return proc.returncode, output, time.monotonic() - start


@pytest.mark.slow
def test_run_cfg_under_torchrun(tmp_path):
    from physlm.training.checkpoint import latest_checkpoint, read_checkpoint_meta

    out = tmp_path / "run"
    args = ["run", "cfg", "--out", str(out), "--grammar", "cfg_tiny", "--model.preset", "gpt-tiny", "--steps", "4",
            "--batch-size", "4", "--n-ctx", "64", "--device", "cpu", "--skip", "generation", "probe", "attention"]
    code, output, _ = _launch(args, timeout_s=300)
    assert code == 0, output[-4000:]
    assert (out / "COMPLETE.train").is_file() and (out / "COMPLETE.report").is_file()
    assert (out / "report.html").is_file() and not (out / "FAILED").exists()
    meta = read_checkpoint_meta(latest_checkpoint(out / "checkpoints"))
    assert meta["world_size"] == 2 and meta["step"] == 4
    assert "data-parallel training: 2 processes (gloo)" in (out / "log.txt").read_text()
    assert output.count("report: ") == 1  # rank 0 alone ran the report and printed its path

    # a second launch into the same --out fails on both ranks with the run directory's message, without hanging
    code, output, seconds = _launch(args, timeout_s=300)
    assert code != 0
    assert output.count("already exists and is not empty") == 2, output[-4000:]
    assert "exitcode  : 2" in output  # torchrun's summary: the ranks exited with the CLI's user-error code
    assert seconds < 150

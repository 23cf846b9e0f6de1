"""The train stage of the end-to-end recipes (`physlm run cfg`, `physlm run igsm`), alone or under torchrun.

Alone, :func:`run_train_stage` creates the run directory and trains in this process. Under
``torchrun --nproc_per_node=N -m physlm.experiments.cli run ...`` every process joins one process group (nccl on GPU,
gloo on CPU, :func:`physlm.training.distributed.init_distributed`); rank 0 alone creates the run directory and writes
the log, metrics and checkpoints; all ranks train data-parallel replicas of one model; then the group is left and
rank 0 gets the trained model back for the analysis stages while the other ranks get None and stop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist

from physlm.rundir import RunDir
from physlm.tasks.base import Task
from physlm.training.train_config import TrainConfig
from physlm.training.trainer import TrainSummary


@dataclasses.dataclass(frozen=True)
class TrainStageResult:
    """What rank 0 (or the only process) holds after the train stage."""

    run: RunDir
    """the new run directory, with ``COMPLETE.train``, metrics and the final checkpoint"""
    summary: TrainSummary
    """where training stopped (step, last losses, checkpoint)"""
    device: Literal["cuda", "cpu"]
    """the device kind trained on, for the analysis stages"""
    model: torch.nn.Module
    """the trained model (not the DDP wrapper), in eval mode"""
    seconds: float
    """wall time of the train stage"""


def run_train_stage(
    out: Path,
    configs: Mapping[str, Any],
    model_config: Any,
    task: Task,
    train_config: TrainConfig,
    task_info: Mapping[str, Any],
    *,
    overwrite: bool = False,
    intro: Sequence[str] = (),
) -> TrainStageResult | None:
    """Create the run directory ``out`` with ``configs`` and train a model on ``task`` in its ``train`` stage.

    ``intro`` lines are logged (rank 0) right after the directory is created. Under torchrun (``WORLD_SIZE`` >
    1) a failure to create the directory (e.g. it exists and ``overwrite`` is off) raises the same error on
    every rank; the process group started here is left before returning, on every rank. Returns the result on
    rank 0 or alone, and None on the other ranks, which then have nothing more to do.
    """
    from physlm.training.distributed import call_on_main, init_distributed, shutdown_distributed
    from physlm.training.trainer import Trainer

    already_grouped = dist.is_available() and dist.is_initialized()  # a caller's group is left to it
    ctx = init_distributed(train_config.device)
    try:
        run = call_on_main(ctx, RunDir.create, out, configs, overwrite=overwrite)
        if run is not None:
            for line in intro:
                run.log(line)
            if ctx.enabled:
                run.log(f"data-parallel training: {ctx.world_size} processes ({ctx.backend})")
        stage = run.stage("train") if run is not None else contextlib.nullcontext()
        stage_start = time.perf_counter()
        with stage:
            trainer = Trainer(
                model_config,
                task,
                train_config,
                out_dir=run.path if run is not None else out,
                task_info=task_info,
                dist_ctx=ctx,
                log=run.log if run is not None else _quiet,
            )
            summary = trainer.train()
        seconds = time.perf_counter() - stage_start
        device: Literal["cuda", "cpu"] = "cuda" if str(trainer.device).startswith("cuda") else "cpu"
        model = trainer.model.eval()
        del trainer  # frees the optimizer state (and the DDP wrapper before its process group goes)
    finally:
        if ctx.enabled and not already_grouped:
            shutdown_distributed()
    if run is None:
        return None
    run.log(f"trained to step {summary.step}: eval loss {summary.eval_loss} in {seconds:.0f} s")
    return TrainStageResult(run=run, summary=summary, device=device, model=model, seconds=seconds)


def _quiet(message: str) -> None:
    """The log of ranks other than 0: they write nothing."""

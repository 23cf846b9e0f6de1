"""``physlm train``: train a model on a task into a run directory, or ``--resume`` one.

Examples::

    physlm train --task cfg --grammar cfg3b --preset gpt_rot-small --steps 2000 --out runs/cfg3b
    physlm train --out runs/cfg3b --resume --steps 4000          # continue (and here extend) the run
    physlm train --task cfg --grammar cfg3b --preset gpt_rot-small --steps 2000 --out runs/cfg3b --resume
                                                                  # the original command, resumed
    torchrun --nproc_per_node=4 -m physlm.experiments.cli train --out runs/big --preset gpt_rot-gpt2 ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import tyro

from physlm.rundir import RunDir
from physlm.training.train_config import TrainConfig


def _parse_options(items: tuple[str, ...], what: str) -> dict[str, Any]:
    """``("a=1", "b=cfg3b")`` to ``{"a": 1, "b": "cfg3b"}`` (values parsed as JSON when they are JSON)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} must look like key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _explicit_changes(config: TrainConfig) -> dict[str, Any]:
    """Fields set on the command line, i.e. differing from the defaults (used to override a resumed run)."""
    default = TrainConfig()
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if getattr(config, f.name) != getattr(default, f.name)
    }


DEFAULT_TASK = "cfg"
DEFAULT_PRESET = "gpt_rot-small"


def train(
    out: Path,
    config: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = TrainConfig(),  # noqa: B008
    task: str | None = None,
    grammar: str | None = None,
    task_option: tuple[str, ...] = (),
    preset: str | None = None,
    model_option: tuple[str, ...] = (),
    resume: bool = False,
    overwrite: bool = False,
) -> int:
    """Train (or ``--resume``) a HookedTransformer on a task's fresh data, into the run directory ``--out``.

    Args:
        out: run directory; receives config.json, log.txt, metrics.jsonl, checkpoints/ and COMPLETE.train.
        config: training settings.
        task: task name (bio, cfg, igsm; default cfg).
        grammar: CFG grammar preset (cfg3b, cfg_small...) or file (task cfg; default: the task's default).
        task_option: more task options as key=value, e.g. corrupt_rate=0.1 (cfg) or preset=med (igsm).
        preset: model preset <variant>-<size>, e.g. gpt_rot-small (the default), gpt-tiny, gpt_uni-gpt2.
        model_option: override model preset fields as key=value, e.g. n_layers=6 seed=1.
        resume: continue the run in --out from its latest checkpoint. The task and model come from the run: the
            original command's --task/--grammar/--task-option/--preset/--model-option may be repeated where they
            match it, and a conflicting one is refused; training options (--steps extends the run) override it.
        overwrite: delete an existing --out and start afresh.
    """
    from physlm.training.distributed import init_distributed, shutdown_distributed

    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite deletes it; pass only one")
    task_options = _parse_options(task_option, "--task-option")
    if grammar is not None:
        task_options["grammar"] = grammar
    model_overrides = _parse_options(model_option, "--model-option")
    if resume:
        conflicts = resume_conflicts(out, task, task_options, preset, model_overrides)
        if conflicts:
            raise ValueError(
                f"--resume continues the run in {out} with the task and model it was trained with; "
                "these options conflict with it: " + "; ".join(conflicts)
                + " (drop them, or start a new run with another --out)"
            )
    ctx = init_distributed(config.device)
    try:
        if resume:
            _resume(out, config, ctx)
        else:
            _fresh(
                out,
                config,
                task or DEFAULT_TASK,
                task_options,
                preset or DEFAULT_PRESET,
                model_overrides,
                overwrite,
                ctx,
            )
    finally:
        shutdown_distributed()
    return 0


def _same(a: Any, b: Any) -> bool:
    """Equality of a recorded (JSON) value and a given one: lists and tuples compare alike."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def resume_conflicts(
    out: Path,
    task: str | None,
    task_options: dict[str, Any],
    preset: str | None,
    model_overrides: dict[str, Any],
) -> list[str]:
    """The task and model options of a ``--resume`` command that contradict what the run in ``out`` was trained
    with, one line each naming the option and both values; [] when every given option matches the run."""
    from physlm.rundir import read_trained_on
    from physlm.training import model_preset

    trained = read_trained_on(out)
    conflicts: list[str] = []
    if task is not None and task != trained.task:
        conflicts.append(f"--task {task!r} (the run was trained on {trained.task!r})")
    else:
        recorded = {**trained.task_config, **trained.options}
        for key, value in task_options.items():
            flag = "--grammar" if key == "grammar" else f"--task-option {key}"
            if key not in recorded:
                conflicts.append(f"{flag}={value!r} (the run's task records no {key!r})")
            elif not _same(recorded[key], value):
                conflicts.append(f"{flag} {value!r} (the run was trained with {recorded[key]!r})")
    model = trained.model_config
    if preset is not None:
        if trained.model_preset is not None:
            if preset != trained.model_preset:
                conflicts.append(f"--preset {preset!r} (the run was trained with {trained.model_preset!r})")
        elif model is not None:  # an older run without the preset's name: compare the preset's architecture
            base = model_preset(preset)
            ignored = {"d_vocab", "n_ctx", "seed", *model_overrides}
            for f in dataclasses.fields(base):
                if f.name not in ignored and not _same(getattr(base, f.name), getattr(model, f.name)):
                    conflicts.append(f"--preset {preset!r} (its {f.name} is {getattr(base, f.name)!r}; the run's "
                                     f"model has {getattr(model, f.name)!r})")
    for key, value in model_overrides.items():
        if model is None:
            break
        if not hasattr(model, key):
            conflicts.append(f"--model-option {key}={value!r} (the run's model has no field {key!r})")
        elif not _same(getattr(model, key), value):
            conflicts.append(f"--model-option {key}={value!r} (the run's model has {key}={getattr(model, key)!r})")
    return conflicts


def _build_model_config(preset: str, overrides: dict[str, Any], d_vocab: int, seq_len: int) -> Any:
    from physlm.training import model_preset

    base = model_preset(preset)
    fields = {"d_vocab": d_vocab, "n_ctx": max(base.n_ctx, seq_len), **overrides}
    return base.replace(**fields)


def _fresh(
    out: Path,
    config: TrainConfig,
    task_name: str,
    task_options: dict[str, Any],
    preset: str,
    model_overrides: dict[str, Any],
    overwrite: bool,
    ctx: Any,
) -> None:
    from physlm.training.tasks_registry import build_task, task_record

    task = build_task(task_name, **dict(task_options))
    model_config = _build_model_config(preset, model_overrides, task.token_table.d_vocab, config.seq_len)
    record = task_record(task_name, task, task_options)
    configs = {"train": config, "model": model_config, "task": record, "model_preset": preset}
    from physlm.training.distributed import call_on_main

    # rank 0 creates the directory; if that fails every rank raises its error instead of waiting at a barrier
    run = call_on_main(ctx, RunDir.create, out, configs, overwrite=overwrite)
    _run_stage(run, out, config, model_config, task, record, None, ctx)


def _resume(out: Path, cli_config: TrainConfig, ctx: Any) -> None:
    from physlm.training import ModelConfig
    from physlm.training.checkpoint import CHECKPOINTS_DIR, latest_checkpoint, read_checkpoint_meta
    from physlm.training.tasks_registry import build_task

    run = RunDir.open(out)
    checkpoint = latest_checkpoint(out / CHECKPOINTS_DIR)
    if checkpoint is not None:
        meta = read_checkpoint_meta(checkpoint)
        saved_train, model_dict, record = meta["train_config"], meta["model_config"], meta["task"]
    else:  # the run stopped before its first checkpoint: start it again from step 0 with its recorded configs
        saved_train, model_dict, record = run.config("train"), run.config("model"), run.config("task")
    config = TrainConfig.from_dict(saved_train).replace(**_explicit_changes(cli_config))
    model_config = ModelConfig.from_dict(model_dict)
    task = build_task(record["name"], **record.get("options", {}))
    if ctx.is_main:
        run.record({"train": config})
    else:
        run = None
    _run_stage(run, out, config, model_config, task, record, checkpoint, ctx)


def _run_stage(
    run: RunDir | None,
    out: Path,
    config: TrainConfig,
    model_config: Any,
    task: Any,
    record: dict[str, Any],
    checkpoint: Path | None,
    ctx: Any,
) -> None:
    from physlm.training.data import DatasetDocuments, TaskDocuments
    from physlm.training.trainer import Trainer

    stage = run.stage("train") if run is not None else contextlib.nullcontext()
    log = run.log if run is not None else (lambda message: None)
    with stage:
        if config.dataset is not None:
            source = DatasetDocuments(
                config.dataset, task.token_table, config.seed, config.dataset_column, config.dataset_id_offset
            )
        else:
            source = TaskDocuments(task, config.seed)
        trainer = Trainer(model_config, source, config, out_dir=out, task_info=record, dist_ctx=ctx, log=log)
        log(
            f"training {model_config} on {record['name']} ({task.token_table.task}) "
            f"for {config.steps} steps, "
            f"{ctx.world_size} process(es) on {trainer.device}"
        )
        if checkpoint is not None:
            trainer.restore(checkpoint)
        if trainer.step >= config.steps:
            log(
                f"run already at step {trainer.step} of {config.steps}; "
                "nothing to do (pass --steps to extend it)"
            )
            return
        trainer.train()

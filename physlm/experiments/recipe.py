"""One skeleton for every end-to-end recipe (`physlm run cfg`, `physlm run igsm`, and the ones to come).

A recipe is an experiment config plus its stages:

- the experiment config is a frozen :class:`physlm.config.Config` that nests the shared option groups,
  ``train`` (:class:`TrainOptions`, shown flat on the command line: ``--steps``, ``--lr``...) and ``model``
  (:class:`ModelOptions`: ``--model.preset``, ``--model.n-layers``, ``--model.d-model``), next to its task's
  options and the analysis configs; ``skip`` names the analysis stages to leave out;
- :attr:`Recipe.plan` turns the config into a :class:`TrainPlan` (task, trainer and model configs);
- the train stage is shared (:func:`physlm.experiments.train_stage.run_train_stage`, torchrun included);
- each analysis :class:`Stage` is a function ``run(run_dir, context)``; the skeleton skips it when asked,
  times it and wraps it in ``run_dir.stage(name)`` (``COMPLETE.<name>`` / ``FAILED``);
- the report stage comes last and is never skipped;
- torch's CPU threads follow the one policy of :func:`physlm.threads.set_torch_threads`.

A recipe module declares its config, its plan and its stages, and :meth:`Recipe.main` is its CLI body.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from physlm.config import Config
from physlm.rundir import RunDir
from physlm.tasks.base import Task
from physlm.threads import set_torch_threads
from physlm.training.train_config import TrainConfig

# -- shared option groups ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainOptions(Config):
    """How the recipe trains its model (recipes subclass this to set their own defaults)."""

    steps: int = 1000
    """optimizer steps"""
    batch_size: int = 32
    """windows per step (the global batch, split over torchrun processes)"""
    lr: float = 2e-3
    """peak learning rate"""
    weight_decay: float = 0.1
    """AdamW weight decay"""
    warmup_steps: int = 0
    """linear warm-up steps"""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """decay after warm-up"""
    seed: int = 0
    """seed of the model weights and the training stream (evaluation streams use their own seeds)"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: CUDA when available"""
    save_every: int = 0
    """write a resumable checkpoint every this many steps (0: only at the end); long runs should set it"""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")


@dataclasses.dataclass(frozen=True)
class ModelOptions(Config):
    """Which model the recipe trains: a preset and optional shape overrides."""

    preset: str = "gpt_rot-small"
    """model preset <variant>-<size>: gpt, gpt_rot, gpt_alibi, gpt_pos, gpt_uni x tiny, small, medium, gpt2"""
    n_layers: int | None = None
    """override the preset's number of layers"""
    d_model: int | None = None
    """override the preset's width (d_mlp follows as 4 x d_model)"""


def train_config(options: TrainOptions, seq_len: int, cosine_floor: float, **fields: Any) -> TrainConfig:
    """The trainer's config from a recipe's train options: ``seq_len``-token windows, the cosine schedule decaying
    to ``cosine_floor`` x the peak, held-out loss every tenth of the run, a metrics line every hundredth;
    ``fields`` set further (or override) TrainConfig fields."""
    values: dict[str, Any] = dict(
        steps=options.steps,
        batch_size=options.batch_size,
        seq_len=seq_len,
        lr=options.lr,
        weight_decay=options.weight_decay,
        warmup_steps=options.warmup_steps,
        schedule=options.schedule,
        min_lr_ratio=cosine_floor if options.schedule == "cosine" else 0.0,
        eval_every=max(1, options.steps // 10),
        save_every=options.save_every,
        log_every=max(1, options.steps // 100),
        seed=options.seed,
        device=options.device,
    )
    values.update(fields)
    return TrainConfig(**values)


def model_config(options: ModelOptions, d_vocab: int, n_ctx: int, seed: int) -> Any:
    """The model preset with the task's vocabulary, the recipe's context and seed, and the shape overrides
    (a ``d_model`` override keeps the preset's head count: d_head = d_model / n_heads, d_mlp = 4 x d_model)."""
    from physlm.training import model_preset

    overrides: dict[str, Any] = {"d_vocab": d_vocab, "n_ctx": n_ctx, "seed": seed}
    if options.n_layers is not None:
        overrides["n_layers"] = options.n_layers
    if options.d_model is not None:
        base = model_preset(options.preset)
        overrides.update(d_model=options.d_model, d_mlp=4 * options.d_model, d_head=options.d_model // base.n_heads)
    return model_preset(options.preset, **overrides)


# -- stages --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainPlan:
    """What the train stage needs, as a recipe's :attr:`Recipe.plan` derives it from the experiment config."""

    task_name: str
    """a name of physlm.training.tasks_registry (cfg, igsm)"""
    task_options: Mapping[str, Any]
    """the task's build options (recorded with the run and its checkpoints)"""
    task: Task
    """the task built from them: ``build_task(task_name, **task_options)``"""
    train: TrainConfig
    model: Any
    """physlm.training.ModelConfig"""
    model_preset: str
    intro: tuple[str, ...] = ()
    """lines logged right after the run directory is created"""


@dataclasses.dataclass
class StageContext:
    """What the stages of one recipe run share: the config, the device trained on, the timings so far."""

    config: Any
    """the experiment config"""
    device: Literal["cuda", "cpu"]
    """the device kind trained on, for the analysis stages"""
    model: Any
    """the trained model in eval mode, kept only when a stage declares ``needs_model`` (else None: the
    stages load it from the final checkpoint)"""
    start: float
    """time.perf_counter() when the recipe started"""
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    """wall seconds of each finished stage"""

    def timings_so_far(self) -> dict[str, float]:
        """The finished stages' times plus ``total``, the time since the recipe started."""
        return {**self.timings, "total": time.perf_counter() - self.start}


@dataclasses.dataclass(frozen=True)
class Stage:
    """One analysis stage of a recipe."""

    name: str
    """the stage's name: its ``COMPLETE.<name>`` marker and its entry in ``--skip``"""
    run: Callable[[RunDir, StageContext], Any]
    """does the stage's work in the run directory (and logs what it found); its return value is not used"""
    skippable: bool = True
    """whether ``--skip`` may leave it out"""
    needs_model: bool = False
    """use the trained model in memory (``context.model``) rather than reloading it"""
    marks_itself: bool = False
    """``run`` opens ``run_dir.stage(name)`` itself (stage functions shared with a standalone command)"""


@dataclasses.dataclass(frozen=True)
class Recipe:
    """An end-to-end recipe: plan the training from the config, train, run the analysis stages, report."""

    name: str
    """the recipe's name: ``physlm run <name>``, default run directory ``runs/<name>-<time>``"""
    plan: Callable[[Any], TrainPlan]
    """builds the task and the trainer's and model's configs from the experiment config"""
    stages: tuple[Stage, ...]
    """the analysis stages, in order (after train)"""
    report: Callable[[RunDir, StageContext], Path]
    """the report stage: always runs last, gets the stages' times so far and returns the report's path"""

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Every stage in the order it runs: train, the analysis stages, report."""
        return ("train", *(s.name for s in self.stages), "report")

    def run(self, out: Path, config: Any, overwrite: bool = False) -> RunDir | None:
        """Run every stage of ``config`` into ``out`` and return the run directory.

        Under torchrun all processes train; rank 0 alone runs the analysis stages and the report and returns the
        run directory, the other ranks return None right after training.
        """
        from physlm.experiments.train_stage import run_train_stage
        from physlm.training.tasks_registry import task_record

        start = time.perf_counter()
        skip = tuple(getattr(config, "skip", ()))
        skippable = {s.name for s in self.stages if s.skippable}
        unknown = sorted(set(skip) - skippable)
        if unknown:
            raise ValueError(f"cannot skip {unknown}; stages that can be skipped: {sorted(skippable)}")
        plan = self.plan(config)
        record = task_record(plan.task_name, plan.task, dict(plan.task_options))
        configs = {"experiment": config, "train": plan.train, "model": plan.model, "task": record,
                   "model_preset": plan.model_preset}
        trained = run_train_stage(out, configs, plan.model, plan.task, plan.train, record, overwrite=overwrite,
                                  intro=(f"physlm run {self.name} → {out}", *plan.intro))
        if trained is None:  # a torchrun rank other than 0: rank 0 runs the analysis stages
            return None
        active = [s for s in self.stages if s.name not in skip]
        keep_model = any(s.needs_model for s in active)
        run = trained.run
        context = StageContext(config=config, device=trained.device, model=trained.model if keep_model else None,
                               start=start, timings={"train": trained.seconds})
        del trained  # without a stage that needs it, the model goes: the stages load it from its checkpoint
        for stage in active:
            stage_start = time.perf_counter()
            if stage.marks_itself:
                stage.run(run, context)
            else:
                with run.stage(stage.name):
                    stage.run(run, context)
            context.timings[stage.name] = time.perf_counter() - stage_start
        context.model = None
        stage_start = time.perf_counter()
        with run.stage("report"):
            # the report states the stages before it; its own time (PNG export included) goes to the log
            report = self.report(run, context)
        context.timings["report"] = time.perf_counter() - stage_start
        context.timings["total"] = time.perf_counter() - start
        run.log("stage times (s): " + stage_times(context.timings))
        run.log(f"done in {time.perf_counter() - start:.0f} s. Report: {report}")
        return run

    def main(self, out: Path | None, config: Any, overwrite: bool = False, threads: int | None = None) -> int:
        """The body of ``physlm run <name>``: the thread policy, the default run directory, the report's path."""
        set_torch_threads(threads)
        if out is None:
            out = Path("runs") / f"{self.name}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        run = self.run(out, config, overwrite=overwrite)
        if run is not None:  # None on torchrun ranks other than 0
            print(f"\nreport: {(run.path / 'report.html').resolve()}")
        return 0


def describe_model(preset: str, model: Any) -> str:
    """``gpt_rot-small (4 layers, d_model 128)``: how the recipes' intro lines name the model."""
    return f"{preset} ({model.n_layers} layers, d_model {model.d_model})"


def stage_times(timings: Mapping[str, float]) -> str:
    """``train 12, probe 3, total 15``: stage wall times in whole seconds."""
    return ", ".join(f"{k} {v:.0f}" for k, v in timings.items())


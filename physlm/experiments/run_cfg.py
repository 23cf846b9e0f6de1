"""`physlm run cfg`: the Part 1 experiment end to end (what `make demo` runs).

Stages, each recorded in the run directory with its config and a ``COMPLETE.<stage>`` marker:
train (fresh sentences from the grammar, streamed) → generation (accuracy, diversity, KL by the exact
DP) → probe (NT-ancestor / NT-end probes with controls) → attention (attention against the true parse)
→ report (``report.html`` + PNG figures). The stages run on the shared skeleton :mod:`physlm.experiments.recipe`.

Data-parallel training on several processes/GPUs: ``torchrun --nproc_per_node=N -m physlm.experiments.cli run cfg
...`` (the ``physlm`` console script is not a Python file; ``torchrun --no-python physlm run cfg ...`` works too).
Every process trains a replica on its share of each batch (:mod:`physlm.experiments.train_stage`); rank 0 alone writes
the run directory and runs the analysis stages.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import tyro

from physlm.analysis.config import AttentionConfig, GenerationConfig
from physlm.config import Config
from physlm.experiments import recipe
from physlm.experiments.recipe import ModelOptions, Recipe, Stage, StageContext, TrainOptions, TrainPlan
from physlm.probing.cfg_recipe import ProbeConfig
from physlm.rundir import RunDir
from physlm.tasks.cfg.presets import DEFAULT_GRAMMAR
from physlm.training.train_config import TrainConfig


@dataclasses.dataclass(frozen=True)
class CFGTrainOptions(TrainOptions):
    """How `physlm run cfg` trains (defaults sized for a 2-core CPU in under 10 minutes)."""

    steps: int = 1800
    """optimizer steps (1800 x 32 x 128 = 7.4M tokens: about 8 minutes on 2 idle CPU cores)"""
    lr: float = 2e-3
    """peak learning rate (small models tolerate more than the papers' 3e-4: on cfg_small, 2e-3 for 1200 steps
    took cut0 generation accuracy from 59% (1e-3, 600 steps) to 87%; 3e-3 learned cfg_medium slower than 2e-3)"""
    warmup_steps: int = 30


@dataclasses.dataclass(frozen=True)
class CFGExperimentConfig(Config):
    """Everything `physlm run cfg` does, with defaults sized for a 2-core CPU in under 10 minutes."""

    grammar: str = DEFAULT_GRAMMAR
    """grammar preset (`physlm data grammar-info NAME`) or grammar file"""
    model: ModelOptions = ModelOptions()
    n_ctx: int = 128
    """context length of the model and of the packed training windows"""
    train: Annotated[CFGTrainOptions, tyro.conf.OmitArgPrefixes] = CFGTrainOptions()
    # The demo's analysis budgets: the NT-ancestor probe at NT-ends (the Part 1 headline) and the NT-end probe,
    # all layers fitted at once; `--probe.targets ancestor ancestor_at_end end end_level` adds the slower
    # multi-head all-position probe. Robustness runs are left out (`--generation.corruption-fractions 0.15`).
    probe: ProbeConfig = ProbeConfig(
        n_train=200, n_test=100, n_boot=300, targets=("ancestor_at_end", "end"), layers_per_fit=8
    )
    generation: GenerationConfig = GenerationConfig(
        n_samples=300, n_kl_sentences=50, n_entropy_sentences=200, corruption_fractions=()
    )
    attention: AttentionConfig = AttentionConfig(n_windows=32)
    skip: tuple[Literal["generation", "probe", "attention"], ...] = ()
    """analysis stages to leave out"""
    png: bool = True
    """also write figures/*.png next to report.html (needs kaleido and a Chromium executable)"""


def train_config(config: CFGExperimentConfig) -> TrainConfig:
    """The trainer's config: packed ``n_ctx``-token windows, cosine decay to 0.05x the peak."""
    return recipe.train_config(config.train, seq_len=config.n_ctx, cosine_floor=0.05)


def model_config(config: CFGExperimentConfig, d_vocab: int):  # noqa: ANN201 (training.ModelConfig)
    """The model preset with the grammar's vocabulary, the experiment's context and seed, and any overrides."""
    return recipe.model_config(config.model, d_vocab, config.n_ctx, config.train.seed)


def _plan(config: CFGExperimentConfig) -> TrainPlan:
    from physlm.training.tasks_registry import build_task

    task_options = {"grammar": config.grammar}
    task = build_task("cfg", **task_options)
    tc, mc = train_config(config), model_config(config, task.token_table.d_vocab)
    return TrainPlan(
        task_name="cfg",
        task_options=task_options,
        task=task,
        train=tc,
        model=mc,
        model_preset=config.model.preset,
        intro=(
            f"grammar {config.grammar}, model {recipe.describe_model(config.model.preset, mc)}, "
            f"{tc.steps} steps x {tc.batch_size} x {config.n_ctx} tokens",
        ),
    )


def _generation(run: RunDir, context: StageContext) -> None:
    from physlm.analysis.cli import run_generation_analysis

    config: CFGExperimentConfig = context.config
    run.record({"generation": config.generation})
    result = run_generation_analysis(run, config.generation, context.device)
    run.log(f"generation: accuracy cut0 {result['accuracy_cut0']:.3f}, "
            f"cut{result.get('cut', 50)} {result['accuracy_cut50']:.3f}, KL {result['kl']:.4g} nats/token")


def _probe(run: RunDir, context: StageContext) -> None:
    from physlm.probing.cfg_recipe import run_cfg_probes

    run_cfg_probes(run.path, context.config.probe.replace(device=context.device))


def _attention(run: RunDir, context: StageContext) -> None:
    from physlm.analysis.cli import run_attention_analysis

    run.record({"attention": context.config.attention})
    run_attention_analysis(run, context.config.attention, context.device)


def _report(run: RunDir, context: StageContext) -> Path:
    from physlm.analysis.report_cfg import build_cfg_report

    return build_cfg_report(run.path, timings=context.timings_so_far(), png=context.config.png)


RECIPE = Recipe(
    name="cfg",
    plan=_plan,
    stages=(
        Stage("generation", _generation),
        Stage("probe", _probe, marks_itself=True),
        Stage("attention", _attention),
    ),
    report=_report,
)
"""The CFG recipe: train → generation → probe → attention → report."""
STAGES = RECIPE.stage_names


def run_cfg_experiment(out: Path, config: CFGExperimentConfig, overwrite: bool = False) -> RunDir | None:
    """Run every stage into ``out`` and return the run directory (see the module docstring).

    Under torchrun all processes train; rank 0 alone runs the analysis stages and returns the run directory,
    the other ranks return None right after training.
    """
    return RECIPE.run(out, config, overwrite=overwrite)


def run_cfg(
    out: Path | None = None,
    config: Annotated[CFGExperimentConfig, tyro.conf.arg(name="")] = CFGExperimentConfig(),  # noqa: B008
    overwrite: bool = False,
    threads: int | None = None,
) -> int:
    """The Part 1 CFG experiment: train, evaluate generation, probe with controls, analyse attention, report.

    Args:
        out: run directory (default: runs/cfg-<timestamp>); never overwritten without --overwrite.
        config: grammar, model, training and analysis settings.
        overwrite: replace an existing run directory.
        threads: torch CPU threads (default: $OMP_NUM_THREADS, else every core); on a busy machine try 1.
    """
    return RECIPE.main(out, config, overwrite=overwrite, threads=threads)

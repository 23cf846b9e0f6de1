"""`physlm run igsm`: the Part 2.1 iGSM experiment end to end.

Stages, each recorded in the run directory with its config and a ``COMPLETE.<stage>`` marker:
train (fresh iGSM problems streamed from the preset's train hash split, packed ``<bos> doc <eos>`` windows,
longer documents dropped) → eval (greedy solutions on test-split problems in and out of distribution,
judged step by step: ``igsm_eval.json``) → probe (V-probes of nece / dep / known / value / can_next /
nece_next with random-init and majority controls: ``probe_results.csv``) → report (``report.html``).
The stages run on the shared skeleton :mod:`physlm.experiments.recipe`.

The defaults fit a 2-core CPU in about 10 minutes (``tiny`` preset, a 4-layer rotary GPT); the paper-scale
run is ``physlm run igsm --preset med --model.preset gpt_rot-gpt2 --n-ctx 1024 --seq-len 768 --steps 100000
--batch-size 512 --lr 0.002 --weight-decay 0.05 --warmup-steps 1000 --device cuda`` (spec §6).

Data-parallel training on several processes/GPUs: ``torchrun --nproc_per_node=N -m physlm.experiments.cli run igsm
...`` (or ``torchrun --no-python physlm run igsm ...``). Every process trains a replica on its share of each
batch (:mod:`physlm.experiments.train_stage`); rank 0 alone writes the run directory and runs eval, probe and report.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import tyro

from physlm.analysis.igsm_eval import IGSMEvalConfig
from physlm.config import Config
from physlm.experiments import recipe
from physlm.experiments.recipe import ModelOptions, Recipe, Stage, StageContext, TrainOptions, TrainPlan
from physlm.probing.igsm_vprobe import IGSMProbeConfig
from physlm.rundir import RunDir
from physlm.training.train_config import TrainConfig


@dataclasses.dataclass(frozen=True)
class IGSMTrainOptions(TrainOptions):
    """How `physlm run igsm` trains (the papers' recipe, shortened for a 2-core CPU)."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 2e-3
    """peak learning rate (the papers' 0.002)"""
    weight_decay: float = 0.05
    """AdamW weight decay (the papers' 0.05 for med)"""
    warmup_steps: int = 50
    """linear warm-up steps (the papers: 1000 of 100k)"""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """decay after warm-up (the papers: cosine to 0.01x)"""
    seed: int = 0
    """seed of the model weights and the training stream (evaluation and probe problems use their own seeds)"""


@dataclasses.dataclass(frozen=True)
class IGSMExperimentConfig(Config):
    """Everything `physlm run igsm` does, with defaults sized for a 2-core CPU: about 10 minutes (budget 15)."""

    preset: Literal["micro", "tiny", "small", "med", "hard"] = "tiny"
    """iGSM preset (physlm.tasks.igsm.PRESETS): tiny/small for CPUs, med/hard are the papers' data"""
    model: ModelOptions = ModelOptions()
    """the papers use gpt_rot-gpt2: GPT-2 small with rotary embeddings"""
    n_ctx: int = 384
    """model context: must hold the longest evaluated problem with its solution (OOD problems are longer)"""
    seq_len: int = 256
    """tokens per packed training window (documents longer than this are dropped, as in the papers)"""
    train: Annotated[IGSMTrainOptions, tyro.conf.OmitArgPrefixes] = IGSMTrainOptions()
    eval: IGSMEvalConfig = IGSMEvalConfig(n_problems=30)
    probe: IGSMProbeConfig = IGSMProbeConfig(n_train=120, n_test=60, draws_per_problem=10, layerwise=("nece",),
                                             embedding_update="suffix", first_wrong=True, first_wrong_problems=30)
    """V-probes; the CPU defaults cache the prefix (embedding_update=suffix, about 4 min on one core for tiny; the
    paper's whole-embedding update is --probe.embedding-update all, about 2.6x that) and probe dep at the last
    layer only"""
    skip: tuple[Literal["eval", "probe"], ...] = ()
    """analysis stages to leave out"""
    png: bool = True
    """also write figures/*.png next to report.html (needs kaleido and a Chromium executable)"""

    def __post_init__(self) -> None:
        if self.seq_len > self.n_ctx:
            raise ValueError(f"seq_len ({self.seq_len}) must not exceed the model context n_ctx ({self.n_ctx})")


def train_config(config: IGSMExperimentConfig) -> TrainConfig:
    """The trainer's config: the papers' AdamW (0.9, 0.98), cosine to 0.01x, packed windows, long docs dropped."""
    return recipe.train_config(
        config.train, seq_len=config.seq_len, cosine_floor=0.01, drop_long_documents=True,
        warmup_steps=min(config.train.warmup_steps, max(0, config.train.steps - 1)),
    )


def model_config(config: IGSMExperimentConfig, d_vocab: int):  # noqa: ANN201 (training.ModelConfig)
    """The model preset with the iGSM vocabulary, the experiment's context and seed, and any overrides."""
    return recipe.model_config(config.model, d_vocab, config.n_ctx, config.train.seed)


def _plan(config: IGSMExperimentConfig) -> TrainPlan:
    from physlm.training.tasks_registry import build_task

    # a document plus <bos>/<eos> must fit one window
    task_options = {"preset": config.preset, "max_tokens": config.seq_len - 2}
    task = build_task("igsm", **task_options)
    tc, mc = train_config(config), model_config(config, task.token_table.d_vocab)
    return TrainPlan(
        task_name="igsm",
        task_options=task_options,
        task=task,
        train=tc,
        model=mc,
        model_preset=config.model.preset,
        intro=(
            f"iGSM preset {config.preset}, model {recipe.describe_model(config.model.preset, mc)}, "
            f"{tc.steps} steps x {tc.batch_size} x {config.seq_len} tokens",
        ),
    )


def _eval(run: RunDir, context: StageContext) -> None:
    from physlm.analysis.igsm_cli import evaluate_run

    config: IGSMExperimentConfig = context.config
    evaluate_run(run, context.model, config.preset, config.eval.replace(device=context.device))


def _probe(run: RunDir, context: StageContext) -> None:
    from physlm.probing.igsm_vprobe import run_igsm_probes

    config: IGSMExperimentConfig = context.config
    run_igsm_probes(run.path, config.probe.replace(device=context.device, preset=config.probe.preset or config.preset))


def _report(run: RunDir, context: StageContext) -> Path:
    from physlm.analysis.report_igsm import build_igsm_report

    return build_igsm_report(run.path, timings=context.timings_so_far(), png=context.config.png)


RECIPE = Recipe(
    name="igsm",
    plan=_plan,
    stages=(
        Stage("eval", _eval, needs_model=True, marks_itself=True),
        Stage("probe", _probe, marks_itself=True),
    ),
    report=_report,
)
"""The iGSM recipe: train → eval → probe → report."""
STAGES = RECIPE.stage_names


def run_igsm_experiment(out: Path, config: IGSMExperimentConfig, overwrite: bool = False) -> RunDir | None:
    """Run every stage into ``out`` and return the run directory (see the module docstring).

    Under torchrun all processes train; rank 0 alone runs the analysis stages and returns the run directory,
    the other ranks return None right after training.
    """
    return RECIPE.run(out, config, overwrite=overwrite)


def run_igsm(
    out: Path | None = None,
    config: Annotated[IGSMExperimentConfig, tyro.conf.arg(name="")] = IGSMExperimentConfig(),  # noqa: B008
    overwrite: bool = False,
    threads: int | None = None,
) -> int:
    """The Part 2.1 iGSM experiment: train, judge greedy solutions in and out of distribution, V-probe, report.

    Args:
        out: run directory (default: runs/igsm-<timestamp>); never overwritten without --overwrite.
        config: iGSM preset, model, training, evaluation and probe settings.
        overwrite: replace an existing run directory.
        threads: torch CPU threads (default: $OMP_NUM_THREADS, else every core); on a busy machine try 1.
    """
    return RECIPE.main(out, config, overwrite=overwrite, threads=threads)

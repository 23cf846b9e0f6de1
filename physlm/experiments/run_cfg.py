"""`physlm run cfg`: the Part 1 experiment end to end (what `make demo` runs).

Stages, each recorded in the run directory with its config and a ``COMPLETE.<stage>`` marker:
train (fresh sentences from the grammar, streamed) → generation (accuracy, diversity, KL by the exact
DP) → probe (NT-ancestor / NT-end probes with controls) → attention (attention against the true parse)
→ report (``report.html`` + PNG figures).

Data-parallel training on several processes/GPUs: ``torchrun --nproc_per_node=N -m physlm.experiments.cli run cfg
...`` (the ``physlm`` console script is not a Python file; ``torchrun --no-python physlm run cfg ...`` works too).
Every process trains a replica on its share of each batch (:mod:`physlm.experiments.train_stage`); rank 0 alone writes
the run directory and runs the analysis stages.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import time
from pathlib import Path
from typing import Annotated, Literal

import tyro

from physlm.analysis.config import AttentionConfig, GenerationConfig
from physlm.config import Config
from physlm.probing.cfg_recipe import ProbeConfig
from physlm.rundir import RunDir
from physlm.tasks.cfg.presets import DEFAULT_GRAMMAR
from physlm.training.train_config import TrainConfig

STAGES = ("train", "generation", "probe", "attention", "report")


@dataclasses.dataclass(frozen=True)
class CFGExperimentConfig(Config):
    """Everything `physlm run cfg` does, with defaults sized for a 2-core CPU in under 10 minutes."""

    grammar: str = DEFAULT_GRAMMAR
    """grammar preset (`physlm data grammar-info NAME`) or grammar file"""
    preset: str = "gpt_rot-small"
    """model preset <variant>-<size>: gpt, gpt_rot, gpt_alibi, gpt_pos, gpt_uni x tiny, small, medium, gpt2"""
    n_layers: int | None = None
    """override the preset's number of layers"""
    d_model: int | None = None
    """override the preset's width (d_mlp follows as 4 x d_model)"""
    n_ctx: int = 128
    """context length of the model and of the packed training windows"""
    steps: int = 1800
    """optimizer steps (1800 x 32 x 128 = 7.4M tokens: about 8 minutes on 2 idle CPU cores)"""
    batch_size: int = 32
    """windows per step"""
    lr: float = 2e-3
    """peak learning rate (small models tolerate more than the papers' 3e-4: on cfg_small, 2e-3 for 1200 steps
    took cut0 generation accuracy from 59% (1e-3, 600 steps) to 87%; 3e-3 learned cfg_medium slower than 2e-3)"""
    warmup_steps: int = 30
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    seed: int = 0
    """seed of the model weights and the training stream (evaluation streams use their own seeds)"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
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


def _train_config(config: CFGExperimentConfig) -> TrainConfig:
    return TrainConfig(
        steps=config.steps,
        batch_size=config.batch_size,
        seq_len=config.n_ctx,
        lr=config.lr,
        warmup_steps=config.warmup_steps,
        schedule=config.schedule,
        min_lr_ratio=0.05 if config.schedule == "cosine" else 0.0,
        eval_every=max(1, config.steps // 10),
        save_every=0,
        log_every=max(1, config.steps // 100),
        seed=config.seed,
        device=config.device,
    )


def _model_config(config: CFGExperimentConfig, d_vocab: int):
    from physlm.training import model_preset

    overrides: dict = {"d_vocab": d_vocab, "n_ctx": config.n_ctx, "seed": config.seed}
    if config.n_layers is not None:
        overrides["n_layers"] = config.n_layers
    if config.d_model is not None:
        base = model_preset(config.preset)
        overrides.update(d_model=config.d_model, d_mlp=4 * config.d_model, d_head=config.d_model // base.n_heads)
    return model_preset(config.preset, **overrides)


def run_cfg_experiment(out: Path, config: CFGExperimentConfig, overwrite: bool = False) -> RunDir | None:
    """Run every stage into ``out`` and return the run directory (see the module docstring).

    Under torchrun all processes train; rank 0 alone runs the analysis stages and returns the run directory,
    the other ranks return None right after training.
    """
    from physlm.experiments.train_stage import run_train_stage
    from physlm.training.tasks_registry import build_task, task_record

    start = time.perf_counter()
    task_options = {"grammar": config.grammar}
    task = build_task("cfg", **task_options)
    train_config = _train_config(config)
    model_config = _model_config(config, task.token_table.d_vocab)
    record = task_record("cfg", task, task_options)
    trained = run_train_stage(
        out,
        {"experiment": config, "train": train_config, "model": model_config, "task": record,
         "model_preset": config.preset},
        model_config,
        task,
        train_config,
        record,
        overwrite=overwrite,
        intro=(
            f"physlm run cfg → {out}",
            f"grammar {config.grammar}, model {config.preset} ({model_config.n_layers} layers, "
            f"d_model {model_config.d_model}), {config.steps} steps x {config.batch_size} x {config.n_ctx} tokens",
        ),
    )
    if trained is None:  # a torchrun rank other than 0: rank 0 runs the analysis stages
        return None
    run, device = trained.run, trained.device
    timings: dict[str, float] = {"train": trained.seconds}
    del trained  # the analysis stages load the model from its checkpoint
    if "generation" not in config.skip:
        from physlm.analysis.cli import run_generation_analysis

        stage_start = time.perf_counter()
        run.record({"generation": config.generation})
        with run.stage("generation"):
            result = run_generation_analysis(run, config.generation, device)
        timings["generation"] = time.perf_counter() - stage_start
        run.log(f"generation: accuracy cut0 {result['accuracy_cut0']:.3f}, "
                f"cut{result.get('cut', 50)} {result['accuracy_cut50']:.3f}, KL {result['kl']:.4g} nats/token")
    if "probe" not in config.skip:
        from physlm.probing.cfg_recipe import run_cfg_probes

        stage_start = time.perf_counter()
        run_cfg_probes(run.path, config.probe.replace(device=device))
        timings["probe"] = time.perf_counter() - stage_start
    if "attention" not in config.skip:
        from physlm.analysis.cli import run_attention_analysis

        stage_start = time.perf_counter()
        run.record({"attention": config.attention})
        with run.stage("attention"):
            run_attention_analysis(run, config.attention, device)
        timings["attention"] = time.perf_counter() - stage_start

    from physlm.analysis.report_cfg import build_cfg_report

    stage_start = time.perf_counter()
    with run.stage("report"):
        # the report states the stages before it; its own time (PNG export included) goes to the log
        report = build_cfg_report(run.path, timings={**timings, "total": time.perf_counter() - start})
    timings["report"] = time.perf_counter() - stage_start
    timings["total"] = time.perf_counter() - start
    run.log("stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    run.log(f"done in {time.perf_counter() - start:.0f} s. Report: {report}")
    return run


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
    import torch

    if threads is None:
        # on an idle 2-core machine two threads trained 1.47x faster than one; on a busy one, oversubscribed
        # cores made small-model training up to 4x slower, hence the hint in the help
        threads = int(os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1)))
    torch.set_num_threads(max(1, threads))
    if out is None:
        out = Path("runs") / f"cfg-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run = run_cfg_experiment(out, config, overwrite=overwrite)
    if run is not None:  # None on torchrun ranks other than 0
        print(f"\nreport: {(run.path / 'report.html').resolve()}")
    return 0

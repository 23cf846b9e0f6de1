"""`physlm run igsm`: the Part 2.1 iGSM experiment end to end.

Stages, each recorded in the run directory with its config and a ``COMPLETE.<stage>`` marker:
train (fresh iGSM problems streamed from the preset's train hash split, packed ``<bos> doc <eos>`` windows,
longer documents dropped) → eval (greedy solutions on test-split problems in and out of distribution,
judged step by step: ``igsm_eval.json``) → probe (V-probes of nece / dep / known / value / can_next /
nece_next with random-init and majority controls: ``probe_results.csv``) → report (``report.html``).

The defaults fit a 2-core CPU in about 10 minutes (``tiny`` preset, a 4-layer rotary GPT); the paper-scale
run is ``physlm run igsm --preset med --model gpt_rot-gpt2 --n-ctx 1024 --seq-len 768 --steps 100000
--batch-size 512 --lr 0.002 --weight-decay 0.05 --warmup-steps 1000 --device cuda`` (spec §6).

Data-parallel training on several processes/GPUs: ``torchrun --nproc_per_node=N -m physlm.experiments.cli run igsm
...`` (or ``torchrun --no-python physlm run igsm ...``). Every process trains a replica on its share of each
batch (:mod:`physlm.experiments.train_stage`); rank 0 alone writes the run directory and runs eval, probe and report.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import time
from pathlib import Path
from typing import Annotated, Literal

import tyro

from physlm.analysis.igsm_eval import EVAL_FILE, IGSMEvalConfig
from physlm.config import Config
from physlm.probing.igsm_vprobe import IGSMProbeConfig
from physlm.rundir import RunDir
from physlm.training.train_config import TrainConfig

STAGES = ("train", "eval", "probe", "report")


@dataclasses.dataclass(frozen=True)
class IGSMExperimentConfig(Config):
    """Everything `physlm run igsm` does, with defaults sized for a 2-core CPU: about 10 minutes (budget 15)."""

    preset: Literal["micro", "tiny", "small", "med", "hard"] = "tiny"
    """iGSM preset (physlm.tasks.igsm.PRESETS): tiny/small for CPUs, med/hard are the papers' data"""
    model: str = "gpt_rot-small"
    """model preset <variant>-<size> (the papers use gpt_rot-gpt2: GPT-2 small with rotary embeddings)"""
    n_layers: int | None = None
    """override the preset's number of layers"""
    d_model: int | None = None
    """override the preset's width (d_mlp follows as 4 x d_model)"""
    n_ctx: int = 384
    """model context: must hold the longest evaluated problem with its solution (OOD problems are longer)"""
    seq_len: int = 256
    """tokens per packed training window (documents longer than this are dropped, as in the papers)"""
    steps: int = 1000
    """optimizer steps"""
    batch_size: int = 16
    """windows per step"""
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
    device: Literal["auto", "cpu", "cuda"] = "auto"
    eval: IGSMEvalConfig = IGSMEvalConfig(n_problems=30)
    probe: IGSMProbeConfig = IGSMProbeConfig(n_train=120, n_test=60, draws_per_problem=4)
    skip: tuple[Literal["eval", "probe"], ...] = ()
    """analysis stages to leave out"""
    png: bool = True
    """also write figures/*.png next to report.html (needs kaleido and a Chromium executable)"""

    def __post_init__(self) -> None:
        if self.seq_len > self.n_ctx:
            raise ValueError(f"seq_len ({self.seq_len}) must not exceed the model context n_ctx ({self.n_ctx})")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")


def train_config(config: IGSMExperimentConfig) -> TrainConfig:
    """The trainer's config: the papers' AdamW (0.9, 0.98), cosine to 0.01x, packed windows, long docs dropped."""
    return TrainConfig(
        steps=config.steps,
        batch_size=config.batch_size,
        seq_len=config.seq_len,
        lr=config.lr,
        weight_decay=config.weight_decay,
        warmup_steps=min(config.warmup_steps, max(0, config.steps - 1)),
        schedule=config.schedule,
        min_lr_ratio=0.01 if config.schedule == "cosine" else 0.0,
        eval_every=max(1, config.steps // 10),
        save_every=0,
        log_every=max(1, config.steps // 100),
        seed=config.seed,
        device=config.device,
        drop_long_documents=True,
    )


def model_config(config: IGSMExperimentConfig, d_vocab: int):  # noqa: ANN201 (training.ModelConfig)
    """The model preset with the iGSM vocabulary, the experiment's context and seed, and any overrides."""
    from physlm.training import model_preset

    overrides: dict = {"d_vocab": d_vocab, "n_ctx": config.n_ctx, "seed": config.seed}
    if config.n_layers is not None:
        overrides["n_layers"] = config.n_layers
    if config.d_model is not None:
        base = model_preset(config.model)
        overrides.update(d_model=config.d_model, d_mlp=4 * config.d_model, d_head=config.d_model // base.n_heads)
    return model_preset(config.model, **overrides)


def run_igsm_experiment(out: Path, config: IGSMExperimentConfig, overwrite: bool = False) -> RunDir | None:
    """Run every stage into ``out`` and return the run directory (see the module docstring).

    Under torchrun all processes train; rank 0 alone runs the analysis stages and returns the run directory,
    the other ranks return None right after training.
    """
    from physlm.analysis.igsm_eval import evaluate_model, write_eval
    from physlm.analysis.report_igsm import build_igsm_report
    from physlm.experiments.train_stage import run_train_stage
    from physlm.training.tasks_registry import build_task, task_record

    start = time.perf_counter()
    # a document plus <bos>/<eos> must fit one window
    task_options = {"preset": config.preset, "max_tokens": config.seq_len - 2}
    task = build_task("igsm", **task_options)
    tc = train_config(config)
    mc = model_config(config, task.token_table.d_vocab)
    record = task_record("igsm", task, task_options)
    trained = run_train_stage(
        out,
        {"experiment": config, "train": tc, "model": mc, "task": record, "model_preset": config.model},
        mc,
        task,
        tc,
        record,
        overwrite=overwrite,
        intro=(
            f"physlm run igsm → {out}",
            f"iGSM preset {config.preset}, model {config.model} ({mc.n_layers} layers, d_model {mc.d_model}), "
            f"{config.steps} steps x {config.batch_size} x {config.seq_len} tokens",
        ),
    )
    if trained is None:  # a torchrun rank other than 0: rank 0 runs the analysis stages
        return None
    run, device, model = trained.run, trained.device, trained.model
    timings: dict[str, float] = {"train": trained.seconds}
    del trained

    if "eval" not in config.skip:
        stage_start = time.perf_counter()
        eval_config = config.eval.replace(device=device)
        run.record({"eval": eval_config})
        with run.stage("eval"):
            result = evaluate_model(model, config.preset, eval_config)
            write_eval(run.artifact(EVAL_FILE), result)
        timings["eval"] = time.perf_counter() - stage_start
        run.log("eval accuracy: " + ", ".join(f"{c['cell']} {c['accuracy']:.2f}" for c in result["cells"]))
    if "probe" not in config.skip:
        from physlm.probing.igsm_vprobe import run_igsm_probes

        stage_start = time.perf_counter()
        run_igsm_probes(run.path, config.probe.replace(device=device, preset=config.probe.preset or config.preset))
        timings["probe"] = time.perf_counter() - stage_start

    with run.stage("report"):
        timings["total"] = time.perf_counter() - start
        report = build_igsm_report(run.path, timings=timings, png=config.png)
    run.log("stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    run.log(f"done in {time.perf_counter() - start:.0f} s. Report: {report}")
    return run


def run_igsm(
    out: Path | None = None,
    config: Annotated[IGSMExperimentConfig, tyro.conf.arg(name="")] = IGSMExperimentConfig(),  # noqa: B008
    overwrite: bool = False,
) -> int:
    """The Part 2.1 iGSM experiment: train, judge greedy solutions in and out of distribution, V-probe, report.

    Args:
        out: run directory (default: runs/igsm-<timestamp>); never overwritten without --overwrite.
        config: iGSM preset, model, training, evaluation and probe settings.
        overwrite: replace an existing run directory.
    """
    if os.environ.get("OMP_NUM_THREADS") is None:
        import torch

        torch.set_num_threads(max(1, os.cpu_count() or 1))
    if out is None:
        out = Path("runs") / f"igsm-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run = run_igsm_experiment(out, config, overwrite=overwrite)
    if run is not None:  # None on torchrun ranks other than 0
        print(f"\nreport: {(run.path / 'report.html').resolve()}")
    return 0

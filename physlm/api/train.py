"""``physlm.train``: train a HookedTransformer on fresh CFG sentences or iGSM problems and get the model back.

The run goes through the same train stage as ``physlm run cfg`` / ``physlm run igsm``
(:func:`physlm.experiments.train_stage.run_train_stage`: run directory, log, metrics, final checkpoint), so the
result can be reopened later with ``physlm.load(model.path)`` and probed from the command line too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from physlm.api.model import Model, load
from physlm.training.model_config import ModelConfig
from physlm.training.train_config import TrainConfig


def _task(task: str, grammar: str | None, igsm_preset: str, seq_len: int) -> tuple[dict[str, Any], Any]:
    from physlm.training.tasks_registry import build_task

    if task == "cfg":
        from physlm.tasks.cfg.presets import DEFAULT_GRAMMAR

        options: dict[str, Any] = {"grammar": grammar or DEFAULT_GRAMMAR}
    elif task == "igsm":
        if grammar is not None:
            raise ValueError("grammar= applies to task 'cfg'; iGSM takes igsm_preset=")
        options = {"preset": igsm_preset, "max_tokens": seq_len - 2}  # a document plus <bos>/<eos> fits a window
    else:
        raise ValueError(f"unknown task {task!r}; choose 'cfg' or 'igsm'")
    return options, build_task(task, **dict(options))


def train(
    task: Literal["cfg", "igsm"] = "cfg",
    *,
    grammar: str | None = None,
    igsm_preset: str = "tiny",
    model: str = "gpt_rot-small",
    model_options: Mapping[str, Any] | None = None,
    steps: int = 300,
    batch_size: int = 16,
    seq_len: int | None = None,
    n_ctx: int | None = None,
    lr: float = 2e-3,
    seed: int = 0,
    device: Literal["auto", "cpu", "cuda"] = "cpu",
    out: str | Path | None = None,
    overwrite: bool = False,
    train_config: TrainConfig | None = None,
    model_config: ModelConfig | None = None,
) -> Model:
    """Train a model from scratch on a task's fresh data (infinite data, as the papers) and return it loaded.

    Args:
        task: ``cfg`` (sentences of ``grammar``, default the default grammar ``cfg_demo``) or ``igsm``
            (problems of ``igsm_preset``).
        grammar: CFG grammar preset or file.
        igsm_preset: iGSM preset (micro, tiny, small, med, hard).
        model: model preset ``<variant>-<size>`` (gpt, gpt_rot, gpt_alibi, gpt_pos, gpt_uni × tiny, small,
            medium, gpt2).
        model_options: overrides of the preset's fields, e.g. ``{"n_layers": 2, "d_model": 64}``.
        steps, batch_size, lr, seed: optimisation (cosine schedule with warm-up; ``seed`` seeds the weights and
            the data stream). 300 steps of 16 × 128 tokens take a few minutes on a CPU, far too short for the
            model to learn ``cfg_demo`` (``physlm run cfg`` trains 1,800 steps of 32 × 128).
        seq_len: tokens per training window (default 128 for CFG, 256 for iGSM, whose longer documents are
            dropped).
        n_ctx: model context (default ``seq_len`` for CFG, 384 for iGSM so the evaluation's longer problems fit).
        device: where to train; the model comes back on it (``auto``: CUDA when available).
        out: run directory (default a new temporary folder); never overwritten unless ``overwrite``.
        train_config, model_config: full configs to use instead of the options above (``d_vocab`` and, unless
            given, ``n_ctx`` are set from the task).
    """
    from physlm.experiments.train_stage import run_train_stage
    from physlm.training import model_preset
    from physlm.training.tasks_registry import task_record

    if seq_len is None:
        seq_len = train_config.seq_len if train_config is not None else (256 if task == "igsm" else 128)
    task_options, task_obj = _task(task, grammar, igsm_preset, seq_len)
    if train_config is None:
        train_config = TrainConfig(
            steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr, warmup_steps=min(30, steps // 10),
            schedule="cosine", min_lr_ratio=0.01 if task == "igsm" else 0.05,
            weight_decay=0.05 if task == "igsm" else 0.1, eval_every=max(1, steps // 10), save_every=0,
            log_every=max(1, steps // 100), seed=seed, device=device, drop_long_documents=task == "igsm",
        )
    d_vocab = task_obj.token_table.d_vocab
    if model_config is None:
        context = n_ctx if n_ctx is not None else (384 if task == "igsm" else train_config.seq_len)
        model_config = model_preset(model, **{"n_ctx": context, "seed": seed, **dict(model_options or {}),
                                              "d_vocab": d_vocab})
    else:
        model_config = model_config.replace(d_vocab=d_vocab)
    if model_config.n_ctx < train_config.seq_len:
        raise ValueError(f"the model's n_ctx ({model_config.n_ctx}) must hold seq_len ({train_config.seq_len})")
    record = task_record(task, task_obj, task_options)
    run_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=f"physlm-{task}-")) / "run"
    result = run_train_stage(
        run_dir,
        {"train": train_config, "model": model_config, "task": record, "model_preset": model},
        model_config, task_obj, train_config, record, overwrite=overwrite,
        intro=(f"physlm.train({task!r}) → {run_dir}",),
    )
    if result is None:  # a torchrun rank other than 0: rank 0 holds the run
        raise RuntimeError("physlm.train under torchrun returns the model on rank 0 only")
    return load(result.run.path, device=result.device)

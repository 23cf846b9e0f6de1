"""Load what the analyses need from a trained run, and compare runs (clean vs corrupted pretraining)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from physlm.analysis.config import GenerationConfig
from physlm.analysis.generation import exact_dp, fresh_symbol_sentences, membership, prefix_length, robustness
from physlm.analysis.sampling import ModelSampler
from physlm.tasks.base import TokenTable
from physlm.tasks.cfg.grammar import Grammar
from physlm.tasks.cfg.presets import load_grammar
from physlm.training.load import load_model


@dataclasses.dataclass(frozen=True)
class AnalysisRun:
    """A trained CFG model ready for analysis."""

    model: nn.Module
    """the trained HookedTransformer, eval mode (any module mapping token ids to logits serves the generation
    analyses)"""
    token_table: TokenTable
    grammar: Grammar
    """the grammar the model was trained on"""
    n_ctx: int
    task_config: dict[str, Any]
    path: Path


def load_analysis_run(path: str | Path, device: str = "cpu") -> AnalysisRun:
    """Read a run directory's latest checkpoint and the grammar its CFG task used."""
    loaded = load_model(path, device=device)
    task = loaded.task or {}
    config = dict(task.get("config") or {})
    name = config.get("grammar")
    if name is None:
        table_task = loaded.token_table.task
        if not table_task.startswith("cfg:"):
            raise ValueError(
                f"run {path} was trained on task {task.get('name') or table_task!r}, not a CFG; "
                "the attention/generation analyses need a grammar"
            )
        name = table_task.split(":", 1)[1]
    grammar = load_grammar(name)
    return AnalysisRun(
        model=loaded.model,
        token_table=loaded.token_table,
        grammar=grammar,
        n_ctx=int(loaded.model.cfg.n_ctx),
        task_config=config,
        path=Path(path),
    )


def compare_robustness(
    run_clean: str | Path,
    run_corrupted: str | Path,
    config: GenerationConfig | None = None,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Robust accuracy of two runs on the same prefixes (spec §4.4: clean vs corrupted pretraining).

    Rows ``run, corrupt_rate, flip_fraction, temperature, accuracy_clean_prefix, accuracy_as_given, n``; the
    "mode switch" shows as a run that is accurate on clean prefixes (fraction 0) and follows corrupted ones.
    Both runs must use the same grammar, so that both see identical prefixes and corruptions.
    """
    config = config or GenerationConfig()
    rows: list[dict[str, Any]] = []
    grammar_name = None
    dp = exact_dp()
    for label, path in (("clean", run_clean), ("corrupted", run_corrupted)):
        run = load_analysis_run(path, device)
        if grammar_name is not None and run.grammar.name != grammar_name:
            raise ValueError(f"runs use different grammars ({grammar_name!r} vs {run.grammar.name!r})")
        grammar_name = run.grammar.name
        cut = prefix_length(run.grammar, config)
        prefixes = [s[:cut] for s in fresh_symbol_sentences(run.grammar, config.seed, config.n_samples)]
        sampler = ModelSampler(run.model, run.token_table.eos_id, run.n_ctx, config.use_kv_cache)
        with torch.no_grad():
            cells = robustness(
                sampler,
                prefixes,
                run.token_table,
                run.grammar.num_terminals,
                membership(run.grammar, dp),
                config.corruption_fractions,
                config.robust_temperatures,
                config.seed,
                config.batch_size,
            )
        for cell in cells:
            rows.append({"run": label, "path": str(path), "corrupt_rate": run.task_config.get("corrupt_rate"), **cell})
    return rows

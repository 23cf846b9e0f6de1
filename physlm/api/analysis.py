"""``physlm.evaluate_generation`` and ``physlm.attention_stats`` on a loaded model.

Generation: a CFG model's samples are judged by the exact DP (:mod:`physlm.analysis.generation`), an iGSM model's
greedy solutions step by step by the evaluator (:mod:`physlm.analysis.igsm_eval`). Attention: the B statistics of
:mod:`physlm.analysis.attention_stats` over fresh training-layout windows (CFG models).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import plotly.graph_objects as go
import torch

from physlm.analysis.attention_stats import AttentionStats
from physlm.analysis.config import AttentionConfig, GenerationConfig
from physlm.analysis.igsm_eval import IGSMEvalConfig
from physlm.api.model import CFGTaskSpec, Model
from physlm.results import GenerationResults, IGSMEvalResults

GENERATION_DEFAULT = GenerationConfig(
    n_samples=200, n_kl_sentences=50, n_entropy_sentences=100, corruption_fractions=()
)
"""What ``physlm.evaluate_generation`` measures on a CFG model by default (robustness runs left out)."""
IGSM_EVAL_DEFAULT = IGSMEvalConfig(n_problems=30)
"""What it measures on an iGSM model by default: 30 problems per test cell, in and out of distribution."""
ATTENTION_DEFAULT = AttentionConfig(n_windows=64)
"""What ``physlm.attention_stats`` streams by default."""

AttentionTable = Literal["position_attention", "near_end", "end_pair", "adjacency", "head_summary"]


def evaluate_generation(
    model: Model,
    n_samples: int | None = None,
    *,
    seed: int | None = None,
    temperature: float | None = None,
    batch_size: int | None = None,
    config: GenerationConfig | IGSMEvalConfig | None = None,
    verbose: bool = False,
) -> GenerationResults | IGSMEvalResults:
    """How well ``model`` generates its task's data.

    CFG: sentences sampled from BOS (cut0) and after a true prefix (cut50) judged by the exact DP, diversity, the
    model's entropy against the grammar's, KL to the true next-token distributions (:class:`GenerationResults`).
    iGSM: greedy solutions of fresh test-split problems in and out of distribution, judged step by step
    (:class:`IGSMEvalResults`).

    Args:
        model: from :func:`physlm.load` or :func:`physlm.train`.
        n_samples: CFG: samples per setting (default 200); iGSM: problems per test cell (default 30).
        seed: seed of the sentences / problems and of the sampling.
        temperature: CFG sampling temperature (default 1; iGSM decodes greedily).
        batch_size: sequences generated together.
        config: a full ``GenerationConfig`` / ``IGSMEvalConfig`` to start from; the arguments override it.
        verbose: progress bars (iGSM).
    """
    changes = {k: v for k, v in dict(seed=seed, batch_size=batch_size).items() if v is not None}
    if isinstance(model.task, CFGTaskSpec):
        from physlm.analysis.generation import evaluate_generation as evaluate_cfg

        if config is not None and not isinstance(config, GenerationConfig):
            raise TypeError(f"a CFG model takes a GenerationConfig, got {type(config).__name__}")
        if n_samples is not None:
            changes["n_samples"] = n_samples
        if temperature is not None:
            changes["temperature"] = temperature
        config = (config or GENERATION_DEFAULT).replace(**changes)
        with torch.no_grad():
            record = evaluate_cfg(model.model, model.task.grammar, model.token_table, config, model.n_ctx)
        record["config"] = config.to_dict()
        return GenerationResults.from_record(record)
    from physlm.analysis.igsm_eval import evaluate_model

    if config is not None and not isinstance(config, IGSMEvalConfig):
        raise TypeError(f"an iGSM model takes an IGSMEvalConfig, got {type(config).__name__}")
    if temperature is not None:
        raise ValueError("iGSM solutions are decoded greedily; temperature= applies to CFG models")
    if n_samples is not None:
        changes["n_problems"] = n_samples
    config = (config or IGSM_EVAL_DEFAULT).replace(**changes, device=str(model.device))
    if model.task.preset is None:
        raise ValueError(f"{model.name} records no iGSM preset, which names the test cells")
    return IGSMEvalResults.from_record(evaluate_model(model.model, model.task.preset, config, progress=verbose))


@dataclasses.dataclass(frozen=True, eq=False)
class AttentionResults:
    """Attention against the true parse: the accumulated :class:`AttentionStats` with its tables and figures."""

    stats: AttentionStats
    config: AttentionConfig

    def head_summary(self) -> list[dict[str, Any]]:
        """Heads ranked by how much more they attend to NT-ends than distance alone predicts (strongest first)."""
        from physlm.analysis.attention_stats import head_summary

        return head_summary(self.stats)

    def table(self, name: AttentionTable = "head_summary") -> Any:
        """One table of :mod:`physlm.analysis.attention_stats` (``position_attention``, ``near_end``,
        ``end_pair``, ``adjacency``, ``head_summary``): a pandas DataFrame, or a list of dicts without pandas."""
        from physlm.analysis import attention_stats as st

        functions = {"position_attention": st.position_table, "near_end": st.near_end_table,
                     "end_pair": st.end_pair_table, "adjacency": st.adjacency_table, "head_summary": st.head_summary}
        if name not in functions:
            raise ValueError(f"unknown table {name!r}; choose one of {sorted(functions)}")
        rows = functions[name](self.stats)
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows)

    def figure(self, name: AttentionTable = "near_end", layer: int = 0) -> go.Figure:
        """The plotly Figure of one statistic (``layer`` picks the layer of ``position_attention``)."""
        from physlm.analysis import attention_figures as figs

        if name == "position_attention":
            return figs.position_attention_figure(self.stats, layer)
        if name == "head_summary":
            return figs.head_summary_figure(self.head_summary(), top=10)
        functions = {"near_end": figs.near_end_figure, "end_pair": figs.end_pair_figure,
                     "adjacency": figs.adjacency_figure}
        if name not in functions:
            raise ValueError(f"unknown figure {name!r}; choose one of {sorted([*functions, 'position_attention'])}")
        return functions[name](self.stats)


def attention_stats(
    model: Model,
    n_windows: int | None = None,
    *,
    batch_size: int | None = None,
    seed: int | None = None,
    config: AttentionConfig | None = None,
) -> AttentionResults:
    """Stream ``n_windows`` fresh training-layout windows (``BOS x EOS BOS x' EOS ...``, default 64) through a CFG
    model and measure its attention against the true parse: Ā by distance, B = A − Ā near NT-ends, between
    NT-ends and by adjacency (only one layer's pattern of one batch is held at a time)."""
    from physlm.analysis.attention_stats import accumulate_attention
    from physlm.analysis.layout import fresh_sentences, window_batches

    if not isinstance(model.task, CFGTaskSpec):
        raise TypeError("attention statistics against the parse need a CFG model")
    changes = {k: v for k, v in dict(n_windows=n_windows, batch_size=batch_size, seed=seed).items() if v is not None}
    config = (config or ATTENTION_DEFAULT).replace(**changes)
    n_ctx = config.n_ctx or model.n_ctx
    if n_ctx > model.n_ctx:
        raise ValueError(f"n_ctx={n_ctx} exceeds the model's context length {model.n_ctx}")
    grammar = model.task.grammar
    stats = AttentionStats(
        model.n_layers, int(model.model.cfg.n_heads), n_ctx, grammar.num_levels - 2, config.max_delta,
        config.max_r, config.r_level_offsets, config.include_self,
    )
    batches = window_batches(fresh_sentences(grammar, config.seed), model.token_table, config.n_windows, n_ctx,
                             config.batch_size)
    accumulate_attention(model.model, batches, stats, total=-(-config.n_windows // config.batch_size))
    return AttentionResults(stats, config)

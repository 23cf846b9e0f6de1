"""Attention against the true structure, generation evaluation, figures and reports."""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule; resolved on first access so `import analysis` stays light (no torch / plotly)
_EXPORTS = {
    "AttentionConfig": "analysis.config",
    "GenerationConfig": "analysis.config",
    "AttentionStats": "analysis.attention_stats",
    "accumulate_attention": "analysis.attention_stats",
    "position_table": "analysis.attention_stats",
    "near_end_table": "analysis.attention_stats",
    "end_pair_table": "analysis.attention_stats",
    "adjacency_table": "analysis.attention_stats",
    "head_summary": "analysis.attention_stats",
    "position_attention_figure": "analysis.attention_figures",
    "position_attention_figures": "analysis.attention_figures",
    "near_end_figure": "analysis.attention_figures",
    "end_pair_figure": "analysis.attention_figures",
    "adjacency_figure": "analysis.attention_figures",
    "head_summary_figure": "analysis.attention_figures",
    "attention_parse_figure": "analysis.parse_view",
    "sentence_attention": "analysis.parse_view",
    "circuitsvis_attention": "analysis.parse_view",
    "PackedWindows": "analysis.layout",
    "fresh_sentences": "analysis.layout",
    "window_batches": "analysis.layout",
    "Continuations": "analysis.sampling",
    "ModelSampler": "analysis.sampling",
    "sample_continuations": "analysis.sampling",
    "evaluate_generation": "analysis.generation",
    "kl_to_grammar": "analysis.generation",
    "diversity": "analysis.generation",
    "robustness": "analysis.generation",
    "prefix_length": "analysis.generation",
    "AnalysisRun": "analysis.runs",
    "load_analysis_run": "analysis.runs",
    "compare_robustness": "analysis.runs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")

"""Attention against the true structure, generation evaluation, figures and reports."""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule; resolved on first access so `import analysis` stays light (no torch / plotly)
_EXPORTS = {
    "AttentionConfig": "physlm.analysis.config",
    "GenerationConfig": "physlm.analysis.config",
    "AttentionStats": "physlm.analysis.attention_stats",
    "accumulate_attention": "physlm.analysis.attention_stats",
    "position_table": "physlm.analysis.attention_stats",
    "near_end_table": "physlm.analysis.attention_stats",
    "end_pair_table": "physlm.analysis.attention_stats",
    "adjacency_table": "physlm.analysis.attention_stats",
    "head_summary": "physlm.analysis.attention_stats",
    "position_attention_figure": "physlm.analysis.attention_figures",
    "position_attention_figures": "physlm.analysis.attention_figures",
    "near_end_figure": "physlm.analysis.attention_figures",
    "end_pair_figure": "physlm.analysis.attention_figures",
    "adjacency_figure": "physlm.analysis.attention_figures",
    "head_summary_figure": "physlm.analysis.attention_figures",
    "attention_parse_figure": "physlm.analysis.parse_view",
    "sentence_attention": "physlm.analysis.parse_view",
    "circuitsvis_attention": "physlm.analysis.parse_view",
    "PackedWindows": "physlm.analysis.layout",
    "fresh_sentences": "physlm.analysis.layout",
    "window_batches": "physlm.analysis.layout",
    "Continuations": "physlm.analysis.sampling",
    "ModelSampler": "physlm.analysis.sampling",
    "sample_continuations": "physlm.analysis.sampling",
    "evaluate_generation": "physlm.analysis.generation",
    "kl_to_grammar": "physlm.analysis.generation",
    "diversity": "physlm.analysis.generation",
    "robustness": "physlm.analysis.generation",
    "prefix_length": "physlm.analysis.generation",
    "AnalysisRun": "physlm.analysis.runs",
    "load_analysis_run": "physlm.analysis.runs",
    "compare_robustness": "physlm.analysis.runs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'physlm.analysis' has no attribute {name!r}")

"""``physlm analyze attention`` and ``physlm analyze generation``: add an analysis stage to a trained run."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import tyro

from physlm.analysis.config import AttentionConfig, GenerationConfig
from physlm.rundir import RunDir, write_atomic


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV text of a list of dicts (columns in first-row order; None becomes an empty cell)."""
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return out.getvalue()


def _threads() -> None:
    import torch

    # the machine is shared; respect OMP_NUM_THREADS when set, else stay modest
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


def run_attention_analysis(run: RunDir, config: AttentionConfig, device: str = "cpu") -> dict[str, Any]:
    """Stream fresh windows through the run's model and write the attention tables and figures.

    Writes ``attention/{position_attention,near_end,end_pair,adjacency,head_summary}.csv``,
    ``attention/figures/*.json`` (plotly JSON) and ``attention/summary.json``; returns the summary.
    """
    from physlm.analysis import attention_figures as figs
    from physlm.analysis import attention_stats as st
    from physlm.analysis.layout import fresh_sentences, window_batches
    from physlm.analysis.runs import load_analysis_run

    loaded = load_analysis_run(run.path, device)
    n_ctx = config.n_ctx or loaded.n_ctx
    if n_ctx > loaded.n_ctx:
        raise ValueError(f"n_ctx={n_ctx} exceeds the model's context length {loaded.n_ctx}")
    stats = st.AttentionStats(
        loaded.model.cfg.n_layers,
        loaded.model.cfg.n_heads,
        n_ctx,
        loaded.grammar.num_levels - 2,
        config.max_delta,
        config.max_r,
        config.r_level_offsets,
        config.include_self,
    )
    batches = window_batches(
        fresh_sentences(loaded.grammar, config.seed),
        loaded.token_table,
        config.n_windows,
        n_ctx,
        config.batch_size,
    )
    total = -(-config.n_windows // config.batch_size)
    st.accumulate_attention(loaded.model, batches, stats, total=total)
    tables = {
        "position_attention": st.position_table(stats),
        "near_end": st.near_end_table(stats),
        "end_pair": st.end_pair_table(stats),
        "adjacency": st.adjacency_table(stats),
        "head_summary": st.head_summary(stats),
    }
    for name, rows in tables.items():
        write_atomic(run.artifact(f"attention/{name}.csv"), rows_to_csv(rows))
    figures = {f"position_attention_layer{i}": f for i, f in enumerate(figs.position_attention_figures(stats))}
    figures.update(
        near_end=figs.near_end_figure(stats),
        end_pair=figs.end_pair_figure(stats),
        adjacency=figs.adjacency_figure(stats),
        head_summary=figs.head_summary_figure(tables["head_summary"]),
    )
    for name, fig in figures.items():
        write_atomic(run.artifact(f"attention/figures/{name}.json"), fig.to_json())
    summary = {
        "grammar": loaded.grammar.name,
        "n_windows": stats.n_windows,
        "n_ctx": n_ctx,
        "top_heads": tables["head_summary"][:5],
        "files": sorted([f"attention/{n}.csv" for n in tables] + [f"attention/figures/{n}.json" for n in figures]),
    }
    write_atomic(run.artifact("attention/summary.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def analyze_attention(
    run: Path,
    config: Annotated[AttentionConfig, tyro.conf.OmitArgPrefixes] = AttentionConfig(),  # noqa: B008
    device: str = "cpu",
) -> int:
    """Attention statistics against the true parse (Ā by distance, B near NT-ends, end→end, adjacency).

    Args:
        run: run directory of a trained CFG model (the --out of `physlm train`).
        config: what to measure.
        device: torch device for the forward passes.
    """
    _threads()
    run_dir = RunDir.open(run)
    run_dir.record({"attention": config})
    with run_dir.stage("attention"):
        summary = run_attention_analysis(run_dir, config, device)
        top = summary["top_heads"][0] if summary["top_heads"] else None
        run_dir.log(
            "attention statistics over %d windows written to %s/attention (top head: %s)",
            summary["n_windows"],
            run_dir.path,
            f"L{top['layer']}H{top['head']}" if top else "none",
        )
    return 0


def run_generation_analysis(run: RunDir, config: GenerationConfig, device: str = "cpu") -> dict[str, Any]:
    """Evaluate generation for the run's model and write ``generation.json``; returns its content."""
    import torch

    from physlm.analysis.generation import evaluate_generation
    from physlm.analysis.runs import load_analysis_run

    loaded = load_analysis_run(run.path, device)
    with torch.no_grad():
        result = evaluate_generation(loaded.model, loaded.grammar, loaded.token_table, config, loaded.n_ctx)
    result["config"] = config.to_dict()
    write_atomic(run.artifact("generation.json"), json.dumps(result, indent=2) + "\n")
    return result


def analyze_generation(
    run: Path,
    config: Annotated[GenerationConfig, tyro.conf.OmitArgPrefixes] = GenerationConfig(),  # noqa: B008
    device: str = "cpu",
) -> int:
    """Generation accuracy (cut0 / cut50), diversity, entropy, KL to the grammar and robustness.

    Args:
        run: run directory of a trained CFG model (the --out of `physlm train`).
        config: sample sizes, prefix rule, temperatures and seeds.
        device: torch device for sampling.
    """
    _threads()
    run_dir = RunDir.open(run)
    run_dir.record({"generation": config})
    with run_dir.stage("generation"):
        result = run_generation_analysis(run_dir, config, device)
        run_dir.log(
            "generation: accuracy cut0 %.4f, cut%d %.4f, KL %s nats/token, %d duplicates of %d",
            result["accuracy_cut0"],
            result["cut"],
            result["accuracy_cut50"],
            result["kl"],
            result["duplicates"],
            result["n_samples"],
        )
    return 0

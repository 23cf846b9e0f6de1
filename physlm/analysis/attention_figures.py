"""Figures of the attention statistics (plotly; nothing here calls ``.show()``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from physlm.analysis.attention_stats import AttentionStats


def _head_labels(stats: AttentionStats) -> list[str]:
    return [f"L{layer}H{head}" for layer in range(stats.n_layers) for head in range(stats.n_heads)]


def _level_name(level: int) -> str:
    return "non-end" if level == 0 else f"NT{level}"


def _heatmap(z: np.ndarray, x: list[str], y: list[str], title: str, colorbar: str) -> go.Figure:
    finite = np.abs(z[np.isfinite(z)])
    bound = float(finite.max()) if finite.size else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=x,
            y=y,
            colorscale="RdBu",
            zmid=0.0,
            zmin=-bound,
            zmax=bound,
            colorbar={"title": colorbar},
            hovertemplate="%{y} %{x}: %{z:.4f}<extra></extra>",
        )
    )
    fig.update_layout(title=title, yaxis={"autorange": "reversed"}, height=max(320, 18 * len(y) + 160))
    return fig


def position_attention_figure(stats: AttentionStats, layer: int, log_x: bool = True) -> go.Figure:
    """Ā(l, h, p) against the distance p for every head of one layer (the multi-scale picture)."""
    if not 0 <= layer < stats.n_layers:
        raise ValueError(f"layer {layer} is out of range 0..{stats.n_layers - 1}")
    abar = stats.position_attention()[layer]
    distance = np.arange(stats.n_ctx)
    fig = go.Figure()
    for head in range(stats.n_heads):
        keep = np.isfinite(abar[head])
        # distance 0 cannot be drawn on a log axis; shift by one so "self" is visible at x = 1
        x = distance[keep] + (1 if log_x else 0)
        fig.add_trace(go.Scatter(x=x, y=abar[head][keep], mode="lines", name=f"head {head}"))
    fig.update_layout(
        title=f"Position-based attention Ā, layer {layer}",
        xaxis={
            "title": "distance p = j - i" + (" (+1, log scale)" if log_x else ""),
            "type": "log" if log_x else "linear",
        },
        yaxis={"title": "mean attention weight", "type": "log"},
    )
    return fig


def position_attention_figures(stats: AttentionStats, log_x: bool = True) -> list[go.Figure]:
    """One :func:`position_attention_figure` per layer."""
    return [position_attention_figure(stats, layer, log_x) for layer in range(stats.n_layers)]


def near_end_figure(stats: AttentionStats) -> go.Figure:
    """Mean B to keys at offset δ from an NT-end of level ℓ, per head (a peak at δ = 0 follows the parse)."""
    b, _ = stats.family_b("near_end")
    nl = stats.n_nt_levels
    deltas = list(range(-stats.max_delta, stats.max_delta + 1))
    by = b.reshape(stats.n_layers * stats.n_heads, len(deltas), nl)
    columns, z = [], []
    for li, level in enumerate(stats.levels):
        for di, delta in enumerate(deltas):
            columns.append(f"NT{level} δ={delta:+d}")
            z.append(by[:, di, li])
    return _heatmap(
        np.stack(z, 1),
        columns,
        _head_labels(stats),
        "Attention near NT-ends (B = A − Ā, key at NT-end + δ)",
        "B",
    )


def end_pair_figure(stats: AttentionStats) -> go.Figure:
    """Mean B by (query level → key level), non-end included, per head."""
    b, _ = stats.family_b("end_pair")
    cats = (0, *stats.levels)
    columns = [f"{_level_name(q)}→{_level_name(k)}" for q in cats for k in cats]
    return _heatmap(
        b.reshape(stats.n_layers * stats.n_heads, -1),
        columns,
        _head_labels(stats),
        "NT-end → NT-end attention (B by query level → key level)",
        "B",
    )


def adjacency_figure(stats: AttentionStats) -> go.Figure:
    """Mean B of NT-end → NT-end pairs by key level and ancestor-index distance r; a panel per convention."""
    offsets = stats.r_level_offsets
    titles = ["r at the key's level (p_ℓ(j) − p_ℓ(i))" if off == 0 else f"r at level ℓ − {off}" for off in offsets]
    fig = make_subplots(rows=len(offsets), cols=1, subplot_titles=titles, vertical_spacing=0.12)
    nl, nr = stats.n_nt_levels, stats.max_r + 1
    heads = _head_labels(stats)
    for row, off in enumerate(offsets, 1):
        fam = stats.families[f"adjacent_{off}"]
        sums = fam.sums.reshape(stats.n_layers, stats.n_heads, nl, nl, nr).sum(2)  # pool query levels
        counts = fam.dist_counts.reshape(nl, nl, nr, -1).sum(0)
        b, n = stats.mean_b(sums.reshape(stats.n_layers, stats.n_heads, nl * nr), counts.reshape(nl * nr, -1))
        columns = [f"NT{level} r={r}" for level in stats.levels for r in range(nr)]
        keep = n > 0
        fig.add_trace(
            go.Heatmap(
                z=b.reshape(-1, nl * nr)[:, keep],
                x=[c for c, k in zip(columns, keep) if k],
                y=heads,
                colorscale="RdBu",
                zmid=0.0,
                coloraxis="coloraxis",
                hovertemplate="%{y} %{x}: %{z:.4f}<extra></extra>",
            ),
            row=row,
            col=1,
        )
        fig.update_yaxes(autorange="reversed", row=row, col=1)
    fig.update_layout(
        title="Most adjacent NT-end: B of NT-end → NT-end pairs by ancestor-index distance r",
        coloraxis={"colorscale": "RdBu", "cmid": 0.0, "colorbar": {"title": "B"}},
        height=len(offsets) * max(300, 18 * len(heads) + 120),
    )
    return fig


def head_summary_figure(summary: Sequence[dict[str, Any]], top: int | None = 20) -> go.Figure:
    """Bar chart of the heads' parse-following scores, in ranking order."""
    rows = list(summary)[: top if top else None]
    labels = [f"L{r['layer']}H{r['head']}" for r in rows]
    fig = go.Figure()
    for key in ("end_excess", "delta0_peak", "end_to_end_contrast"):
        fig.add_trace(go.Bar(x=labels, y=[np.nan if r[key] is None else r[key] for r in rows], name=key))
    fig.update_layout(
        title="Heads ranked by attention to NT-ends beyond position (end_excess)",
        barmode="group",
        yaxis={"title": "B difference"},
    )
    return fig

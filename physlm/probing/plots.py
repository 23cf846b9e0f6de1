"""Layer-wise probe figures from ``probe_results.csv`` rows: one line per level, controls dashed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from physlm.rundir import write_atomic

HEADLINE_METRIC = {
    "ancestor": "accuracy",
    "ancestor_at_end": "accuracy",
    "end": "balanced_accuracy",
    "end_level": "balanced_accuracy",
}
_DASH = {"trained": "solid", "random_init": "dash", "position_token": "dot", "position": "dashdot",
         "majority": "longdash", "shuffled": "longdashdot"}
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _series(
    rows: Sequence[Mapping[str, Any]], target: str
) -> dict[tuple[str, str, int], list[Mapping[str, Any]]]:
    """(label, features, colour index) -> rows sorted by layer, for the lines of one target's figure."""
    out: dict[tuple[str, str, int], list[Mapping[str, Any]]] = {}
    levels = sorted({r["level"] for r in rows if r["target"] == target})
    for r in rows:
        if r["target"] != target:
            continue
        if target == "end_level":
            # One overall row set (level 0) and one line per level ℓ from the per-class recall.
            if r["metric"] == HEADLINE_METRIC[target]:
                key = ("b♯ balanced", r["features"], 0)
            elif r["metric"].startswith("class_") and r["metric"] != "class_0_accuracy":
                lv = int(r["metric"].split("_")[1])
                key = (f"b♯ = {lv}", r["features"], lv)
            else:
                continue
        elif r["metric"] == HEADLINE_METRIC[target]:
            key = (f"NT{r['level']}", r["features"], levels.index(r["level"]) + 1)
        else:
            continue
        out.setdefault(key, []).append(r)
    return {k: sorted(v, key=lambda r: r["layer"]) for k, v in out.items()}


def layerwise_figure(
    rows: Sequence[Mapping[str, Any]], target: str,
    features: Sequence[str] = ("trained", "random_init", "position_token"),
) -> go.Figure:
    """Accuracy against layer for one target: trained probes solid with 95% intervals, controls dashed."""
    if target not in HEADLINE_METRIC:
        raise ValueError(f"unknown target {target!r}; choose one of {sorted(HEADLINE_METRIC)}")
    fig = go.Figure()
    for (label, feat, colour), series in sorted(_series(rows, target).items(), key=lambda kv: (kv[0][2], kv[0][1])):
        if feat not in features:
            continue
        x = [r["layer"] for r in series]
        y = [r["value"] for r in series]
        error = None
        if feat == "trained":
            error = dict(
                type="data", symmetric=False,
                array=[r["ci_high"] - r["value"] for r in series],
                arrayminus=[r["value"] - r["ci_low"] for r in series],
            )
        fig.add_trace(go.Scatter(
            x=x, y=y, error_y=error, mode="lines+markers" if feat == "trained" else "lines",
            name=f"{label} ({feat})", legendgroup=label,
            line=dict(color=_PALETTE[colour % len(_PALETTE)], dash=_DASH.get(feat, "dash")),
        ))
    metric = HEADLINE_METRIC[target].replace("_", " ")
    fig.update_layout(
        title=f"{target}: probe {metric} by layer (solid: trained model, dashed/dotted: controls)",
        xaxis=dict(title="layer (−1 = embeddings)", dtick=1),
        yaxis=dict(title=metric, range=[0, 1.02]),
        template="plotly_white",
    )
    return fig


def write_figures(directory: str | Path, rows: Sequence[Mapping[str, Any]]) -> list[Path]:
    """``probe_<target>.json`` per target and one self-contained ``probes.html`` with all of them."""
    directory = Path(directory)
    targets = [t for t in HEADLINE_METRIC if any(r["target"] == t for r in rows)]
    written, parts = [], []
    for i, target in enumerate(targets):
        fig = layerwise_figure(rows, target)
        path = directory / f"probe_{target}.json"
        write_atomic(path, fig.to_json())
        written.append(path)
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0)))
    if parts:
        html = "<html><head><meta charset='utf-8'><title>probes</title></head><body>" + "".join(parts)
        write_atomic(directory / "probes.html", html + "</body></html>")
        written.append(directory / "probes.html")
    return written

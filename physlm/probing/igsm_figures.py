"""Figures and tables of iGSM V-probe rows: layer-wise curves, nece by distance from the query, the cells table.

Rows are those of :mod:`physlm.probing.igsm_recipe` (dicts or :class:`physlm.results.ProbeRow`): the headline
rows are the in-distribution cell, the all_param population and level 0; the extra columns ``cell`` and
``population`` pick the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from physlm.probing.igsm_examples import TARGETS

Row = Mapping[str, Any]
_DASH = {"trained": "solid", "random_init": "dash", "majority": "dot"}
_COLOUR = {"trained": "#1f77b4", "random_init": "#d62728", "majority": "#7f7f7f"}


def headline_metric(target: str) -> str:
    """The metric a figure or summary leads with: balanced accuracy for the imbalanced binary targets."""
    return "accuracy" if target == "value" else "balanced_accuracy"


def is_in_dist(cell: Any) -> bool:
    """Whether a row's ``cell`` is the in-distribution one (rows written before cells existed have none)."""
    return cell in (None, "", "in_dist") or str(cell).startswith("op<=")


def is_headline(row: Row) -> bool:
    """In distribution, all_param population, level 0: the rows of the paper's headline column."""
    return (is_in_dist(row.get("cell")) and row.get("population") in (None, "", "all_param")
            and int(row["level"]) == 0)


def layerwise_igsm_figure(
    rows: Sequence[Row], target: str, metric: str | None = None,
    features: Sequence[str] = ("trained", "random_init", "majority"),
    cell: str | None = None, population: str = "all_param",
) -> go.Figure:
    """Probe ``metric`` against layer for one iGSM target; trained solid with 95% intervals, controls dashed.
    ``cell`` (default: in distribution) and ``population`` pick the test set."""
    if target not in TARGETS:
        raise ValueError(f"unknown iGSM probe target {target!r}; choose one of {TARGETS}")
    metric = metric or headline_metric(target)

    def keep(r: Row) -> bool:
        in_cell = is_in_dist(r.get("cell")) if cell is None else r.get("cell") == cell
        return (in_cell and r.get("population", "all_param") in (population, "") and int(r["level"]) == 0
                and r["target"] == target and r["metric"] == metric)

    fig = go.Figure()
    for feat in features:
        series = sorted((r for r in rows if keep(r) and r["features"] == feat), key=lambda r: r["layer"])
        if not series:
            continue
        error = None
        if feat != "majority":
            error = dict(type="data", symmetric=False, array=[r["ci_high"] - r["value"] for r in series],
                         arrayminus=[r["value"] - r["ci_low"] for r in series])
        fig.add_trace(go.Scatter(
            x=[r["layer"] for r in series], y=[r["value"] for r in series], error_y=error,
            mode="lines+markers", name=feat, line=dict(color=_COLOUR.get(feat), dash=_DASH.get(feat, "dash")),
        ))
    label = metric.replace("_", " ")
    where = "" if cell is None and population == "all_param" else f" ({cell or 'in distribution'}, {population})"
    fig.update_layout(
        title=f"{target}: V-probe {label} by layer{where} (solid: trained model; dashed: random init; "
              "dotted: majority)",
        xaxis=dict(title="layer (block output read at the read-out token)", dtick=1),
        yaxis=dict(title=label, range=[0, 1.02]),
        template="plotly_white",
    )
    return fig


def distance_figure(rows: Sequence[Row], features: str = "trained") -> go.Figure:
    """Layer-wise nece accuracy on necessary parameters, one line per distance t from the query (Part 2.1
    Fig 10/14: shallow layers suffice for small t if the model plans backwards layer by layer)."""
    by_t: dict[int, list[Row]] = {}
    for r in rows:
        if (r["target"] == "nece" and int(r["level"]) > 0 and r["features"] == features
                and r["metric"] == "accuracy"):
            by_t.setdefault(int(r["level"]), []).append(r)
    fig = go.Figure()
    for t, series in sorted(by_t.items()):
        series = sorted(series, key=lambda r: r["layer"])
        fig.add_trace(go.Scatter(
            x=[r["layer"] for r in series], y=[r["value"] for r in series], mode="lines+markers",
            name=f"t={t} (n={series[0].get('n_examples', '?')})",
            error_y=dict(type="data", symmetric=False, array=[r["ci_high"] - r["value"] for r in series],
                         arrayminus=[r["value"] - r["ci_low"] for r in series]),
        ))
    fig.update_layout(
        title=f"nece(A) = true for necessary A at distance t from the query, by layer ({features} model)",
        xaxis=dict(title="layer (block output read at [END])", dtick=1),
        yaxis=dict(title="accuracy", range=[0, 1.02]),
        template="plotly_white",
    )
    return fig


def cells_table(rows: Sequence[Row], layer: int | None = None) -> list[dict[str, Any]]:
    """One row per (target, population, cell) at ``layer`` (default: the last): the headline metric of the
    trained probe with its interval, the random-init probe and the majority guess (the paper's Fig 7 columns)."""
    if not rows:
        return []
    layer = max(int(r["layer"]) for r in rows) if layer is None else layer
    cells: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        target = r["target"]
        if int(r["layer"]) != layer or int(r["level"]) != 0 or r["metric"] != headline_metric(target):
            continue
        key = (target, str(r.get("population") or "all_param"), str(r.get("cell") or "in_dist"))
        entry = cells.setdefault(key, {"target": key[0], "population": key[1], "cell": key[2],
                                       "metric": r["metric"], "n": r.get("n_examples", "")})
        entry[r["features"]] = round(float(r["value"]), 3)
        if r["features"] == "trained":
            entry["95% CI"] = f"[{float(r['ci_low']):.3f}, {float(r['ci_high']):.3f}]"
    order = {t: i for i, t in enumerate(TARGETS)}
    return sorted(cells.values(), key=lambda e: (order.get(e["target"], 99), e["population"] != "all_param",
                                                 e["population"], not is_in_dist(e["cell"]), e["cell"]))


def write_igsm_figures(directory: str | Path, rows: Sequence[Row]) -> list[Path]:
    """``probe_<target>.json`` per target and ``probe_nece_distance.json`` (plotly JSON) for the report."""
    from physlm.rundir import write_atomic

    directory = Path(directory)
    written = []
    for target in TARGETS:
        if any(r["target"] == target for r in rows):
            path = directory / f"probe_{target}.json"
            write_atomic(path, layerwise_igsm_figure(rows, target).to_json())
            written.append(path)
    if any(r["target"] == "nece" and int(r["level"]) > 0 for r in rows):
        path = directory / "probe_nece_distance.json"
        write_atomic(path, distance_figure(rows).to_json())
        written.append(path)
    return written

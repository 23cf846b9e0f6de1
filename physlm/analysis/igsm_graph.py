"""Plotly views of one iGSM problem: its dependency graph G_d, and probe beliefs next to the truth.

Used by ``notebooks/03_igsm_probing.ipynb``; every function returns a ``plotly.graph_objects.Figure``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from physlm.tasks.igsm.problem import Problem

Param = tuple[int, int, int, int]
RNG: Param = (-1, 0, 0, 0)


def graph_params(problem: Problem) -> list[Param]:
    """The parameters of G_d (RNG excluded), in the generator's order."""
    return [p for p in problem.template.preds if p != RNG]


def depth_layout(problem: Problem) -> dict[Param, tuple[float, float]]:
    """(x, y) per G_d parameter: x = longest chain of dependencies below it, y spreads each column."""
    preds = {p: [q for q in problem.template.preds[p] if q != RNG] for p in graph_params(problem)}
    depth: dict[Param, int] = {}

    def visit(p: Param) -> int:
        if p not in depth:
            depth[p] = 1 + max((visit(q) for q in preds[p]), default=-1)
        return depth[p]

    for p in preds:
        visit(p)
    columns: dict[int, list[Param]] = {}
    for p in preds:
        columns.setdefault(depth[p], []).append(p)
    pos = {}
    for d, members in columns.items():
        for i, p in enumerate(sorted(members)):
            pos[p] = (float(d), (len(members) - 1) / 2 - i)
    return pos


def dependency_graph_figure(problem: Problem, nece_belief: Mapping[Param, int] | None = None) -> go.Figure:
    """G_d of ``problem``: arrows from each dependency to the parameter that uses it, the query starred.

    Fill colour is the truth (green: necessary for the question; grey: not); with ``nece_belief`` (a probe's
    prediction per parameter) a red ring marks every parameter where the probe disagrees with the truth.
    """
    pos = depth_layout(problem)
    necessary = set(problem.topo)
    fig = go.Figure()
    for p in pos:
        for q in problem.template.preds[p]:
            if q == RNG:
                continue
            (x0, y0), (x1, y1) = pos[q], pos[p]
            fig.add_annotation(x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y",
                               showarrow=True, arrowhead=2, arrowsize=1.2, arrowwidth=1, arrowcolor="#999",
                               standoff=12, startstandoff=12, text="")
    params = list(pos)
    names = [problem.name(p) for p in params]
    truth = [p in necessary for p in params]
    hover = []
    for p, name, t in zip(params, names, truth):
        line = f"{name}<br>value {problem.values[p]}<br>necessary: {'yes' if t else 'no'}"
        if nece_belief is not None and p in nece_belief:
            line += f"<br>probe says: {'necessary' if nece_belief[p] else 'not necessary'}"
        hover.append(line)
    wrong = [nece_belief is not None and p in nece_belief and bool(nece_belief[p]) != t
             for p, t in zip(params, truth)]
    fig.add_trace(go.Scatter(
        x=[pos[p][0] for p in params], y=[pos[p][1] for p in params], mode="markers+text",
        text=[n.replace("'s ", "'s<br>") for n in names], textposition="top center", hovertext=hover,
        hoverinfo="text",
        marker=dict(size=[26 if p == problem.query else 18 for p in params],
                    symbol=["star" if p == problem.query else "circle" for p in params],
                    color=["#2ca02c" if t else "#c7c7c7" for t in truth],
                    line=dict(color=["#d62728" if w else "#333" for w in wrong],
                              width=[4 if w else 1 for w in wrong])),
        showlegend=False,
    ))
    title = "Dependency graph (arrow: used by; star: the query; green: truly necessary"
    title += "; red ring: the nece probe disagrees)" if nece_belief is not None else ")"
    fig.update_layout(title=title, template="plotly_white", height=420 + 30 * len(params) // 3,
                      xaxis=dict(title="dependency depth", dtick=1, zeroline=False),
                      yaxis=dict(visible=False))
    return fig


def dep_matrix_figure(
    problem: Problem, truth: Mapping[tuple[Param, Param], int], belief: Mapping[tuple[Param, Param], int],
    params: Sequence[Param] | None = None,
) -> go.Figure:
    """dep(A, B) = "A depends on B", the truth beside what the dep probe says, over ``params`` (default G_d)."""
    params = list(params) if params is not None else graph_params(problem)
    names = [problem.name(p) for p in params]

    def grid(values: Mapping[tuple[Param, Param], int]) -> list[list[float | None]]:
        return [[None if a == b else values.get((a, b)) for b in params] for a in params]

    fig = make_subplots(rows=1, cols=2, subplot_titles=("truth: A depends on B", "dep probe"),
                        horizontal_spacing=0.15)
    for col, values in ((1, truth), (2, belief)):
        fig.add_trace(go.Heatmap(z=grid(values), x=names, y=names, zmin=0, zmax=1, showscale=False,
                                 colorscale=[[0, "#f7f7f7"], [1, "#1f77b4"]],
                                 hovertemplate="A=%{y}<br>B=%{x}<br>%{z}<extra></extra>"), row=1, col=col)
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="B", tickangle=45)
    fig.update_yaxes(title_text="A", row=1, col=1)
    fig.update_layout(title="dep(A, B) over the problem's parameters, read before the question is asked",
                      template="plotly_white", height=450 + 18 * len(params))
    return fig

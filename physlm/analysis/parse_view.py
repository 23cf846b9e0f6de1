"""One sentence, one head: the attention heatmap with the sentence's parse drawn along both axes.

For notebooks. The model reads ``BOS x_1..x_n EOS``; terminal x_i sits at position i (BOS is 0). Along
both axes, one band per NT level shows the level's subtrees as coloured spans (colour = symbol); markers
between the heatmap and the bands show the NT-ends, larger for ends closer to the root (b♯).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from plotly.colors import qualitative
from torch import Tensor

from physlm.analysis.layout import TERMINAL_OFFSET
from physlm.tasks.base import TokenTable

_PALETTE = qualitative.Set2 + qualitative.Pastel1


@torch.no_grad()
def sentence_attention(
    model: Any, table: TokenTable, symbols: Sequence[int], layer: int, head: int
) -> Float[Tensor, "query key"]:
    """Attention pattern of one head on ``BOS x EOS`` (only that layer's pattern is cached)."""
    ids = torch.tensor([[table.bos_id, *[t + TERMINAL_OFFSET for t in symbols], table.eos_id]])
    name = f"blocks.{layer}.attn.hook_pattern"
    device = next(model.parameters()).device
    _, cache = model.run_with_cache(ids.to(device), names_filter=lambda n: n == name, return_type=None)
    if name not in cache:
        raise ValueError(f"the model has no {name} hook (layer {layer} out of range or a pattern-free layer)")
    return cache[name][0, head].detach().cpu().float()


def spans_of(ancestor_index_row: Sequence[int] | Int[np.ndarray, " n"]) -> list[tuple[int, int]]:
    """(first, last) terminal index (0-based, inclusive) of each subtree on one level, left to right."""
    row = np.asarray(ancestor_index_row)
    cuts = np.nonzero(np.diff(row))[0]
    starts = np.concatenate([[0], cuts + 1])
    ends = np.concatenate([cuts, [len(row) - 1]])
    return list(zip(starts.tolist(), ends.tolist()))


def attention_parse_figure(
    pattern: Float[Tensor, "query key"] | Float[np.ndarray, "query key"],
    sample: Any,
    grammar: Any = None,
    title: str | None = None,
    band: float = 1.5,
) -> go.Figure:
    """Heatmap of ``pattern`` (positions of ``BOS x EOS``) with the parse of ``sample`` along both axes.

    ``sample`` is a :class:`physlm.tasks.cfg.sample.CFGSample` (anything with ``symbols``, ``ancestor``,
    ``ancestor_index`` and ``end_level``); ``grammar`` names the symbols when given.
    """
    z = pattern.numpy() if isinstance(pattern, Tensor) else np.asarray(pattern)
    n = len(sample.symbols)
    size = z.shape[0]
    if z.shape != (n + 2, n + 2):
        raise ValueError(f"pattern has shape {z.shape} but BOS + {n} terminals + EOS needs {(n + 2, n + 2)}")
    labels = ["BOS", *[str(t) for t in sample.symbols], "EOS"]
    fig = go.Figure(
        go.Heatmap(
            z=np.where(np.tril(np.ones_like(z)) > 0, z, np.nan),
            colorscale="Blues",
            zmin=0.0,
            colorbar={"title": "attention"},
            customdata=np.array([[f"{labels[q]}→{labels[k]}" for k in range(size)] for q in range(size)]),
            hovertemplate="query %{y} → key %{x} (%{customdata}): %{z:.3f}<extra></extra>",
        )
    )
    ancestor, ancestor_index = np.asarray(sample.ancestor), np.asarray(sample.ancestor_index)
    n_levels = ancestor.shape[0]
    text_x, text_y, text = [], [], []
    for r in range(n_levels):
        level = r + 2
        for first, last in spans_of(ancestor_index[r]):
            sym = int(ancestor[r, first])
            name = grammar.name_of(r + 1, sym) if grammar is not None else f"NT{level}:{sym}"
            color = _PALETTE[sym % len(_PALETTE)]
            lo, hi = first + 1 - 0.5, last + 1 + 0.5  # terminal i is at position i + 1
            below = size + 0.5 + r * band  # x-axis band (y grows downwards)
            left = -1.5 - (r + 1) * band  # y-axis band
            for shape in (
                {"x0": lo, "x1": hi, "y0": below, "y1": below + band * 0.85},
                {"x0": left, "x1": left + band * 0.85, "y0": lo, "y1": hi},
            ):
                fig.add_shape(
                    type="rect", fillcolor=color, line={"width": 0.5, "color": "white"}, layer="below", **shape
                )
            text_x += [(lo + hi) / 2, left + band * 0.42]
            text_y += [below + band * 0.42, (lo + hi) / 2]
            text += [name, name]
        # name each band once, past the end of the x axis and above the y axis
        text_x += [size + 1.0, -1.5 - (r + 1) * band + band * 0.42]
        text_y += [size + 0.5 + r * band + band * 0.42, -1.5]
        text += [f"NT{level}", f"NT{level}"]
    fig.add_trace(
        go.Scatter(
            x=text_x,
            y=text_y,
            text=text,
            mode="text",
            textfont={"size": 8},
            hoverinfo="text",
            showlegend=False,
        )
    )
    end_level = np.asarray(sample.end_level)
    ends = np.nonzero(end_level > 0)[0]
    marker_size = [4 + 2 * (n_levels + 2 - int(end_level[i])) for i in ends]
    hover = [f"NT-end at levels {int(end_level[i])}..{n_levels + 1}" for i in ends]
    fig.add_trace(
        go.Scatter(
            x=(ends + 1).tolist() + [-1.0] * len(ends),
            y=[size - 0.5 + 0.5] * len(ends) + (ends + 1).tolist(),
            mode="markers",
            marker={"symbol": "diamond", "size": marker_size * 2, "color": "crimson"},
            hovertext=hover * 2,
            hoverinfo="text",
            name="NT-end (bigger = closer to the root)",
        )
    )
    fig.update_layout(
        title=title or "Attention against the parse",
        xaxis={"title": "key position", "zeroline": False},
        yaxis={"title": "query position", "autorange": "reversed", "zeroline": False, "scaleanchor": "x"},
        plot_bgcolor="white",
        height=700,
        legend={"orientation": "h", "y": -0.05},
    )
    return fig


def circuitsvis_available() -> bool:
    """Whether the optional CircuitsVis package is installed."""
    return importlib.util.find_spec("circuitsvis") is not None


def circuitsvis_attention(
    patterns: Float[Tensor, "head query key"], tokens: Sequence[str], head_names: Sequence[str] | None = None
) -> Any:
    """CircuitsVis' interactive attention view (a notebook-renderable object); needs ``circuitsvis``."""
    if not circuitsvis_available():
        raise ImportError(
            "CircuitsVis is not installed; `pip install circuitsvis` for the interactive view, or use "
            "attention_parse_figure (plotly) instead"
        )
    import circuitsvis as cv

    return cv.attention.attention_heads(
        attention=patterns.detach().cpu(), tokens=list(tokens), attention_head_names=head_names
    )

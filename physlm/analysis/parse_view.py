"""One sentence: the attention heatmap with the sentence's parse drawn along both axes.

For notebooks. The model reads ``BOS x_1..x_n EOS``; terminal x_i sits at position i (BOS is 0). Along
both axes, one band per NT level shows the level's subtrees as coloured spans (colour = symbol); markers
between the heatmap and the bands show the NT-ends, larger for ends closer to the root (b♯).

Given every layer's and head's pattern (:func:`sentence_attention_patterns`), the figure holds one heatmap per
(layer, head) and switches between them itself: a layer menu and a head slider toggle which one is visible,
so exploring the heads needs no re-run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from plotly.colors import qualitative
from torch import Tensor

from physlm.tasks.base import TokenTable
from physlm.tasks.cfg.grammar import Grammar
from physlm.tasks.cfg.sample import CFGSample
from physlm.tasks.cfg.tokens import symbols_to_ids

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

_PALETTE = qualitative.Set2 + qualitative.Pastel1


@torch.no_grad()
def sentence_attention(
    model: HookedTransformer, table: TokenTable, symbols: Sequence[int], layer: int, head: int
) -> Float[Tensor, "query key"]:
    """Attention pattern of one head on ``BOS x EOS`` (only that layer's pattern is cached)."""
    return _patterns(model, table, symbols, [layer])[0, head]


@torch.no_grad()
def sentence_attention_patterns(
    model: HookedTransformer, table: TokenTable, symbols: Sequence[int]
) -> Float[Tensor, "layer head query key"]:
    """Every layer's and head's attention pattern on ``BOS x EOS`` (only the pattern hooks are cached)."""
    return _patterns(model, table, symbols, list(range(int(model.cfg.n_layers))))


def _patterns(model: HookedTransformer, table: TokenTable, symbols: Sequence[int], layers: list[int]) -> Tensor:
    ids = torch.tensor([table.frame(symbols_to_ids(symbols))])
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in layers]
    wanted = set(names)
    device = next(model.parameters()).device
    _, cache = model.run_with_cache(ids.to(device), names_filter=lambda n: n in wanted, return_type=None)
    for layer, name in zip(layers, names):
        if name not in cache:
            raise ValueError(f"the model has no {name} hook (layer {layer} out of range or a pattern-free layer)")
    return torch.stack([cache[name][0] for name in names]).detach().cpu().float()


def spans_of(ancestor_index_row: Sequence[int] | Int[np.ndarray, " n"]) -> list[tuple[int, int]]:
    """(first, last) terminal index (0-based, inclusive) of each subtree on one level, left to right."""
    row = np.asarray(ancestor_index_row)
    cuts = np.nonzero(np.diff(row))[0]
    starts = np.concatenate([[0], cuts + 1])
    ends = np.concatenate([cuts, [len(row) - 1]])
    return list(zip(starts.tolist(), ends.tolist()))


def attention_parse_figure(
    pattern: Float[Tensor, "query key"]
    | Float[np.ndarray, "query key"]
    | Float[Tensor, "layer head query key"]
    | Float[np.ndarray, "layer head query key"],
    sample: CFGSample,
    grammar: Grammar | None = None,
    title: str | None = None,
    band: float = 1.5,
    layer: int = 0,
    head: int = 0,
) -> go.Figure:
    """Heatmap of ``pattern`` (positions of ``BOS x EOS``) with the parse of ``sample`` along both axes.

    ``sample`` is a labelled sentence (:func:`physlm.tasks.cfg.sample_sentence`); ``grammar`` names the symbols
    when given.

    ``pattern`` is one head's ``[query, key]`` pattern, or every head's ``[layer, head, query, key]``
    (:func:`sentence_attention_patterns`): then the figure holds one heatmap per (layer, head), shows
    ``layer``/``head`` first, and a layer menu and a head slider switch the visible heatmap in the figure.
    """
    z = pattern.numpy() if isinstance(pattern, Tensor) else np.asarray(pattern)
    many = z.ndim == 4
    z4 = z if many else z[None, None]
    n_layers, n_heads = z4.shape[:2]
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise ValueError(f"layer {layer}, head {head} is outside the patterns' {n_layers} layers x {n_heads} heads")
    n = len(sample.symbols)
    size = z4.shape[-1]
    if z4.shape[-2:] != (n + 2, n + 2):
        raise ValueError(
            f"pattern has shape {z.shape} but BOS + {n} terminals + EOS needs {(n + 2, n + 2)} per head"
        )
    base = title or "Attention against the parse"

    def heading(lay: int, hd: int) -> str:
        return f"{base}: layer {lay} head {hd}" if many else base

    labels = ["BOS", *[str(t) for t in sample.symbols], "EOS"]
    causal = np.tril(np.ones((size, size))) > 0
    pairs = np.array([[f"{labels[q]}→{labels[k]}" for k in range(size)] for q in range(size)])
    fig = go.Figure()
    for li in range(n_layers):
        for hi in range(n_heads):
            fig.add_trace(
                go.Heatmap(
                    z=np.where(causal, z4[li, hi], np.nan),
                    colorscale="Blues",
                    zmin=0.0,
                    colorbar={"title": "attention"},
                    customdata=pairs,
                    name=f"L{li}H{hi}",
                    visible=(li, hi) == (layer, head),
                    hovertemplate=(f"L{li}H{hi} " if many else "")
                    + "query %{y} → key %{x} (%{customdata}): %{z:.3f}<extra></extra>",
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
        title=heading(layer, head),
        xaxis={"title": "key position", "zeroline": False},
        yaxis={"title": "query position", "autorange": "reversed", "zeroline": False, "scaleanchor": "x"},
        plot_bgcolor="white",
        height=700,
        legend={"orientation": "h", "y": -0.05},
    )
    if many:
        _add_head_controls(fig, n_layers, n_heads, layer, head, heading)
    return fig


def _add_head_controls(
    fig: go.Figure, n_layers: int, n_heads: int, layer: int, head: int, heading: Callable[[int, int], str]
) -> None:
    """A layer menu and a head slider over the figure's first ``n_layers * n_heads`` traces (the heatmaps).

    Plotly's controls only set trace and layout properties, so the menu's button for a layer also puts in a
    fresh head slider whose steps show that layer's heads; the slider then moves within the chosen layer.
    """
    n_heatmaps = n_layers * n_heads
    n_other = len(fig.data) - n_heatmaps  # the parse traces, always shown

    def visible(lay: int, hd: int) -> list[bool]:
        return [i == lay * n_heads + hd for i in range(n_heatmaps)] + [True] * n_other

    def show(lay: int, hd: int) -> list[dict[str, Any]]:
        return [{"visible": visible(lay, hd)}, {"title.text": heading(lay, hd)}]

    def slider(lay: int, active: int) -> dict[str, Any]:
        return {
            "active": active,
            "steps": [{"label": str(hd), "method": "update", "args": show(lay, hd)} for hd in range(n_heads)],
            "currentvalue": {"prefix": f"layer {lay}, head "},
            "x": 0.2, "len": 0.8, "y": 1.0, "yanchor": "bottom", "pad": {"t": 0, "b": 10},
        }

    buttons = []
    for lay in range(n_layers):
        trace_args, layout_args = show(lay, 0)
        layout_args = {**layout_args, "sliders": [slider(lay, 0)]}
        buttons.append({"label": f"layer {lay}", "method": "update", "args": [trace_args, layout_args]})
    fig.update_layout(
        updatemenus=[{"buttons": buttons, "active": layer, "x": 0.0, "xanchor": "left", "y": 1.0,
                      "yanchor": "bottom", "pad": {"b": 30}}],
        sliders=[slider(layer, head)],
        margin={"t": 160},
    )


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

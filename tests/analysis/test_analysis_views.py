"""Figures, the single-sentence parse view and the attention CLI stage on a tiny model."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from physlm.analysis import attention_figures as figs
from physlm.analysis.attention_stats import AttentionStats
from physlm.analysis.cli import analyze_attention, rows_to_csv
from physlm.analysis.config import AttentionConfig
from physlm.analysis.layout import fresh_sentences, window_batches
from physlm.analysis.parse_view import (
    attention_parse_figure,
    circuitsvis_attention,
    circuitsvis_available,
    sentence_attention,
    sentence_attention_patterns,
    spans_of,
)
from physlm.rundir import RunDir
from physlm.tasks.cfg import cfg_token_table, sample_sentence


def test_spans_of_a_level():
    assert spans_of([1, 1, 2, 3, 3, 3]) == [(0, 1), (2, 2), (3, 5)]
    assert spans_of([1]) == [(0, 0)]


def test_parse_figure_draws_every_subtree_on_both_axes(toy, toy_model):
    s = sample_sentence(toy, random.Random(4))
    table = cfg_token_table(toy)
    pattern = sentence_attention(toy_model, table, s.symbols, layer=1, head=2)
    n = len(s.symbols)
    assert pattern.shape == (n + 2, n + 2)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(n + 2))
    fig = attention_parse_figure(pattern, s, toy, title="toy")
    assert isinstance(fig, go.Figure)
    n_spans = sum(len(spans_of(row)) for row in s.ancestor_index)
    assert len(fig.layout.shapes) == 2 * n_spans
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap) and len(heat.z) == n + 2
    markers = fig.data[-1]
    assert len(markers.x) == 2 * int((s.end_level > 0).sum())
    with pytest.raises(ValueError, match="BOS"):
        attention_parse_figure(pattern[1:, 1:], s)


def test_parse_figure_switches_layer_and_head_in_the_figure(toy, toy_model):
    s = sample_sentence(toy, random.Random(4))
    table = cfg_token_table(toy)
    patterns = sentence_attention_patterns(toy_model, table, s.symbols)
    n_layers, n_heads, size = 2, 4, len(s.symbols) + 2
    assert patterns.shape == (n_layers, n_heads, size, size)
    torch.testing.assert_close(patterns[1, 2], sentence_attention(toy_model, table, s.symbols, layer=1, head=2))
    causal = np.tril(np.ones((size, size))) > 0

    fig = attention_parse_figure(patterns, s, toy, title="toy", layer=1, head=2)
    heatmaps = [i for i, t in enumerate(fig.data) if isinstance(t, go.Heatmap)]
    assert heatmaps == list(range(n_layers * n_heads))

    def shown(visible) -> tuple[int, np.ndarray]:
        """The one heatmap a control step leaves visible, and its values; the parse traces always stay on."""
        assert len(visible) == len(fig.data)
        on = [i for i in heatmaps if visible[i]]
        assert len(on) == 1 and all(visible[i] for i in range(len(fig.data)) if i not in heatmaps)
        return on[0], np.asarray(fig.data[on[0]].z, dtype=float)

    def expect(z: np.ndarray, layer: int, head: int) -> None:
        np.testing.assert_allclose(z, np.where(causal, patterns[layer, head].numpy(), np.nan), equal_nan=True)

    # as drawn: layer 1, head 2, with the menu and the slider set to them
    _, z = shown([t.visible is not False for t in fig.data])
    expect(z, 1, 2)
    (menu,) = fig.layout.updatemenus
    (slider,) = fig.layout.sliders
    assert menu.active == 1 and slider.active == 2
    assert [b.label for b in menu.buttons] == ["layer 0", "layer 1"]
    assert [st.label for st in slider.steps] == ["0", "1", "2", "3"]
    for head, step in enumerate(slider.steps):
        assert step.method == "update"
        _, z = shown(step.args[0]["visible"])
        expect(z, 1, head)
        assert step.args[1]["title.text"] == f"toy: layer 1 head {head}"
    # each layer button shows its head 0 and puts in a head slider over that layer's heads
    for layer, button in enumerate(menu.buttons):
        assert button.method == "update"
        _, z = shown(button.args[0]["visible"])
        expect(z, layer, 0)
        (layer_slider,) = button.args[1]["sliders"]
        assert layer_slider["active"] == 0 and len(layer_slider["steps"]) == n_heads
        for head, step in enumerate(layer_slider["steps"]):
            _, z = shown(step["args"][0]["visible"])
            expect(z, layer, head)
            assert step["args"][1]["title.text"] == f"toy: layer {layer} head {head}"
    assert go.Figure(fig.to_dict()).layout.sliders[0].steps[3].label == "3"  # survives a JSON round trip

    # one head's pattern still draws a single heatmap without controls
    single = attention_parse_figure(patterns[0, 1], s, toy)
    assert len([t for t in single.data if isinstance(t, go.Heatmap)]) == 1
    assert not single.layout.updatemenus and not single.layout.sliders
    with pytest.raises(ValueError, match="outside"):
        attention_parse_figure(patterns, s, toy, layer=2)


def test_circuitsvis_is_optional():
    if circuitsvis_available():
        assert circuitsvis_attention(torch.ones(1, 2, 2) / 2, ["a", "b"]) is not None
    else:
        with pytest.raises(ImportError, match="CircuitsVis"):
            circuitsvis_attention(torch.ones(1, 2, 2) / 2, ["a", "b"])


def test_figures_have_one_row_per_head(toy):
    stats = AttentionStats(2, 3, 24, toy.num_levels - 2)
    gen = torch.Generator().manual_seed(0)
    causal = torch.tril(torch.ones(24, 24, dtype=torch.bool))
    for batch in window_batches(fresh_sentences(toy, 0), cfg_token_table(toy), 4, 24, 2):
        index = stats.pair_index(batch)
        for layer in range(2):
            scores = torch.randn(batch.tokens.shape[0], 3, 24, 24, generator=gen).masked_fill(~causal, -torch.inf)
            stats.add_pattern(layer, torch.softmax(scores, -1), index)
    per_layer = figs.position_attention_figures(stats)
    assert len(per_layer) == 2 and all(len(f.data) == 3 for f in per_layer)
    for fig in (figs.near_end_figure(stats), figs.end_pair_figure(stats)):
        assert len(fig.data[0].y) == 6
    assert len(figs.adjacency_figure(stats).data) == len(stats.r_level_offsets)


def test_rows_to_csv_round_trip():
    rows = [{"a": 1, "b": None}, {"a": 2, "b": 0.5}]
    back = list(csv.DictReader(rows_to_csv(rows).splitlines()))
    assert back == [{"a": "1", "b": ""}, {"a": "2", "b": "0.5"}]
    assert rows_to_csv([]) == ""


def test_attention_cli_stage(tmp_path, monkeypatch, toy, toy_model):
    import physlm.analysis.runs as runs

    loaded = runs.AnalysisRun(toy_model, cfg_token_table(toy), toy, 48, {"grammar": "toy"}, tmp_path)
    monkeypatch.setattr(runs, "load_analysis_run", lambda path, device="cpu": loaded)
    RunDir.create(tmp_path / "run", {})
    config = AttentionConfig(n_windows=3, batch_size=2, n_ctx=32)
    assert analyze_attention(tmp_path / "run", config) == 0
    out = tmp_path / "run" / "attention"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_windows"] == 3 and summary["n_ctx"] == 32
    heads = list(csv.DictReader((out / "head_summary.csv").read_text().splitlines()))
    assert len(heads) == toy_model.cfg.n_layers * toy_model.cfg.n_heads
    assert [int(h["rank"]) for h in heads] == list(range(1, len(heads) + 1))
    for name in summary["files"]:
        assert (tmp_path / "run" / name).is_file()
    assert (tmp_path / "run" / "COMPLETE.attention").exists()
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert AttentionConfig.from_dict(record["configs"]["attention"]) == config
    with pytest.raises(ValueError, match="exceeds"):
        analyze_attention(tmp_path / "run", AttentionConfig(n_ctx=64))
    assert (tmp_path / "run" / "FAILED").exists()

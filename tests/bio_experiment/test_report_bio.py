"""The bio comparison report's numbers, figures and reading on planted results (no model involved): the paper's
two P-probe patterns, the QA gap against the issue's bar, the memorisation check."""

from __future__ import annotations

from html import unescape

import numpy as np
import plotly.graph_objects as go
import pytest

from physlm.analysis.bio_eval import MEAN, QARow, write_qa_results
from physlm.analysis.report_bio import (
    GAP_TARGET,
    PAPER_QA_ACCURACY,
    headline_lines,
    loss_curves_figure,
    p_probe_figure,
    p_probe_grid,
    p_probe_summary,
    q_probe_figure,
    qa_accuracy_figure,
    reading,
    results_table,
)
from physlm.probing.bio_probe_data import LEVEL_IDS
from physlm.results import ProbeRow
from physlm.tasks.bio.pools import ATTRIBUTES


def _qa(dataset: str, test: float, train: float = 0.99, memorised: float = 0.995) -> list[QARow]:
    rows = [QARow(dataset, "pretrain", "all_people", MEAN, "bio_first_token", memorised, memorised - 0.01,
                  min(1.0, memorised + 0.004))]
    for group, value in (("test_people", test), ("train_people", train)):
        for attribute in (*ATTRIBUTES, MEAN):
            rows.append(QARow(dataset, "pretrain+lora", group, attribute, "exact_greedy", value,
                              max(0.0, value - 0.05), min(1.0, value + 0.05)))
    return rows


def _probe(dataset: str, cell, q: float, control: float = 0.02) -> list[ProbeRow]:
    """P rows with accuracy ``cell(position index, attribute index)`` (trained) / ``control`` (random_init), and Q
    rows at ``q``; birth date by its first token, the others whole, as the report reads them."""
    rows = []
    for j, attribute in enumerate(ATTRIBUTES):
        level = LEVEL_IDS["first_token" if j == 0 else "whole"]
        for features in ("trained", "random_init"):
            for i, position in enumerate(ATTRIBUTES):
                value = cell(i, j) if features == "trained" else control
                rows.append(ProbeRow(attribute, level, 0, features, "accuracy", value, value, value,
                                     (("dataset", dataset), ("probe", "P"), ("position", position))))
            value = q if features == "trained" else control
            rows.append(ProbeRow(attribute, level, 0, features, "accuracy", value, value, value,
                                 (("dataset", dataset), ("probe", "Q"), ("position", "name_end"))))
    return rows


def _paper_like() -> tuple[list[QARow], list[ProbeRow]]:
    # single: readable only at the token just before the value (Part 3.1 §5); multi5+permute: at the first position
    qa = _qa("single", 0.05) + _qa("multi5+permute", 0.90)
    probes = _probe("single", lambda i, j: 1.0 if i == j else 0.02, q=0.05) + _probe(
        "multi5+permute", lambda i, j: 0.95, q=0.85)
    return qa, probes


def test_paper_numbers_are_recorded_with_their_source():
    assert PAPER_QA_ACCURACY["single"] == pytest.approx(0.097)
    assert PAPER_QA_ACCURACY["multi5+permute"] == pytest.approx(0.966)
    assert PAPER_QA_ACCURACY["multi5"] == pytest.approx(0.41) and PAPER_QA_ACCURACY["single+permute5"] == 0.70
    assert PAPER_QA_ACCURACY["mixed:single"] == pytest.approx(0.866)
    assert GAP_TARGET == pytest.approx(0.30)


def test_the_reading_names_the_gap_memorisation_and_both_probe_patterns():
    qa, probes = _paper_like()
    text = unescape(reading(qa, probes, ["single", "multi5+permute"]))
    assert "single 5.0% vs multi5+permute 90.0% (paper 9.7% vs 96.6%)" in text
    assert "The gap multi5+permute − single is +85.0 points, which reaches the issue's ≥ 30 points" in text
    assert "Every dataset was memorised (> 99%" in text
    single, multi = (p for p in text.split("P-probe, ")[1:3])
    assert single.startswith("single") and "readable only just before its value" in single
    assert "100.0% just before their own value, 2.0% at earlier positions" in single
    assert multi.startswith("multi5+permute") and "readable at the first position" in multi
    assert "Q-probe from the name alone" in text and "single 5.0% (random init 2.0%)" in text


def test_a_small_gap_and_an_unmemorised_dataset_are_called_out():
    qa = _qa("single", 0.05) + _qa("multi5+permute", 0.20, memorised=0.93)
    text = unescape(reading(qa, [], ["single", "multi5+permute"]))
    assert "+15.0 points, which does not reach the issue's ≥ 30 points" in text
    assert "Not memorised to the paper's > 99%: multi5+permute" in text
    assert "P-probe," not in text  # nothing probed, nothing claimed
    other = unescape(reading(_qa("single", 0.05) + _qa("multi5", 0.50), [], ["single", "multi5"]))
    assert "The gap multi5 − single is +45.0 points." in other and "issue" not in other  # the bar is for multi5+permute


def test_p_probe_grid_and_summary_use_whole_attributes_with_birth_month():
    _, probes = _paper_like()
    single = [r for r in probes if r["dataset"] == "single"]
    grid = p_probe_grid(single)
    assert grid.attributes == ATTRIBUTES and grid.positions == ATTRIBUTES
    np.testing.assert_allclose(grid.values, np.where(np.eye(6, dtype=bool), 1.0, 0.02))
    summary = p_probe_summary(single)
    assert summary == pytest.approx({"first": 0.02, "just_before": 1.0, "earlier": 0.02})
    assert p_probe_summary(single, "random_init")["first"] == pytest.approx(0.02)
    assert p_probe_summary([]) == {"first": None, "just_before": None, "earlier": None}


def test_figures_are_plotly_figures_of_the_planted_numbers():
    qa, probes = _paper_like()
    fig = qa_accuracy_figure(qa, ["single", "multi5+permute"])
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert [t.name for t in bars] == ["single", "multi5+permute"]
    assert list(bars[1].y) == [0.9] * 7
    paper = [t for t in fig.data if isinstance(t, go.Scatter)]
    assert [t.y[0] for t in paper] == [pytest.approx(0.097), pytest.approx(0.966)]

    heat = p_probe_figure([r for r in probes if r["dataset"] == "multi5+permute"], "multi5+permute")
    assert [t.type for t in heat.data] == ["heatmap", "heatmap"]  # trained and the random-init control
    np.testing.assert_allclose(np.asarray(heat.data[0].z), 95.0)
    np.testing.assert_allclose(np.asarray(heat.data[1].z), 2.0)

    scatter = q_probe_figure(qa, probes, ["single", "multi5+permute"])
    trained = [t for t in scatter.data if t.name in ("single", "multi5+permute")]
    assert [list(t.x) for t in trained] == [[0.05] * 6, [0.9] * 6]
    assert [list(t.y) for t in trained] == [[0.05] * 6, [0.85] * 6]

    loss = loss_curves_figure({"single": [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0, "eval_loss": 2.1}]})
    assert [t.name for t in loss.data] == ["single train", "single held-out"]


def test_results_table_and_headline_lines(tmp_path):
    qa, probes = _paper_like()
    rows = results_table(qa, probes, ["single", "multi5+permute"])
    assert [(r["dataset"], r["protocol"]) for r in rows] == [("single", "pretrain+lora"),
                                                              ("multi5+permute", "pretrain+lora")]
    assert rows[1]["QA P_test greedy"] == "90.0% [85.0%, 95.0%]" and rows[1]["paper QA P_test"] == "96.6%"
    assert rows[0]["P-probe just before (earlier)"] == "100.0% (2.0%)"
    path = write_qa_results(tmp_path / "qa_results.csv", qa)
    lines = headline_lines(path, comparison=True, datasets=["single", "multi5+permute"])
    assert lines[0].startswith("single: BIO memorisation 99.5%, QA P_test mean (pretrain+lora) 5.0%")
    assert "paper 96.6%" in lines[1] and "reaches the issue's" in lines[2]

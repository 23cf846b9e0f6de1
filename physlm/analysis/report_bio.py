"""The bio experiment's reports (`physlm run bio`): one per dataset and the comparison of the datasets.

Everything is read from the run's artifacts (``qa_results.csv``, ``probe_results.csv``, ``metrics.jsonl``,
``config.json``), so either report can be rebuilt at any time:

* :func:`build_bio_report` writes one dataset's sub-run report on the shared skeleton
  :mod:`physlm.analysis.report_run` (training loss, QA accuracy, P-/Q-probes);
* :func:`build_bio_comparison_report` writes ``<out>/report.html`` comparing the datasets: (a) QA exact match
  on P_test per attribute by dataset, (b) a P-probe heat map per dataset with its random-init control, (c) Q-probe
  accuracy against QA accuracy per attribute, (d) the pretraining loss curves, a results table and a reading
  generated from the measured numbers against the paper's.

Probe levels: QA is scored on whole attributes, so the figures show the probes' whole-attribute targets, with
birth date by its first token (the month) because the whole date has more classes than P_train has people.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from physlm.analysis.bio_eval import MEAN, QA_RESULTS_FILE, QARow, read_qa_results
from physlm.analysis.report_html import (
    ReportSection,
    paragraph,
    preformatted,
    read_jsonl,
    read_result_rows,
    render_report,
    table,
    write_report_pngs,
)
from physlm.analysis.report_run import RunArtifacts, TaskReport, build_run_report, timings_paragraph
from physlm.probing.bio_probe import ProbeGrid, p_probe_matrix
from physlm.probing.bio_probe_data import LEVEL_IDS
from physlm.results import RESULTS_FILE
from physlm.tasks.bio.pools import ATTRIBUTES

PAPER_QA_ACCURACY: dict[str, float] = {
    "single": 0.097,
    "single+permute1": 0.044,
    "single+permute5": 0.70,
    "multi5": 0.41,
    "multi5+permute": 0.966,
    "mixed:single": 0.866,
    "celebrity:single+permute1": 0.868,
}
"""The paper's mean QA exact match on P_test, bioS. Keys without a colon are BIO pretrain + QA fine-tune on that
dataset (what `physlm run bio` measures); ``mixed:single`` is mixed BIO+QA training on single; ``celebrity:...`` is
the minority (single+permute1, 4.4% alone) pretrained with multi5+permute celebrities and fine-tuned on them."""
PAPER_SOURCE = ("Allen-Zhu & Li, Physics of Language Models Part 3.1 (arXiv 2309.14316) §2.4-2.5 as transcribed "
                "in the spec part3_knowledge.md: GPT-2 small, N = 100,000 people, mean exact match on P_test")
GAP_TARGET = 0.30
"""The issue's bar: QA accuracy on P_test must be at least this much higher for multi5+permute than for single."""
MEMORISED = 0.99
"""The paper's memorisation criterion: > 99% first-token accuracy on attribute values inside biographies."""
READABLE = 0.80
"""Where this report calls an attribute "readable" by a probe (the paper's contrasts are ~100% against ~2%)."""
LOSS_TITLE = "BIO pretraining loss (nats per token); random wordings keep it above 0 even for a perfect memoriser"
EXACT = "exact_greedy"
TEST = "test_people"
TRAIN = "train_people"
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _slug(name: str) -> str:
    """A file-name-safe form of a dataset name (``multi5+permute`` -> ``multi5_permute``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)


# -- reading the rows ----------------------------------------------------------------------------------
def read_qa_rows(path: str | Path) -> list[QARow]:
    """The rows of a qa_results.csv; [] when it does not exist (the stages were skipped)."""
    path = Path(path)
    return read_qa_results(path) if path.is_file() else []


def qa_row(rows: Sequence[QARow], dataset: str, protocol: str | None = None, group: str = TEST,
           metric: str = EXACT, attribute: str = MEAN) -> QARow | None:
    """One row of qa_results (``protocol`` None: the first fine-tuning protocol present), or None."""
    for r in rows:
        if (r.dataset, r.group, r.metric, r.attribute) == (dataset, group, metric, attribute) and (
            protocol is None or r.protocol == protocol
        ) and r.protocol != "pretrain":
            return r
    return None


def memorisation(rows: Sequence[QARow], dataset: str) -> QARow | None:
    """The BIO first-token mean row of ``dataset`` (company city left out, see bio_eval.BIO_DERIVED), or None."""
    return next((r for r in rows if r.dataset == dataset and r.metric == "bio_first_token" and r.attribute == MEAN),
                None)


def protocols_of(rows: Sequence[QARow]) -> list[str]:
    """The fine-tuning protocols in the rows, in order of appearance."""
    return list(dict.fromkeys(r.protocol for r in rows if r.protocol != "pretrain"))


def beam_metrics(rows: Sequence[QARow]) -> list[str]:
    """The beam-search metrics present (``exact_beam4``...)."""
    return sorted({r.metric for r in rows if r.metric.startswith("exact_beam")})


def of_dataset(rows: Sequence[Mapping[str, Any]], dataset: str) -> list[Mapping[str, Any]]:
    """Probe rows of one dataset (rows without a ``dataset`` column belong to every dataset: a sub-run's file)."""
    return [r for r in rows if r.get("dataset", dataset) == dataset]


def p_probe_grid(rows: Sequence[Mapping[str, Any]], features: str = "trained") -> ProbeGrid:
    """The P-probe grid, positions x the six attributes: whole attributes, birth date by its first token."""
    first = p_probe_matrix(rows, "first_token", features)
    whole = p_probe_matrix(rows, "whole", features)
    join = [np.concatenate([a[:, :1], b], axis=1) for a, b in
            ((first.values, whole.values), (first.ci_low, whole.ci_low), (first.ci_high, whole.ci_high))]
    return ProbeGrid(*join, positions=first.positions, attributes=(ATTRIBUTES[0], *whole.attributes))


def q_probe_accuracy(rows: Sequence[Mapping[str, Any]], features: str = "trained") -> dict[str, Mapping[str, Any]]:
    """Q-probe accuracy rows by attribute: whole attributes, birth date by its first token."""
    out: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        level = LEVEL_IDS["first_token" if r["target"] == ATTRIBUTES[0] else "whole"]
        if r.get("probe") == "Q" and r["features"] == features and r["metric"] == "accuracy" and r["level"] == level:
            out[r["target"]] = r
    return {a: out[a] for a in ATTRIBUTES if a in out}


def _nanmean(values: Any) -> float | None:
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def p_probe_summary(rows: Sequence[Mapping[str, Any]], features: str = "trained") -> dict[str, float | None]:
    """Where the P-probe reads the five attributes after birth date (positions named in single's fixed order):

    * ``first``: at the first position (the token before birth_date's value);
    * ``just_before``: at the attribute's own position (the token just before its value);
    * ``earlier``: at the positions before its own (the cells the paper finds at ~2% for single).
    """
    grid = p_probe_grid(rows, features).values
    if np.isnan(grid).all():
        return {"first": None, "just_before": None, "earlier": None}
    n = grid.shape[1]
    return {
        "first": _nanmean(grid[0, 1:]),
        "just_before": _nanmean([grid[j, j] for j in range(1, n)]),
        "earlier": _nanmean([grid[i, j] for j in range(1, n) for i in range(j)]),
    }


# -- figures -------------------------------------------------------------------------------------------
def qa_accuracy_figure(rows: Sequence[QARow], datasets: Sequence[str], group: str = TEST,
                       metric: str = EXACT) -> go.Figure:
    """(a) QA exact match per attribute (and their mean), one bar group per dataset and protocol, with 95%
    intervals; the paper's mean for each dataset as a diamond."""
    fig = go.Figure()
    x = [*ATTRIBUTES, MEAN]
    protocols = protocols_of(rows)
    for i, dataset in enumerate(datasets):
        for k, protocol in enumerate(protocols):
            cells = [qa_row(rows, dataset, protocol, group, metric, a) for a in x]
            if not any(cells):
                continue
            value = [c.value if c else None for c in cells]
            fig.add_trace(go.Bar(
                x=x, y=value, name=dataset if len(protocols) == 1 else f"{dataset} ({protocol})",
                error_y=dict(type="data", symmetric=False,
                             array=[c.ci_high - c.value if c else 0 for c in cells],
                             arrayminus=[c.value - c.ci_low if c else 0 for c in cells]),
                marker_color=_COLORS[i % len(_COLORS)], opacity=1.0 if k == 0 else 0.55,
            ))
        if dataset in PAPER_QA_ACCURACY:
            fig.add_trace(go.Scatter(x=[MEAN], y=[PAPER_QA_ACCURACY[dataset]], mode="markers",
                                     name=f"paper: {dataset}", marker=dict(symbol="diamond", size=12,
                                                                           color=_COLORS[i % len(_COLORS)],
                                                                           line=dict(color="black", width=1))))
    who = "held-out people (P_test)" if group == TEST else "fine-tuned people (P_train)"
    fig.update_layout(title=f"QA exact match ({metric}) on {who}, 95% intervals over people", barmode="group",
                      xaxis_title="attribute asked", yaxis=dict(title="exact-match accuracy", range=[0, 1.05]),
                      template="plotly_white")
    return fig


def p_probe_figure(rows: Sequence[Mapping[str, Any]], dataset: str) -> go.Figure:
    """(b) P-probe accuracy (%) of the pretrained model, positions x attributes, next to the same probe on a
    randomly initialised model (the control)."""
    from plotly.subplots import make_subplots

    panels = [(f, p_probe_grid(rows, f)) for f in ("trained", "random_init")]
    panels = [(f, g) for f, g in panels if not np.isnan(g.values).all()]
    fig = make_subplots(rows=1, cols=max(1, len(panels)), horizontal_spacing=0.03, shared_yaxes=True,
                        subplot_titles=[{"trained": "pretrained model", "random_init": "random-init control"}[f]
                                        for f, _ in panels])
    for col, (_, grid) in enumerate(panels, 1):
        z = np.round(100 * grid.values, 1)
        text = [["" if math.isnan(v) else f"{v:.0f}" for v in row] for row in z]
        fig.add_trace(go.Heatmap(
            z=z, x=[a if a != ATTRIBUTES[0] else "birth_date (month)" for a in grid.attributes],
            y=[f"before {p}" for p in grid.positions], text=text, texttemplate="%{text}", zmin=0, zmax=100,
            colorscale="Blues", showscale=col == 1, colorbar=dict(title="%"),
            hovertemplate="%{y}, predict %{x}: %{z:.1f}%<extra></extra>",
        ), row=1, col=col)
        fig.update_yaxes(autorange="reversed", showticklabels=col == 1, row=1, col=col)
    fig.update_layout(title=f"P-probe, {dataset}: accuracy (%) on held-out people<br><sup>each attribute (columns) "
                            "read from the token before each value (rows)</sup>", template="plotly_white")
    return fig


def q_probe_figure(qa: Sequence[QARow], probe_rows: Sequence[Mapping[str, Any]], datasets: Sequence[str],
                   protocol: str | None = None) -> go.Figure:
    """(c) Per attribute: Q-probe accuracy (name only, pretrained model) against QA exact match on P_test (after
    fine-tuning); the paper finds the two track each other (points near the diagonal)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="gray"),
                             name="Q-probe = QA", hoverinfo="skip"))
    for i, dataset in enumerate(datasets):
        q = q_probe_accuracy(of_dataset(probe_rows, dataset))
        control = q_probe_accuracy(of_dataset(probe_rows, dataset), "random_init")
        points = [(a, qa_row(qa, dataset, protocol, TEST, EXACT, a), r) for a, r in q.items()]
        points = [(a, c, r) for a, c, r in points if c is not None]
        if not points:
            continue
        color = _COLORS[i % len(_COLORS)]
        fig.add_trace(go.Scatter(
            x=[c.value for _, c, _ in points], y=[r["value"] for _, _, r in points], mode="markers+text",
            text=[a for a, _, _ in points], textposition="top center", textfont=dict(size=9), name=dataset,
            marker=dict(size=10, color=color),
            error_y=dict(type="data", symmetric=False, array=[r["ci_high"] - r["value"] for _, _, r in points],
                         arrayminus=[r["value"] - r["ci_low"] for _, _, r in points]),
        ))
        if control:
            fig.add_trace(go.Scatter(
                x=[c.value for a, c, _ in points if a in control],
                y=[control[a]["value"] for a, _, _ in points if a in control], mode="markers",
                name=f"{dataset}: random-init control", marker=dict(size=8, color=color, symbol="circle-open"),
            ))
    fig.update_layout(title="Q-probe (name only, pretrained model) against QA exact match on P_test, per attribute",
                      xaxis=dict(title="QA exact match on P_test (after fine-tuning)", range=[-0.02, 1.05]),
                      yaxis=dict(title="Q-probe accuracy on P_test", range=[-0.02, 1.05]), template="plotly_white")
    return fig


def loss_curves_figure(metrics: Mapping[str, Sequence[Mapping[str, Any]]]) -> go.Figure:
    """(d) BIO pretraining loss per dataset: training loss as lines, held-out loss as markers."""
    fig = go.Figure()
    for i, (dataset, records) in enumerate(metrics.items()):
        color = _COLORS[i % len(_COLORS)]
        train = [(m["step"], m["loss"]) for m in records if m.get("loss") is not None]
        held = [(m["step"], m["eval_loss"]) for m in records if m.get("eval_loss") is not None]
        if train:
            fig.add_trace(go.Scatter(x=[s for s, _ in train], y=[v for _, v in train], name=f"{dataset} train",
                                     line=dict(color=color)))
        if held:
            fig.add_trace(go.Scatter(x=[s for s, _ in held], y=[v for _, v in held], name=f"{dataset} held-out",
                                     mode="markers", marker=dict(color=color, symbol="diamond")))
    fig.update_layout(title=LOSS_TITLE, xaxis_title="step", yaxis_title="nats / token", template="plotly_white")
    return fig


# -- tables and reading --------------------------------------------------------------------------------
def format_ci(r: QARow | None) -> str:
    """``41.0% [36.2%, 45.9%]``: a row's value and 95% interval (``n/a`` for None)."""
    return "n/a" if r is None else f"{_pct(r.value)} [{_pct(r.ci_low)}, {_pct(r.ci_high)}]"


def results_table(qa: Sequence[QARow], probe_rows: Sequence[Mapping[str, Any]],
                  datasets: Sequence[str]) -> list[dict[str, Any]]:
    """One row per dataset and protocol: memorisation, QA on P_test (greedy, beam) and P_train, probes, paper."""
    out = []
    beams = beam_metrics(qa)
    for dataset in datasets:
        probes = of_dataset(probe_rows, dataset)
        p, p0 = p_probe_summary(probes), p_probe_summary(probes, "random_init")
        q = [r["value"] for r in q_probe_accuracy(probes).values()]
        q0 = [r["value"] for r in q_probe_accuracy(probes, "random_init").values()]
        for protocol in protocols_of(qa) or [None]:
            row: dict[str, Any] = {
                "dataset": dataset,
                "protocol": protocol or "-",
                "BIO memorised (first token)": format_ci(memorisation(qa, dataset)),
                "QA P_test greedy": format_ci(qa_row(qa, dataset, protocol)) if protocol else "n/a",
            }
            for metric in beams:
                beam = qa_row(qa, dataset, protocol, TEST, metric)
                row[f"QA P_test {metric.removeprefix('exact_')}"] = format_ci(beam)
            row["QA P_train greedy"] = format_ci(qa_row(qa, dataset, protocol, TRAIN)) if protocol else "n/a"
            row["paper QA P_test"] = _pct(PAPER_QA_ACCURACY.get(dataset))
            row["P-probe 1st position (random init)"] = f"{_pct(p['first'])} ({_pct(p0['first'])})"
            row["P-probe just before (earlier)"] = f"{_pct(p['just_before'])} ({_pct(p['earlier'])})"
            row["Q-probe mean (random init)"] = f"{_pct(_nanmean(q))} ({_pct(_nanmean(q0))})"
            out.append(row)
    return out


def qa_table(qa: Sequence[QARow], datasets: Sequence[str], metric: str = EXACT) -> list[dict[str, Any]]:
    """Per-attribute QA exact match on P_test and P_train, one row per dataset, protocol and group."""
    out = []
    for dataset in datasets:
        for protocol in protocols_of(qa):
            for group in (TEST, TRAIN):
                cells = {a: qa_row(qa, dataset, protocol, group, metric, a) for a in (*ATTRIBUTES, MEAN)}
                if any(cells.values()):
                    out.append({"dataset": dataset, "protocol": protocol, "people": group,
                                **{a: format_ci(c) for a, c in cells.items()}})
    return out


def _gap_pair(values: Mapping[str, float]) -> tuple[str, str] | None:
    """The two datasets the headline gap compares: single and multi5+permute when both ran, else the lowest and
    the highest."""
    if len(values) < 2:
        return None
    if "single" in values and "multi5+permute" in values:
        return "single", "multi5+permute"
    ordered = sorted(values, key=values.get)
    return ordered[0], ordered[-1]


def qa_sentences(qa: Sequence[QARow], datasets: Sequence[str]) -> list[str]:
    """The QA findings: P_test accuracy per dataset against the paper's, and the gap against the issue's bar."""
    out = []
    for protocol in protocols_of(qa):
        means = {d: r.value for d in datasets if (r := qa_row(qa, d, protocol)) is not None}
        if not means:
            continue
        named = [d for d in datasets if d in means]
        paper = [_pct(PAPER_QA_ACCURACY.get(d)) for d in named]
        text = (f"QA exact match on held-out people (P_test, greedy, {protocol}): "
                + " vs ".join(f"{d} {_pct(means[d])}" for d in named)
                + f" (paper {' vs '.join(paper)}).")
        pair = _gap_pair(means)
        if pair is not None:
            low, high = pair
            gap = means[high] - means[low]
            text += f" The gap {high} − {low} is {100 * gap:+.1f} points"
            if pair == ("single", "multi5+permute"):  # the pair the bar is about
                verdict = "reaches" if gap >= GAP_TARGET else "does not reach"
                text += f", which {verdict} the issue's ≥ {100 * GAP_TARGET:.0f} points"
            text += "."
        for metric in beam_metrics(qa):
            beam = {d: r.value for d in named if (r := qa_row(qa, d, protocol, TEST, metric)) is not None}
            if beam:
                text += (f" With {metric.removeprefix('exact_')} (the paper's decoding, on a subsample of P_test): "
                         + ", ".join(f"{d} {_pct(v)}" for d, v in beam.items()) + ".")
        train = {d: r.value for d in named if (r := qa_row(qa, d, protocol, TRAIN)) is not None}
        if train:
            text += (" On P_train, the people fine-tuned on: " + ", ".join(f"{d} {_pct(v)}" for d, v in train.items())
                     + (" (fine-tuning itself worked, so what P_test lacks is extraction)."
                        if min(train.values()) >= READABLE else
                        " (below the point where fine-tuning itself works: train longer before reading P_test)."))
        out.append(text)
    return out


def memorisation_sentence(qa: Sequence[QARow], datasets: Sequence[str]) -> str | None:
    """Whether every dataset's biographies were memorised (> 99% first token) before fine-tuning."""
    found = {d: r.value for d in datasets if (r := memorisation(qa, d)) is not None}
    if not found:
        return None
    missed = [d for d, v in found.items() if v <= MEMORISED]
    text = ("Before fine-tuning, the first-token accuracy of attribute values inside biographies (mean of five "
            "attributes; company city follows from the employer) was " + ", ".join(
                f"{d} {_pct(v)}" for d, v in found.items()) + ". ")
    if not missed:
        text += ("Every dataset was memorised (> 99%, the paper's criterion), so the QA differences are about "
                 "extracting stored knowledge, not about storing it.")
    else:
        text += (f"Not memorised to the paper's > 99%: {', '.join(missed)}; QA on those datasets measures an "
                 "undertrained model as well as extraction (train longer or on fewer people).")
    return text


def p_probe_sentences(probe_rows: Sequence[Mapping[str, Any]], datasets: Sequence[str]) -> list[str]:
    """What the P-probe shows per dataset, in the paper's two patterns: readable only just before the value
    (single) or already at the first position (multi5+permute)."""
    out = []
    for dataset in datasets:
        rows = of_dataset(probe_rows, dataset)
        p, p0 = p_probe_summary(rows), p_probe_summary(rows, "random_init")
        if p["first"] is None:
            continue
        only_before = (p["just_before"] or 0) >= READABLE and (p["earlier"] or 0) < READABLE
        at_first = p["first"] >= READABLE and p["first"] > (p0["first"] or 0)
        pattern = ("readable at the first position: stored with the name, as the paper finds for multi5+permute"
                   if at_first else
                   "readable only just before its value: stored as a function of the preceding text, as the paper "
                   "finds for single" if only_before else
                   f"neither of the paper's patterns reaches {_pct(READABLE)} at this training budget")
        out.append(
            f"P-probe, {dataset} (pretrained model, held-out people, whole attributes): the five attributes after "
            f"birth date read {_pct(p['just_before'])} just before their own value, {_pct(p['earlier'])} at earlier "
            f"positions and {_pct(p['first'])} at the first position (random-init control {_pct(p0['first'])}): "
            f"{pattern}."
        )
    return out


def q_probe_sentence(qa: Sequence[QARow], probe_rows: Sequence[Mapping[str, Any]],
                     datasets: Sequence[str]) -> str | None:
    """Q-probe accuracy per dataset and how closely it tracks QA accuracy per attribute."""
    parts, gaps = [], []
    for dataset in datasets:
        rows = of_dataset(probe_rows, dataset)
        q, q0 = q_probe_accuracy(rows), q_probe_accuracy(rows, "random_init")
        if not q:
            continue
        parts.append(f"{dataset} {_pct(_nanmean([r['value'] for r in q.values()]))} (random init "
                     f"{_pct(_nanmean([r['value'] for r in q0.values()]))})")
        for a, r in q.items():
            c = qa_row(qa, dataset, None, TEST, EXACT, a)
            if c is not None:
                gaps.append(abs(r["value"] - c.value))
    if not parts:
        return None
    text = ("Q-probe from the name alone (pretrained model, held-out people; whole attributes, birth date by "
            "month), mean over attributes: " + ", ".join(parts) + ".")
    if gaps:
        text += (f" Per attribute it lies {100 * float(np.mean(gaps)):.1f} points from the QA exact match on "
                 "average (the paper: Q-probe accuracy tracks QA accuracy closely).")
    return text


CAVEATS = (
    "Reading the probes: P-probe positions are named by the attribute whose value follows (rows of the heat map). "
    "In single they come in one fixed order, birth date first. In permuted datasets each entry shuffles its "
    "sentences, so the position before birth date is not always the first and a value already written earlier in "
    "that entry can be copied rather than recalled. A probe shows what is linearly readable, not what the model "
    "uses; compare it with its random-init control (same probe, untrained weights)."
)


def reading(qa: Sequence[QARow], probe_rows: Sequence[Mapping[str, Any]], datasets: Sequence[str],
            timings: Mapping[str, float] | None = None, scale: str | None = None) -> str:
    """The plain-language reading (HTML paragraphs) generated from the measured numbers."""
    parts = [*qa_sentences(qa, datasets)]
    if (m := memorisation_sentence(qa, datasets)) is not None:
        parts.append(m)
    parts += p_probe_sentences(probe_rows, datasets)
    if (q := q_probe_sentence(qa, probe_rows, datasets)) is not None:
        parts.append(q)
    if not parts:
        parts.append("No stage after training ran (all were skipped), so there is nothing to read yet.")
    if any(r.get("probe") == "P" for r in probe_rows):
        parts.append(CAVEATS)
    parts.append(f"Paper numbers: {PAPER_SOURCE}." + (f" This run: {scale}." if scale else ""))
    return "".join(paragraph(p) for p in parts) + timings_paragraph(timings)


def headline_lines(path: str | Path, comparison: bool = False, datasets: Sequence[str] | None = None) -> list[str]:
    """Log lines of a qa_results.csv: per dataset (in ``datasets`` order, default: the file's), BIO memorisation
    and QA on P_test against the paper; with ``comparison``, the gap sentence too."""
    qa = read_qa_rows(path)
    datasets = list(dict.fromkeys(r.dataset for r in qa)) if datasets is None else list(datasets)
    lines = []
    for dataset in datasets:
        parts = []
        if (m := memorisation(qa, dataset)) is not None:
            parts.append(f"BIO memorisation {_pct(m.value)}")
        for protocol in protocols_of(qa):
            if (r := qa_row(qa, dataset, protocol)) is not None:
                parts.append(f"QA P_test mean ({protocol}) {format_ci(r)}")
        if dataset in PAPER_QA_ACCURACY:
            parts.append(f"paper {_pct(PAPER_QA_ACCURACY[dataset])}")
        if parts:
            lines.append(f"{dataset}: " + ", ".join(parts))
    if comparison:
        lines += qa_sentences(qa, datasets)
    return lines


def _scale(record: Mapping[str, Any]) -> str | None:
    """'500 people, gpt_rot-small, 800 steps x 16 x 256 tokens' from a config.json record."""
    experiment = record.get("configs", {}).get("experiment") or {}
    train = experiment.get("train") or {}
    if not experiment:
        return None
    model = experiment.get("model") or {}
    shape = ", ".join(f"{k} {model[k]}" for k in ("n_layers", "d_model") if model.get(k) is not None)
    return (f"{experiment.get('n_people')} people, model {model.get('preset')}{f' ({shape})' if shape else ''}, "
            f"{train.get('steps')} pretraining steps x {train.get('batch_size')} x {experiment.get('seq_len')} tokens")


# -- the per-dataset report ----------------------------------------------------------------------------
def _dataset_of(run: RunArtifacts) -> str:
    experiment = run.record.get("configs", {}).get("experiment") or {}
    datasets = experiment.get("datasets") or []
    return run.trained_on.options.get("augmentation") or (datasets[0] if datasets else run.path.name)


def _probe_sections(qa: Sequence[QARow], probe_rows: Sequence[Mapping[str, Any]], datasets: Sequence[str],
                    figures: dict[str, go.Figure]) -> list[ReportSection]:
    sections = []
    p_figs = []
    for d in datasets:
        rows = of_dataset(probe_rows, d)
        if any(r.get("probe") == "P" for r in rows):
            p_figs.append(p_probe_figure(rows, d))
            figures[f"p_probe_{_slug(d)}" if len(datasets) > 1 else "p_probe"] = p_figs[-1]
    if p_figs:
        sections.append(ReportSection(
            "P-probes: where each attribute becomes readable",
            paragraph("The pretrained model is frozen; per target attribute a low-rank update of the token "
                      "embedding (the paper: rank 2) and a LayerNorm + linear head on the last layer are trained "
                      "on P_train's biographies and scored on P_test's, at the token before each attribute's value "
                      "(rows). Single's pattern in the paper: an attribute is readable (~100%) only at its own "
                      "position, ~2% before it; multi5+permute's: "
                      "readable at the first position already.") + paragraph(CAVEATS),
            p_figs,
        ))
    if any(r.get("probe") == "Q" for r in probe_rows):
        figures["q_probe_vs_qa"] = q_probe_figure(qa, probe_rows, datasets)
        sections.append(ReportSection(
            "Q-probes: is the attribute readable from the name alone?",
            paragraph("Q-probe: the same kind of probe (embedding update of rank 16 in the paper, BatchNorm head) "
                      "reads the last layer at the end of <bos> full-name <eos>, nothing else. Open circles: the "
                      "random-init "
                      "control. Points on the diagonal: the probe reads exactly what fine-tuning can extract."),
            [figures["q_probe_vs_qa"]],
        ))
    return sections


def bio_task_report(run: RunArtifacts) -> TaskReport:
    """One dataset's parts of the report: its reading, QA accuracy and probes."""
    dataset = _dataset_of(run)
    qa = read_qa_rows(run.path / QA_RESULTS_FILE)
    figures: dict[str, go.Figure] = {}
    sections = []
    if protocols_of(qa):
        figures["qa_accuracy"] = qa_accuracy_figure(qa, [dataset])
        sections.append(ReportSection("QA after fine-tuning on P_train", table(qa_table(qa, [dataset]), left=3),
                                      [figures["qa_accuracy"]]))
    sections += _probe_sections(qa, run.probe_rows, [dataset], figures)
    return TaskReport(
        title=f"physlm — bio experiment: {dataset}",
        reading=reading(qa, run.probe_rows, [dataset], run.timings, _scale(run.record)),
        loss_title=LOSS_TITLE,
        sections=sections,
        figures=figures,
    )


def build_bio_report(run_dir: str | Path, timings: Mapping[str, float] | None = None, png: bool = True) -> Path:
    """Write one dataset's ``report.html`` (and ``figures/*.png``) for a bio sub-run; return its path."""
    return build_run_report(run_dir, bio_task_report, timings=timings, png=png)


# -- the comparison report -----------------------------------------------------------------------------
def build_bio_comparison_report(out: str | Path, datasets: Sequence[str] | None = None,
                                timings: Mapping[str, float] | None = None, png: bool = True) -> Path:
    """Write ``<out>/report.html`` (and ``<out>/figures/*.png``) comparing the datasets of a `physlm run bio`
    directory, from ``<out>/qa_results.csv``, ``<out>/probe_results.csv`` and each sub-run's metrics; return its
    path. ``datasets`` default to the experiment's, as recorded in ``<out>/config.json``."""
    out = Path(out)
    record = json.loads((out / "config.json").read_text())
    if datasets is None:
        datasets = record["configs"]["experiment"]["datasets"]
    qa = read_qa_rows(out / QA_RESULTS_FILE)
    probe_rows = read_result_rows(out / RESULTS_FILE)
    figures: dict[str, go.Figure] = {}
    sections = [
        ReportSection("What this run shows", reading(qa, probe_rows, datasets, timings, _scale(record))),
        ReportSection("Results", table(results_table(qa, probe_rows, datasets), left=2) + paragraph(
            "Intervals: 95% over people (Wilson per attribute, bootstrap over people for means). BIO memorised: "
            "first-token accuracy of attribute values inside biographies before fine-tuning. P-probe: mean over "
            "the five attributes after birth date; 'just before' = at their own position, 'earlier' = at the "
            "positions before it. Paper: " + PAPER_SOURCE + ".")),
    ]
    if protocols_of(qa):
        figures["qa_accuracy"] = qa_accuracy_figure(qa, datasets)
        sections.append(ReportSection("QA exact match on held-out people", table(qa_table(qa, datasets), left=3),
                                      [figures["qa_accuracy"]]))
    sections += _probe_sections(qa, probe_rows, datasets, figures)
    figures["loss"] = loss_curves_figure({d: read_jsonl(out / d / "metrics.jsonl") for d in datasets})
    sections.append(ReportSection("BIO pretraining", paragraph(
        "Each dataset's model is pretrained from scratch on the same people's biographies; per-dataset reports: "
        + ", ".join(f"{d}/report.html" for d in datasets) + "."), [figures["loss"]]))
    sections.append(ReportSection("Configs and provenance", preformatted(json.dumps(record, indent=2))))
    path = render_report(f"physlm — bio experiment: {' vs '.join(datasets)}", sections, out / "report.html")
    if png:
        write_report_pngs(figures, out)
    return path


__all__ = [
    "GAP_TARGET",
    "MEMORISED",
    "PAPER_QA_ACCURACY",
    "PAPER_SOURCE",
    "READABLE",
    "bio_task_report",
    "format_ci",
    "build_bio_comparison_report",
    "build_bio_report",
    "headline_lines",
    "loss_curves_figure",
    "p_probe_figure",
    "p_probe_grid",
    "p_probe_summary",
    "q_probe_accuracy",
    "q_probe_figure",
    "qa_accuracy_figure",
    "qa_row",
    "reading",
    "results_table",
]

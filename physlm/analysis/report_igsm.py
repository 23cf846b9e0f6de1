"""The iGSM experiment's report: one offline ``report.html`` (and PNG figures) built from a run directory.

The iGSM sections (solutions, V-probes) and reading plugged into the shared skeleton
:mod:`physlm.analysis.report_run`. Everything shown is read from the run's artifacts (config.json,
metrics.jsonl, igsm_eval.json, probe_results.csv), so the report can be rebuilt at any time with
``build_igsm_report(run_dir)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from physlm.analysis.igsm_eval import EVAL_FILE, read_eval
from physlm.analysis.report_html import ReportSection, paragraph, preformatted, table
from physlm.analysis.report_run import RunArtifacts, TaskReport, build_run_report, timings_paragraph

PAPER_NOTE = (
    "For scale, the paper's GPT2-12-12 trained on iGSM-med for 100k steps of 512 x 768 tokens reaches 99.9% at "
    "op<=15 and 76.8-91.8% at op=20-23; its nece probe reads 99.8% (majority 74.7%) and dep 99.7% (majority "
    "84.6%) (spec part2_igsm.md §7). A CPU-sized run sees a tiny fraction of that data."
)


LOSS_TITLE = "Loss (nats per token); random names and symbols keep it above 0 even for a perfect solver"


def accuracy_figure(record: Mapping[str, Any]) -> go.Figure:
    """Fully-correct solution rate per test cell with 95% Wilson intervals (in distribution blue, OOD red)."""
    cells = record["cells"]
    fig = go.Figure()
    for ood in (False, True):
        chosen = [c for c in cells if bool(c["ood"]) == ood]
        if not chosen:
            continue
        fig.add_trace(go.Bar(
            x=[c["cell"] for c in chosen], y=[c["accuracy"] for c in chosen],
            error_y=dict(type="data", symmetric=False, array=[c["ci_high"] - c["accuracy"] for c in chosen],
                         arrayminus=[c["accuracy"] - c["ci_low"] for c in chosen]),
            name="out of distribution" if ood else "in distribution",
            marker_color="#d62728" if ood else "#1f77b4",
        ))
    fig.update_layout(title="Fully correct solutions (every step checked) by number of operations",
                      xaxis_title="test cell", yaxis=dict(title="accuracy", range=[0, 1.02]),
                      template="plotly_white")
    return fig


def eval_table(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per cell: accuracy, answer-only accuracy and the level-1 reasoning statistics."""
    rows = []
    for c in record["cells"]:
        rows.append({
            "cell": c["cell"],
            "n": c["n"],
            "accuracy": c["accuracy"],
            "95% CI": f"[{c['ci_low']:.2f}, {c['ci_high']:.2f}]",
            "answer only": c["answer_accuracy"],
            "unnecessary params / correct sol.": "n/a" if c["mean_unnecessary_params"] is None
            else c["mean_unnecessary_params"],
            "unnecessary ops / correct sol.": "n/a" if c["mean_unnecessary_ops"] is None
            else c["mean_unnecessary_ops"],
            "unnecessary params available": c["mean_unnecessary_available"],
            "top error": next(iter(c["errors"]), "-"),
        })
    return rows


def probe_summary(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per target at the final layer: trained / random-init / majority accuracy, balanced accuracy and the
    accuracy on positives and on negatives."""
    from physlm.probing.igsm_figures import is_headline

    rows = [r for r in rows if is_headline(r)]  # in distribution, all_param, level 0 (the other cells: cells_table)
    if not rows:
        return []
    last = max(r["layer"] for r in rows)
    out = []
    for target in ("nece", "dep", "known", "value", "can_next", "nece_next"):
        cell = {(r["features"], r["metric"]): r for r in rows if r["target"] == target and r["layer"] == last}
        if not cell:
            continue

        def get(feat: str, metric: str, cell: dict = cell) -> Any:
            r = cell.get((feat, metric))
            return "n/a" if r is None else r["value"]

        trained = cell.get(("trained", "accuracy"))
        row = {
            "target": target,
            "trained acc": get("trained", "accuracy"),
            "95% CI": "n/a" if trained is None else f"[{trained['ci_low']:.3f}, {trained['ci_high']:.3f}]",
            "random-init acc": get("random_init", "accuracy"),
            "majority acc": get("majority", "accuracy"),
            "trained balanced": get("trained", "balanced_accuracy"),
            "random-init balanced": get("random_init", "balanced_accuracy"),
        }
        if target != "value":
            row.update({
                "trained on positives": get("trained", "class_1_accuracy"),
                "trained on negatives": get("trained", "class_0_accuracy"),
                "random-init on positives": get("random_init", "class_1_accuracy"),
            })
        out.append(row)
    return out


def _pct(x: Any) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, float) else str(x)


def _reading(
    record: Mapping[str, Any] | None, summary: Sequence[Mapping[str, Any]], final_eval: float | None,
    timings: Mapping[str, float] | None,
) -> str:
    """A plain-language reading of what the numbers show and do not show."""
    parts: list[str] = []
    if final_eval is not None:
        parts.append(f"The held-out loss ended at {final_eval:.3f} nats/token. A large part of it is irreducible "
                     "(random item names, symbols and constants), so judge the model by its solutions below.")
    if record:
        cells = record["cells"]
        ind = [c for c in cells if not c["ood"]]
        ood = [c for c in cells if c["ood"]]
        parts.append(
            "Solutions are generated greedily for fresh problems whose solution templates were held out of "
            "training (test hash split) and judged step by step. In distribution: "
            + "; ".join(f"{c['cell']} {_pct(c['accuracy'])} of {c['n']}" for c in ind)
            + ". Out of distribution (more operations than any training problem): "
            + ("; ".join(f"{c['cell']} {_pct(c['accuracy'])}" for c in ood) if ood else "not evaluated")
            + "."
        )
        correct = [c for c in cells if c["correct"]]
        if correct:
            unn = [c["mean_unnecessary_params"] for c in correct if c["mean_unnecessary_params"] is not None]
            avail = [c["mean_unnecessary_available"] for c in cells if c["mean_unnecessary_available"] is not None]
            parts.append(
                f"Correct solutions define on average {max(unn):.2f} unnecessary parameters at most (per cell), "
                f"while about {sum(avail) / len(avail):.1f} unnecessary parameters were computable per problem: "
                + ("the model solves like a level-1 reasoner (only what the question needs), as the paper "
                   "reports (Result 2)." if max(unn) < 0.5 else
                   "the model computes parameters the question does not need (level-0 behaviour).")
            )
        else:
            parts.append("No solution was fully correct, so level-1 versus level-0 reasoning cannot be measured: "
                         "the model is undertrained for this preset. The error table says where it goes wrong.")
    for row in summary:
        if row["target"] in ("nece", "dep"):
            parts.append(
                f"{row['target']} probe at the last layer: {_pct(row['trained acc'])} against "
                f"{_pct(row['random-init acc'])} for the random-init model and {_pct(row['majority acc'])} for "
                f"the majority class (balanced: {_pct(row['trained balanced'])} vs "
                f"{_pct(row['random-init balanced'])}; positives {_pct(row.get('trained on positives'))}, "
                f"negatives {_pct(row.get('trained on negatives'))})."
            )
    if summary:
        parts.append(
            "Read the probes against their controls: a probe is evidence that the model's hidden states encode "
            "the label only where it beats the random-init model (same probe, untrained weights) and the "
            "majority guess by more than their confidence intervals; for the imbalanced labels the balanced "
            "accuracy and the accuracy on positives matter more than plain accuracy. Encoding is not use: the "
            "probe does not show the model relies on this information when it writes a solution."
        )
    parts.append(PAPER_NOTE)
    return "".join(paragraph(p) for p in parts) + timings_paragraph(timings)


def _solutions_section(record: Mapping[str, Any]) -> tuple[ReportSection, go.Figure]:
    figure = accuracy_figure(record)
    examples = []
    for c in record["cells"][:1] + [c for c in record["cells"] if c["ood"]][:1]:
        for ex in c["examples"][:1]:
            examples.append(f"[{c['cell']}] problem:{ex['problem']}\ntruth:{ex['truth']}\n"
                            f"model: {ex['generated']}\nverdict: {ex['verdict']}")
    html = (
        table(eval_table(record))
        + paragraph("accuracy: every step checked (dependencies, arithmetic mod 23, order, final answer); "
                    "answer only: the value after [ANS] alone. Unnecessary parameters/operations count over "
                    "correct solutions only (level-0 reasoning would compute all computable parameters).")
        + ("<h3>Examples</h3>" + preformatted("\n\n".join(examples)) if examples else "")
    )
    return ReportSection("Solutions: accuracy by number of operations", html, [figure]), figure


def _probe_section(
    probe_rows: Sequence[Mapping[str, Any]], summary: Sequence[Mapping[str, Any]]
) -> tuple[ReportSection, dict[str, go.Figure]]:
    from physlm.probing.igsm_vprobe import TARGETS, cells_table, distance_figure, layerwise_igsm_figure

    probe_figs = {f"probe_{t}": layerwise_igsm_figure(probe_rows, t)
                  for t in TARGETS if any(r["target"] == t for r in probe_rows)}
    if any(r["target"] == "nece" and int(r["level"]) > 0 for r in probe_rows):
        probe_figs["probe_nece_distance"] = distance_figure(probe_rows)
    cells = [r for r in cells_table(probe_rows)
             if not (r["population"] == "all_param" and r["cell"].startswith("op<="))]
    section = ReportSection(
        "V-probes: what the model knows mid-problem",
        table(summary)
        + (paragraph("Every cell and population at the last layer (the headline metric; G_d = the dependency "
                     "graph only, without the trivially labelled isolated slots; necessary / unnecessary A; "
                     "define / first_wrong = the can_next probe read after \"Define A as\" on correct solutions "
                     "and on the model's own first wrong parameter):")
           + table(cells, ["target", "population", "cell", "metric", "trained", "95% CI", "random_init",
                           "majority", "n"], left=3) if cells else "")
        + paragraph("nece(A): is A needed to answer the question (read at the end of the question); "
                    "dep(A, B): does A depend on B (read before the question is asked); known / value / "
                    "can_next / nece_next: the state after a solution sentence. Controls: random-init = the "
                    "same V-probe on an untrained model of the same shape; majority = the most frequent "
                    "training label. Figures show balanced accuracy (accuracy for value) by layer."),
        list(probe_figs.values()),
    )
    return section, probe_figs


def igsm_task_report(run: RunArtifacts) -> TaskReport:
    """The iGSM parts of the report: the reading, the judged solutions and the V-probes."""
    record = read_eval(run.path / EVAL_FILE)
    summary = probe_summary(run.probe_rows)
    sections: list[ReportSection] = []
    figures: dict[str, go.Figure] = {}
    if record is not None:
        section, figures["accuracy"] = _solutions_section(record)
        sections.append(section)
    if run.probe_rows:
        section, probe_figs = _probe_section(run.probe_rows, summary)
        sections.append(section)
        figures.update(probe_figs)
    return TaskReport(
        title=f"physlm — iGSM experiment ({run.trained_on.preset})",
        reading=_reading(record, summary, run.final_eval_loss, run.timings),
        loss_title=LOSS_TITLE,
        sections=sections,
        figures=figures,
    )


def build_igsm_report(run_dir: str | Path, timings: Mapping[str, float] | None = None, png: bool = True) -> Path:
    """Write ``report.html`` (self-contained, offline) and ``figures/*.png`` for an iGSM run; return its path."""
    return build_run_report(run_dir, igsm_task_report, timings=timings, png=png)

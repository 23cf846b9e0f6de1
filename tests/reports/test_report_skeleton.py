"""The report skeleton every recipe's report plugs into: reading, training, task sections, provenance."""

from __future__ import annotations

import json

import plotly.graph_objects as go

from physlm.analysis.report_html import ReportSection, paragraph
from physlm.analysis.report_run import RunArtifacts, TaskReport, build_run_report, loss_figure, timings_paragraph
from physlm.rundir import RunDir


def _run(tmp_path):
    run = RunDir.create(tmp_path / "run", {"task": {"name": "igsm", "options": {"preset": "micro"}, "config": None}})
    metrics = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5, "eval_loss": 2.7}, {"step": 3, "eval_loss": 2.2}]
    (run.path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return run


def test_sections_come_in_the_skeletons_order(tmp_path):
    run = _run(tmp_path)
    seen: list[RunArtifacts] = []

    def task_report(artifacts: RunArtifacts) -> TaskReport:
        seen.append(artifacts)
        figure = go.Figure(go.Bar(x=["a"], y=[1]))
        return TaskReport(
            title=f"toy report ({artifacts.trained_on.preset})",
            reading=paragraph("the toy reading") + timings_paragraph(artifacts.timings),
            loss_title="toy loss",
            sections=[ReportSection("Toy section", paragraph("toy body"), [figure])],
            figures={"toy": figure},
        )

    path = build_run_report(run.path, task_report, timings={"train": 3.0, "total": 4.0}, png=False)
    html = path.read_text()
    titles = ["<h1>toy report (micro)</h1>", "<h2>What this run shows</h2>", "the toy reading",
              "Stage wall times (s): train 3, total 4.", "<h2>Training</h2>", "<h2>Toy section</h2>", "toy body",
              "<h2>Configs and provenance</h2>"]
    positions = [html.index(t) for t in titles]
    assert positions == sorted(positions)
    assert html.count("<div class='figure'>") == 2  # the loss curve and the task's figure
    (artifacts,) = seen
    assert artifacts.final_eval_loss == 2.2 and artifacts.probe_rows == [] and artifacts.read_json("x.json") is None
    assert artifacts.record["configs"]["task"]["name"] == "igsm"


def test_loss_figure_and_timings():
    metrics = [{"step": 1, "loss": 3.0}, {"step": 2, "eval_loss": 2.0}]
    fig = loss_figure(metrics, "a title", floor=1.5)
    assert [t.name for t in fig.data] == ["train loss", "held-out loss"] and fig.layout.title.text == "a title"
    assert fig.layout.shapes[0].y0 == 1.5
    assert not loss_figure(metrics, "no floor").layout.shapes
    assert timings_paragraph(None) == "" and timings_paragraph({}) == ""

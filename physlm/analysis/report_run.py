"""The skeleton every recipe's report shares: one offline ``report.html`` (and PNG figures) from a run directory.

A report is, in order: "What this run shows" (the task's plain-language reading), "Training" (the loss curve),
the task's own sections, and "Configs and provenance" (the run's config.json). Everything is read from the run's
artifacts (:func:`read_run`), so a report can be rebuilt at any time. A task plugs in with a function from the
:class:`RunArtifacts` to a :class:`TaskReport` (:mod:`physlm.analysis.report_cfg`, :mod:`physlm.analysis.report_igsm`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from physlm.analysis.report_html import (
    ReportSection,
    paragraph,
    preformatted,
    read_jsonl,
    read_result_rows,
    render_report,
    write_report_pngs,
)
from physlm.rundir import RunDir, TrainedOn, read_trained_on


@dataclasses.dataclass(frozen=True)
class RunArtifacts:
    """What every report reads from a run directory."""

    path: Path
    record: dict[str, Any]
    """the parsed config.json (configs, commands, versions)"""
    trained_on: TrainedOn
    """what the model was trained on (task, grammar or preset, token table, model config)"""
    metrics: list[dict[str, Any]]
    """metrics.jsonl records"""
    probe_rows: list[Any]
    """probe_results.csv rows ([] when the run was not probed)"""
    timings: Mapping[str, float] | None = None
    """stage wall times handed over by the recipe (None when the report is rebuilt later)"""

    @property
    def final_eval_loss(self) -> float | None:
        """The last held-out loss of training, or None."""
        evals = [m["eval_loss"] for m in self.metrics if m.get("eval_loss") is not None]
        return evals[-1] if evals else None

    def read_json(self, name: str) -> Any:
        """A JSON artifact of the run, or None when it has none."""
        path = self.path / name
        return json.loads(path.read_text()) if path.is_file() else None


@dataclasses.dataclass(frozen=True)
class TaskReport:
    """What a task contributes to the report skeleton."""

    title: str
    """the page title"""
    reading: str
    """HTML of "What this run shows" (paragraphs)"""
    loss_title: str
    """title of the loss figure"""
    loss_floor: float | None = None
    """a dashed line on the loss figure (the task's entropy floor), when there is one"""
    sections: Sequence[ReportSection] = ()
    """the task's sections, between "Training" and "Configs and provenance\""""
    figures: Mapping[str, go.Figure] = dataclasses.field(default_factory=dict)
    """the task sections' figures by PNG name (``figures/<name>.png``), in order"""


def read_run(run_dir: str | Path, timings: Mapping[str, float] | None = None) -> RunArtifacts:
    """Read what every report needs from ``run_dir`` (a run directory or a zoo entry)."""
    path = Path(run_dir)
    return RunArtifacts(
        path=path,
        record=json.loads((path / RunDir.CONFIG_FILE).read_text()),
        trained_on=read_trained_on(path),
        metrics=read_jsonl(path / "metrics.jsonl"),
        probe_rows=read_result_rows(path / "probe_results.csv"),
        timings=timings,
    )


def loss_figure(metrics: Sequence[Mapping[str, Any]], title: str, floor: float | None = None) -> go.Figure:
    """Training and held-out loss per step (nats per token), with an optional floor line."""
    train = [(m["step"], m["loss"]) for m in metrics if m.get("loss") is not None]
    held = [(m["step"], m["eval_loss"]) for m in metrics if m.get("eval_loss") is not None]
    fig = go.Figure()
    if train:
        fig.add_trace(go.Scatter(x=[s for s, _ in train], y=[v for _, v in train], name="train loss"))
    if held:
        fig.add_trace(
            go.Scatter(x=[s for s, _ in held], y=[v for _, v in held], name="held-out loss", mode="lines+markers")
        )
    if floor is not None:
        fig.add_hline(
            y=floor,
            line_dash="dash",
            line_color="black",
            annotation_text=f"entropy floor {floor:.3f}",
            annotation_position="top right",
        )
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="nats / token", template="plotly_white")
    return fig


def timings_paragraph(timings: Mapping[str, float] | None) -> str:
    """The readings' last sentence: the stage wall times ("" without timings)."""
    if not timings:
        return ""
    return paragraph("Stage wall times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()) + ".")


def build_run_report(
    run_dir: str | Path,
    task_report: Callable[[RunArtifacts], TaskReport],
    timings: Mapping[str, float] | None = None,
    png: bool = True,
) -> Path:
    """Write ``report.html`` (self-contained, offline) and, with ``png``, ``figures/*.png`` for a run; return
    the HTML path. ``task_report`` supplies the title, the reading and the task's sections."""
    artifacts = read_run(run_dir, timings)
    task = task_report(artifacts)
    figures: dict[str, go.Figure] = {"loss": loss_figure(artifacts.metrics, task.loss_title, task.loss_floor)}
    figures.update(task.figures)
    sections = [
        ReportSection("What this run shows", task.reading),
        ReportSection("Training", "", [figures["loss"]]),
        *task.sections,
        ReportSection("Configs and provenance", preformatted(json.dumps(artifacts.record, indent=2))),
    ]
    out = render_report(task.title, sections, artifacts.path / "report.html")
    if png:
        write_report_pngs(figures, artifacts.path)
    return out

"""The CFG experiment's report: one offline ``report.html`` (and PNG figures) built from a run directory.

The CFG sections (generation, probes, attention) and reading plugged into the shared skeleton
:mod:`physlm.analysis.report_run`. Everything shown is read from the run's artifacts (config.json,
metrics.jsonl, generation.json, probe_results.csv, attention/), so the report can be rebuilt at any time with
``build_cfg_report(run_dir)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from physlm.analysis.report_html import ReportSection, paragraph, table
from physlm.analysis.report_run import RunArtifacts, TaskReport, build_run_report, timings_paragraph

# The bar for the demo: the Part 1 effect must be visible at the last layer.
TARGET_PROBE = 0.90
TARGET_GAP = 0.25
TARGET_GENERATION = 0.80


def entropy_floor_per_token(grammar_name: str) -> float | None:
    """Loss floor of the packed training layout, nats per token: H(sentence) / (E[n] + 2).

    ``BOS x EOS`` is n + 2 tokens and the BOS after an EOS is certain, so a perfect model's mean loss per
    token is the sentence entropy over E[n] + 2. The derivation entropy is exact for grammars whose
    sentences have one parse (and an upper bound otherwise).
    """
    try:
        from physlm.tasks.cfg import load_grammar

        grammar = load_grammar(grammar_name)
        return float(grammar.derivation_entropy / (grammar.expected_length + 2))
    except Exception:
        return None


LOSS_TITLE = "Loss (nats per token) against the grammar's entropy floor"


def _last_layer_rows(rows: Sequence[Mapping[str, Any]], target: str) -> dict[tuple[int, str], Mapping[str, Any]]:
    metric = "accuracy"
    chosen = [r for r in rows if r["target"] == target and r["metric"] == metric]
    if not chosen:
        return {}
    last = max(r["layer"] for r in chosen)
    return {(r["level"], r["features"]): r for r in chosen if r["layer"] == last}


def probe_headline(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per level at the last layer: the NT-ancestor-at-NT-end accuracy, its controls, and the target check."""
    by = _last_layer_rows(rows, "ancestor_at_end")
    levels = sorted({lvl for lvl, _ in by})
    out = []
    for level in levels:
        trained = by.get((level, "trained"))
        if trained is None:
            continue
        controls = {f: by[(level, f)]["value"] for (lvl, f) in by if lvl == level and f != "trained"}
        baselines = _baselines(rows, "ancestor_at_end", level)
        controls.update({k: v for k, v in baselines.items() if k not in controls})
        random_init = controls.get("random_init")
        out.append(
            {
                "level": f"NT{level}",
                "trained": trained["value"],
                "95% CI": f"[{trained['ci_low']:.3f}, {trained['ci_high']:.3f}]",
                **{k: v for k, v in sorted(controls.items())},
                "meets target": bool(
                    trained["value"] >= TARGET_PROBE
                    and (random_init is None or trained["value"] - random_init >= TARGET_GAP)
                ),
            }
        )
    return out


def _baselines(rows: Sequence[Mapping[str, Any]], target: str, level: int) -> dict[str, float]:
    """Controls that do not depend on a layer (majority, position...) wherever the CSV puts them."""
    out: dict[str, float] = {}
    for r in rows:
        if r["target"] == target and r["level"] == level and r["metric"] == "accuracy":
            if r["features"] in ("majority", "position", "position_token"):
                out[r["features"]] = r["value"]
    return out


def _reading(
    generation: Mapping[str, Any] | None,
    headline: Sequence[Mapping[str, Any]],
    final_eval: float | None,
    floor: float | None,
    timings: Mapping[str, float] | None,
) -> str:
    """A short plain-language reading of what the numbers show and do not show."""
    parts: list[str] = []
    if final_eval is not None and floor is not None:
        gap = final_eval - floor
        parts.append(
            f"The held-out loss ended at {final_eval:.3f} nats/token against an entropy floor of {floor:.3f} "
            f"(gap {gap:.3f}); the closer the gap is to 0, the closer the model is to the true distribution."
        )
    if generation:
        acc0, acc50 = generation.get("accuracy_cut0"), generation.get("accuracy_cut50")
        kl = generation.get("kl")
        ok = acc0 is not None and acc0 >= TARGET_GENERATION
        parts.append(
            f"{100 * acc0:.1f}% of {generation.get('n_samples')} sentences sampled from BOS are in the grammar "
            f"(exact DP), {100 * acc50:.1f}% after a true prefix of {generation.get('cut')} tokens; "
            + (f"KL(true‖model) is {kl:.4f} nats/token. " if kl is not None else "")
            + (
                "This meets the 80% bar."
                if ok
                else "This is below the 80% bar: the model has not yet learned "
                "the grammar well enough to generate it reliably."
            )
        )
        if generation.get("duplicates") is not None:
            parts.append(
                f"{generation['duplicates']} of the samples repeat an earlier one; compare with the grammar's "
                "support before reading this as memorisation."
            )
    if headline:
        met = [h for h in headline if h["meets target"]]
        desc = "; ".join(
            f"{h['level']}: {100 * h['trained']:.1f}% vs random-init "
            + (f"{100 * h['random_init']:.1f}%" if "random_init" in h else "n/a")
            for h in headline
        )
        parts.append(
            "At the last layer, a linear probe reads the NT ancestor at NT-end positions with "
            + desc
            + ". "
            + (
                "Every level clears 90% with the random-init control at least 25 points lower: the hidden states "
                "encode the parse's nonterminals where the DP would store them (the paper's Result 5)."
                if len(met) == len(headline)
                else f"{len(met)} of {len(headline)} levels meet the bar (>= 90% and >= 25 points above the "
                "random-init model); the others are reported as measured, not as a success: "
                + "; ".join(_shortfall(h) for h in headline if not h["meets target"])
                + "."
            )
        )
        parts.append(
            "What this does not show: a probe reading a label is evidence the information is linearly "
            "present, not that the model uses it; the random-init and position baselines bound how much a probe "
            "extracts from token identity and position alone. Probe accuracies come from fresh sentences with "
            "95% bootstrap intervals over sentences."
        )
    return "".join(paragraph(p) for p in parts) + timings_paragraph(timings)


def _shortfall(h: Mapping[str, Any]) -> str:
    """Why one level misses the Part 1 bar, in words (a level misses it by accuracy or by its gap)."""
    trained, rand = h["trained"], h["random_init"]
    if trained < TARGET_PROBE:
        return f"{h['level']} reaches only {100 * trained:.1f}% (< 90%): more training is the first thing to try"
    return (
        f"{h['level']} clears 90% but the random-init model already reads {100 * rand:.1f}%, a gap of "
        f"{100 * (trained - rand):.1f} points (< 25): this ancestor is largely given away by the last few tokens "
        "and the position, which a random network's features carry too, so the gap measures the grammar as much "
        "as the model (`physlm data grammar-info` shows how much each gives away)"
    )


def _load_attention_figures(run_dir: Path) -> dict[str, go.Figure]:
    fig_dir = run_dir / "attention" / "figures"
    if not fig_dir.is_dir():
        return {}
    order = ["head_summary", "near_end", "end_pair", "adjacency"]
    names = sorted(p.stem for p in fig_dir.glob("*.json"))
    names = [n for n in order if n in names] + [n for n in names if n not in order]
    return {f"attention_{n}": pio.from_json((fig_dir / f"{n}.json").read_text()) for n in names}


def _generation_section(generation: Mapping[str, Any]) -> ReportSection:
    rows = [
        {"quantity": k, "value": generation.get(k)}
        for k in (
            "accuracy_cut0",
            "accuracy_cut50",
            "cut",
            "kl",
            "n_samples",
            "duplicates",
            "model_entropy",
            "grammar_entropy",
        )
    ]
    robust = generation.get("robustness") or []
    html = table(rows) + paragraph(generation.get("units", ""))
    if robust:
        robust_rows = robust if isinstance(robust, list) else [robust]
        html += "<h3>Robustness to corrupted prefixes</h3>" + table(robust_rows)
    return ReportSection("Generation", html)


def _probe_section(
    probe_rows: Sequence[Mapping[str, Any]], headline: Sequence[Mapping[str, Any]]
) -> tuple[ReportSection, dict[str, go.Figure]]:
    from physlm.probing.plots import layerwise_figure

    probe_figs = {}
    for target in ("ancestor_at_end", "ancestor", "end", "end_level"):
        if any(r["target"] == target for r in probe_rows):
            probe_figs[f"probe_{target}"] = layerwise_figure(probe_rows, target)
    section = ReportSection(
        "Probes: what the hidden states encode, layer by layer",
        table(headline)
        + paragraph(
            "Controls: random_init = the same probe on a randomly initialised model of the same shape; "
            "majority = always the most frequent class; position / position_token = a classifier on the "
            "position (and token) alone; shuffled = a probe trained on shuffled labels (selectivity)."
        ),
        list(probe_figs.values()),
    )
    return section, probe_figs


def cfg_task_report(run: RunArtifacts) -> TaskReport:
    """The CFG parts of the report: the reading against the Part 1 bars, generation, probes and attention."""
    grammar_name = run.trained_on.grammar
    generation = run.read_json("generation.json")
    floor = entropy_floor_per_token(grammar_name) if grammar_name else None
    headline = probe_headline(run.probe_rows) if run.probe_rows else []
    sections: list[ReportSection] = []
    figures: dict[str, go.Figure] = {}
    if generation is not None:
        sections.append(_generation_section(generation))
    if run.probe_rows:
        section, probe_figs = _probe_section(run.probe_rows, headline)
        sections.append(section)
        figures.update(probe_figs)
    attention_figs = _load_attention_figures(run.path)
    if attention_figs:
        figures.update(attention_figs)
        sections.append(
            ReportSection(
                "Attention against the true parse",
                paragraph(
                    "B = attention minus its average at the same distance: positive B at NT-ends means heads attend "
                    "to the ends of nonterminal subtrees beyond what position explains (the paper's Figures 6-9)."
                ),
                list(attention_figs.values()),
            )
        )
    return TaskReport(
        title=f"physlm — CFG experiment ({grammar_name})",
        reading=_reading(generation, headline, run.final_eval_loss, floor, run.timings),
        loss_title=LOSS_TITLE,
        loss_floor=floor,
        sections=sections,
        figures=figures,
    )


def build_cfg_report(run_dir: str | Path, timings: Mapping[str, float] | None = None, png: bool = True) -> Path:
    """Write ``report.html`` (self-contained, offline) and ``figures/*.png`` for a CFG run; return the HTML path."""
    return build_run_report(run_dir, cfg_task_report, timings=timings, png=png)

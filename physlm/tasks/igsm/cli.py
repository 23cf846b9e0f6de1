"""``physlm data igsm`` and ``physlm data igsm-show``."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Annotated, Literal

import tyro

from physlm.tasks.igsm.config import IGSMConfig, preset
from physlm.tasks.igsm.problem import Problem


def _config(
    name: str, split: str, op: int | None, p_format: str, max_op: int | None, max_edge: int | None
) -> IGSMConfig:
    changes: dict[str, object] = {"split": split, "op": op, "p_format": p_format}
    if max_op is not None:
        changes["max_op"] = max_op
    if max_edge is not None:
        changes["max_edge"] = max_edge
    return preset(name, **changes)


def data_igsm(
    out: Path,
    preset: Literal["med", "hard", "small", "tiny", "micro"] = "med",
    n: int = 10_000,
    seed: int = 0,
    split: Literal["train", "test", "all"] = "train",
    op: int | None = None,
    p_format: Literal["pq", "qp"] = "pq",
    max_op: int | None = None,
    max_edge: int | None = None,
    reask: bool = False,
    num_proc: int = 1,
    text: bool = True,
    overwrite: bool = False,
) -> None:
    """Generate iGSM problems with solutions and probe labels into a run directory.

    Writes ``<out>/dataset`` (HF datasets, tokens + labels), ``<out>/problems.jsonl`` (plain text, unless
    --no-text) and the config into ``config.json``.

    Args:
        out: Run directory to create.
        preset: Settings: med (max_op 15, max_edge 20), hard (21, 28), small (8, 15), tiny (4, 12), micro (a
            compact world: max_op 4, max_edge 6, 3x3 graphs, 8 items per category).
        n: Number of problems.
        seed: Random seed (problem i has its own generator, so num_proc does not change the data).
        split: Template-hash split: train (< 17), test (>= 17) or all.
        op: Exact op of every problem (OOD test sets), instead of min(U, U) <= max_op.
        p_format: Question after (pq) or before (qp) the problem.
        max_op: Override the preset's max_op.
        max_edge: Override the preset's max_edge.
        reask: Re-asked questions (the papers' reask test sets).
        num_proc: Worker processes.
        text: Also write the plain-text export.
        overwrite: Replace an existing run directory.
    """
    from physlm.rundir import RunDir
    from physlm.tasks.igsm.export import export_dataset, export_text

    config = _config(preset, split, op, p_format, max_op, max_edge)
    run = RunDir.create(out, {"igsm": config, "igsm_data": {"n": n, "seed": seed, "reask": reask}}, overwrite)
    with run.stage("data"):
        run.log(f"generating {n} iGSM problems ({preset}, split={split}, op={op}, reask={reask}) into {out}")
        ds = export_dataset(config, n, seed, run.artifact("dataset"), num_proc=num_proc, reasked=reask)
        if text:
            export_text(config, n, seed, run.artifact("problems.jsonl"), reasked=reask)
        ops = ds["op"]
        run.log(f"wrote {len(ds)} problems; mean op {sum(ops) / len(ops):.2f}, max op {max(ops)}")


def describe(problem: Problem) -> str:
    """A human-readable dump: text, solution, structure graph, dependency graph and labels."""
    from physlm.tasks.igsm.labels import problem_labels
    from physlm.tasks.igsm.structure import RNG

    st = problem.structure
    lines = [f"op = {problem.op}, answer = {problem.answer}, hash bucket = {problem.hash_bucket}", ""]
    lines += [
        "PROBLEM:" + problem.problem_text,
        "",
        "SOLUTION:" + problem.solution_text,
        f"ANSWER:{problem.answer_text}",
    ]
    lines += ["", "STRUCTURE GRAPH (layer: items; edges):"]
    for i in range(st.depth):
        lines.append(f"  {i} {problem.layer_names[i]}: {', '.join(problem.item_names[i])}")
    for i, j, k in st.edges:
        lines.append(f"  {problem.item_names[i][j]} -> {problem.item_names[i + 1][k]}")
    lines += ["", "DEPENDENCY GRAPH (* necessary, ? query):"]
    necessary = set(problem.topo)
    for p, preds in problem.template.preds.items():
        if p == RNG:
            continue
        mark = "?" if p == problem.query else "*" if p in necessary else " "
        deps = ", ".join("RNG" if q == RNG else problem.name(q) for q in preds) or "-"
        lines.append(f"  {mark} {problem.name(p)} = {problem.values[p]}  <- {deps}")
    labels = problem_labels(problem)
    lines += [
        "",
        f"LABELS over all_param ({len(labels.params)} parameters; rows = states 0..{len(problem.topo)}):",
    ]
    lines.append("  nece: " + ", ".join(n for n, v in zip(labels.names, labels.nece) if v))
    for t in range(len(labels.known)):
        known = sum(labels.known[t])
        nece_next = [n for n, v in zip(labels.names, labels.nece_next[t]) if v]
        lines.append(
            f"  after {t} sentences: known={known} can_next={sum(labels.can_next[t])} nece_next={nece_next}"
        )
    dep_pairs = sum(map(sum, labels.dep))
    lines.append(f"  dep: {dep_pairs} of {len(labels.params) ** 2} pairs are 1")
    return "\n".join(lines)


def igsm_show(
    preset: Literal["med", "hard", "small", "tiny", "micro"] = "small",
    seed: int = 0,
    split: Literal["train", "test", "all"] = "all",
    op: int | None = None,
    p_format: Literal["pq", "qp"] = "pq",
    reask: bool = False,
) -> None:
    """Print one iGSM problem, its solution, its structure and dependency graphs and its labels.

    Args:
        preset: Settings: med, hard, small, tiny or micro.
        seed: Random seed of the problem.
        split: Template-hash split: train, test or all.
        op: Exact op, or None for min(U, U) <= max_op.
        p_format: Question after (pq) or before (qp) the problem.
        reask: Show a re-asked question instead.
    """
    from physlm.tasks.igsm.generator import generate_problem
    from physlm.tasks.igsm.reask import generate_reask

    config = _config(preset, split, op, p_format, None, None)
    rng = random.Random(seed)
    problem = generate_reask(config, rng) if reask else generate_problem(config, rng)
    print(describe(problem))


def igsm_info(
    preset: Annotated[Literal["med", "hard", "small", "tiny", "micro"], tyro.conf.Positional] = "tiny",
    n: int = 300,
    seed: int = 0,
    split: Literal["train", "test", "all"] = "train",
    op: int | None = None,
    p_format: Literal["pq", "qp"] = "pq",
    reask: bool = False,
    json_out: Path | None = None,
) -> dict:
    """Print a preset's statistics over sampled problems: tokens per problem and solution, parameters per
    problem (necessary, unnecessary, in G_d, isolated slots), the op histogram, and each V-probe task's label
    base rate and majority baseline (all_param and G_d, weighted per problem).

    Args:
        preset: Settings: med, hard, small, tiny or micro.
        n: Problems to sample.
        seed: Sampling seed.
        split: Template-hash split: train, test or all.
        op: Exact op, or None for min(U, U) <= max_op.
        p_format: Question after (pq) or before (qp) the problem.
        reask: Re-asked questions.
        json_out: Also write the statistics as JSON here.
    """
    from physlm.tasks.igsm.stats import format_igsm_info, igsm_stats

    stats = igsm_stats(_config(preset, split, op, p_format, None, None), n=n, seed=seed, reask=reask)
    print(format_igsm_info(preset, stats), end="")
    if json_out is not None:
        from physlm.rundir import write_atomic

        write_atomic(Path(json_out), json.dumps(stats, indent=2) + "\n")
    return stats

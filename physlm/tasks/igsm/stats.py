"""Statistics of an iGSM preset (``physlm data igsm-info``): lengths, parameter counts, ops, probe base rates.

The label base rates are those the V-probes face (spec §3.1): for each task, the positive rate (binary) and
the majority guess's accuracy over the task's draws, *weighted per problem* (every problem counts once, as the
probes draw the same number of (position, parameter) pairs from each; the paper's majority baselines match
this weighting on the ``all_param`` population) and on G_d alone. Draws: nece over parameters A; dep over
ordered pairs A != B; known / value / can_next / nece_next over (solution state, A).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from physlm.tasks.igsm.config import IGSMConfig
from physlm.tasks.igsm.export import problem_record
from physlm.tasks.igsm.generator import generate_problem
from physlm.tasks.igsm.reask import generate_reask

TASKS = ("nece", "dep", "known", "value", "can_next", "nece_next")


def _label_counts(record: dict[str, Any], task: str, pool: list[int]) -> Counter:
    """Label counts of one problem's draws of ``task`` with A (and B) from ``pool``."""
    if task == "nece":
        return Counter(record["nece"][a] for a in pool)
    if task == "dep":
        return Counter(record["dep"][a][b] for a in pool for b in pool if a != b)
    return Counter(row[a] for row in record[task] for a in pool)


def _summary(values: list[int]) -> dict[str, float]:
    return {"mean": sum(values) / len(values), "max": max(values)}


def igsm_stats(config: IGSMConfig, n: int = 300, seed: int = 0, reask: bool = False) -> dict[str, Any]:
    """Statistics of ``n`` problems drawn with ``config`` (string-seeded by ``seed``): token lengths, parameters
    per problem, the op histogram and, per V-probe task and population, the positive rate and the majority
    baseline (see the module docstring)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = random.Random(f"physlm-igsm-info:{seed}")
    lengths: dict[str, list[int]] = {"problem": [], "solution": [], "document": []}
    counts: dict[str, list[int]] = {k: [] for k in ("all_param", "G_d", "necessary", "unnecessary",
                                                   "isolated_slots", "unused_abstract")}
    ops: Counter = Counter()
    # per task and population: the per-problem class distributions, averaged over problems
    dist: dict[tuple[str, str], Counter] = {}
    for _ in range(n):
        problem = generate_reask(config, rng) if reask else generate_problem(config, rng)
        record = problem_record(problem)
        lengths["problem"].append(len(problem.problem_tokens()))
        lengths["solution"].append(len(problem.solution_tokens))
        lengths["document"].append(len(record["input_ids"]))
        ops[problem.op] += 1
        params, in_graph, nece = record["params"], record["in_graph"], record["nece"]
        graph = [a for a in range(len(params)) if in_graph[a]]
        counts["all_param"].append(len(params))
        counts["G_d"].append(len(graph))
        counts["necessary"].append(sum(nece))
        counts["unnecessary"].append(len(graph) - sum(nece))
        counts["isolated_slots"].append(sum(1 for a, p in enumerate(params) if p[0] == 0 and not in_graph[a]))
        counts["unused_abstract"].append(sum(1 for a, p in enumerate(params) if p[0] == 1 and not in_graph[a]))
        for population, pool in (("all_param", list(range(len(params)))), ("G_d", graph)):
            for task in TASKS:
                c = _label_counts(record, task, pool)
                total = sum(c.values())
                if total:
                    acc = dist.setdefault((task, population), Counter())
                    for label, k in c.items():
                        acc[label] += k / total
    rates: dict[str, dict[str, dict[str, Any]]] = {}
    for (task, population), acc in dist.items():
        weight = sum(acc.values())
        label, top = max(acc.items(), key=lambda kv: (kv[1], -kv[0]))
        entry: dict[str, Any] = {"majority_class": int(label), "majority_baseline": top / weight}
        if task != "value":
            entry["positive_rate"] = acc.get(1, 0.0) / weight
        rates.setdefault(task, {})[population] = entry
    return {
        "config": config.to_dict(),
        "n": n,
        "seed": seed,
        "reask": reask,
        "tokens": {k: _summary(v) for k, v in lengths.items()},
        "params": {k: _summary(v) for k, v in counts.items()},
        "ops": {int(k): v for k, v in sorted(ops.items())},
        "labels": rates,
    }


def format_igsm_info(name: str, stats: dict[str, Any]) -> str:
    """A human-readable report of :func:`igsm_stats`."""
    cfg = stats["config"]
    lines = [
        f"iGSM preset {name}: max_op {cfg['max_op']}, max_edge {cfg['max_edge']}, depth <= {cfg['max_depth']}, "
        f"width <= {cfg['max_width']}, catalog_items {cfg['catalog_items']}, split {cfg['split']}"
        + (f", op {cfg['op']}" if cfg["op"] is not None else "") + (", re-asked" if stats["reask"] else ""),
        f"over {stats['n']} problems (seed {stats['seed']})",
        "",
        "tokens (mean / max):",
    ]
    for key, label in (("problem", "problem (statement + question)"), ("solution", "solution"),
                       ("document", "document [PROB] .. [ANS] answer")):
        t = stats["tokens"][key]
        lines.append(f"  {label:<34} {t['mean']:7.1f} / {t['max']}")
    lines += ["", "parameters per problem (mean / max):"]
    for key, label in (("all_param", "all_param (the probe population)"), ("G_d", "in G_d"),
                       ("necessary", "  necessary (the query needs them)"), ("unnecessary", "  unnecessary"),
                       ("isolated_slots", "isolated instance slots (no edge)"),
                       ("unused_abstract", "abstract parameters outside G_d")):
        p = stats["params"][key]
        lines.append(f"  {label:<34} {p['mean']:7.2f} / {p['max']}")
    total = sum(stats["ops"].values())
    lines += ["", "op histogram:"]
    lines += [f"  op={op:<3} {k:5d}  {100 * k / total:5.1f}%" for op, k in stats["ops"].items()]
    lines += ["", "V-probe labels, weighted per problem (positive rate; majority class and its accuracy):",
              f"  {'task':<10} {'population':<10} {'positive':>8} {'majority':>9} {'baseline':>9}"]
    for task in TASKS:
        for population in ("all_param", "G_d"):
            e = stats["labels"].get(task, {}).get(population)
            if e is None:
                continue
            pos = f"{100 * e['positive_rate']:7.1f}%" if "positive_rate" in e else "       -"
            lines.append(f"  {task:<10} {population:<10} {pos} {e['majority_class']:>9} "
                         f"{100 * e['majority_baseline']:8.1f}%")
    return "\n".join(lines) + "\n"

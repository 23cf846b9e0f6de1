"""Re-asked questions (spec §1.7; paper §2.4): keep a problem's statement, ask about another parameter.

Fixes the official ``re_ask`` pitfalls (spec §8.3, pitfall 5): the new query is drawn from G_d (never a
missing instance slot), the op count is recomputed for the new solution, and the template hash is re-checked
against the split.
"""

from __future__ import annotations

import dataclasses
import random

from physlm.tasks.igsm.config import IGSMConfig
from physlm.tasks.igsm.dependency import Template, op_count
from physlm.tasks.igsm.generator import generate_problem
from physlm.tasks.igsm.problem import Problem, render_solution
from physlm.tasks.igsm.structure import RNG, Param, below
from physlm.tasks.igsm.tokenizer import SYMBOLS


def _ancestor_order(t: Template, query: Param, rng: random.Random) -> list[Param]:
    """A random topological order of the query's ancestors (RNG excluded), ending with the query."""
    needed = {query}
    todo = [query]
    while todo:
        for q in t.preds[todo.pop()]:
            if q != RNG and q not in needed:
                needed.add(q)
                todo.append(q)
    missing = {p: sum(1 for q in t.preds[p] if q in needed) for p in needed}
    ready = [p for p, c in missing.items() if c == 0]
    order: list[Param] = []
    while ready:
        p = ready.pop(below(rng, len(ready)))
        order.append(p)
        for v in t.succs[p]:
            if v in needed:
                missing[v] -= 1
                if missing[v] == 0:
                    ready.append(v)
    if order[-1] != query:
        # nothing among the query's own ancestors depends on it, so moving it last keeps the order valid
        order.remove(query)
        order.append(query)
    return order


def reask(problem: Problem, config: IGSMConfig, rng: random.Random) -> Problem | None:
    """The same problem statement with a new query drawn uniformly from G_d (other than the old query), its
    shortest solution in a random topological order, and the recomputed op. Candidates whose template hash is
    outside ``config.split`` are skipped; None when no candidate fits."""
    candidates = [p for p in problem.template.preds if p != RNG and p != problem.query]
    rng.shuffle(candidates)
    for query in candidates:
        order = _ancestor_order(problem.template, query, rng)
        op = op_count(problem.template, order)
        if op > len(SYMBOLS):  # more operations than solution symbols: not writable in the papers' format
            continue
        new = dataclasses.replace(problem, topo=order, op=op)
        render_solution(new, order, rng)
        if config.hash_ok(new.hash_bucket):
            return new
    return None


def generate_reask(config: IGSMConfig, rng: random.Random) -> Problem:
    """A re-asked problem as in the papers' reask test sets: draw a problem with ``config`` but any hash (e.g.
    op=20 for med), then re-ask it; the re-asked solution's hash must be in ``config.split``."""
    base = config.replace(split="all")
    for _ in range(config.max_attempts):
        new = reask(generate_problem(base, rng), config, rng)
        if new is not None:
            return new
    raise RuntimeError(f"no re-asked problem in the {config.split} split after {config.max_attempts} tries")

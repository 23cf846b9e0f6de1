"""Probe labels of one problem, computed from its graphs (spec §3.2; official ``lora_label``/``lora_label2``).

The population is the official ``all_param``: every instance slot between adjacent layers (edge or not) and
every abstract parameter. The *whole graph* adds, to G_d, the implicit dependencies of abstract parameters
that the problem does not use; instance slots without a structure edge stay isolated (so they are never
necessary, never known, and ``can_next`` is 1 throughout, as in the official labels; spec §8.3 pitfall 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from physlm.tasks.igsm.config import MOD
from physlm.tasks.igsm.problem import Problem
from physlm.tasks.igsm.structure import RNG, Param

UNKNOWN_VALUE = MOD
"""``value`` label of a parameter that is not computed yet (23)."""


@dataclass(frozen=True)
class ProblemLabels:
    """Labels over ``params`` (P parameters) and the T+1 solution states (row 0: before the first
    sentence)."""

    params: list[Param]
    names: list[str]
    nece: list[int]
    """(P,) 1 iff the parameter is an ancestor of the query (or the query)."""
    dep: list[list[int]]
    """(P, P) ``dep[a][b] = 1`` iff parameter a depends on parameter b, transitively (RNG excluded)."""
    known: list[list[int]]
    """(T+1, P) computed in the first t solution sentences."""
    value: list[list[int]]
    """(T+1, P) the value 0..22 if known, else 23."""
    can_next: list[list[int]]
    """(T+1, P) not known and every direct dependency known (RNG counts as known)."""
    nece_next: list[list[int]]
    """(T+1, P) can_next and nece."""
    in_graph: list[int]
    """(P,) 1 iff the parameter is in G_d (the problem's dependency graph); 0 for the instance slots without a
    structure edge and the abstract parameters the problem never implies (their labels are trivial)."""
    query_distance: list[int]
    """(P,) edges on the shortest dependency path from the parameter to the query (0 = the query itself), or -1
    when the query does not need it (the distance t of the layer-wise nece probe, Part 2.1 Fig 10/14)."""


def whole_graph(problem: Problem) -> dict[Param, list[Param]]:
    """Direct dependencies of every parameter of ``all_param`` (plus RNG): G_d, then the implicit
    dependencies of the abstract parameters outside G_d."""
    st = problem.structure
    preds: dict[Param, list[Param]] = {RNG: []}
    for p in st.all_params():
        if p in problem.template.preds:
            preds[p] = list(problem.template.preds[p])
        elif p[0] == 1:
            preds[p] = st.abstract_preds(p)
        else:
            preds[p] = []
    return preds


def _ancestor_masks(preds: dict[Param, list[Param]], index: dict[Param, int]) -> dict[Param, int]:
    """Bit mask of the (RNG-free) ancestors of every parameter."""
    masks: dict[Param, int] = {}

    def visit(p: Param) -> int:
        if p in masks:
            return masks[p]
        mask = 0
        for q in preds[p]:
            if q != RNG:
                mask |= (1 << index[q]) | visit(q)
        masks[p] = mask
        return mask

    for p in preds:
        visit(p)
    return masks


def problem_labels(problem: Problem, order: list[Param] | None = None) -> ProblemLabels:
    """Labels of ``problem`` along its solution (or along ``order``, e.g. a re-asked solution)."""
    order = problem.topo if order is None else order
    params = problem.structure.all_params()
    index = {p: i for i, p in enumerate(params)}
    preds = whole_graph(problem)
    masks = _ancestor_masks(preds, index)
    n = len(params)
    query = order[-1]
    necessary = {params[b] for b in range(n) if masks[query] >> b & 1} | {query}
    nece = [int(p in necessary) for p in params]
    dep = [[(masks[a] >> b) & 1 for b in range(n)] for a in params]

    missing = {p: sum(1 for q in preds[p] if q != RNG) for p in params}
    succs: dict[Param, list[Param]] = {p: [] for p in params}
    for p in params:
        for q in preds[p]:
            if q != RNG:
                succs[q].append(p)
    known_set: set[Param] = set()
    known, value, can_next, nece_next = [], [], [], []
    for t in range(len(order) + 1):
        if t > 0:
            done = order[t - 1]
            known_set.add(done)
            for v in succs[done]:
                missing[v] -= 1
        known.append([int(p in known_set) for p in params])
        # .get: along a model-written ``order`` a computed parameter may lie outside G_d (an unused abstract
        # parameter), which has no generated value
        value.append([problem.values.get(p, UNKNOWN_VALUE) if p in known_set else UNKNOWN_VALUE for p in params])
        row = [int(p not in known_set and missing[p] == 0) for p in params]
        can_next.append(row)
        nece_next.append([c & e for c, e in zip(row, nece)])
    distance = {query: 0}
    frontier = [query]
    while frontier:  # breadth first along the dependencies: the first visit is the shortest path
        nxt = []
        for p in frontier:
            for q in preds[p]:
                if q != RNG and q not in distance:
                    distance[q] = distance[p] + 1
                    nxt.append(q)
        frontier = nxt
    return ProblemLabels(
        params=params,
        names=[problem.name(p) for p in params],
        nece=nece,
        dep=dep,
        known=known,
        value=value,
        can_next=can_next,
        nece_next=nece_next,
        in_graph=[int(p in problem.template.preds) for p in params],
        query_distance=[distance.get(p, -1) for p in params],
    )

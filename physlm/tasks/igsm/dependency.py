"""The dependency graph of one iGSM problem (spec §1.4; paper App. D.2, Algorithms 2-5).

Follows the official ``Graph`` methods step by step: ``choose_param`` (G_nece1/2), ``setup_template``,
``reasonable_sort`` (G_nece3 and the solution order Topo), ``design`` (G_nece, exactly ``n_op``
operations) and ``design_unused`` (G_d). Two deliberate differences:

* the op count is known right after ``reasonable_sort``
  (``n_op = n_op_min + min(max(s - n_op_min, 0), cap)``), so a draw whose op cannot be the target is
  rejected *before* the expensive steps; the accepted problems are the same ones blind rejection keeps;
* abstract parameters become usable by unnecessary parameters exactly when all their dependencies are
  available (the official ``fill_all`` / ``fill_chosen`` scan layers in an order that misses some).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from physlm.tasks.igsm.structure import RNG, Param, Structure, below, pick


class Rejected(Exception):
    """This draw cannot give an acceptable problem; draw new hyper-parameters."""


@dataclass
class Template:
    """A DAG over parameters; ``preds[p]`` lists p's direct dependencies in the order they were added (that
    order is the order they are named in p's problem sentence)."""

    preds: dict[Param, list[Param]] = field(default_factory=dict)
    succs: dict[Param, list[Param]] = field(default_factory=dict)

    def add_node(self, p: Param) -> None:
        if p not in self.preds:
            self.preds[p] = []
            self.succs[p] = []

    def add_edge(self, u: Param, v: Param) -> None:
        self.add_node(u)
        self.add_node(v)
        if u not in self.preds[v]:
            self.preds[v].append(u)
            self.succs[u].append(v)

    def nodes(self) -> list[Param]:
        return list(self.preds)


@dataclass
class _Record:
    remain: list[tuple[int, int, int]]
    inter: list[tuple[int, int, int]]
    chosen: list[Param]

    def copy(self) -> _Record:
        return _Record(list(self.remain), list(self.inter), list(self.chosen))


def _try_inter(st: Structure, rec: _Record, ijk: tuple[int, int, int]) -> int:
    """Add abstract parameter ``ijk`` and, recursively, what it needs; return the op count it adds."""
    i, j, k = ijk
    rec.inter.remove(ijk)
    rec.chosen.append((1, i, j, k))
    kids = st.children[i][j]
    count = 0
    if k == i + 1:
        for x in kids:
            if (i, j, x) in rec.remain:
                count += 1
                rec.remain.remove((i, j, x))
                rec.chosen.append((0, i, j, x))
        return count + (len(kids) - 1 if len(kids) > 1 else 1)
    for x in kids:
        if (i + 1, x, k) in rec.inter:
            count += _try_inter(st, rec, (i + 1, x, k))
        if (i, j, x) in rec.remain:
            count += 1
            rec.remain.remove((i, j, x))
            rec.chosen.append((0, i, j, x))
    return count + max(2 * len(kids) - 1, 1)


def choose_params(st: Structure, n: int, m: int, rng: random.Random) -> tuple[_Record, int]:
    """G_nece1/2: abstract parameters (preferring long spans) up to n ops, then instance ones up to m ops.
    Returns the record and ``n_op_min`` (the ops of the chosen set with the fewest dependencies)."""
    d = st.depth
    rec = _Record(
        remain=list(st.edges),
        inter=[(i, j, k) for i in range(d - 1) for j in range(st.widths[i]) for k in range(i + 1, d)],
        chosen=[],
    )
    n = min(n, st.total_ops())
    n_fix = m - n
    previous, previous_count = rec, 0
    lowest, highest = 1, d - 1
    for _guard in range(10_000):
        if n <= 0:
            break
        for diff in range(1, d):
            try_set = [t for t in rec.inter if t[2] - t[0] == diff]
            if not try_set:
                if diff == lowest:
                    lowest += 1
                elif diff == highest:
                    highest -= 1
                continue
            temp = rec.copy()
            count = _try_inter(st, temp, pick(rng, try_set))
            if diff == lowest and count > n:
                n_fix2 = min(n + n_fix, len(rec.remain))
                for i, j, k in rng.sample(rec.remain, n_fix2):
                    rec.chosen.append((0, i, j, k))
                    rec.remain.remove((i, j, k))
                return rec, m - n - n_fix + n_fix2
            if count <= n:
                if diff < highest:
                    previous, previous_count = temp, count
                else:
                    rec = temp
                    n -= count
                    break
            else:
                rec = previous
                n -= previous_count
                break
    else:
        raise Rejected("choose_params did not converge")
    n_fix2 = min(n_fix, len(rec.remain))
    for i, j, k in rng.sample(rec.remain, n_fix2):
        rec.chosen.append((0, i, j, k))
        rec.remain.remove((i, j, k))
    return rec, m - n_fix + n_fix2


def setup_template(st: Structure, chosen: list[Param]) -> Template:
    """The smallest graph over the chosen parameters: only the implicit (abstract) dependencies."""
    t = Template()
    for p in chosen:
        t.add_node(p)
    for p in chosen:
        if p[0] == 1:
            for q in st.abstract_preds(p):
                t.add_edge(q, p)
    return t


def _softmax_choice(pool: list[Param], values: list[float], rng: random.Random) -> Param:
    top = max(values)
    weights = [math.exp(v - top) for v in values]
    r = rng.random() * sum(weights)
    for p, w in zip(pool, weights):
        r -= w
        if r < 0:
            return p
    return pool[-1]


def reasonable_sort(t: Template, rng: random.Random) -> list[Param] | None:
    """G_nece3 and Topo: a topological order built backwards from a sink (the query), adding an edge into each
    instance parameter when placed (with probability p0, or when stuck) so that every chosen parameter becomes
    an ancestor of the query. None when the process gets stuck (the caller redraws the graph)."""
    p0 = rng.random()
    p1 = abs(rng.gauss(0.0, 1.0))
    out_degree = {v: len(s) for v, s in t.succs.items()}
    zero_out = [v for v, deg in out_degree.items() if deg == 0]
    zero_set = set(zero_out)
    remain = [v for v in t.preds if v != RNG]
    stack: set[Param] = set()  # only membership matters; pools keep the deterministic order of zero_out
    order: list[Param] = []
    pool = list(zero_out)
    while remain:
        if order:
            pool = [v for v in zero_out if v in stack]
        if not pool:
            return None
        picked = pick(rng, pool)
        order.append(picked)
        remain.remove(picked)
        zero_out.remove(picked)
        zero_set.discard(picked)
        for v in t.preds[picked]:
            out_degree[v] -= 1
            if out_degree[v] == 0:
                zero_out.append(v)
                zero_set.add(v)
        stack.discard(picked)
        need_to_pick = stack.isdisjoint(zero_set)
        if picked[0] == 0:
            if (need_to_pick or rng.random() < p0) and remain:
                source_pool = zero_out if need_to_pick else remain
                values = [p1 * (v[0] == 1) + p1 * (v not in stack) for v in source_pool]
                source = _softmax_choice(source_pool, values, rng)
                t.add_edge(source, picked)
                stack.add(source)
        else:
            stack.update(t.preds[picked])
    order.reverse()
    return order


def extra_capacity(order: list[Param], max_param: int = 4) -> list[int]:
    """Per Topo position, how many extra operations that instance parameter may carry (official
    ``design``)."""
    return [max(min(i + 1, max_param) - 2, 0) if p[0] == 0 else 0 for i, p in enumerate(order)]


def design(
    t: Template, order: list[Param], n_op: int, n_op_min: int, rng: random.Random, max_param: int = 4
) -> None:
    """G_nece: give each necessary instance parameter its predecessors (RNG and earlier Topo parameters) so
    that the necessary set has exactly ``n_op`` operations."""
    max_extra = extra_capacity(order, max_param)
    extra = [0] * len(order)
    addable = [i for i, c in enumerate(max_extra) if c > 0]
    for _ in range(n_op - n_op_min):
        idx = pick(rng, addable)
        extra[idx] += 1
        if extra[idx] == max_extra[idx]:
            addable.remove(idx)
    t.add_node(RNG)
    for i, param in enumerate(order):
        if param[0] != 0:
            continue
        pool = [RNG] + order[:i]
        if extra[i] == 0:
            n_sample = 1 if rng.random() < 0.5 else 2
        else:
            n_sample = extra[i] + 2
        n_sample = min(n_sample, i + 1, max_param)
        if n_sample != len(pool):
            for v in t.preds[param]:
                pool.remove(v)
                n_sample -= 1
            if rng.random() < 0.5 and n_sample > 0:
                n_sample -= 1
                t.add_edge(RNG, param)
                pool.remove(RNG)
            pool = rng.sample(pool, n_sample)
        for v in pool:
            t.add_edge(v, param)


def _complete_abstracts(st: Structure, available: set[Param], upto_layer: int) -> list[Param]:
    """Abstract parameters (i <= upto_layer) not yet available whose every dependency is available, lower
    layers first so that chains complete in one pass."""
    found: list[Param] = []
    for i in range(min(upto_layer, st.depth - 2), -1, -1):
        for j in range(st.widths[i]):
            for k in range(i + 1, st.depth):
                p = (1, i, j, k)
                if p not in available and all(q in available for q in st.abstract_preds(p)):
                    available.add(p)
                    found.append(p)
    return found


def design_unused(
    st: Structure,
    t: Template,
    order: list[Param],
    chosen: list[Param],
    remain: list[tuple[int, int, int]],
    rng: random.Random,
    max_param: int = 4,
) -> list[Param]:
    """G_d: every remaining structure edge becomes an unnecessary instance parameter that depends on earlier
    "independent" unnecessary parameters (p3 = 0.5) or on any available parameter; returns the design order
    (Topo, then the unnecessary parameters with the abstract ones they pull in)."""
    problem_order = list(order)
    in_order = set(problem_order)
    available = set(chosen)
    chosen = list(chosen) + _complete_abstracts(st, available, st.depth - 2)
    independent: list[Param] = []
    remain = list(remain)

    def add_abstract(p: Param) -> None:
        if p[0] != 1 or p in in_order:
            return
        for q in st.abstract_preds(p):
            if q[0] == 1:
                add_abstract(q)
            t.add_edge(q, p)
        problem_order.append(p)
        in_order.add(p)

    while remain:
        i, j, k = pick(rng, remain)
        param: Param = (0, i, j, k)
        t.add_node(param)
        is_independent = rng.random() < 0.5
        pool = list(independent if is_independent else chosen)
        n_sample = 1
        max_sample_all = len(pool) + 1
        max_sample = min(max_sample_all, max_param)
        while n_sample < max_sample and rng.random() > 0.5:
            n_sample += 1
        if n_sample == max_sample_all:
            t.add_edge(RNG, param)
        else:
            if rng.random() < 0.5:
                t.add_edge(RNG, param)
                n_sample -= 1
            pool = rng.sample(pool, n_sample)
        for v in pool:
            add_abstract(v)
            t.add_edge(v, param)
        remain.remove((i, j, k))
        chosen.append(param)
        available.add(param)
        chosen.extend(_complete_abstracts(st, available, i))
        if is_independent:
            independent.append(param)
        problem_order.append(param)
        in_order.add(param)
    return problem_order


def random_topological_sort(t: Template, rng: random.Random) -> list[Param]:
    """A uniformly-stepped random topological order (Kahn's algorithm with random choices), RNG included."""
    in_degree = {v: len(p) for v, p in t.preds.items()}
    ready = [v for v, deg in in_degree.items() if deg == 0]
    out: list[Param] = []
    while ready:
        u = ready.pop(below(rng, len(ready)))
        out.append(u)
        for v in t.succs[u]:
            in_degree[v] -= 1
            if in_degree[v] == 0:
                ready.append(v)
    return out


def op_count(t: Template, params: list[Param]) -> int:
    """Operations of a set of parameters: ``max(1, in_degree - 1)`` each (RNG counts as a predecessor)."""
    return sum(max(1, len(t.preds[p]) - 1) for p in params)

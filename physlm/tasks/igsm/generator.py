"""Draw iGSM problems: the official ``IdGen(style='light')`` sampler (spec §1.3) without blind rejection.

The official loop draws the target op once, then redraws every hyper-parameter and a whole problem until the
problem has exactly that op and its template hash is in the split (about 22 attempts, 44 ms per med problem).
Here each attempt is abandoned as soon as its outcome is known, which keeps exactly the accepted problems:

* the op of a problem never exceeds ``s`` (``n_op_min <= m <= s``), so ``s`` is drawn from min(U, U)
  conditioned on ``s >= op`` (a cheap redraw of ``s`` alone);
* the op is fixed once the solution order exists (``n_op_min + min(max(s - n_op_min, 0), cap)``), so a wrong
  op is rejected before predecessors, unnecessary parameters, names, values and text are drawn;
* names, values and text are independent of the graph's shape, so drawing them only for accepted graphs does
  not change the distribution.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass

from physlm.tasks.igsm.catalog import load_catalog
from physlm.tasks.igsm.config import IGSMConfig
from physlm.tasks.igsm.dependency import (
    Rejected,
    choose_params,
    design,
    design_unused,
    extra_capacity,
    op_count,
    random_topological_sort,
    reasonable_sort,
    setup_template,
)
from physlm.tasks.igsm.problem import Problem, draw_rhs, render_solution
from physlm.tasks.igsm.structure import RNG, Param, between, sample_structure

GRAPH_TRIES = 1000
"""Redraws of the graph for one set of hyper-parameters when the solution order gets stuck (official
try_num)."""


@dataclass(frozen=True)
class Hyper:
    """One attempt's hyper-parameters (official ``gen_param_light``)."""

    s: int
    n: int
    m: int
    d: int
    w0: int
    w1: int
    p: float
    e: int


@functools.lru_cache(maxsize=4096)
def _shape_weights(s: int, max_edge: int, largest: int = 4) -> tuple[float, ...]:
    """Cumulative softmax weights of depth/width 2..largest: ``-(rel - pos)^2`` with rel = (s-1)/(max_edge-1)
    and pos = 0.2, 0.5, 0.8 for 2, 3, 4 (renormalised when a CPU preset caps the value below 4)."""
    rel = (s - 1) / (max_edge - 1)
    w = [math.exp(-((rel - pos) ** 2)) for pos in (0.2, 0.5, 0.8)][: largest - 1]
    total = sum(w)
    cum = [sum(w[: i + 1]) / total for i in range(len(w))]
    cum[-1] = 1.0
    return tuple(cum)


def _cum_pick(cum: tuple[float, ...], rng: random.Random) -> int:
    r = rng.random()
    for value, bound in enumerate(cum, start=2):
        if r < bound:
            return value
    return len(cum) + 1


def draw_hyper(config: IGSMConfig, target_op: int, rng: random.Random) -> Hyper:
    """Hyper-parameters of one attempt; ``s`` is conditioned on ``s >= target_op`` (see the module
    docstring)."""
    if config.op is not None:
        s = config.op
    else:
        while True:
            s = min(between(rng, 1, config.max_op), between(rng, 1, config.max_op))
            if s >= target_op:
                break
    n = max(between(rng, 1, s), between(rng, 1, s))
    m = between(rng, n, s)
    depth_cum = _shape_weights(s, config.max_edge, config.max_depth)
    width_cum = _shape_weights(s, config.max_edge, config.max_width)
    d = _cum_pick(depth_cum, rng)
    t0, t1 = _cum_pick(width_cum, rng), _cum_pick(width_cum, rng)
    w0, w1 = min(t0, t1), max(t0, t1)
    p = rng.random()
    min_e = (d - 1) * w0
    e = min(between(rng, min_e, config.max_edge), between(rng, min_e, config.max_edge))
    return Hyper(s=s, n=n, m=m, d=d, w0=w0, w1=w1, p=p, e=e)


def _mild_shuffle(order: list[Param], level: int, rng: random.Random) -> list[Param]:
    """Official ``shuffle('mild_k')``: each sentence moves at most ``level`` places."""
    items = [p for p in order if p != RNG]
    keyed = [(i + between(rng, 0, level), i) for i in range(len(items))]
    out: list[Param] = []
    for slot in range(len(items) + level):
        bucket = [i for key, i in keyed if key == slot]
        rng.shuffle(bucket)
        out += [items[i] for i in bucket]
    return out


def _attempt(
    config: IGSMConfig, hyper: Hyper, target_op: int, perm_level: int, rng: random.Random, early: bool = True
) -> Problem:
    for _ in range(GRAPH_TRIES):
        st = sample_structure(hyper.d, hyper.w0, hyper.w1, hyper.e, hyper.p, rng)
        record, n_op_min = choose_params(st, hyper.n, hyper.m, rng)
        template = setup_template(st, record.chosen)
        topo = reasonable_sort(template, rng)
        if topo is not None:
            break
    else:
        raise Rejected("no valid solution order")
    n_op = n_op_min + min(max(hyper.s - n_op_min, 0), sum(extra_capacity(topo)))
    if early and n_op != target_op:
        raise Rejected(f"op {n_op} != {target_op}")
    design(template, topo, n_op, n_op_min, rng)
    design_order = design_unused(st, template, topo, record.chosen, record.remain, rng)
    order = design_order if perm_level == 6 else random_topological_sort(template, rng)

    rhs = {}
    values: dict[Param, int] = {}
    for p in order:
        if p == RNG:
            continue
        preds = template.preds[p]
        if p[0] == 0:
            rhs[p] = draw_rhs(preds, rng)
            values[p] = rhs[p].value(values)
        else:
            values[p] = _abstract_value(st.children[p[1]][p[2]], p, values)
    if perm_level == 5:
        order = list(order)
        rng.shuffle(order)
    elif perm_level <= 4:
        order = _mild_shuffle(order, perm_level, rng)
    layer_names, item_names = load_catalog(config.catalog_items).sample_names(st.depth, st.widths, rng)
    problem = Problem(
        structure=st,
        layer_names=layer_names,
        item_names=item_names,
        template=template,
        topo=topo,
        problem_order=[p for p in order if p != RNG and p[0] == 0],
        rhs=rhs,
        values=values,
        op=n_op,
        p_format=config.p_format,
        perm_level=perm_level,
    )
    render_solution(problem, topo, rng)
    if n_op != target_op:
        raise Rejected(f"op {n_op} != {target_op}")
    if not config.hash_ok(problem.hash_bucket):
        raise Rejected("template hash outside the split")
    return problem


def _abstract_value(kids: list[int], p: Param, values: dict[Param, int]) -> int:
    _, i, j, k = p
    if k == i + 1:
        return sum(values[(0, i, j, x)] for x in kids) % 23
    return sum(values[(0, i, j, x)] * values[(1, i + 1, x, k)] for x in kids) % 23


def generate_problem_blind(config: IGSMConfig, rng: random.Random) -> Problem:
    """The official blind rejection loop (every attempt built in full, ``s`` unconditioned), for benchmarks
    and for checking that :func:`generate_problem` keeps the same distribution."""
    target_op = (
        config.op
        if config.op is not None
        else min(between(rng, 1, config.max_op), between(rng, 1, config.max_op))
    )
    perm_level = config.perm_level if config.perm_level is not None else between(rng, 0, 6)
    unconditioned = config.replace(op=None) if config.op is None else config
    for _ in range(config.max_attempts):
        if unconditioned.op is None:
            hyper = draw_hyper(
                unconditioned, 1, rng
            )  # target 1: every s is accepted, as in the official code
        else:
            hyper = draw_hyper(unconditioned, target_op, rng)
        try:
            return _attempt(config, hyper, target_op, perm_level, rng, early=False)
        except Rejected:
            continue
    raise RuntimeError(f"no iGSM problem with op={target_op} in {config.max_attempts} attempts")


def generate_problem(config: IGSMConfig, rng: random.Random) -> Problem:
    """One problem drawn as the official ``IdGen(max_op, max_edge, op, perm_level, detail_level=0)`` draws it:
    the target op (min of two uniform draws, or ``config.op``) and the perm level are drawn afresh per problem
    (spec §8.3, pitfall 1); the problem is redrawn until its op matches and its hash is in
    ``config.split``."""
    target_op = (
        config.op
        if config.op is not None
        else min(between(rng, 1, config.max_op), between(rng, 1, config.max_op))
    )
    perm_level = config.perm_level if config.perm_level is not None else between(rng, 0, 6)
    for attempt in range(1, config.max_attempts + 1):
        if config.op is None and attempt % config.redraw_op_after == 0:
            target_op = min(between(rng, 1, config.max_op), between(rng, 1, config.max_op))
        hyper = draw_hyper(config, target_op, rng)
        try:
            problem = _attempt(config, hyper, target_op, perm_level, rng)
        except Rejected:
            continue
        if op_count(problem.template, problem.topo) != problem.op:
            raise AssertionError("internal error: op count of the necessary set disagrees with the design")
        return problem
    raise RuntimeError(
        f"no iGSM problem with op={target_op} in {config.max_attempts} attempts "
        f"(max_op={config.max_op}, max_edge={config.max_edge}); is op reachable with this max_edge?"
    )

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from physlm.tasks.igsm import generate_problem, preset, problem_labels
from physlm.tasks.igsm.labels import UNKNOWN_VALUE, whole_graph
from physlm.tasks.igsm.structure import RNG


def _ancestors(preds, p):
    seen, todo = set(), [p]
    while todo:
        for q in preds[todo.pop()]:
            if q != RNG and q not in seen:
                seen.add(q)
                todo.append(q)
    return seen


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), name=st.sampled_from(["micro", "tiny", "small", "med"]))
def test_labels_match_the_graph(seed, name):
    p = generate_problem(preset(name, split="all"), random.Random(seed))
    lab = problem_labels(p)
    preds = whole_graph(p)
    params = lab.params
    assert params == p.structure.all_params()
    # nece(A): A is the query or one of its ancestors, and that set is exactly the solution's parameters
    nece_set = {q for q, v in zip(params, lab.nece) if v}
    assert nece_set == _ancestors(preds, p.query) | {p.query} == set(p.topo)
    # dep(A, B): B is a transitive dependency of A
    for a, row in zip(params, lab.dep):
        anc = _ancestors(preds, a)
        assert {b for b, v in zip(params, row) if v} == anc
    T = len(p.topo)
    assert len(lab.known) == len(lab.value) == len(lab.can_next) == len(lab.nece_next) == T + 1
    for t in range(T + 1):
        known = set(p.topo[:t])
        for i, q in enumerate(params):
            assert lab.known[t][i] == int(q in known)
            assert lab.value[t][i] == (p.values[q] if q in known else UNKNOWN_VALUE)
            deps_known = all(d == RNG or d in known for d in preds[q])
            # can_next only when every dependency is known and A itself is not
            assert lab.can_next[t][i] == int(deps_known and q not in known)
            assert lab.nece_next[t][i] == lab.can_next[t][i] * lab.nece[i]
    # the next solution step is always can_next and nece_next
    for t, q in enumerate(p.topo):
        assert lab.nece_next[t][params.index(q)] == 1


def test_missing_instance_slots_are_isolated():
    p = generate_problem(preset("med", split="all"), random.Random(4))
    lab = problem_labels(p)
    edges = {(0, i, j, k) for i, j, k in p.structure.edges}
    slots = [i for i, q in enumerate(lab.params) if q[0] == 0 and q not in edges]
    for i in slots:
        assert lab.nece[i] == 0 and all(row[i] == 1 for row in lab.can_next)
        assert not any(lab.dep[i]) and not any(row[i] for row in lab.dep)


def test_population_is_all_param():
    p = generate_problem(preset("small", split="all"), random.Random(0))
    w, d = p.structure.widths, p.structure.depth
    n_inst = sum(w[i] * w[i + 1] for i in range(d - 1))
    n_abs = sum(w[i] * (d - 1 - i) for i in range(d - 1))
    assert len(problem_labels(p).params) == n_inst + n_abs

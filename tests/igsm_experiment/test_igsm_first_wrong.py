"""The can_next probe on the first wrong parameter of generated solutions (Part 2.1 Fig 8b)."""

from __future__ import annotations

import random

from physlm.probing.fit import FitConfig
from physlm.probing.igsm_first_wrong import first_wrong_probe, first_wrong_row, sentence_spans
from physlm.probing.igsm_vprobe import IGSMProbeConfig


def _problem_with_a_dependent_query():
    from physlm.tasks.igsm import generate_problem, preset
    from physlm.tasks.igsm.structure import RNG

    rng = random.Random("first-wrong")
    while True:
        p = generate_problem(preset("tiny", op=3), rng)
        if any(q != RNG for q in p.template.preds[p.query]):
            return p


def test_sentence_spans_end_at_each_period_and_stop_at_ans():
    tokens = ["Define", "a", ".", "Define", "b", ".", "[ANS]", "3"]
    assert sentence_spans(tokens) == [(0, 3), (3, 6)]
    assert sentence_spans(["Define", "a", ".", "Define"]) == [(0, 3), (3, 4)]


def test_first_wrong_parameter_and_its_true_can_next():
    p = _problem_with_a_dependent_query()
    sol = list(p.solution_tokens)
    spans = sentence_spans(sol)
    last = sol[spans[-1][0] : spans[-1][1]]
    # the query first: its dependencies are not computed yet, so can_next(query) is false
    found = first_wrong_row(p, last + ["[ANS]", str(p.answer)])
    assert found["status"] == "first wrong parameter"
    assert found["name"] == p.name(p.query) and found["start"] == 0 and found["can_next"] == 0
    assert found["nece_next"] == 0
    # a correct first sentence, then the first sentence's parameter again: a redefinition (not computable)
    first = sol[spans[0][0] : spans[0][1]]
    again = first_wrong_row(p, first + first)
    assert again["status"] == "first wrong parameter" and again["start"] == len(first) and again["can_next"] == 0
    # a computable parameter with a wrong result (its sentence has a calculation): can_next = 1
    i, (start, end) = next((i, s) for i, s in enumerate(spans) if sol[s[0] : s[1]].count("=") >= 2)
    wrong = sol[:end]
    wrong[-2] = str((int(wrong[-2]) + 1) % 23)  # "... = <result> ."
    arithmetic = first_wrong_row(p, wrong)
    assert arithmetic["status"] == "first wrong parameter" and arithmetic["start"] == start
    assert arithmetic["can_next"] == 1
    assert first_wrong_row(p, sol + ["[ANS]", str(p.answer)])["status"] == "correct"


def test_first_wrong_probe_runs_end_to_end(tiny_igsm_model, tiny_records):
    config = IGSMProbeConfig(draws_per_problem=3, n_boot=20, embedding_update="suffix", first_wrong=True,
                             first_wrong_problems=3, fit=FitConfig(max_epochs=1, batch_size=8))
    rows, summary = first_wrong_probe(tiny_igsm_model, "tiny", tiny_records[:3], tiny_records[3:], config)
    assert summary["problems"] == 3 and sum(summary["statuses"].values()) == 3
    assert {r["population"] for r in rows} <= {"define", "first_wrong"}
    define = [r for r in rows if r["population"] == "define"]
    assert define and all(r["target"] == "can_next" and r["cell"] == "in_dist" for r in define)


def test_labels_along_a_generated_order_with_a_parameter_outside_g_d():
    """A model may compute an unused abstract parameter (correctly): the labels along its order still exist."""
    from physlm.tasks.igsm import generate_problem, preset, problem_labels

    rng = random.Random("outside")
    for _ in range(200):
        p = generate_problem(preset("tiny"), rng)
        outside = [q for q in p.structure.all_params() if q[0] == 1 and q not in p.template.preds]
        if outside:
            break
    labels = problem_labels(p, order=[outside[0], p.query])
    i = labels.params.index(outside[0])
    assert labels.known[1][i] == 1 and labels.value[1][i] == 23 and labels.can_next[1][i] == 0

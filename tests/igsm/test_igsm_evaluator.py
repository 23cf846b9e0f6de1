import dataclasses
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from physlm.tasks.igsm import evaluate_text, generate_problem, parse_problem, preset
from physlm.tasks.igsm.problem import render_solution
from physlm.tasks.igsm.reask import _ancestor_order

# Spec §1.5: the official seed-42 iGSM-med op=2 example. The spec elides the middle of the problem ("...");
# the sentence about Octopus Den's Giraffe is ours, so that every parameter the text names is defined.
PENGUIN_PROBLEM = (
    " The number of each Penguin Beach's Giraffe equals 6. The number of each Octopus Den's Leopard equals"
    " each Octopus Den's Giraffe. The number of each Octopus Den's Giraffe equals 13 times as much as each"
    " Penguin Beach's Giraffe. How many Animal does Penguin Beach have?"
)
GIRAFFE = " Define Penguin Beach's Giraffe as e; so e = 6."
ANIMAL = " Define Penguin Beach's Animal as J;"
PENGUIN_SOLUTION = (
    " Define Penguin Beach's Giraffe as e; so e = 6. Define Penguin Beach's Animal as J; so J = e = 6."
)


def test_penguin_beach_example_is_parsed_and_judged_correct():
    problem = parse_problem(PENGUIN_PROBLEM)
    assert problem.query == ("Penguin Beach", "Animal")
    assert problem.hierarchy == ("Zoo", "Enclosure", "Animal", "Bone")
    assert problem.value(("Octopus Den", "Leopard")) == 13 * 6 % 23
    v = evaluate_text(PENGUIN_PROBLEM, PENGUIN_SOLUTION, " 6")
    assert v.correct and v.answer == 6 and v.expected == 6
    assert v.first_error is None and v.unnecessary == 0 and v.unnecessary_ops == 0 and v.ops == 2


def test_penguin_beach_with_an_unnecessary_step_is_correct_but_counted():
    extra = " Define Octopus Den's Giraffe as x; so x = 13 * e = 13 * 6 = 9."
    solution = PENGUIN_SOLUTION.replace(
        " Define Penguin Beach's Animal", extra + " Define Penguin Beach's Animal"
    )
    v = evaluate_text(PENGUIN_PROBLEM, solution)
    assert v.correct and v.unnecessary == 1 and v.unnecessary_ops == 1


@pytest.mark.parametrize(
    "solution,reason",
    [
        (
            GIRAFFE + ANIMAL + " so J = e = 7.",
            "arith",
        ),
        (
            ANIMAL + " so J = e = 6." + GIRAFFE,
            "before",
        ),
        (
            GIRAFFE.replace("6", "5") + ANIMAL + " so J = e = 5.",
            "wrong",
        ),
        (" Define Penguin Beach's Animal as J; so J = 6.", "dependencies"),
        (" Define Penguin Beach's Giraffe as e; so e = 6.", "not the query"),
        (" Define Penguin Beach's Lion as e; so e = 6.", "not a parameter"),
        (
            GIRAFFE + " Define Penguin Beach's Animal as e; so e = e = 6.",
            "twice",
        ),
        (" Define Penguin Beach's Giraffe as e; so e = 6. Define Penguin Beach's Animal as J; so", "so"),
        ("", "no solution"),
        (" blah blah 42 ;;; = = .", "Define"),
    ],
)
def test_penguin_beach_mutations_are_rejected(solution, reason):
    v = evaluate_text(PENGUIN_PROBLEM, solution)
    assert not v.correct
    assert reason in v.first_error


def test_back_steps_are_skipped_and_counted():
    solution = " Define Penguin Beach's Animal as BACK." + PENGUIN_SOLUTION
    v = evaluate_text(PENGUIN_PROBLEM, solution)
    assert v.correct and v.retries == 1 and v.steps == 2


def test_op3_step_from_the_spec_checks_its_arithmetic():
    # spec §1.5: "Define North Star University's Classroom as E; T = D + R = 2 + 5 = 7; c = T + h = 7 + 4
    # = 11; so E = c + X = 11 + 2 = 13." -- the symbols D, R, h, X must be defined before; here they are not.
    sol = " Define North Star University's Classroom as E; T = D + R = 2 + 5 = 7; so E = T = 7."
    problem = (
        " The number of each North Star University's Physics Lab equals 3."
        " How many Classroom does North Star University have?"
    )
    v = evaluate_text(problem, sol)
    assert not v.correct and "before it is defined" in v.first_error


def _mutations(problem, rng):
    """(name, mutated solution) pairs for one generated problem."""
    sentences = problem.solution_text.strip()[:-1].split(". ")
    out = []
    # wrong arithmetic: change the result of the last clause of a sentence
    i = rng.randrange(len(sentences))
    head, _, result = sentences[i].rpartition(" = ")
    bad = sentences[:i] + [f"{head} = {(int(result) + 1) % 23}"] + sentences[i + 1 :]
    out.append(("arithmetic", bad))
    if len(sentences) >= 2:
        # use before definition: the query's sentence first
        out.append(("order", [sentences[-1]] + sentences[:-1]))
        # skipped step: drop one non-final sentence
        j = rng.randrange(len(sentences) - 1)
        out.append(("skipped", sentences[:j] + sentences[j + 1 :]))
    # truncated: cut the text in the middle of the last sentence
    text = " " + ". ".join(sentences) + "."
    out.append(("truncated", [text[: len(text) - len(sentences[-1]) // 2 - 1].strip()]))
    return [(name, " " + ". ".join(s) + ".") for name, s in out]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), name=st.sampled_from(["micro", "tiny", "small", "med"]))
def test_evaluator_rejects_mutated_solutions(seed, name):
    rng = random.Random(seed)
    p = generate_problem(preset(name, split="all"), rng)
    for kind, solution in _mutations(p, rng):
        v = evaluate_text(p.problem_text, solution)
        assert not v.correct, (kind, p.problem_text, solution)
        assert v.first_error
    wrong = evaluate_text(p.problem_text, p.solution_text, f" {(p.answer + 1) % 23}")
    assert not wrong.correct and "stated answer" in wrong.first_error


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_redundant_solutions_are_correct_and_counted(seed):
    rng = random.Random(seed)
    p = generate_problem(preset("small", split="all"), rng)
    necessary = set(p.topo)
    unnecessary = [q for q in p.template.preds if q[0] >= 0 and q not in necessary]
    if not unnecessary:
        return
    # an unnecessary parameter that does not depend on the query (some do)
    chains = [_ancestor_order(p.template, u, rng) for u in unnecessary]
    chains = [c for c in chains if p.query not in c]
    if not chains:
        return
    extra = [q for q in rng.choice(chains) if q not in necessary]
    # unnecessary parameters may depend on necessary ones, but never the other way round
    order = p.topo[:-1] + extra + p.topo[-1:]
    q = dataclasses.replace(p)
    render_solution(q, order, rng)
    v = evaluate_text(p.problem_text, q.solution_text)
    assert v.correct and v.unnecessary == len(extra)
    assert v.unnecessary_ops == q.solution_text.count(";") - p.op


@settings(max_examples=30, deadline=None)
@given(problem=st.text(max_size=80), solution=st.text(max_size=80))
def test_garbage_never_raises(problem, solution):
    v = evaluate_text(problem, solution)
    assert not v.correct and v.first_error


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10**6), cut=st.floats(0, 1), junk=st.sampled_from(["", " Zebra", " ;", " = 3", " x"])
)
def test_truncated_or_polluted_solutions_never_raise(seed, cut, junk):
    p = generate_problem(preset("tiny", split="all"), random.Random(seed))
    text = p.solution_text[: int(len(p.solution_text) * cut)] + junk
    v = evaluate_text(p.problem_text, text)
    if not v.correct:
        assert v.first_error
    else:
        # only a complete solution may be judged correct (a missing final period changes no step)
        assert text.rstrip(".") == p.solution_text.rstrip(".")


def test_unknown_names_in_the_problem_give_a_clear_verdict():
    v = evaluate_text(
        " The number of each Foo's Bar equals 3. How many Bar does Foo have?",
        " Define Foo's Bar as a; so a = 3.",
    )
    assert not v.correct and v.first_error.startswith("problem:")
    assert re.search(r"Foo", v.first_error)


def test_names_with_apostrophes_and_names_in_two_categories():
    # "Trader Joe's" contains "'s"; "Milk" is both a Product and an Ingredient (the edge decides: Product)
    problem = " The number of each Trader Joe's's Milk equals 5. How many Product does Trader Joe's have?"
    parsed = parse_problem(problem)
    assert parsed.layer["Milk"] == parsed.layer["Trader Joe's"] + 1
    solution = " Define Trader Joe's's Milk as a; so a = 5. Define Trader Joe's's Product as b; so b = a = 5."
    assert evaluate_text(problem, solution, "5").correct

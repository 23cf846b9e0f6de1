"""Scoring generated iGSM solutions: the split at [ANS], the evaluator's verdicts, level-1 statistics."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from physlm.analysis.igsm_eval import (
    IGSMEvalConfig,
    eval_cells,
    evaluate_model,
    greedy_continue,
    score_problem,
    split_generation,
    summarize,
    wilson_interval,
)


def _truth(problem):
    return [*problem.solution_tokens, "[ANS]", str(problem.answer)]


def test_split_generation_cuts_at_the_answer_marker():
    solution, answer = split_generation(["Define", "A", "'s", "B", "as", "x", ";", "[ANS]", "7", "9"])
    assert solution == "Define A's B as x;"
    assert answer == "7"
    assert split_generation(["so", "x", "=", "3", "."]) == ("so x = 3.", None)
    assert split_generation(["[ANS]"]) == ("", "")


def test_the_true_solution_scores_correct_and_level1(tiny_problems):
    for problem in tiny_problems:
        r = score_problem(problem, _truth(problem))
        assert r["correct"] and r["answer_correct"], r["first_error"]
        assert r["unnecessary"] == 0 and r["unnecessary_ops"] == 0
        assert r["error_kind"] == "correct"


def test_broken_solutions_are_caught(tiny_problems):
    problem = tiny_problems[0]
    wrong_answer = [*problem.solution_tokens, "[ANS]", str((problem.answer + 1) % 23)]
    r = score_problem(problem, wrong_answer)
    assert not r["correct"] and not r["answer_correct"]
    truncated = problem.solution_tokens[:-3]
    r = score_problem(problem, truncated)
    assert not r["correct"] and r["first_error"] is not None


def test_an_extra_unnecessary_parameter_is_counted():
    """A solution that first computes an unnecessary parameter (and its own dependencies) is still correct,
    and the evaluator counts every unnecessary parameter it defines (level-0 behaviour)."""
    from physlm.tasks.igsm import generate_problem, preset
    from physlm.tasks.igsm.problem import render_solution
    from physlm.tasks.igsm.reask import _ancestor_order

    rng = random.Random(3)
    for _ in range(200):
        problem = generate_problem(preset("tiny"), rng)
        extra = [p for p in problem.template.preds if p[0] != -1 and p not in problem.topo]
        if extra:
            break
    else:
        pytest.fail("no tiny problem with an unnecessary parameter in 200 draws")
    chain = _ancestor_order(problem.template, extra[0], rng)
    order = chain + [p for p in problem.topo if p not in chain]
    longer = dataclasses.replace(problem)
    render_solution(longer, order, random.Random(0))
    r = score_problem(problem, [*longer.solution_tokens, "[ANS]", str(problem.answer)])
    assert r["correct"], r["first_error"]
    assert r["unnecessary"] == sum(1 for p in chain if p not in problem.topo) >= 1
    assert r["unnecessary_ops"] > 0


def test_summarize_counts_and_wilson_interval():
    rows = [
        {"op": 1, "correct": True, "answer_correct": True, "unnecessary": 0, "unnecessary_ops": 0,
         "unnecessary_available": 3, "error_kind": "correct"},
        {"op": 2, "correct": True, "answer_correct": True, "unnecessary": 2, "unnecessary_ops": 3,
         "unnecessary_available": 5, "error_kind": "correct"},
        {"op": 2, "correct": False, "answer_correct": True, "unnecessary": 0, "unnecessary_ops": None,
         "unnecessary_available": 4, "error_kind": "arithmetic"},
    ]
    s = summarize(rows)
    assert s["n"] == 3 and s["correct"] == 2 and s["accuracy"] == pytest.approx(2 / 3)
    assert s["mean_unnecessary_params"] == pytest.approx(1.0)  # over the two correct solutions
    assert s["frac_with_unnecessary"] == pytest.approx(0.5)
    assert s["mean_unnecessary_available"] == pytest.approx(4.0)
    assert s["errors"] == {"arithmetic": 1}
    assert s["by_op"] == {"1": {"correct": 1, "n": 1}, "2": {"correct": 1, "n": 2}}
    low, high = wilson_interval(2, 3)
    assert 0 < low < 2 / 3 < high < 1
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    # the textbook value for 5/10: [0.2366, 0.7634]
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)


def test_cells_cover_in_distribution_ood_and_reask():
    names = [c.name for c in eval_cells("tiny", IGSMEvalConfig())]
    assert names == ["op<=4", "op=4", "op=6", "op=7", "op=8", "op=6 reask"]
    cells = eval_cells("tiny", IGSMEvalConfig(ood=False, reask=False))
    assert [c.config.split for c in cells] == ["test", "test"]


def test_greedy_generation_is_deterministic_and_bounded(tiny_igsm_model):
    prompt = torch.tensor([1, 4, 5, 6])
    a = greedy_continue(tiny_igsm_model, prompt, stop_after=-1, eos_id=-1, n_ctx=20)
    b = greedy_continue(tiny_igsm_model, prompt, stop_after=-1, eos_id=-1, n_ctx=20)
    assert a == b and len(a) == 16
    with torch.no_grad():  # the first greedy token is the argmax of a plain forward pass
        assert a[0] == int(tiny_igsm_model(prompt[None])[0, -1].argmax())
    stop = greedy_continue(tiny_igsm_model, prompt, stop_after=a[2], eos_id=-1, n_ctx=20)
    assert stop == a[: a.index(a[2]) + 2]  # one token (the answer) after the stop marker


def test_evaluate_model_record(tiny_igsm_model):
    config = IGSMEvalConfig(n_problems=1, ood=False, reask=False, n_examples=1, length_factor=1.0)
    record = evaluate_model(tiny_igsm_model, "tiny", config, progress=False)
    assert [c["cell"] for c in record["cells"]] == ["op<=4", "op=4"]
    for cell in record["cells"]:
        assert cell["n"] == 1 and 0.0 <= cell["accuracy"] <= 1.0
        assert cell["ci_low"] <= cell["accuracy"] <= cell["ci_high"]
        assert sum(cell["errors"].values()) == cell["n"] - cell["correct"]
        assert len(cell["examples"]) == 1
    assert record["cells"][1]["by_op"].keys() == {"4"}


def test_batched_generation_matches_one_row_at_a_time(tiny_igsm_model):
    from physlm.analysis.igsm_eval import greedy_batch

    g = torch.Generator().manual_seed(0)
    prompts = [[1, *torch.randint(4, 200, (k,), generator=g).tolist()] for k in (3, 9, 6)]
    budgets = [7, 4, 10]
    stop = 17
    batched = greedy_batch(tiny_igsm_model, prompts, budgets, stop_after=stop, eos_id=-1)
    for prompt, budget, got in zip(prompts, budgets, batched):
        alone = greedy_continue(tiny_igsm_model, torch.tensor(prompt), stop, -1, len(prompt) + budget)
        assert got == alone

"""The can_next probe on the first wrong parameter of the model's own solutions (Part 2.1 Fig 8b; 2.2 §3.1).

A can_next V-probe is trained in the *define* layout: the document cut at a solution-sentence boundary, then
``Define A as`` for a drawn parameter A, read at "as" (the Part 2.2 read-out right after "Define [param A] as").
The model then writes greedy solutions to test problems at the first OOD op; the evaluator
(:func:`physlm.tasks.igsm.evaluate_text`) finds each solution's first wrong sentence. Where that sentence
defines a parameter A of the problem, the probe reads the model's own prefix up to "Define A as", and the true
can_next(A) is the generator's label after the earlier (correct) sentences of that solution
(:func:`physlm.tasks.igsm.problem_labels` along the generated order). Reported: how often the probe says false
where the truth is false (the paper: about 60%, against 99% in general), next to the same probe's accuracy on
correct solutions.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from physlm.probing.igsm_config import IGSMProbeConfig
from physlm.probing.igsm_examples import build_examples, examples_from_rows
from physlm.probing.igsm_fit import fit_vprobe
from physlm.probing.igsm_recipe import result_rows, score


def sentence_spans(tokens: Sequence[str]) -> list[tuple[int, int]]:
    """(start, end) token spans of the solution sentences in generated tokens (each ends with its "." token;
    a trailing unfinished sentence is included), up to ``[ANS]``."""
    end = tokens.index("[ANS]") if "[ANS]" in tokens else len(tokens)
    spans, start = [], 0
    for i in range(end):
        if tokens[i] == ".":
            spans.append((start, i + 1))
            start = i + 1
    if start < end:
        spans.append((start, end))
    return spans


def defined_param(tokens: Sequence[str], names: dict[str, int]) -> int | None:
    """The parameter index a sentence ``Define <A's B> as ...`` defines (None if it names none)."""
    from physlm.tasks.igsm import detokenize

    if len(tokens) < 5 or tokens[0] != "Define" or tokens[4] != "as":
        return None
    return names.get(detokenize(list(tokens[1:4])))


def first_wrong_row(problem: Any, generated: Sequence[str]) -> dict[str, Any]:
    """Where a greedy solution first goes wrong: ``{"status": ...}`` and, for a wrong step that defines a
    parameter A, A's index, the span start of that sentence (a generated-token index), and the true can_next(A)
    and nece_next(A) after the solution's earlier sentences."""
    from physlm.analysis.igsm_eval import split_generation
    from physlm.tasks.igsm import evaluate_text, problem_labels

    solution, answer = split_generation(generated)
    verdict = evaluate_text(problem.problem_text, solution, answer)
    if verdict.correct:
        return {"status": "correct"}
    if verdict.error_step is None:
        return {"status": "wrong without a wrong step", "error": verdict.first_error}
    labels = problem_labels(problem)
    names = {name: i for i, name in enumerate(labels.names)}
    spans = sentence_spans(list(generated))
    if verdict.error_step >= len(spans):
        return {"status": "wrong step not found", "error": verdict.first_error}
    start, end = spans[verdict.error_step]
    a = defined_param(generated[start:end], names)
    if a is None:
        return {"status": "wrong step names no parameter", "error": verdict.first_error}
    earlier = [defined_param(generated[s:e], names) for s, e in spans[: verdict.error_step]]
    known = [labels.params[i] for i in earlier if i is not None]
    along = problem_labels(problem, order=[*known, labels.params[a]])
    t = len(known)
    return {"status": "first wrong parameter", "param": a, "name": labels.names[a], "start": start,
            "can_next": along.can_next[t][a], "nece_next": int(along.can_next[t][a] and labels.nece[a]),
            "error": verdict.first_error}


def draw_problems(preset_name: str, n: int, seed: int, max_doc_tokens: int) -> list[Any]:
    """``n`` test-split problems at the preset's first OOD op whose error-free document fits."""
    from physlm.tasks.igsm import OOD_OPS, generate_problem, preset

    config = preset(preset_name, split="test", op=OOD_OPS[preset_name][0])
    rng = random.Random(f"physlm-igsm-first-wrong:{seed}")
    out = []
    for _ in range(50 * n):
        problem = generate_problem(config, rng)
        if len(problem.document_tokens()) <= max_doc_tokens:
            out.append(problem)
            if len(out) == n:
                return out
    raise ValueError(f"fewer than {n} {preset_name} OOD problems fit {max_doc_tokens} tokens")


def first_wrong_probe(
    model: Any, preset_name: str, train_records: Sequence[dict], test_records: Sequence[dict],
    config: IGSMProbeConfig, batch_size: int = 16, test_cell: str = "in_dist",
) -> tuple[list[dict], dict[str, Any]]:
    """Result rows and a summary of the first-wrong-parameter probe (see the module docstring): population
    ``define`` = the define-layout can_next probe on correct test solutions, ``first_wrong`` = on the model's own
    first wrong parameters (``class_0_accuracy`` = how often it flags a parameter that cannot be computed).
    ``test_records`` are correct solutions of the cell ``test_cell``."""
    from physlm.analysis.igsm_eval import greedy_batch
    from physlm.tasks.igsm import OOD_OPS, igsm_token_table

    table = igsm_token_table()
    n_ctx, layer, mode = model.cfg.n_ctx, model.cfg.n_layers - 1, config.embedding_update
    k = config.draws_per_problem
    train = build_examples(train_records, "can_next", k, config.seed, mode, n_ctx, layout="define")
    fitted = fit_vprobe(model, train, 2, layer, config)
    reference = build_examples(test_records, "can_next", k, config.seed + 1, mode, n_ctx, layout="define")
    rows = result_rows("can_next", layer, "trained", score(fitted.predict(reference), reference, 2, config),
                       test_cell, "define", len(reference))

    problems = draw_problems(preset_name, config.first_wrong_problems, config.seed, n_ctx - 1)
    prompts = [[table.bos_id] + table.encode(["[PROB]", *p.problem_tokens(), "[SOL]"]) for p in problems]
    budgets = [min(n_ctx - len(q), 3 * (len(p.solution_tokens) + 2) + 20) for p, q in zip(problems, prompts)]
    generated: list[list[int]] = []
    for s in range(0, len(problems), batch_size):
        generated += greedy_batch(model, prompts[s : s + batch_size], budgets[s : s + batch_size],
                                  table.encode(["[ANS]"])[0], table.eos_id)
    found = [first_wrong_row(p, table.decode(ids)) for p, ids in zip(problems, generated)]
    statuses: dict[str, int] = {}
    for f in found:
        statuses[f["status"]] = statuses.get(f["status"], 0) + 1
    cell = f"op={OOD_OPS[preset_name][0]}"
    summary: dict[str, Any] = {"cell": cell, "problems": len(problems), "statuses": statuses, "layer": layer}
    docs, probe_rows = [], []
    for prompt, ids, f in zip(prompts, generated, found):
        if f["status"] == "first wrong parameter":
            prefix = prompt + list(ids[: f["start"]])
            docs.append(prefix)
            probe_rows.append((len(docs) - 1, len(prefix), list(ids[f["start"] : f["start"] + 5]), f["can_next"],
                               (f["param"],), -1))
    examples = examples_from_rows(docs, probe_rows, mode, n_ctx) if probe_rows else None
    if examples is None:
        summary["note"] = "no generated solution has a first wrong step that defines a parameter"
        return rows, summary
    pred = fitted.predict(examples)
    false = examples.labels == 0
    summary.update({
        "first_wrong_params": len(examples), "truth_false": int(false.sum()),
        "probe_false_where_truth_false": float((pred[false] == 0).float().mean()) if bool(false.any()) else None,
        "probe_true_where_truth_true": float((pred[~false] == 1).float().mean()) if bool((~false).any()) else None,
        "examples": [{"param": f["name"], "can_next": f["can_next"], "probe": int(pred[i]), "error": f["error"]}
                     for i, f in enumerate(x for x in found if x["status"] == "first wrong parameter")][:5],
    })
    rows += result_rows("can_next", layer, "trained", score(pred, examples, 2, config), cell, "first_wrong",
                        len(examples))
    return rows, summary

"""Generation evaluation of an iGSM model (spec part2_igsm.md §4): greedy solutions scored by the evaluator.

For each test cell (in distribution: the preset's natural op distribution and op = max_op; out of
distribution: the preset's larger fixed ops; optionally re-asked questions) fresh problems are drawn from the
*test* hash split, so their solution templates never occurred in training. The prompt is
``<bos> [PROB] problem [SOL]``; the model continues greedily until ``[ANS]`` and one answer token (or
``<eos>``, or the end of its context). The generated text is judged by :func:`physlm.tasks.igsm.evaluate_text`, which
checks every step, not only the answer.

Level-0 versus level-1 reasoning (Part 2.1 Result 2): a level-0 reasoner computes every parameter it can; a
level-1 reasoner only the ones the query needs. The evaluator counts the defined parameters the query does
not need (``unnecessary``) and the operations beyond the shortest solution (``unnecessary_ops``); both are
reported per *correct* solution, as in the papers, next to how many unnecessary parameters were available.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from physlm.config import Config
from physlm.rundir import write_atomic
from physlm.tasks.igsm import (
    OOD_OPS,
    IGSMConfig,
    Problem,
    detokenize,
    evaluate_text,
    generate_problem,
    generate_reask,
    igsm_token_table,
    ood_configs,
    preset,
)

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

EVAL_FILE = "igsm_eval.json"


@dataclasses.dataclass(frozen=True)
class IGSMEvalConfig(Config):
    """What the iGSM generation evaluation draws and how."""

    n_problems: int = 50
    """fresh test-split problems per cell"""
    ood: bool = True
    """also evaluate the preset's out-of-distribution op values (physlm.tasks.igsm.OOD_OPS)"""
    reask: bool = True
    """also evaluate re-asked questions of problems at the first OOD op (the papers' reask column)"""
    seed: int = 0
    """seeds the test problems (string-seeded per cell, so they never coincide with the training stream)"""
    n_examples: int = 3
    """generated solutions kept verbatim per cell in igsm_eval.json"""
    length_factor: float = 3.0
    """stop generating after length_factor x (true solution length + 2) + 20 tokens (or at the context end):
    bounds the cost of a model that never writes [ANS]; a correct solution, even one with every computable
    parameter, is far shorter"""
    batch_size: int = 16
    """prompts generated together (left-padded)"""
    device: str = "cpu"
    """recorded for provenance: generation runs wherever the model is"""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.n_problems < 1:
            raise ValueError(f"n_problems must be >= 1, got {self.n_problems}")
        if self.length_factor < 1:
            raise ValueError(f"length_factor must be >= 1, got {self.length_factor}")
        if self.n_examples < 0:
            raise ValueError(f"n_examples must be >= 0, got {self.n_examples}")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One test set: a name, its generator config and whether its questions are re-asked."""

    name: str
    config: IGSMConfig
    reask: bool = False
    ood: bool = False


def eval_cells(preset_name: str, config: IGSMEvalConfig) -> list[Cell]:
    """The test cells of a preset: ``op<=max`` (natural distribution), ``op=max``, each OOD op, and reask."""
    base = preset(preset_name, split="test")
    cells = [Cell(f"op<={base.max_op}", base), Cell(f"op={base.max_op}", base.replace(op=base.max_op))]
    if config.ood:
        cells += [Cell(f"op={op}", cfg, ood=True) for op, cfg in ood_configs(preset_name).items()]
    if config.reask:
        first = OOD_OPS[preset_name][0]
        cells.append(Cell(f"op={first} reask", base.replace(op=first), reask=True, ood=True))
    return cells


@torch.no_grad()
def greedy_continue(
    model: HookedTransformer, prompt: Int[Tensor, " prompt"], stop_after: int, eos_id: int, n_ctx: int
) -> list[int]:
    """Greedy tokens after ``prompt`` (KV-cached, one row): stops one token after ``stop_after`` (the answer
    follows ``[ANS]``), at ``eos_id`` (not included) or when the sequence fills ``n_ctx``."""
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

    if prompt.numel() >= n_ctx:
        raise ValueError(f"prompt of {prompt.numel()} tokens leaves no room in a context of {n_ctx}")
    device = next(model.parameters()).device
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, 1)
    step = prompt.to(device)[None]
    out: list[int] = []
    total = prompt.numel()
    seen_stop = False
    while total < n_ctx:
        logits = model(step, past_kv_cache=cache, attention_mask=torch.ones_like(step))[0, -1]
        tok = int(logits.argmax())
        if tok == eos_id:
            break
        out.append(tok)
        total += 1
        if seen_stop:
            break
        seen_stop = tok == stop_after
        step = torch.tensor([[tok]], device=device)
    return out


@torch.no_grad()
def greedy_batch(
    model: HookedTransformer, prompts: Sequence[Sequence[int]], budgets: Sequence[int], stop_after: int, eos_id: int
) -> list[list[int]]:
    """:func:`greedy_continue` for many prompts at once: left-padded rows with an attention mask (rotary
    positions follow the mask, so every row computes exactly what it would alone). Row ``i`` stops after
    ``budgets[i]`` new tokens, or earlier at the stop rule or at the end of the context."""
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

    if len(prompts) != len(budgets) or not prompts:
        raise ValueError("need one budget per prompt and at least one prompt")
    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    steps = min(max(budgets), model.cfg.n_ctx - width)
    if steps < 1:
        raise ValueError(f"prompts of {width} tokens leave no room in a context of {model.cfg.n_ctx}")
    tokens = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for r, p in enumerate(prompts):
        tokens[r, width - len(p) :] = torch.tensor(list(p))
        mask[r, width - len(p) :] = 1
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, len(prompts))
    out: list[list[int]] = [[] for _ in prompts]
    done = [b < 1 for b in budgets]
    stop_seen = [False] * len(prompts)
    step_in, step_mask = tokens.to(device), mask.to(device)
    for _ in range(steps):
        logits = model(step_in, past_kv_cache=cache, attention_mask=step_mask)[:, -1]
        next_tok = logits.argmax(-1).cpu()
        for r in range(len(prompts)):
            if done[r]:
                continue
            tok = int(next_tok[r])
            if tok == eos_id:
                done[r] = True
                continue
            out[r].append(tok)
            if stop_seen[r] or len(out[r]) >= budgets[r]:
                done[r] = True
            stop_seen[r] = tok == stop_after
        if all(done):
            break
        step_in = next_tok.to(device)[:, None]
        step_mask = torch.ones_like(step_in)
    return out


def split_generation(tokens: Sequence[str]) -> tuple[str, str | None]:
    """(solution text, answer text or None) of generated token strings: the solution ends at ``[ANS]``."""
    tokens = list(tokens)
    if "[ANS]" in tokens:
        cut = tokens.index("[ANS]")
        answer = tokens[cut + 1 : cut + 2]
        return detokenize(tokens[:cut]), (answer[0] if answer else "")
    return detokenize(tokens), None


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n (well behaved at 0 and 1)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _mean(values: Sequence[int | float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def _error_kind(first_error: str | None) -> str:
    """A coarse class of the evaluator's first error (for the error table)."""
    if first_error is None:
        return "correct"
    text = first_error.lower()
    for key, kind in (
        ("wrong answer", "wrong answer"),
        ("arithmetic", "arithmetic"),
        ("dependencies", "wrong dependencies"),
        ("not a parameter", "unknown parameter"),
        ("before it is defined", "use before definition"),
        ("defined twice", "redefinition"),
        ("last step defines", "stops at a non-query parameter"),
        ("truncated", "truncated"),
        ("no solution sentence", "no solution"),
    ):
        if key in text:
            return kind
    return "malformed step"


def score_problem(problem: Problem, generated: Sequence[str]) -> dict[str, Any]:
    """Judge generated token strings for one problem; returns the verdict's fields plus context."""
    solution, answer = split_generation(generated)
    verdict = evaluate_text(problem.problem_text, solution, answer)
    necessary = set(problem.topo)
    graph = [p for p in problem.template.preds if p[0] != -1]
    return {
        "op": problem.op,
        "correct": verdict.correct,
        "answer": verdict.answer,
        "expected": verdict.expected,
        "answer_correct": answer is not None and answer.strip() == str(problem.answer),
        "unnecessary": verdict.unnecessary,
        "unnecessary_ops": verdict.unnecessary_ops,
        "unnecessary_available": sum(1 for p in graph if p not in necessary),
        "steps": verdict.steps,
        "first_error": verdict.first_error,
        "error_kind": _error_kind(verdict.first_error),
        "solution": solution,
    }


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy (with a Wilson interval), answer accuracy, level-1 statistics over correct solutions, errors."""
    n = len(results)
    k = sum(r["correct"] for r in results)
    low, high = wilson_interval(k, n)
    correct = [r for r in results if r["correct"]]
    errors: dict[str, int] = {}
    for r in results:
        if not r["correct"]:
            errors[r["error_kind"]] = errors.get(r["error_kind"], 0) + 1
    by_op: dict[str, list[int]] = {}
    for r in results:
        cell = by_op.setdefault(str(r["op"]), [0, 0])
        cell[0] += int(r["correct"])
        cell[1] += 1
    return {
        "n": n,
        "correct": k,
        "accuracy": k / n if n else None,
        "ci_low": low,
        "ci_high": high,
        "answer_accuracy": _mean([float(r["answer_correct"]) for r in results]),
        "mean_unnecessary_params": _mean([r["unnecessary"] for r in correct]),
        "mean_unnecessary_ops": _mean([r["unnecessary_ops"] for r in correct if r["unnecessary_ops"] is not None]),
        "frac_with_unnecessary": _mean([float(r["unnecessary"] > 0) for r in correct]),
        "mean_unnecessary_available": _mean([r["unnecessary_available"] for r in results]),
        "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        "by_op": {op: {"correct": c, "n": m} for op, (c, m) in sorted(by_op.items(), key=lambda kv: int(kv[0]))},
    }


def _draw_cell_problems(cell: Cell, n: int, seed: int, max_doc_tokens: int) -> tuple[list[Problem], int]:
    """``n`` problems of a cell whose error-free document fits ``max_doc_tokens`` (and how many were dropped)."""
    rng = random.Random(f"physlm-igsm-eval:{seed}:{cell.name}")
    problems, dropped = [], 0
    limit = 50 * n  # a cell whose problems never fit the context must fail loudly, not spin
    while len(problems) < n:
        problem = generate_reask(cell.config, rng) if cell.reask else generate_problem(cell.config, rng)
        if len(problem.document_tokens()) <= max_doc_tokens:
            problems.append(problem)
        else:
            dropped += 1
            if dropped > limit:
                raise ValueError(
                    f"cell {cell.name}: {dropped} problems longer than {max_doc_tokens} tokens for "
                    f"{len(problems)} that fit; use a model with a longer context (n_ctx)"
                )
    return problems, dropped


def evaluate_model(
    model: HookedTransformer, preset_name: str, config: IGSMEvalConfig, n_ctx: int | None = None,
    progress: bool = True, cells: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Greedy solutions for every cell of ``preset_name`` (or only the ones named in ``cells``), scored; the
    ``igsm_eval.json`` record."""
    table = igsm_token_table()
    if model.cfg.d_vocab != table.d_vocab:
        raise ValueError(f"model d_vocab={model.cfg.d_vocab} does not match the iGSM vocabulary ({table.d_vocab})")
    n_ctx = model.cfg.n_ctx if n_ctx is None else min(n_ctx, model.cfg.n_ctx)
    ans_id = table.encode(["[ANS]"])[0]
    cells_out = []
    for cell in eval_cells(preset_name, config):
        if cells is not None and cell.name not in cells:
            continue
        # an error-free document plus <bos> must fit the context (the papers drop longer test problems)
        problems, dropped = _draw_cell_problems(cell, config.n_problems, config.seed, n_ctx - 1)
        prompts = [table.frame(table.encode(["[PROB]", *p.problem_tokens(), "[SOL]"]), close=False) for p in problems]
        # a generous bound on a solution's length (see length_factor), never past the context
        budgets = [min(n_ctx - len(q), int(config.length_factor * (len(p.solution_tokens) + 2)) + 20)
                   for p, q in zip(problems, prompts)]
        order = sorted(range(len(problems)), key=lambda i: len(prompts[i]))  # similar lengths share a batch
        generated: dict[int, list[int]] = {}
        batches = [order[s : s + config.batch_size] for s in range(0, len(order), config.batch_size)]
        for chunk in tqdm(batches, desc=f"eval {cell.name}", disable=not progress, leave=False):
            ids = greedy_batch(model, [prompts[i] for i in chunk], [budgets[i] for i in chunk], ans_id,
                               table.eos_id)
            generated.update(zip(chunk, ids))
        results = [score_problem(p, table.decode(generated[i])) for i, p in enumerate(problems)]
        summary = summarize(results)
        examples = [
            {"problem": p.problem_text, "truth": p.solution_text, "generated": r["solution"],
             "verdict": r["first_error"] or "correct"}
            for p, r in zip(problems[: config.n_examples], results[: config.n_examples])
        ]
        cells_out.append({"cell": cell.name, "ood": cell.ood, "reask": cell.reask,
                          "op": cell.config.op, "dropped_too_long": dropped, **summary, "examples": examples})
    return {"preset": preset_name, "n_ctx": n_ctx, "config": config.to_dict(), "cells": cells_out}


def write_eval(path: str | Path, record: dict[str, Any]) -> Path:
    """Write the evaluation record as JSON (atomically)."""
    path = Path(path)
    write_atomic(path, json.dumps(record, indent=2) + "\n")
    return path


def read_eval(path: str | Path) -> dict[str, Any] | None:
    """The evaluation record of a run, or None when it has none."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None

"""Write iGSM problems with their labels to a HF ``datasets`` dataset, and as plain text for any tokenizer.

Problem ``i`` of a data set is drawn from ``random.Random(f"{seed}:{i}")``, so the data do not depend on
``num_proc`` and the text export of the same seed holds the same problems.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from physlm.tasks.igsm.config import IGSMConfig
from physlm.tasks.igsm.generator import generate_problem
from physlm.tasks.igsm.labels import problem_labels
from physlm.tasks.igsm.problem import Problem
from physlm.tasks.igsm.reask import generate_reask
from physlm.tasks.igsm.tokenizer import igsm_token_table

if TYPE_CHECKING:
    import datasets  # imported on first use: it takes seconds


def features() -> datasets.Features:
    """The explicit ``datasets.Features`` of an iGSM data set (one row per problem; P = |all_param|, T = the
    number of solution sentences)."""
    from datasets import Features, Sequence, Value

    int8_matrix = Sequence(Sequence(Value("int8")))
    return Features(
        {
            "input_ids": Sequence(Value("int32")),  # [PROB] problem [SOL] solution [ANS] answer
            "problem": Value("string"),  # official strings (leading space), problem in p_format order
            "question": Value("string"),
            "solution": Value("string"),
            "answer": Value("int32"),
            "op": Value("int32"),
            "hash_bucket": Value("int32"),
            "p_format": Value("string"),
            "perm_level": Value("int32"),
            "params": Sequence(Sequence(Value("int32"))),  # (P, 4) (kind, layer, item, item-or-category)
            "param_names": Sequence(Value("string")),  # (P,) canonical "A's B"
            "query_index": Value("int32"),
            "nece": Sequence(Value("int8")),  # (P,)
            "dep": int8_matrix,  # (P, P): dep[a][b] = a depends on b
            "known": int8_matrix,  # (T+1, P)
            "value": int8_matrix,  # (T+1, P): 0..22, or 23 when unknown
            "can_next": int8_matrix,  # (T+1, P)
            "nece_next": int8_matrix,  # (T+1, P)
            "in_graph": Sequence(Value("int8")),  # (P,) 1 iff in G_d (else an isolated slot or unused abstract)
            "query_distance": Sequence(Value("int32")),  # (P,) shortest path to the query; -1 = not necessary
            "pos_body_end": Value("int32"),  # last token of the statement (dep probes)
            "pos_question_end": Value("int32"),  # the question's "?"
            "pos_problem_end": Value("int32"),  # last problem token, just before [SOL] (nece probes)
            "pos_steps": Sequence(Value("int32")),  # (T+1,) [SOL], then each solution sentence's "."
        }
    )


def problem_record(problem: Problem, order_labels: bool = True) -> dict[str, Any]:
    """One problem as a row of :func:`features`."""
    table = igsm_token_table()
    doc = problem.document_tokens()
    body, ques = problem.body_tokens(), problem.question_tokens()
    if problem.p_format == "pq":
        body_end, ques_end = len(body), len(body) + len(ques)
    else:
        ques_end, body_end = len(ques), len(ques) + len(body)
    sol_start = len(problem.problem_tokens()) + 1
    steps = [sol_start] + [sol_start + 1 + i for i, t in enumerate(problem.solution_tokens) if t == "."]
    labels = problem_labels(problem)
    return {
        "input_ids": table.encode(doc),
        "problem": problem.problem_text,
        "question": problem.question_text,
        "solution": problem.solution_text,
        "answer": problem.answer,
        "op": problem.op,
        "hash_bucket": problem.hash_bucket,
        "p_format": problem.p_format,
        "perm_level": problem.perm_level,
        "params": [list(p) for p in labels.params],
        "param_names": labels.names,
        "query_index": labels.params.index(problem.query),
        "nece": labels.nece,
        "dep": labels.dep,
        "known": labels.known,
        "value": labels.value,
        "can_next": labels.can_next,
        "nece_next": labels.nece_next,
        "in_graph": labels.in_graph,
        "query_distance": labels.query_distance,
        "pos_body_end": body_end,
        "pos_question_end": ques_end,
        "pos_problem_end": sol_start - 1,
        "pos_steps": steps,
    }


def problem_rng(seed: int, index: int) -> random.Random:
    """The generator of problem ``index`` of a data set with ``seed``."""
    return random.Random(f"igsm:{seed}:{index}")


def draw(config: IGSMConfig, seed: int, index: int, reasked: bool = False) -> Problem:
    """Problem ``index`` of the data set (config, seed); ``reasked`` gives the re-asked variant."""
    rng = problem_rng(seed, index)
    return generate_reask(config, rng) if reasked else generate_problem(config, rng)


def _rows(config_json: str, seed: int, indices: list[list[int]], reasked: bool) -> Iterator[dict[str, Any]]:
    config = IGSMConfig.from_json(config_json)
    for chunk in indices:
        for index in chunk:
            yield problem_record(draw(config, seed, index, reasked))


def export_dataset(
    config: IGSMConfig, n: int, seed: int, out: str | Path, num_proc: int = 1, reasked: bool = False
) -> datasets.Dataset:
    """Generate ``n`` problems with labels into a ``datasets.Dataset`` saved at ``out`` (``save_to_disk``);
    returns the dataset (loaded back from ``out``). ``num_proc`` workers generate in parallel."""
    from datasets import Dataset, load_from_disk

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if num_proc < 1:
        raise ValueError(f"num_proc must be >= 1, got {num_proc}")
    out = Path(out)
    # contiguous chunks; datasets hands each worker a contiguous run of them, so row i is problem i
    size = max(1, min(1000, n // (4 * num_proc)))
    chunks = [list(range(i, min(n, i + size))) for i in range(0, n, size)]
    out.parent.mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix=".igsm-cache-", dir=out.parent))
    try:
        ds = Dataset.from_generator(
            _rows,
            features=features(),
            cache_dir=str(cache),
            gen_kwargs={"config_json": config.to_json(), "seed": seed, "indices": chunks, "reasked": reasked},
            num_proc=min(num_proc, len(chunks)) if num_proc > 1 else None,
        )
        ds.save_to_disk(str(out))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return load_from_disk(str(out))


def export_text(
    config: IGSMConfig, n: int, seed: int, path: str | Path, reasked: bool = False, progress: bool = True
) -> Path:
    """The same problems as :func:`export_dataset` (same config and seed) as JSON lines of the official
    strings: ``problem``, ``solution``, ``answer`` and ``text`` (problem + solution + " Answer: N."), plus
    ``op``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for index in tqdm(range(n), desc="iGSM text", disable=not progress):
            p = draw(config, seed, index, reasked)
            row = {
                "problem": p.problem_text,
                "solution": p.solution_text,
                "answer": p.answer,
                "op": p.op,
                "text": f"{p.problem_text}{p.solution_text} Answer: {p.answer}.",
            }
            handle.write(json.dumps(row) + "\n")
    return path

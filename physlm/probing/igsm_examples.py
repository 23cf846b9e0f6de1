"""V-probe examples for iGSM (spec part2_igsm.md §3.1): (problem, position, parameter) draws with their labels.

Each example truncates a problem's document at a probe position and appends a query suffix (the *marker*
layout ``[START] A [END]``, or ``[START] A [MID] B [END]`` for dep; the *define* layout ``Define A as``, the
Part 2.2 error-detection read-out right after "Define A as" in a solution). Positions (pq format; qp in
brackets):

* ``nece(A)``: at the end of the question (the end of the problem);
* ``dep(A, B)``: at the end of the problem statement, before the question (after the problem);
* ``known``, ``value``, ``can_next``, ``nece_next``: at a solution-sentence boundary drawn uniformly among
  ``[SOL]`` and every sentence's final ".", labelled with the state after that many sentences.

Populations (which parameters A, and B for dep, are drawn): ``all_param`` is the official population (spec
§3.1: it reproduces the paper's majority baselines) and the one probes train on; ``G_d`` keeps the problem's
dependency graph only (the instance slots without a structure edge are trivially labelled: never necessary,
never known, can_next = 1 throughout); ``necessary`` / ``unnecessary`` split A inside G_d by whether the
question needs it (B from G_d), for dep and can_next (Part 2.1 Result 5). ``draws_per_problem`` (position,
parameter) draws per problem and target, without replacement. Labels come from
:func:`physlm.tasks.igsm.problem_record` (the generator's labels), never re-derived here.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Any, Literal

import torch
from jaxtyping import Bool, Int
from torch import Tensor
from tqdm.auto import tqdm

TARGETS = ("nece", "dep", "known", "value", "can_next", "nece_next")
STEP_TARGETS = ("known", "value", "can_next", "nece_next")
N_CLASSES = {"nece": 2, "dep": 2, "known": 2, "value": 24, "can_next": 2, "nece_next": 2}
"""value: 0..22, or 23 when the parameter is not computed yet."""
Target = Literal["nece", "dep", "known", "value", "can_next", "nece_next"]
POPULATIONS = ("all_param", "G_d", "necessary", "unnecessary")
Population = Literal["all_param", "G_d", "necessary", "unnecessary"]
SPLIT_TARGETS = ("dep", "can_next")
"""Targets also reported on necessary / unnecessary A (Part 2.1 Result 5; Fig 7b)."""
LAYOUTS = ("marker", "define")
Layout = Literal["marker", "define"]
CELLS = ("in_dist", "op=max", "ood", "reask")
Cell = Literal["in_dist", "op=max", "ood", "reask"]


def populations_for(target: str, populations: Sequence[str] = POPULATIONS) -> list[str]:
    """The populations of ``populations`` that ``target`` is reported on (the splits only for dep, can_next)."""
    return [p for p in populations if p in ("all_param", "G_d") or target in SPLIT_TARGETS]


@dataclasses.dataclass
class VProbeExamples:
    """Right-padded V-probe inputs for one target: ``docs[doc_id][:prefix_len] + suffix`` per row."""

    tokens: Tensor
    """[n, width] token ids (pad after each row's read-out token)"""
    update_mask: Tensor
    """[n, width] where the embedding update applies (every token, or the suffix only)"""
    read_pos: Tensor
    """[n] position of the read-out token ([END], or "as" in the define layout)"""
    labels: Tensor
    """[n] class labels"""
    group: Tensor
    """[n] index of the problem each row comes from (bootstrap and early-stopping unit)"""
    params: list[tuple[int, ...]]
    """per row: the probed parameter indices into the problem's ``params`` (one, or two for dep)"""
    positions: list[int]
    """per row: the truncation position in the document (without <bos>)"""
    docs: list[list[int]]
    """the documents ``<bos> doc`` whose prefixes the rows use (one per problem: rows share a prefix cache)"""
    doc_id: Tensor
    """[n] index of each row's document in ``docs``"""
    prefix_len: Tensor
    """[n] tokens of the document before the suffix (<bos> included)"""
    suffix: Tensor
    """[n, suffix_len] each row's suffix (every name is 3 tokens, so one length per target and layout)"""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, keep: Bool[Tensor, " n"]) -> VProbeExamples:
        """The rows where ``keep`` is true (same documents)."""
        idx = keep.nonzero().flatten()
        rows = idx.tolist()
        return dataclasses.replace(
            self, tokens=self.tokens[idx], update_mask=self.update_mask[idx], read_pos=self.read_pos[idx],
            labels=self.labels[idx], group=self.group[idx], params=[self.params[i] for i in rows],
            positions=[self.positions[i] for i in rows], doc_id=self.doc_id[idx],
            prefix_len=self.prefix_len[idx], suffix=self.suffix[idx],
        )


def record_document(record: dict[str, Any]) -> list[int]:
    """``<bos>`` + a problem record's document tokens: the sequence every prefix of the record is cut from."""
    from physlm.tasks.igsm import igsm_token_table

    return [igsm_token_table().bos_id] + list(record["input_ids"])


def probe_position(record: dict[str, Any], target: str, step: int = 0) -> int:
    """The document position (no <bos>) after which the suffix goes, for ``target`` (spec §3.1)."""
    pq = record["p_format"] == "pq"
    if target == "nece":
        return record["pos_question_end"] if pq else record["pos_problem_end"]
    if target == "dep":
        return record["pos_body_end"] if pq else record["pos_problem_end"]
    if target in STEP_TARGETS:
        return record["pos_steps"][step]
    raise ValueError(f"unknown iGSM probe target {target!r}; choose one of {TARGETS}")


def label_of(record: dict[str, Any], target: str, params: tuple[int, ...], step: int = 0) -> int:
    """The generator's label of one draw."""
    if target == "nece":
        return int(record["nece"][params[0]])
    if target == "dep":
        return int(record["dep"][params[0]][params[1]])
    return int(record[target][step][params[0]])


def parameter_pool(record: dict[str, Any], population: str) -> list[int]:
    """Indices of the parameters A is drawn from (see the module docstring)."""
    n = len(record["params"])
    if population == "all_param":
        return list(range(n))
    if population not in POPULATIONS:
        raise ValueError(f"unknown population {population!r}; choose one of {POPULATIONS}")
    if "in_graph" not in record:
        raise ValueError("the problem records lack 'in_graph' (made by an older physlm): regenerate them")
    graph = [a for a in range(n) if record["in_graph"][a]]
    if population == "G_d":
        return graph
    necessary = population == "necessary"
    return [a for a in graph if bool(record["nece"][a]) == necessary]


def draw_examples(
    record: dict[str, Any], target: str, k: int, rng: random.Random, population: str = "all_param"
) -> list[tuple[int, tuple[int, ...]]]:
    """Up to ``k`` distinct (solution step, parameter indices) draws of one problem for ``target``."""
    pool = parameter_pool(record, population)
    if target == "nece":
        space = [(0, (a,)) for a in pool]
    elif target == "dep":
        others = parameter_pool(record, "all_param" if population == "all_param" else "G_d")
        space = [(0, (a, b)) for a in pool for b in others if a != b]
    elif target in STEP_TARGETS:
        space = [(t, (a,)) for t in range(len(record["pos_steps"])) for a in pool]
    else:
        raise ValueError(f"unknown iGSM probe target {target!r}; choose one of {TARGETS}")
    return rng.sample(space, min(k, len(space)))


def build_examples(
    records: Sequence[dict[str, Any]],
    target: str,
    draws_per_problem: int,
    seed: int,
    embedding_update: str = "all",
    n_ctx: int | None = None,
    population: str = "all_param",
    layout: str = "marker",
) -> VProbeExamples:
    """V-probe examples of ``target`` from problem records (:func:`physlm.tasks.igsm.problem_record`):
    ``draws_per_problem`` seeded draws per problem from ``population``."""
    if target not in TARGETS:
        raise ValueError(f"unknown iGSM probe target {target!r}; choose one of {TARGETS}")
    rng = random.Random(f"physlm-igsm-vprobe:{seed}:{target}" + ("" if population == "all_param" else f":{population}"))
    draws = [(g, step, chosen) for g, record in enumerate(records)
             for step, chosen in draw_examples(record, target, draws_per_problem, rng, population)]
    return assemble_examples(records, target, draws, embedding_update, n_ctx, layout)


def query_suffix(names: Sequence[list[int]], layout: str = "marker") -> list[int]:
    """The suffix of one draw from the names' token ids: ``[START] A ([MID] B) [END]`` or ``Define A as``."""
    from physlm.tasks.igsm import igsm_token_table

    table = igsm_token_table()
    if layout == "define":
        if len(names) != 1:
            raise ValueError("the define layout probes one parameter ('Define A as'), not a pair")
        define, as_ = table.encode(["Define", "as"])
        return [define, *names[0], as_]
    if layout != "marker":
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    start, mid, end = table.encode(["[START]", "[MID]", "[END]"])
    suffix = [start]
    for i, name in enumerate(names):
        suffix += ([mid] if i else []) + list(name)
    return suffix + [end]


def assemble_examples(
    records: Sequence[dict[str, Any]],
    target: str,
    draws: Sequence[tuple[int, int, tuple[int, ...]]],
    embedding_update: str = "all",
    n_ctx: int | None = None,
    layout: str = "marker",
) -> VProbeExamples:
    """Examples for explicit draws ``(record index, solution step, parameter indices)``; draws that do not fit
    ``n_ctx`` are left out."""
    from physlm.tasks.igsm import encode

    names: dict[str, list[int]] = {}
    rows: list[tuple[int, int, list[int], int, tuple[int, ...], int]] = []
    for g, step, chosen in draws:
        record = records[g]
        pos = probe_position(record, target, step)
        for a in chosen:
            name = record["param_names"][a]
            if name not in names:
                names[name] = encode(name)
        suffix = query_suffix([names[record["param_names"][a]] for a in chosen], layout)
        rows.append((g, pos + 2, suffix, label_of(record, target, chosen, step), tuple(chosen), pos))
    examples = examples_from_rows([record_document(r) for r in records], rows, embedding_update, n_ctx)
    if examples is None:
        raise ValueError(f"no {target} examples fit the context of {n_ctx} tokens")
    return examples


def examples_from_rows(
    docs: Sequence[list[int]],
    rows: Sequence[tuple[int, int, list[int], int, tuple[int, ...], int]],
    embedding_update: str = "all",
    n_ctx: int | None = None,
) -> VProbeExamples | None:
    """Examples from ``(doc index, prefix length, suffix ids, label, params, position)`` rows; rows longer than
    ``n_ctx`` are left out; None when none is left."""
    if embedding_update not in ("all", "suffix"):
        raise ValueError(f"embedding_update must be 'all' or 'suffix', got {embedding_update!r}")
    from physlm.tasks.igsm import igsm_token_table

    kept = [r for r in rows if n_ctx is None or r[1] + len(r[2]) <= n_ctx]
    if not kept:
        return None
    if len({len(r[2]) for r in kept}) != 1:
        raise ValueError("suffixes differ in length: every parameter name must be 3 tokens")
    width = max(length + len(suffix) for _, length, suffix, *_ in kept)
    tokens = torch.full((len(kept), width), igsm_token_table().pad_id, dtype=torch.long)
    update = torch.zeros(len(kept), width, dtype=torch.bool)
    for i, (d, length, suffix, *_) in enumerate(kept):
        tokens[i, :length] = torch.tensor(docs[d][:length])
        tokens[i, length : length + len(suffix)] = torch.tensor(suffix)
        update[i, (0 if embedding_update == "all" else length) : length + len(suffix)] = True
    suffix_len = len(kept[0][2])
    return VProbeExamples(
        tokens=tokens,
        update_mask=update,
        read_pos=torch.tensor([length + suffix_len - 1 for _, length, *_ in kept]),
        labels=torch.tensor([r[3] for r in kept]),
        group=torch.tensor([r[0] for r in kept]),
        params=[r[4] for r in kept],
        positions=[r[5] for r in kept],
        docs=[list(d) for d in docs],
        doc_id=torch.tensor([r[0] for r in kept]),
        prefix_len=torch.tensor([r[1] for r in kept]),
        suffix=torch.tensor([r[2] for r in kept]),
    )


def distance_examples(
    records: Sequence[dict[str, Any]], max_distance: int, embedding_update: str = "all", n_ctx: int | None = None
) -> tuple[VProbeExamples, Int[Tensor, " n"]] | None:
    """nece examples of every necessary parameter at distance t = 1..``max_distance`` from the query (the
    layer-wise nece probe of Part 2.1 Fig 10/14), and each row's t; None when no problem has one."""
    if records and "query_distance" not in records[0]:
        raise ValueError("the problem records lack 'query_distance' (made by an older physlm): regenerate them")
    draws = [(g, 0, (a,)) for g, r in enumerate(records) for a, t in enumerate(r["query_distance"])
             if 1 <= t <= max_distance]
    if not draws:
        return None
    try:
        ex = assemble_examples(records, "nece", draws, embedding_update, n_ctx)
    except ValueError:
        return None
    t = torch.tensor([records[int(g)]["query_distance"][p[0]] for g, p in zip(ex.group, ex.params)])
    return ex, t


def cell_configs(preset_name: str, cells: Sequence[str]) -> dict[str, tuple[Any, bool]]:
    """Test cells of a preset as in :mod:`physlm.analysis.igsm_eval` (name -> (IGSMConfig, re-asked?)):
    ``op<=max`` (the natural op distribution), ``op=max``, the first OOD op and its re-asked questions."""
    from physlm.tasks.igsm import OOD_OPS, preset

    base = preset(preset_name, split="test")
    first_ood = OOD_OPS[preset_name][0]
    table = {
        "in_dist": (f"op<={base.max_op}", base, False),
        "op=max": (f"op={base.max_op}", base.replace(op=base.max_op), False),
        "ood": (f"op={first_ood}", base.replace(op=first_ood), False),
        "reask": (f"op={first_ood} reask", base.replace(op=first_ood), True),
    }
    unknown = [c for c in cells if c not in table]
    if unknown:
        raise ValueError(f"unknown probe cells {unknown}; choose among {CELLS}")
    return {table[c][0]: table[c][1:] for c in CELLS if c in cells}


def probe_records(
    preset_name: str, split: str, n: int, seed: int, max_doc_tokens: int | None,
    config: Any = None, reask: bool = False, name: str | None = None,
) -> list[dict]:
    """``n`` labelled problems of a preset's ``split`` (train/test hash buckets) that fit ``max_doc_tokens``;
    ``config`` (an IGSMConfig) and ``reask`` draw a test cell instead, string-seeded by its ``name``."""
    from physlm.tasks.igsm import generate_problem, generate_reask, preset, problem_record

    config = preset(preset_name, split=split) if config is None else config
    rng = random.Random(f"physlm-igsm-probe:{seed}:{split if name is None else name}")
    out: list[dict] = []
    for _ in tqdm(range(50 * n), desc=f"probe problems ({name or split})", leave=False):
        problem = generate_reask(config, rng) if reask else generate_problem(config, rng)
        if max_doc_tokens is None or len(problem.document_tokens()) <= max_doc_tokens:
            out.append(problem_record(problem))
            if len(out) == n:
                return out
    raise ValueError(f"fewer than {n} {preset_name} problems fit {max_doc_tokens} tokens in {50 * n} draws")

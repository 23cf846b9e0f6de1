"""Inputs and labels of the bio P- and Q-probes (Part 3.1 §5; spec part3_knowledge.md §3).

* :class:`BioTarget`: one of the 11 prediction tasks, with one class id per person: birth date by its first
  token (= the month, 12 classes), and the other five attributes by their first token and as a whole.
* :class:`BioProbeData`: token rows as the model reads them (``<bos>`` first, right-padded) and, per row, the
  model positions the probe reads and the person the row is about. P rows are biography entries read at the
  six P-probe positions (the token before each attribute's value); Q rows are ``<bos> full-name <eos>`` read
  at the end token.

People are split by person, never by token: the probes train on P_train's rows and are scored on P_test's
(:func:`physlm.probing.bio_probe.run_bio_probes`).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Literal

import torch
from jaxtyping import Int
from torch import Tensor

from physlm.tasks.bio.config import BioWorld
from physlm.tasks.bio.people import n_classes
from physlm.tasks.bio.pools import ATTRIBUTES
from physlm.tasks.bio.render import RenderedEntry
from physlm.tasks.bio.tokenizer import bio_token_table, tokenize

Level = Literal["first_token", "whole"]
LEVEL_IDS: dict[str, int] = {"first_token": 0, "whole": 1}
"""``ProbeRow.level`` is an int (the CFG recipe's paper level ℓ), so the two target levels are written as
0 (first token) and 1 (whole attribute); the name goes in the ``level_name`` extra column."""
BIO_TARGETS: tuple[str, ...] = ("birth_date:first_token",) + tuple(
    f"{attribute}:{level}" for attribute in ATTRIBUTES[1:] for level in ("first_token", "whole")
)
"""The paper's 11 prediction tasks as ``attribute:level``: the whole birth date is left out because it has more
classes than P_train has people (Part 3.1 §5)."""
Q_POSITION = "name_end"
"""The ``position`` column of Q-probe rows."""


@dataclasses.dataclass(frozen=True)
class BioTarget:
    """One prediction task: a class id per person of the world."""

    attribute: str
    level: Level
    n_classes: int
    labels: Int[Tensor, " people"]
    """class id of every person of the world (indexed by person id)"""
    classes: tuple[str, ...] | None = None
    """for first-token targets (birth date excepted): the token string of each class"""

    @property
    def name(self) -> str:
        """``attribute:level``, as in :data:`BIO_TARGETS`."""
        return f"{self.attribute}:{self.level}"


def parse_target(name: str) -> tuple[str, Level]:
    """``"employer:whole"`` -> ``("employer", "whole")``, with a clear error for anything else."""
    attribute, _, level = name.partition(":")
    if attribute not in ATTRIBUTES or level not in LEVEL_IDS:
        raise ValueError(
            f"bio probe target {name!r} is not 'attribute:level' with attribute in {ATTRIBUTES} and level in "
            f"{tuple(LEVEL_IDS)}"
        )
    if attribute == "birth_date" and level == "whole":
        raise ValueError("birth_date is probed by its first token (the month) only: the whole date has more "
                         "classes than the probe has training people (Part 3.1 §5)")
    return attribute, level  # type: ignore[return-value]


def bio_targets(world: BioWorld, names: Sequence[str] = BIO_TARGETS) -> tuple[BioTarget, ...]:
    """The targets ``names`` with every person's class id.

    Whole attribute: :meth:`Person.class_index` (``n_classes(attribute)`` classes). First token: a compact index
    over the distinct first tokens of the attribute's values among the world's people (sorted token strings,
    so the ids are a function of the world). Birth date's first token is the month, i.e. its class index.
    """
    out = []
    for name in names:
        attribute, level = parse_target(name)
        if level == "whole" or attribute == "birth_date":
            labels = [p.class_index(attribute) for p in world.people]
            out.append(BioTarget(attribute, level, n_classes(attribute), torch.tensor(labels, dtype=torch.long)))
            continue
        first = [tokenize(p.value(attribute))[0] for p in world.people]
        classes = tuple(sorted(set(first)))
        index = {token: k for k, token in enumerate(classes)}
        labels = torch.tensor([index[t] for t in first], dtype=torch.long)
        # a one-class target (possible in a tiny world) still gets a 2-way head: the probe needs two logits
        out.append(BioTarget(attribute, level, max(2, len(classes)), labels, classes))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class BioProbeData:
    """Probe inputs: right-padded token rows, the model positions read in each row, and each row's person."""

    kind: Literal["P", "Q"]
    tokens: Int[Tensor, "n seq"]
    """``<bos>`` + tokens, right-padded with ``<pad>`` (the model is causal, so padding never reaches a read)"""
    read_pos: Int[Tensor, "n k"]
    """model positions read per row (entry token position p is model position p + 1)"""
    person: Int[Tensor, " n"]
    positions: tuple[str, ...]
    """name of each of the k read positions: the attribute whose value follows (P) or ``name_end`` (Q)"""

    def __post_init__(self) -> None:
        if len(self.positions) != self.read_pos.shape[1]:
            raise ValueError(f"{len(self.positions)} position names for {self.read_pos.shape[1]} read positions")
        if self.tokens.shape[0] == 0:
            raise ValueError("probe data without rows: the split has no people")

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def labels(self, target: BioTarget) -> Int[Tensor, " n"]:
        """The target's class id of every row (the same at all k positions: it is the person's)."""
        return target.labels[self.person]


def _pad(rows: list[list[int]], read: list[list[int]], person: list[int], kind: Literal["P", "Q"],
         positions: tuple[str, ...], n_ctx: int | None) -> BioProbeData:
    width = max(len(r) for r in rows)
    if n_ctx is not None and width > n_ctx:
        raise ValueError(f"{kind}-probe rows need {width} positions but the model's context is {n_ctx}")
    table = bio_token_table()
    tokens = torch.full((len(rows), width), table.pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return BioProbeData(kind, tokens, torch.tensor(read, dtype=torch.long), torch.tensor(person, dtype=torch.long),
                        positions)


def person_entries(world: BioWorld, person_id: int, seed: int = 0, max_entries: int | None = None,
                   fresh_entries: int = 1) -> list[RenderedEntry]:
    """A person's biography entries for probing: the fixed ones (the first ``max_entries`` when given), or, for a
    multi∞ person, ``fresh_entries`` wordings drawn from a generator seeded by (seed, person)."""
    n = world.n_entries(person_id)
    if n is None:
        rng = random.Random(f"physlm/bio-probe/{seed}/entries/{person_id}")
        return [world.entry(person_id, 0, rng) for _ in range(fresh_entries)]
    return [world.entry(person_id, k) for k in range(n if max_entries is None else min(n, max_entries))]


def p_probe_data(world: BioWorld, people: Sequence[int], seed: int = 0, max_entries: int | None = None,
                 fresh_entries: int = 1, n_ctx: int | None = None) -> BioProbeData:
    """P-probe rows: every entry of ``people``, cut after its last P-probe position (a causal model's later
    tokens never reach the read), read at the six positions in ATTRIBUTES order."""
    table = bio_token_table()
    rows, read, person = [], [], []
    for pid in people:
        for entry in person_entries(world, pid, seed, max_entries, fresh_entries):
            if min(entry.value_start) < 1:
                raise ValueError(f"entry of person {pid} lacks an attribute value (value_start {entry.value_start})")
            positions = entry.probe_positions
            last = max(positions)
            rows.append(table.frame(table.encode(entry.tokens[: last + 1]), close=False))
            read.append([p + 1 for p in positions])  # <bos> comes first
            person.append(pid)
    return _pad(rows, read, person, "P", tuple(ATTRIBUTES), n_ctx)


def q_probe_data(world: BioWorld, people: Sequence[int], end_token: str = "<eos>",
                 n_ctx: int | None = None) -> BioProbeData:
    """Q-probe rows ``<bos> full-name end_token``, read at the end token. The paper says only "a start token
    and an end token"; ``<eos>`` is the end token by default because the trainer ends every document with it,
    so the model has seen it, yet never right after a bare name."""
    table = bio_token_table()
    end = table.id(end_token)
    rows, read, person = [], [], []
    for pid in people:
        name = table.encode(tokenize(world.people[pid].full_name()))
        rows.append([*table.frame(name, close=False), end])
        read.append([len(name) + 1])
        person.append(pid)
    return _pad(rows, read, person, "Q", (Q_POSITION,), n_ctx)


__all__ = [
    "BIO_TARGETS",
    "LEVEL_IDS",
    "Q_POSITION",
    "BioProbeData",
    "BioTarget",
    "bio_targets",
    "p_probe_data",
    "parse_target",
    "person_entries",
    "q_probe_data",
]

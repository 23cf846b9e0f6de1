"""The iGSM generator's settings (one frozen config) and its presets.

``med`` and ``hard`` are the papers' data sets (Part 2.1, Table in spec §1.3). ``small`` and ``tiny`` are CPU
presets for laptop experiments (spec §8.1 proposes max_op 8-10 with max_edge 14-16; ``max_edge`` must be at
least 12, or the official sampler's edge range can be empty).

``micro`` is a compact world for 2-core CPUs. It keeps the papers' problem and solution text, the op
definition, the direct / instance / implicit dependencies, the template-hash split (17/23) and OOD test ops,
and deviates from the official generator in four stated ways:

* structure graphs have at most 3 layers (official: 2-4) of at most 3 items (official: 2-4), with the official
  softmax weights renormalised over the allowed values;
* at most 6 structure edges (official minimum 12, needed only by 4x4 graphs);
* a compact catalogue: each category keeps the first 8 items of its first sub-category (128 names in all,
  official: ~100 per category in 5 sub-categories), so a small model meets every name often;
* training ops min(U{1..4}, U{1..4}) as in ``tiny``; OOD test ops 6, 7, 8.

Deviations shared by every preset: names are distinct across a problem's layers (so each "A's B" names one
parameter) and the tokenizer is word-level (physlm.tasks.igsm.tokenizer).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from physlm.config import Config

MOD = 23
"""All arithmetic is modulo 23 (values 0..22)."""

MIN_MAX_EDGE = 12
"""Smallest usable ``max_edge`` at the official depth and width: d=4 layers of width 4 need 12 parent edges
(spec §1.3, pitfall 6)."""


@dataclasses.dataclass(frozen=True)
class IGSMConfig(Config):
    """How iGSM problems are drawn (the official ``IdGen(style='light')`` settings) and split."""

    max_op: int = 15
    """Training problems have op = min(U{1..max_op}, U{1..max_op}) operations (ignored when ``op`` is set)."""
    max_edge: int = 20
    """Largest number of structure edges (= instance parameters); at least 12."""
    op: int | None = None
    """Exact number of operations for every problem (test sets; the paper's force=true), or None."""
    perm_level: int | None = 5
    """Problem sentence order: 0-4 mild shuffle (moves <= k), 5 full shuffle, 6 none, None random per
    problem."""
    detail_level: int = 0
    """Solution format; only 0 (the papers' format) is implemented."""
    p_format: Literal["pq", "qp"] = "pq"
    """Question after the problem ('pq') or before it ('qp')."""
    split: Literal["train", "test", "all"] = "train"
    """Keep problems whose solution-template hash is < hash_boundary (train), >= it (test), or all."""
    hash_boundary: int = 17
    """Train/test bucket boundary of the template hash mod 23 (paper: 17; the official code used 16)."""
    max_attempts: int = 20_000
    """Give up (RuntimeError) after this many rejected hyper-parameter draws for one problem."""
    redraw_op_after: int = 2_000
    """Redraw an unforced target op after this many rejected draws: some small ops have only a handful of
    templates, none of them in a narrow split, and the official loop would spin forever there."""
    max_depth: int = 4
    """Deepest structure graph (layers d drawn from 2..max_depth; official: 4). A CPU-preset deviation: the
    official softmax weights are kept and renormalised over the allowed values."""
    max_width: int = 4
    """Widest structure layer (w0, w1 drawn from 2..max_width; official: 4), renormalised like max_depth."""
    catalog_items: int | None = None
    """Items per category (None: the official 5 sub-categories of ~100 items). A number k keeps only the
    first k items of each category's first sub-category, a compact world whose names a small model sees
    often (a CPU-preset deviation)."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_op <= 45:
            raise ValueError(f"max_op must be in 1..45 (52 solution symbols), got {self.max_op}")
        if not 2 <= self.max_depth <= 4 or not 2 <= self.max_width <= 4:
            raise ValueError(
                f"max_depth and max_width must be in 2..4 (the official choices), got {self.max_depth}, "
                f"{self.max_width}"
            )
        if self.max_edge < self.min_max_edge:
            raise ValueError(
                f"max_edge must be >= {self.min_max_edge} ({self.max_depth} layers of width {self.max_width} "
                f"need that many parent edges), got {self.max_edge}"
            )
        if self.catalog_items is not None and self.catalog_items < 2 * self.max_width:
            raise ValueError(
                f"catalog_items must be >= 2 * max_width = {2 * self.max_width} (room for distinct names in "
                f"adjacent layers), got {self.catalog_items}"
            )
        if self.op is not None and not 1 <= self.op <= 45:
            raise ValueError(f"op must be in 1..45 (52 solution symbols), got {self.op}")
        if self.perm_level is not None and not 0 <= self.perm_level <= 6:
            raise ValueError(f"perm_level must be 0..6 or None, got {self.perm_level}")
        if self.detail_level != 0:
            raise ValueError(
                f"only detail_level 0 (the papers' solution format) is implemented, got {self.detail_level}"
            )
        if not 0 <= self.hash_boundary <= MOD:
            raise ValueError(f"hash_boundary must be in 0..{MOD}, got {self.hash_boundary}")

    @property
    def min_max_edge(self) -> int:
        """Smallest usable ``max_edge``: the parent edges of the deepest, widest graph (official: 12)."""
        return (self.max_depth - 1) * self.max_width

    def hash_ok(self, bucket: int) -> bool:
        """Whether a template-hash bucket belongs to this config's split."""
        if self.split == "train":
            return bucket < self.hash_boundary
        if self.split == "test":
            return bucket >= self.hash_boundary
        return True


PRESETS: dict[str, IGSMConfig] = {
    "med": IGSMConfig(max_op=15, max_edge=20),
    "hard": IGSMConfig(max_op=21, max_edge=28),
    "small": IGSMConfig(max_op=8, max_edge=15),
    "tiny": IGSMConfig(max_op=4, max_edge=12),
    "micro": IGSMConfig(max_op=4, max_edge=6, max_depth=3, max_width=3, catalog_items=8),
}
"""Named settings: the papers' iGSM-med and iGSM-hard, and two CPU-sized ones."""

OOD_OPS: dict[str, tuple[int, ...]] = {
    "med": (20, 21, 22, 23),
    "hard": (28, 29, 30, 31, 32),
    "small": (11, 12, 13),
    "tiny": (6, 7, 8),
    "micro": (6, 7, 8),
}
"""Out-of-distribution test op values per preset (papers: med 20-23, hard 28-32; small/tiny: max_op+3..+5)."""


def preset(name: str, **changes: object) -> IGSMConfig:
    """A preset config by name, with optional field changes (``preset('med', split='test', op=20)``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown iGSM preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**changes) if changes else PRESETS[name]


def ood_configs(name: str) -> dict[int, IGSMConfig]:
    """Test-split configs with a fixed, larger op for a preset's OOD test sets, keyed by op."""
    base = preset(name, split="test")
    return {op: base.replace(op=op) for op in OOD_OPS[name]}

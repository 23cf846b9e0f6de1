"""The labelled sentences of the Part 1 CFG probes (the data half of :mod:`physlm.probing.cfg_recipe`).

Fresh sentences from the run's grammar (``physlm.tasks.cfg.sample_sentence`` with a string-seeded
``random.Random``, so they cannot coincide with a training stream seeded by an integer), fed one per row as
``BOS x EOS`` with right padding (:class:`physlm.probing.align.SentenceLayout`): x_i sits at position i + 1 and
each sentence starts at position 0, as the first sentence of a training window does. The labels come from the
generator next to the tokens (DEVELOPERS.md "Per-token CFG labels"), re-indexed so that column i is x_i.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Int
from torch import Tensor
from tqdm.auto import tqdm

from physlm.probing.align import IGNORE_INDEX, SentenceLayout, gather_labels, to_sentence_rows
from physlm.tasks.base import TokenTable

TARGETS = ("ancestor", "ancestor_at_end", "end", "end_level")


@dataclasses.dataclass
class ProbeData:
    """Labelled sentences laid out for the model, labels as ``[n, max_len]`` (IGNORE_INDEX on padding)."""

    layout: SentenceLayout
    ancestor: dict[int, Int[Tensor, "n max_len"]]
    """s_ℓ(i) per NT level ℓ (0-based index among the level's symbols)"""
    end: dict[int, Int[Tensor, "n max_len"]]
    """b_ℓ(i) ∈ {0, 1} per NT level ℓ"""
    end_level: Int[Tensor, "n max_len"]
    """b♯(i) ∈ {2..L−1}, 0 when x_i ends no NT"""
    tokens: Int[Tensor, "n max_len"]
    """model token ids as ``[n, max_len]`` (column i = x_i; pad where no token)"""
    mask: Bool[Tensor, "n max_len"]
    classes: dict[int, int]
    """symbols on each NT level"""
    n_levels: int
    n_cut: int = 0
    """sentences cut to fit the context"""

    def target_labels(self, target: str, level: int) -> tuple[Int[Tensor, "n max_len"], int, bool]:
        """(labels with IGNORE_INDEX where unscored, number of classes, score with balanced accuracy?).

        ``target`` is one of :data:`TARGETS`; ``level`` is the paper level ℓ (ignored for ``end_level``).
        """
        if target == "ancestor":
            return self.ancestor[level], self.classes[level], False
        if target == "ancestor_at_end":
            lab = torch.where(self.end[level] == 1, self.ancestor[level], IGNORE_INDEX)
            return lab, self.classes[level], False
        if target == "end":
            return self.end[level], 2, True
        if target == "end_level":
            return self.end_level, self.n_levels, True
        raise ValueError(f"unknown probe target {target!r}; the targets are {TARGETS}")


def sample_probe_data(
    grammar: Any, n: int, seed: int, max_len: int, table: TokenTable | None = None
) -> ProbeData:
    """``n`` fresh labelled sentences laid out as ``BOS x EOS`` rows of at most ``max_len`` tokens.

    ``table`` is the model's vocabulary (default: the grammar's, ``physlm.tasks.cfg.cfg_token_table``).
    """
    from physlm.tasks.cfg import cfg_token_table, sample_sentence, symbols_to_ids

    table = table if table is not None else cfg_token_table(grammar)
    rng = random.Random(f"physlm-probe:{seed}")
    samples = [sample_sentence(grammar, rng) for _ in tqdm(range(n), desc="sentences", leave=False)]
    layout = SentenceLayout.from_sentences([symbols_to_ids(s.symbols) for s in samples], table, max_len=max_len)
    levels = grammar.nt_levels

    def rows(arrays: list[np.ndarray]) -> torch.Tensor:
        return to_sentence_rows(layout, gather_labels(layout, arrays), fill=IGNORE_INDEX)

    ancestor = {lv: rows([s.ancestor[r] for s in samples]) for r, lv in enumerate(levels)}
    end = {lv: rows([s.end[r] for s in samples]) for r, lv in enumerate(levels)}
    tokens = to_sentence_rows(layout, layout.tokens, fill=table.pad_id)
    mask = to_sentence_rows(layout, layout.terminal_mask, fill=False)
    return ProbeData(
        layout=layout,
        ancestor=ancestor,
        end=end,
        end_level=rows([s.end_level for s in samples]),
        tokens=tokens,
        mask=mask,
        classes={lv: grammar.sizes[lv - 1] for lv in levels},
        n_levels=grammar.num_levels,
        n_cut=sum(len(s.symbols) > int(k) for s, k in zip(samples, layout.lengths)),
    )

"""Fresh labelled CFG sentences packed in the training layout, with per-position parse labels.

The attention statistics must see what the model saw in training: a continuous ``BOS x EOS BOS x' EOS ...``
stream cut into fixed windows (no padding), so a window may start or end inside a sentence. Every position
keeps the labels of its sentence's generating tree (DEVELOPERS.md "Per-token CFG labels").
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from jaxtyping import Bool, Int
from torch import Tensor

from physlm.tasks.base import TokenTable

TERMINAL_OFFSET = 3
"""Model token id of terminal t is t + 3 (DEVELOPERS.md: <pad>=0, <bos>=1, <eos>=2, <mask>=3)."""


@runtime_checkable
class LabelledSentence(Protocol):
    """What :func:`physlm.tasks.cfg.sample_sentence` returns (only the fields used here)."""

    symbols: Sequence[int]
    ancestor_index: Any
    end_level: Any


def sentence_rng(seed: int, k: int) -> random.Random:
    """The generator of analysis sentence ``k``; its string seed keeps it apart from training's streams."""
    return random.Random(f"physlm-analysis/{seed}/{k}")


def fresh_sentences(grammar: Any, seed: int, start: int = 0) -> Iterator[LabelledSentence]:
    """An endless stream of fresh labelled sentences, sentence ``k`` a pure function of ``(seed, k)``."""
    from physlm.tasks.cfg.sample import sample_sentence

    k = start
    while True:
        yield sample_sentence(grammar, sentence_rng(seed, k))
        k += 1


@dataclasses.dataclass(frozen=True)
class PackedWindows:
    """A batch of training-layout windows and the parse labels of every position.

    Special tokens (BOS, EOS) carry their sentence's id but ``is_terminal`` False, ``end_level`` 0 and
    ``ancestor_index`` 0.
    """

    tokens: Int[Tensor, "window pos"]
    sentence_id: Int[Tensor, "window pos"]
    is_terminal: Bool[Tensor, "window pos"]
    end_level: Int[Tensor, "window pos"]
    """b♯(i) ∈ {2..L-1}, 0 when position i ends no NT (or is not a terminal)"""
    ancestor_index: Int[Tensor, "window nt_level pos"]
    """p_ℓ(i) (1-based) for ℓ = 2..L-1 (row r is ℓ = r + 2)"""

    @property
    def n_levels(self) -> int:
        """Number of NT levels with labels (L - 2)."""
        return int(self.ancestor_index.shape[1])


def _sentence_arrays(sentence: LabelledSentence, table: TokenTable) -> tuple[np.ndarray, ...]:
    symbols = np.asarray(sentence.symbols, dtype=np.int64)
    n = len(symbols)
    anc = np.asarray(sentence.ancestor_index, dtype=np.int64).reshape(-1, n)
    end = np.asarray(sentence.end_level, dtype=np.int64).reshape(n)
    tokens = np.concatenate([[table.bos_id], symbols + TERMINAL_OFFSET, [table.eos_id]])
    terminal = np.concatenate([[False], np.ones(n, dtype=bool), [False]])
    end_full = np.concatenate([[0], end, [0]])
    anc_full = np.concatenate([np.zeros((anc.shape[0], 1), np.int64), anc, np.zeros((anc.shape[0], 1), np.int64)], 1)
    return tokens, terminal, end_full, anc_full


def pack_windows(
    sentences: Iterator[LabelledSentence], table: TokenTable, n_windows: int, n_ctx: int
) -> Iterator[PackedWindows]:
    """Cut one continuous ``BOS x EOS BOS x' EOS ...`` stream into ``n_windows`` windows of ``n_ctx`` tokens.

    Yields one :class:`PackedWindows` of a single window at a time; see :func:`window_batches` to batch them.
    """
    buffers: list[tuple[np.ndarray, ...]] = []
    buffered = 0
    next_id = 0
    for _ in range(n_windows):
        while buffered < n_ctx:
            tokens, terminal, end, anc = _sentence_arrays(next(sentences), table)
            ids = np.full(len(tokens), next_id, dtype=np.int64)
            next_id += 1
            buffers.append((tokens, ids, terminal, end, anc))
            buffered += len(tokens)
        parts = [np.concatenate([b[f] for b in buffers], axis=-1) for f in range(5)]
        take = [p[..., :n_ctx] for p in parts]
        rest = tuple(p[..., n_ctx:] for p in parts)
        buffers = [rest] if rest[0].size else []
        buffered = rest[0].size
        yield PackedWindows(
            tokens=torch.from_numpy(take[0])[None],
            sentence_id=torch.from_numpy(take[1])[None],
            is_terminal=torch.from_numpy(take[2])[None],
            end_level=torch.from_numpy(take[3])[None],
            ancestor_index=torch.from_numpy(np.ascontiguousarray(take[4]))[None],
        )


def stack_windows(windows: Sequence[PackedWindows]) -> PackedWindows:
    """Concatenate single- or multi-window batches along the window axis."""
    if not windows:
        raise ValueError("stack_windows needs at least one batch")
    return PackedWindows(
        **{f.name: torch.cat([getattr(w, f.name) for w in windows]) for f in dataclasses.fields(PackedWindows)}
    )


def window_batches(
    sentences: Iterator[LabelledSentence], table: TokenTable, n_windows: int, n_ctx: int, batch_size: int
) -> Iterator[PackedWindows]:
    """Batches of at most ``batch_size`` consecutive packed windows (``n_windows`` windows in all)."""
    pending: list[PackedWindows] = []
    for window in pack_windows(sentences, table, n_windows, n_ctx):
        pending.append(window)
        if len(pending) == batch_size:
            yield stack_windows(pending)
            pending = []
    if pending:
        yield stack_windows(pending)

"""Fresh labelled CFG sentences packed in the training layout, with per-position parse labels.

The attention statistics must see what the model saw in training: a continuous ``BOS x EOS BOS x' EOS ...``
stream cut into fixed windows (no padding; :func:`physlm.tasks.packing.pack`, as the trainer does), so a window
may start or end inside a sentence. Every position keeps the labels of its sentence's generating tree
(DEVELOPERS.md "Per-token CFG labels").
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from jaxtyping import Bool, Int
from torch import Tensor

from physlm.tasks.base import TokenTable
from physlm.tasks.cfg.grammar import Grammar
from physlm.tasks.cfg.sample import sample_sentence
from physlm.tasks.cfg.tokens import symbols_to_ids
from physlm.tasks.packing import pack


@runtime_checkable
class LabelledSentence(Protocol):
    """What :func:`physlm.tasks.cfg.sample_sentence` returns (only the fields used here)."""

    symbols: Sequence[int]
    ancestor_index: np.ndarray
    end_level: np.ndarray


def sentence_rng(seed: int, k: int) -> random.Random:
    """The generator of analysis sentence ``k``; its string seed keeps it apart from training's streams."""
    return random.Random(f"physlm-analysis/{seed}/{k}")


def fresh_sentences(grammar: Grammar, seed: int, start: int = 0) -> Iterator[LabelledSentence]:
    """An endless stream of fresh labelled sentences, sentence ``k`` a pure function of ``(seed, k)``."""
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


def _framed_labels(sentence: LabelledSentence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(is_terminal, end_level, ancestor_index) over the framed sentence ``BOS x EOS`` (zeros at BOS/EOS)."""
    n = len(sentence.symbols)
    anc = np.asarray(sentence.ancestor_index, dtype=np.int64).reshape(-1, n)
    end = np.asarray(sentence.end_level, dtype=np.int64).reshape(n)
    terminal = np.concatenate([[False], np.ones(n, dtype=bool), [False]])
    end_full = np.concatenate([[0], end, [0]])
    anc_full = np.pad(anc, ((0, 0), (1, 1)))
    return terminal, end_full, anc_full


def pack_windows(
    sentences: Iterator[LabelledSentence], table: TokenTable, n_windows: int, n_ctx: int
) -> Iterator[PackedWindows]:
    """Cut one continuous ``BOS x EOS BOS x' EOS ...`` stream into ``n_windows`` windows of ``n_ctx`` tokens.

    The windows are :func:`physlm.tasks.packing.pack`'s (the trainer's layout); terminals get their ids in the
    grammar's token table (:func:`physlm.tasks.cfg.symbols_to_ids`, the ids of ``cfg_token_table``).
    Yields one :class:`PackedWindows` of a single window at a time; see :func:`window_batches` to batch them.
    """
    labels: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # sentences the next window may still use

    def documents() -> Iterator[list[int]]:
        for k, sentence in enumerate(sentences):
            labels[k] = _framed_labels(sentence)
            yield symbols_to_ids(sentence.symbols)

    for window in pack(documents(), table, n_ctx, n_windows=n_windows):
        pieces = window.pieces
        parts = [
            np.concatenate([labels[p.doc][f][..., p.start : p.stop] for p in pieces], axis=-1) for f in range(3)
        ]
        ids = np.concatenate([np.full(p.stop - p.start, p.doc, dtype=np.int64) for p in pieces])
        for k in [k for k in labels if k < window.next_doc]:
            del labels[k]
        yield PackedWindows(
            tokens=torch.tensor(window.tokens, dtype=torch.long)[None],
            sentence_id=torch.from_numpy(ids)[None],
            is_terminal=torch.from_numpy(parts[0])[None],
            end_level=torch.from_numpy(parts[1])[None],
            ancestor_index=torch.from_numpy(np.ascontiguousarray(parts[2]))[None],
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

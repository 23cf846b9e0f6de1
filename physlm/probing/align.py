"""The one place where model token positions are matched with per-token labels.

Labels come from the task generator as arrays indexed by the token's place in its *sentence*
(``labels[..., i]`` belongs to the i-th terminal x_i, 0-based). The model sees sequences with extra
tokens around the sentence, so every consumer of activations goes through one of two layouts here:

* :class:`SentenceLayout`: one sentence per row, ``BOS x EOS`` then right padding (what probing feeds).
  x_i sits at sequence position ``i + 1`` (the BOS offset). Right padding never changes earlier
  positions of a causal model, so padded and unpadded runs give the same activations at x.
  Sentences longer than ``max_len - 2`` are cut (their EOS is dropped first, then trailing tokens).
* :class:`PackedLayout`: the training layout, ``BOS x EOS BOS x' EOS ...`` cut into fixed windows with
  no padding (:func:`physlm.tasks.packing.pack`, the trainer's packer). Each window position maps back to
  (sentence, token index) or to -1 for BOS/EOS.

Both frame sentences with :meth:`physlm.tasks.base.TokenTable.frame`.

Both expose ``sentence_index`` / ``token_index`` for every sequence position (-1 where no terminal
sits), so :func:`gather_labels` turns per-sentence label arrays into per-position labels with one code path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Bool, Int
from torch import Tensor

from physlm.tasks.base import TokenTable
from physlm.tasks.packing import pack

IGNORE_INDEX = -100
"""Label value of positions that carry no label (BOS, EOS, padding, positions outside a label mask)."""


@dataclasses.dataclass(frozen=True)
class SentenceLayout:
    """Sentences laid out one per row as ``BOS x EOS <pad>...`` (right padding)."""

    tokens: Int[Tensor, "n seq"]
    """model token ids"""
    sentence_index: Int[Tensor, "n seq"]
    """which sentence each position holds a terminal of (-1 for BOS/EOS/padding)"""
    token_index: Int[Tensor, "n seq"]
    """the terminal's 0-based index in its sentence (-1 for BOS/EOS/padding)"""
    lengths: Int[Tensor, " n"]
    """terminals kept per sentence (after any cut)"""
    offset: int = 1
    """sequence position of x_0 (the BOS offset)"""

    @classmethod
    def from_sentences(
        cls,
        sentences: Sequence[Sequence[int]],
        table: TokenTable,
        max_len: int | None = None,
    ) -> SentenceLayout:
        """Lay out already-encoded sentences (model token ids, without BOS/EOS), framed by ``table``.

        ``max_len`` bounds the row length (the model's ``n_ctx``); longer sentences are cut.
        """
        if not sentences:
            raise ValueError("SentenceLayout needs at least one sentence")
        if any(len(s) == 0 for s in sentences):
            raise ValueError("empty sentence: every sentence needs at least one token")
        width = max(len(s) for s in sentences) + 2
        if max_len is not None:
            if max_len < 2:
                raise ValueError(f"max_len must be >= 2 to hold BOS and one token, got {max_len}")
            width = min(width, max_len)
        n = len(sentences)
        tokens = np.full((n, width), table.pad_id, dtype=np.int64)
        sent_idx = np.full((n, width), -1, dtype=np.int64)
        tok_idx = np.full((n, width), -1, dtype=np.int64)
        lengths = np.zeros(n, dtype=np.int64)
        for row, sentence in enumerate(sentences):
            kept = min(len(sentence), width - 1)
            framed = table.frame(sentence)[:width]  # a cut sentence loses its EOS first
            tokens[row, : len(framed)] = framed
            sent_idx[row, 1 : 1 + kept] = row
            tok_idx[row, 1 : 1 + kept] = np.arange(kept)
            lengths[row] = kept
        return cls(
            tokens=torch.from_numpy(tokens),
            sentence_index=torch.from_numpy(sent_idx),
            token_index=torch.from_numpy(tok_idx),
            lengths=torch.from_numpy(lengths),
        )

    @property
    def terminal_mask(self) -> Bool[Tensor, "n seq"]:
        """True at the positions that hold a sentence terminal."""
        return self.token_index >= 0

    @property
    def max_length(self) -> int:
        """Longest kept sentence, in terminals."""
        return int(self.lengths.max())


@dataclasses.dataclass(frozen=True)
class PackedLayout:
    """The training layout: ``BOS x EOS BOS x' EOS ...`` cut into windows of ``window`` tokens."""

    tokens: Int[Tensor, "n_windows window"]
    sentence_index: Int[Tensor, "n_windows window"]
    token_index: Int[Tensor, "n_windows window"]
    lengths: Int[Tensor, " n_sentences"]

    @classmethod
    def from_sentences(cls, sentences: Sequence[Sequence[int]], table: TokenTable, window: int) -> PackedLayout:
        """Pack sentences into full windows (:func:`physlm.tasks.packing.pack`); the tail that does not fill a
        window is dropped."""
        windows = list(pack(sentences, table, window))
        if not windows:
            total = sum(len(s) + 2 for s in sentences)
            raise ValueError(f"{total} tokens do not fill one window of {window}")
        lengths = [len(s) for s in sentences]
        sidx = np.full((len(windows), window), -1, dtype=np.int64)
        tidx = np.full((len(windows), window), -1, dtype=np.int64)
        for row, win in enumerate(windows):
            col = 0
            for piece in win.pieces:
                framed_pos = np.arange(piece.start, piece.stop)  # 0 = BOS, 1..n = x_0..x_{n-1}, n + 1 = EOS
                terminal = (framed_pos >= 1) & (framed_pos <= lengths[piece.doc])
                cols = col + np.nonzero(terminal)[0]
                sidx[row, cols] = piece.doc
                tidx[row, cols] = framed_pos[terminal] - 1
                col += piece.stop - piece.start
        tokens = torch.tensor([w.tokens for w in windows], dtype=torch.long)
        return cls(tokens, torch.from_numpy(sidx), torch.from_numpy(tidx), torch.tensor(lengths, dtype=torch.long))

    @property
    def terminal_mask(self) -> Bool[Tensor, "n_windows window"]:
        return self.token_index >= 0


Layout = SentenceLayout | PackedLayout


def gather_labels(
    layout: Layout, labels: Sequence[np.ndarray | Sequence[int]], fill: int = IGNORE_INDEX
) -> Int[Tensor, "n seq"]:
    """Per-position labels for a layout from per-sentence label vectors (``labels[s][i]`` for x_i).

    Positions without a terminal get ``fill``.
    """
    if len(labels) != len(layout.lengths):
        raise ValueError(f"got labels for {len(labels)} sentences, the layout holds {len(layout.lengths)}")
    flat = [np.asarray(v, dtype=np.int64).reshape(-1) for v in labels]
    for s, (vec, n) in enumerate(zip(flat, layout.lengths.tolist())):
        if vec.shape[0] < n:
            raise ValueError(f"sentence {s}: {vec.shape[0]} labels for {n} laid-out tokens")
    offsets = np.concatenate([[0], np.cumsum([v.shape[0] for v in flat])])
    table = torch.from_numpy(np.concatenate(flat)) if flat else torch.zeros(0, dtype=torch.long)
    mask = layout.terminal_mask
    out = torch.full(layout.tokens.shape, fill, dtype=torch.long)
    where = torch.from_numpy(offsets[:-1])[layout.sentence_index[mask]] + layout.token_index[mask]
    out[mask] = table[where]
    return out


def to_sentence_rows(
    layout: SentenceLayout, per_position: Tensor, fill: float | int = 0
) -> Tensor:
    """Re-index a ``[n, seq, ...]`` tensor so that column i is x_i: ``[n, max_length, ...]`` (BOS dropped)."""
    if per_position.shape[:2] != layout.tokens.shape:
        raise ValueError(f"expected leading shape {tuple(layout.tokens.shape)}, got {tuple(per_position.shape)}")
    n_max = layout.max_length
    out = per_position.new_full((per_position.shape[0], n_max, *per_position.shape[2:]), fill)
    mask = layout.terminal_mask
    rows, cols = mask.nonzero(as_tuple=True)
    out[rows, layout.token_index[mask]] = per_position[rows, cols]
    return out

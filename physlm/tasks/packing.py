"""Documents to fixed windows: the papers' ``BOS x EOS BOS x' EOS ...`` layout, in one place.

Every consumer of the training layout (the trainer's batches, probing's packed layout, the attention windows)
cuts its stream here, so they all see the same windows. A document is framed by
:meth:`physlm.tasks.base.TokenTable.frame`; the framed documents are laid end to end and cut into consecutive
windows of ``window`` tokens, so a window may start or end inside a document and no padding is used.

Each :class:`Window` says which slices of which framed documents it holds (:class:`Piece`), so a consumer can
cut its per-token labels the same way, and where the stream stands after it (``next_doc``, ``next_offset``), so a
stream can stop after any window and resume exactly there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from physlm.tasks.base import TokenTable

MAX_CONSECUTIVE_DROPS = 10_000
"""How many documents in a row :func:`framed_documents` may drop before it gives up (the window is too small)."""


class Piece(NamedTuple):
    """Consecutive positions ``start:stop`` of one framed document (position 0 is its BOS) inside a window."""

    doc: int
    """index of the document in the input stream (dropped documents keep their index)"""
    start: int
    stop: int


class Window(NamedTuple):
    """One window of the packed stream."""

    tokens: list[int]
    """token ids, ``window`` of them"""
    pieces: tuple[Piece, ...]
    """the slices of framed documents that make up ``tokens``, in order"""
    next_doc: int
    """index of the document the next window starts in"""
    next_offset: int
    """position in that framed document where the next window starts (0 = its BOS)"""


def framed_documents(
    documents: Iterable[Sequence[int]],
    table: TokenTable,
    max_len: int | None = None,
    start_doc: int = 0,
) -> Iterator[tuple[int, list[int]]]:
    """``(index, BOS doc EOS)`` for each document, indices counting from ``start_doc``.

    With ``max_len``, documents longer than ``max_len`` once framed are dropped (their index is skipped);
    :data:`MAX_CONSECUTIVE_DROPS` drops in a row raise ``ValueError``, since the stream would never move on.
    """
    dropped = 0
    for k, doc in enumerate(documents, start_doc):
        framed = table.frame(doc)
        if max_len is not None and len(framed) > max_len:
            dropped += 1
            if dropped >= MAX_CONSECUTIVE_DROPS:
                raise ValueError(
                    f"{MAX_CONSECUTIVE_DROPS} documents in a row were longer than {max_len} tokens (with "
                    "BOS/EOS) and were dropped; use a longer window (seq_len), or keep long documents "
                    "(the packed layout without drop_long_documents)"
                )
            continue
        dropped = 0
        yield k, framed


def pack(
    documents: Iterable[Sequence[int]],
    table: TokenTable,
    window: int,
    n_windows: int | None = None,
    drop_long: bool = False,
    start_doc: int = 0,
    offset: int = 0,
) -> Iterator[Window]:
    """Cut ``BOS d_0 EOS BOS d_1 EOS ...`` into consecutive windows of ``window`` tokens.

    ``documents`` are token ids without BOS/EOS, read lazily (only as far as the windows asked for need);
    document i of the iterable has index ``start_doc + i``. ``drop_long`` leaves out documents longer than a
    window once framed (Part 2's rule: no document is longer than the model's context).
    ``offset`` skips the first positions of the first framed document: with ``start_doc`` it resumes a
    stream at a :class:`Window`'s ``(next_doc, next_offset)``. Yields ``n_windows`` windows (all that fill up
    when None); a tail that does not fill a window is not yielded.
    """
    if window < 1:
        raise ValueError(f"window must be positive, got {window}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    framed = framed_documents(documents, table, window if drop_long else None, start_doc)
    current: tuple[int, list[int]] | None = None
    pos = offset
    done = 0
    while n_windows is None or done < n_windows:
        tokens: list[int] = []
        pieces: list[Piece] = []
        while len(tokens) < window:
            if current is None:
                current = next(framed, None)
                if current is None:
                    return
            k, ids = current
            take = ids[pos : pos + window - len(tokens)]
            if take:
                pieces.append(Piece(k, pos, pos + len(take)))
                tokens.extend(take)
                pos += len(take)
            if pos >= len(ids):
                current, pos = None, 0
        next_doc = current[0] if current is not None else pieces[-1].doc + 1
        yield Window(tokens, tuple(pieces), next_doc, pos)
        done += 1

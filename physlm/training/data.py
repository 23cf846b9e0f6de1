"""Training batches streamed from a task (fresh documents every step) or read from a saved HF dataset.

Reproducibility and resumption rest on two rules:

* Document ``k`` of a stream is a pure function of ``(seed, stream name, k)``: a task samples it with
  ``random.Random(f"physlm/{seed}/{stream}/{k}")``, a dataset reads row ``k`` of a seeded per-epoch
  permutation. Nothing depends on how many documents were drawn before.
* Row ``b`` of every global batch comes from its own *lane* ``b``, a continuous ``BOS x EOS BOS x' EOS ...``
  stream over documents ``b, b + B, b + 2B, ...`` (B = global batch size) cut into consecutive windows. A
  lane's position is two integers (its next document and the offset inside it), so the stream state saved in a
  checkpoint is tiny, and resuming at step k gives exactly the batches of an uninterrupted run.

Under data parallelism each process owns a contiguous block of lanes, so the global batch is identical for any
number of processes and no process generates another's documents.
"""

from __future__ import annotations

import dataclasses
import itertools
import queue
import random
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from physlm.tasks.base import Task, TokenTable
from physlm.tasks.packing import framed_documents, pack

Layout = Literal["packed", "padded"]


@runtime_checkable
class DocumentSource(Protocol):
    """Where documents come from: ``document(stream, k)`` is document ``k`` of a named stream."""

    token_table: TokenTable

    def document(self, stream: str, k: int) -> list[int]:
        """Token ids of document ``k`` of ``stream`` (without BOS/EOS); a pure function of its arguments."""
        ...


class TaskDocuments:
    """Fresh documents sampled from a task, each with its own seeded ``random.Random``."""

    def __init__(self, task: Task, seed: int):
        if not isinstance(task, Task):
            raise TypeError(
                f"{type(task).__name__} does not follow physlm.tasks.base.Task (token_table, sample_document)"
            )
        self.task = task
        self.token_table = task.token_table
        self.seed = seed

    def document(self, stream: str, k: int) -> list[int]:
        # A string seed goes through SHA-512 in CPython, so it is stable across processes and Python runs.
        rng = random.Random(f"physlm/{self.seed}/{stream}/{k}")
        return list(self.task.sample_document(rng))


class DatasetDocuments:
    """Documents read from a saved HF ``datasets`` directory (``Dataset.save_to_disk``).

    A ``DatasetDict`` supplies the ``train`` split to the training stream and its
    ``test``/``validation``/``eval`` split to every other stream. A single ``Dataset`` keeps its last 5% of
    rows (at least one) for held-out streams. Each pass over the rows uses a fresh permutation seeded by
    ``(seed, epoch)``.
    """

    _HELD_OUT_SPLITS = ("test", "validation", "eval")

    def __init__(
        self,
        path: str | Path,
        token_table: TokenTable,
        seed: int,
        column: str = "input_ids",
        id_offset: int = 0,
    ):
        import datasets

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"dataset directory {path} does not exist")
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if "train" not in loaded:
                raise ValueError(f"dataset {path} has splits {sorted(loaded)}, but no 'train' split")
            held = [s for s in self._HELD_OUT_SPLITS if s in loaded]
            if not held:
                raise ValueError(
                    f"dataset {path} has splits {sorted(loaded)}; a held-out split named one of "
                    f"{self._HELD_OUT_SPLITS} is needed for the evaluation loss"
                )
            self._train, self._held = loaded["train"], loaded[held[0]]
        else:
            n = len(loaded)
            if n < 2:
                raise ValueError(f"dataset {path} has {n} row(s); at least 2 are needed (train + held out)")
            n_held = max(1, n // 20)
            self._train = loaded.select(range(n - n_held))
            self._held = loaded.select(range(n - n_held, n))
        for split in (self._train, self._held):
            if column not in split.column_names:
                raise ValueError(
                    f"dataset {path} has no column {column!r}; its columns are {split.column_names} "
                    "(set dataset_column)"
                )
        self.path = path
        self.token_table = token_table
        self.seed = seed
        self.column = column
        self.id_offset = id_offset
        self._perms: dict[str, tuple[int, list[int]]] = {}  # split -> (epoch, permutation): one epoch each

    def _row(self, split_name: str, n: int, k: int) -> int:
        epoch, pos = divmod(k, n)
        cached = self._perms.get(split_name)
        if cached is None or cached[0] != epoch:
            gen = torch.Generator().manual_seed(hash_seed(self.seed, split_name, epoch))
            cached = (epoch, torch.randperm(n, generator=gen).tolist())
            self._perms[split_name] = cached
        return cached[1][pos]

    def document(self, stream: str, k: int) -> list[int]:
        split, name = (self._train, "train") if stream == "train" else (self._held, "held")
        row = self._row(name, len(split), k)
        ids = [int(v) + self.id_offset for v in split[row][self.column]]
        bad = [v for v in ids if not 0 <= v < self.token_table.d_vocab]
        if bad:
            raise ValueError(
                f"dataset {self.path} row {row} has token id {bad[0]} (after adding dataset_id_offset="
                f"{self.id_offset}) outside the {self.token_table.task!r} vocabulary "
                f"of {self.token_table.d_vocab}"
            )
        return ids


def hash_seed(*parts: object) -> int:
    """A 63-bit seed derived from ``parts`` (stable across processes, unlike ``hash``)."""
    return random.Random("/".join(str(p) for p in parts)).getrandbits(63)


@dataclasses.dataclass(frozen=True)
class Batch:
    """Token windows and which next-token targets count in the loss (``loss_mask[b, j]`` scores token j+1)."""

    tokens: Int[Tensor, "batch pos"]
    loss_mask: Bool[Tensor, "batch targets"]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.tokens.to(device, non_blocking=True), self.loss_mask.to(device, non_blocking=True))


class _Lane:
    """One row of every batch: consecutive windows of ``BOS x EOS BOS x' EOS ...``, or one padded document.

    The windows come from :func:`physlm.tasks.packing.pack` over this lane's documents; the lane's position is
    the next document and the offset in it (of the framed document) where the next row starts.
    """

    def __init__(
        self,
        source: DocumentSource,
        stream: str,
        lane: int,
        n_lanes: int,
        seq_len: int,
        layout: Layout,
        drop_long: bool,
        next_doc: int = 0,
        offset: int = 0,
    ):
        self.source, self.stream, self.lane, self.n_lanes = source, stream, lane, n_lanes
        self.seq_len, self.layout, self.drop_long = seq_len, layout, drop_long or layout == "padded"
        self.table = source.token_table
        self.pad = self.table.pad_id
        self.restore(next_doc, offset)

    def state(self) -> list[int]:
        return [self.next_doc, self.offset]

    def restore(self, next_doc: int, offset: int) -> None:
        """Move the lane to a saved position; the next row starts there."""
        self.next_doc, self.offset = next_doc, offset
        self._rows: Iterator[Any] | None = None  # the packer (or framer) reading on from that position

    def _documents(self, start: int) -> Iterator[list[int]]:
        """This lane's documents ``start, start + 1, ...`` (global documents ``k * n_lanes + lane``)."""
        for k in itertools.count(start):
            yield self.source.document(self.stream, k * self.n_lanes + self.lane)

    def _next_row(self) -> Any:
        if self._rows is None:
            if self.layout == "padded":
                self._rows = framed_documents(
                    self._documents(self.next_doc), self.table, self.seq_len, self.next_doc
                )
            else:
                self._rows = pack(
                    self._documents(self.next_doc), self.table, self.seq_len, drop_long=self.drop_long,
                    start_doc=self.next_doc, offset=self.offset,
                )
        try:
            return next(self._rows)
        except BaseException:
            self._rows = None  # a failed generator is spent; start again from the last good position
            raise

    def window(self) -> tuple[list[int], int]:
        """The next row's tokens (length seq_len) and how many of them are real (the rest is padding)."""
        if self.layout == "padded":
            k, framed = self._next_row()
            self.next_doc, self.offset = k + 1, 0
            return framed + [self.pad] * (self.seq_len - len(framed)), len(framed)
        window = self._next_row()
        self.next_doc, self.offset = window.next_doc, window.next_offset
        return window.tokens, self.seq_len


class BatchStream:
    """An endless, resumable stream of batches; this process's share of each global batch.

    ``lanes`` are the global rows this process produces (all of them in a single process).
    """

    def __init__(
        self,
        source: DocumentSource,
        stream: str,
        global_batch: int,
        seq_len: int,
        layout: Layout = "packed",
        lanes: Sequence[int] | None = None,
        drop_long_documents: bool = False,
    ):
        if layout not in ("packed", "padded"):
            raise ValueError(f"layout must be 'packed' or 'padded', got {layout!r}")
        lanes = list(range(global_batch)) if lanes is None else list(lanes)
        if not lanes or any(not 0 <= b < global_batch for b in lanes):
            raise ValueError(f"lanes must be a non-empty subset of range({global_batch}), got {lanes}")
        self.stream, self.global_batch, self.seq_len, self.layout = stream, global_batch, seq_len, layout
        self.lanes = [
            _Lane(source, stream, b, global_batch, seq_len, layout, drop_long_documents) for b in lanes
        ]

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> Batch:
        rows, lengths = zip(*(lane.window() for lane in self.lanes))
        tokens = torch.tensor(rows, dtype=torch.long)
        lengths_t = torch.tensor(lengths, dtype=torch.long)
        # target j is token j + 1, real when j + 1 < length
        mask = torch.arange(1, self.seq_len).unsqueeze(0) < lengths_t.unsqueeze(1)
        return Batch(tokens, mask)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able position of every owned lane, keyed by global lane index."""
        return {
            "stream": self.stream,
            "global_batch": self.global_batch,
            "seq_len": self.seq_len,
            "layout": self.layout,
            "lanes": {str(lane.lane): lane.state() for lane in self.lanes},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore lane positions from :meth:`state_dict` (possibly merged over several processes)."""
        for key in ("stream", "global_batch", "seq_len", "layout"):
            if state.get(key) != getattr(self, key):
                raise ValueError(
                    f"saved data stream has {key}={state.get(key)!r} "
                    f"but this run has {getattr(self, key)!r}; "
                    "a run can only resume with the same batch size, sequence length and layout"
                )
        for lane in self.lanes:
            saved = state["lanes"].get(str(lane.lane))
            if saved is None:
                raise ValueError(f"saved data stream has no state for lane {lane.lane}")
            lane.restore(int(saved[0]), int(saved[1]))


class PrefetchingStream:
    """Builds the next ``depth`` batches of a :class:`BatchStream` in a background thread.

    Document sampling is Python code; running it in a thread overlaps it with the accelerator's work on the
    current step (the GIL is released while kernels run). One thread draws the batches in order, so they are
    exactly the wrapped stream's, and :meth:`state_dict` is the position after the last batch *consumed*, so
    checkpoints stay exact however far the thread has read ahead.
    """

    def __init__(self, stream: BatchStream, depth: int = 2, pin_memory: bool = False):
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self.stream, self.depth, self.pin_memory = stream, depth, pin_memory
        self._state = stream.state_dict()
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _work(self, out: queue.Queue) -> None:
        try:
            while not self._stop.is_set():
                batch = next(self.stream)
                if self.pin_memory:
                    batch = Batch(batch.tokens.pin_memory(), batch.loss_mask.pin_memory())
                item: Any = (batch, self.stream.state_dict())
                while not self._stop.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # surfaced in the consumer, which re-raises it
            out.put(exc)

    def __iter__(self) -> PrefetchingStream:
        return self

    def __next__(self) -> Batch:
        if self._thread is None:
            self._queue = queue.Queue(maxsize=self.depth)
            self._thread = threading.Thread(target=self._work, args=(self._queue,), daemon=True)
            self._thread.start()
        assert self._queue is not None
        item = self._queue.get()
        if isinstance(item, BaseException):
            self.close()
            raise item
        batch, self._state = item
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Stream position after the last batch returned by ``next``."""
        return self._state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position; only before the first ``next`` (the thread has not read ahead yet)."""
        if self._thread is not None:
            raise RuntimeError("load_state_dict must be called before the first batch is drawn")
        self.stream.load_state_dict(state)
        self._state = self.stream.state_dict()

    def close(self) -> None:
        """Stop the background thread; a later ``next`` restarts it from the last consumed batch."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread, self._queue, self._stop = None, None, threading.Event()
        self.stream.load_state_dict(self._state)  # forget the batches read ahead


def merge_stream_states(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Merge the stream states of several processes (each owning some lanes) into one."""
    merged = dict(states[0])
    merged["lanes"] = {}
    for state in states:
        merged["lanes"].update(state["lanes"])
    return merged


def fixed_batches(
    source: DocumentSource,
    n_batches: int,
    global_batch: int,
    seq_len: int,
    layout: Layout = "packed",
    lanes: Sequence[int] | None = None,
    drop_long_documents: bool = False,
    stream: str = "eval",
) -> list[Batch]:
    """The same ``n_batches`` held-out batches every time (a stream separate from training)."""
    it = BatchStream(source, stream, global_batch, seq_len, layout, lanes, drop_long_documents)
    return [next(it) for _ in range(n_batches)]


def lane_share(global_batch: int, world_size: int, rank: int) -> range:
    """The contiguous block of global batch rows that process ``rank`` of ``world_size`` produces."""
    if global_batch % world_size:
        raise ValueError(
            f"global batch_size {global_batch} is not divisible by the {world_size} processes; "
            "choose a batch size that is a multiple of the number of processes"
        )
    per = global_batch // world_size
    return range(rank * per, (rank + 1) * per)

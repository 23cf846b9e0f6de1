"""CFG sentences with per-token labels as a Hugging Face ``datasets.Dataset`` with explicit Features.

Columns (one row per sentence):

- ``id``: global sentence index; ``length``: n
- ``symbols``: the terminals the model sees (corrupted when ``corrupted``); ``clean_symbols``: as generated
- ``ancestor``, ``ancestor_index``, ``end``: (L − 2) lists of n values, row r = level ℓ = r + 2 (clean tree)
- ``end_level``: n values, b♯(i) ∈ {2..L−1}, or 0 when i ends no NT
- ``corrupted``: whether ``symbols`` was corrupted

Generation is split into fixed shards of ``shard_size`` sentences, each with its own seed drawn from
``numpy.random.SeedSequence(seed)``; the data therefore depend on ``seed`` and ``shard_size`` only, not on
``num_proc``. Shards run in worker processes and are written as Arrow files, then saved with
``save_to_disk``. ``datasets`` is imported only inside these functions (``import physlm.tasks.cfg`` stays light).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from physlm.config import Config
from physlm.tasks.cfg.corrupt import maybe_corrupt
from physlm.tasks.cfg.grammar import Grammar
from physlm.tasks.cfg.presets import DEFAULT_GRAMMAR
from physlm.tasks.cfg.sample import labels_from_levels, sample_tree

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa


@dataclasses.dataclass(frozen=True)
class CFGDataConfig(Config):
    """What goes into a CFG data set (saved next to it; same config, same bytes)."""

    grammar: str = DEFAULT_GRAMMAR
    """preset name or grammar file path"""
    n: int = 10_000
    """number of sentences"""
    seed: int = 0
    """master seed; shard k uses SeedSequence(seed, spawn_key=(k,))"""
    shard_size: int = 2_000
    """sentences per generation shard (changing it changes the data; num_proc does not)"""
    corrupt_rate: float = 0.0
    """fraction of sentences whose `symbols` are corrupted (labels stay clean)"""
    flip_fraction: float = 0.15
    """fraction of tokens flipped in a corrupted sentence"""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"CFGDataConfig.n must be >= 1, got {self.n}")
        if self.shard_size < 1:
            raise ValueError(f"CFGDataConfig.shard_size must be >= 1, got {self.shard_size}")
        for name in ("corrupt_rate", "flip_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"CFGDataConfig.{name} must be in [0, 1], got {getattr(self, name)}")


def _int_dtype(max_value: int) -> str:
    for name, bound in (("int8", 127), ("int16", 32767), ("int32", 2**31 - 1)):
        if max_value <= bound:
            return name
    return "int64"


@dataclasses.dataclass(frozen=True)
class _Dtypes:
    symbol: str
    ancestor: str
    index: str


def _dtypes(grammar: Grammar) -> _Dtypes:
    max_len = grammar.span_bounds[0][1]
    return _Dtypes(
        symbol=_int_dtype(grammar.num_terminals),
        ancestor=_int_dtype(max(grammar.sizes)),
        index=_int_dtype(max_len),
    )


def cfg_features(grammar: Grammar) -> datasets.Features:
    """The explicit Features of a grammar's data set (integer widths sized to the grammar)."""
    from datasets import Features, List, Value

    dt = _dtypes(grammar)
    n_nt = grammar.num_levels - 2
    return Features(
        {
            "id": Value("int64"),
            "length": Value("int32"),
            "symbols": List(Value(dt.symbol)),
            "clean_symbols": List(Value(dt.symbol)),
            "ancestor": List(List(Value(dt.ancestor)), length=n_nt),
            "ancestor_index": List(List(Value(dt.index)), length=n_nt),
            "end": List(List(Value("int8")), length=n_nt),
            "end_level": List(Value("int8")),
            "corrupted": Value("bool"),
        }
    )


def shard_rngs(seed: int, shard: int) -> tuple[random.Random, random.Random]:
    """The (sampling, corruption) generators of one shard: independent streams, so that turning corruption
    on or off leaves the clean sentences unchanged."""
    states = [
        np.random.SeedSequence(seed, spawn_key=(shard, stream)).generate_state(4, dtype=np.uint32)
        for stream in (0, 1)
    ]
    return tuple(random.Random(int.from_bytes(s.tobytes(), "little")) for s in states)  # type: ignore[return-value]


def _nested(values: np.ndarray, inner_lengths: np.ndarray, outer: int | None, dtype: str) -> pa.Array:
    """An Arrow (fixed-size) list of lists from flat values and the lengths of the inner lists."""
    import pyarrow as pa

    offsets = np.zeros(len(inner_lengths) + 1, dtype=np.int32)
    np.cumsum(inner_lengths, out=offsets[1:])
    inner = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.astype(dtype)))
    if outer is None:
        return inner
    return pa.FixedSizeListArray.from_arrays(inner, outer)


def generate_shard_table(
    grammar: Grammar, shard: int, start: int, count: int, config: CFGDataConfig
) -> pa.Table:
    """Sentences ``start .. start + count`` (shard ``shard``) as an Arrow table with :func:`cfg_features`."""
    import pyarrow as pa

    features = cfg_features(grammar)
    dt = _dtypes(grammar)
    n_nt = grammar.num_levels - 2
    sample_rng, corrupt_rng = shard_rngs(config.seed, shard)
    lengths = np.empty(count, dtype=np.int64)
    syms, clean, anc, idx, end, end_level, corrupted = [], [], [], [], [], [], []
    for j in range(count):
        symbols, levels = sample_tree(grammar, sample_rng)
        a, p, b, e = labels_from_levels(levels, len(symbols))
        seen, was_corrupted = maybe_corrupt(
            symbols, config.corrupt_rate, config.flip_fraction, grammar.num_terminals, corrupt_rng
        )
        lengths[j] = len(symbols)
        syms.append(np.asarray(seen))
        clean.append(np.asarray(symbols))
        anc.append(a.ravel())
        idx.append(p.ravel())
        end.append(b.ravel())
        end_level.append(e)
        corrupted.append(was_corrupted)
    per_level = np.repeat(lengths, n_nt)
    columns = {
        "id": pa.array(np.arange(start, start + count, dtype=np.int64)),
        "length": pa.array(lengths.astype(np.int32)),
        "symbols": _nested(np.concatenate(syms), lengths, None, dt.symbol),
        "clean_symbols": _nested(np.concatenate(clean), lengths, None, dt.symbol),
        "ancestor": _nested(np.concatenate(anc), per_level, n_nt, dt.ancestor),
        "ancestor_index": _nested(np.concatenate(idx), per_level, n_nt, dt.index),
        "end": _nested(np.concatenate(end), per_level, n_nt, "int8"),
        "end_level": _nested(np.concatenate(end_level), lengths, None, "int8"),
        "corrupted": pa.array(corrupted, type=pa.bool_()),
    }
    return pa.Table.from_pydict(columns, schema=features.arrow_schema)


def _write_shard(args: tuple[dict[str, Any], int, int, int, dict[str, Any], str]) -> str:
    """Worker: generate one shard and write it as an Arrow stream file (the format datasets memory-maps)."""
    import pyarrow as pa

    grammar_dict, shard, start, count, config_dict, path = args
    table = generate_shard_table(
        Grammar.from_dict(grammar_dict), shard, start, count, CFGDataConfig.from_dict(config_dict)
    )
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return path


def generate_cfg_dataset(
    grammar: Grammar,
    config: CFGDataConfig,
    num_proc: int = 1,
    workdir: str | Path | None = None,
    progress: bool = True,
) -> datasets.Dataset:
    """Generate ``config.n`` labelled sentences of ``grammar`` (same ``config``, same data).

    Shard files go to ``workdir`` (a temporary directory by default, which must outlive the returned,
    memory-mapped dataset: pass a directory when you keep the dataset; :func:`export_cfg_dataset` does).
    """
    import datasets
    from tqdm.auto import tqdm

    if num_proc < 1:
        raise ValueError(f"num_proc must be >= 1, got {num_proc}")
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="physlm-cfg-"))
    workdir.mkdir(parents=True, exist_ok=True)
    n_shards = math.ceil(config.n / config.shard_size)
    jobs = [
        (
            grammar.to_dict(),
            k,
            k * config.shard_size,
            min(config.shard_size, config.n - k * config.shard_size),
            config.to_dict(),
            str(workdir / f"shard-{k:05d}.arrow"),
        )
        for k in range(n_shards)
    ]
    bar = tqdm(total=config.n, desc=f"sampling {grammar.name}", unit="sent", disable=not progress)
    paths: list[str] = []
    if num_proc == 1 or n_shards == 1:
        for job in jobs:
            paths.append(_write_shard(job))
            bar.update(job[3])
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork (as datasets' own num_proc does): spawn would re-run an unguarded caller script in every
        # worker. Workers only run Python/numpy/pyarrow code, never torch ops, so fork is safe here.
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(num_proc, n_shards), mp_context=ctx) as pool:
            for job, path in zip(jobs, pool.map(_write_shard, jobs)):
                paths.append(path)
                bar.update(job[3])
    bar.close()
    info = datasets.DatasetInfo(
        description=json.dumps({"cfg_data_config": config.to_dict(), "grammar": grammar.name}),
        features=cfg_features(grammar),
    )
    parts = [datasets.Dataset.from_file(p, info=info) for p in paths]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts, info=info)


def export_cfg_dataset(
    grammar: Grammar,
    config: CFGDataConfig,
    path: str | Path,
    num_proc: int = 1,
    max_shard_size: str = "200MB",
    progress: bool = True,
) -> Path:
    """Generate and ``save_to_disk`` a data set at ``path`` (in shards of ``max_shard_size``)."""
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(f"{path} already exists and is not empty; choose another path or remove it")
    with tempfile.TemporaryDirectory(
        prefix="physlm-cfg-", dir=path.parent if path.parent.exists() else None
    ) as tmp:
        ds = generate_cfg_dataset(grammar, config, num_proc=num_proc, workdir=tmp, progress=progress)
        ds.save_to_disk(str(path), max_shard_size=max_shard_size, num_proc=1)
        del ds
    return path


def load_cfg_dataset(path: str | Path) -> datasets.Dataset:
    """Load a data set written by :func:`export_cfg_dataset` (or by ``physlm data cfg``: pass its run dir)."""
    import datasets

    path = Path(path)
    if (path / "dataset").is_dir() and not (path / "dataset_info.json").exists():
        path = path / "dataset"
    if not path.is_dir():
        raise FileNotFoundError(f"no CFG data set at {path}; create one with `physlm data cfg --out ...`")
    return datasets.load_from_disk(str(path))


def corrupt_dataset(
    dataset: datasets.Dataset,
    num_terminals: int,
    corrupt_rate: float,
    flip_fraction: float = 0.15,
    seed: int = 0,
    num_proc: int | None = None,
) -> datasets.Dataset:
    """Re-corrupt a data set's ``symbols`` from its ``clean_symbols``: each row (by ``id``) is corrupted with
    probability ``corrupt_rate`` using its own seeded generator, so the result does not depend on
    ``num_proc``.
    Labels are left as they are (they describe the clean sentence)."""

    def corrupt_rows(rows: Mapping[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"symbols": [], "corrupted": []}
        for row_id, clean in zip(rows["id"], rows["clean_symbols"]):
            state = np.random.SeedSequence(seed, spawn_key=(int(row_id),)).generate_state(4, dtype=np.uint32)
            rng = random.Random(int.from_bytes(state.tobytes(), "little"))
            seen, was_corrupted = maybe_corrupt(clean, corrupt_rate, flip_fraction, num_terminals, rng)
            out["symbols"].append(seen)
            out["corrupted"].append(was_corrupted)
        return out

    # An explicit fingerprint: datasets would otherwise hash the closure with dill, which is slow and
    # depends on how the function was decorated.
    key = f"{dataset._fingerprint}|{num_terminals}|{corrupt_rate!r}|{flip_fraction!r}|{seed}"
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:32]
    return dataset.map(
        corrupt_rows, batched=True, num_proc=num_proc, desc="corrupting", new_fingerprint=fingerprint
    )

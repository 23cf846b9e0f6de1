"""``physlm data cfg`` and ``physlm data grammar-info``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import tyro

from physlm.tasks.cfg.presets import DEFAULT_GRAMMAR, load_grammar

DATASET_DIR = "dataset"
"""the data set's folder inside a run directory (load it with physlm.tasks.cfg.load_cfg_dataset(run_dir))"""
GRAMMAR_FILE = "grammar.json"
"""the grammar, saved next to the data (official JSON format)"""


def data_cfg(
    out: Path,
    grammar: str = DEFAULT_GRAMMAR,
    n: int = 100_000,
    seed: int = 0,
    shard_size: int = 2_000,
    corrupt_rate: float = 0.0,
    flip_fraction: float = 0.15,
    num_proc: int = 2,
    overwrite: bool = False,
) -> Path:
    """Sample CFG sentences with per-token labels into a HF dataset in a new run directory.

    Args:
        out: run directory to create (the data go to OUT/dataset, the grammar to OUT/grammar.json).
        grammar: preset name (see `physlm data grammar-info`) or path to a grammar file.
        n: number of sentences.
        seed: master seed; the same seed and shard size give the same data for any num_proc.
        shard_size: sentences per generation shard.
        corrupt_rate: fraction of sentences whose tokens are corrupted (labels stay clean).
        flip_fraction: fraction of tokens flipped in a corrupted sentence.
        num_proc: worker processes.
        overwrite: replace an existing run directory.
    """
    from physlm.rundir import RunDir
    from physlm.tasks.cfg.dataset import CFGDataConfig, export_cfg_dataset
    from physlm.tasks.cfg.presets import save_grammar

    config = CFGDataConfig(
        grammar=grammar,
        n=n,
        seed=seed,
        shard_size=shard_size,
        corrupt_rate=corrupt_rate,
        flip_fraction=flip_fraction,
    )
    g = load_grammar(grammar)
    run = RunDir.create(out, {"cfg_data": config}, overwrite=overwrite)
    with run.stage("data"):
        save_grammar(g, run.artifact(GRAMMAR_FILE))
        run.log(f"sampling {n} sentences of {g.name} (L = {g.num_levels}) with {num_proc} process(es)")
        path = export_cfg_dataset(g, config, run.path / DATASET_DIR, num_proc=num_proc)
        from physlm.tasks.cfg.dataset import load_cfg_dataset

        ds = load_cfg_dataset(path)
        lengths = ds["length"]
        n_corrupted = sum(ds["corrupted"])
        run.log(
            f"wrote {len(ds)} sentences to {path}: {sum(lengths)} tokens, length mean "
            f"{sum(lengths) / len(lengths):.1f} min {min(lengths)} max {max(lengths)}, "
            f"{n_corrupted} corrupted"
        )
    return path


def grammar_info(
    name: Annotated[str, tyro.conf.Positional] = DEFAULT_GRAMMAR,
    samples: int = 2_000,
    dp_samples: int = 200,
    seed: int = 0,
    rules_only: bool = False,
) -> None:
    """Print a grammar's levels, symbols and rules, sentence lengths, entropy floor and ambiguity.

    Args:
        name: preset name or path to a grammar file (official JSON or `A -> B C | C B` text).
        samples: sentences sampled for the length and locality statistics.
        dp_samples: sentences run through the exact DPs for the entropy floor and the ambiguity.
        seed: sampling seed.
        rules_only: print the grammar without sampling anything.
    """
    from physlm.tasks.cfg.stats import format_grammar_info, grammar_stats

    g = load_grammar(name)
    stats = (
        None
        if rules_only
        else grammar_stats(g, n_samples=samples, n_dp_samples=dp_samples, seed=seed, progress=True)
    )
    print(format_grammar_info(g, stats), end="")

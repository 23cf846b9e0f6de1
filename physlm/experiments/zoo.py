"""The model zoo: small trained CFG models shipped as package data, with the numbers measured on them.

Each entry is one folder of :data:`ZOO_DIR` (``experiments/zoo/<name>/``)::

    model.safetensors   the trained weights, as the trainer wrote them
    checkpoint.json     the trainer's checkpoint record (configs, token table, versions), its file list
                        reduced to the weights: the optimizer state (trainer_state.pt) is not shipped
    config.json         the run's configs and command lines (physlm.rundir.RunDir)
    metrics.jsonl       training and held-out loss curve
    log.txt             the run's log
    probe_results.csv   `physlm probe cfg` results, with controls
    generation.json     `physlm analyze generation` results
    zoo.json            the reproduction command, the grammar, and the headline numbers measured on the run

iGSM entries (``igsm_<preset>-<variant>-<size>``, zoo.json ``task: igsm``) hold ``igsm_eval.json`` (`physlm
analyze igsm`, the eval stage of `physlm run igsm`) instead of generation.json, and probe_results.csv
(`physlm probe igsm`) only when the run's probe stage finished; their headline is the per-cell greedy accuracy
and the last-layer nece / dep / can_next V-probes, and ``check`` re-solves fresh in-distribution problems.

The entry folder is itself a checkpoint directory (``physlm.training.load_model`` resolves a folder holding
``checkpoint.json``) and a run directory (``RunDir.open`` needs ``config.json``), so every function that takes a
run also takes a zoo entry read-only.

Build an entry from a finished run (``physlm run cfg``, or ``physlm train`` + ``physlm probe cfg`` +
``physlm analyze generation``)::

    physlm zoo build cfg_small-rot --run runs/cfg_small-long
    physlm zoo list
    physlm zoo check cfg_small-rot     # re-measure the headline numbers on fresh samples

This module gathers the zoo's public names and the ``physlm zoo`` commands; the work is done in
:mod:`physlm.experiments.zoo_registry` (reading and loading entries, the notebooks' model),
:mod:`physlm.experiments.zoo_build` (building one) and :mod:`physlm.experiments.zoo_check` (re-measuring one).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import tyro

from physlm.experiments.zoo_build import (
    DEFAULT_MAX_MB,
    build_zoo_entry,
    headline_from_run,
    igsm_headline_from_run,
    igsm_probe_headline,
    reproduction_commands,
)
from physlm.experiments.zoo_check import (
    Z_TOLERANCE,
    Comparison,
    check_igsm_entry,
    check_zoo_entry,
    measure_ancestor_at_end,
    measure_generation_accuracy,
    measure_igsm_accuracy,
)
from physlm.experiments.zoo_registry import (
    HEADLINE_TARGET,
    IGSM_PROBE_TARGETS,
    IGSM_RUN_FILES,
    RUN_FILES,
    ZOO_DIR,
    ZOO_FILE,
    ZOO_FORMAT,
    ZOO_FORMAT_VERSION,
    NotebookModel,
    ZooError,
    default_zoo_entry,
    entry_task,
    list_zoo,
    list_zoo_task,
    load_zoo_model,
    notebook_model,
    read_zoo_record,
    train_tiny_model,
    zoo_grammar,
    zoo_path,
)

__all__ = [
    "DEFAULT_MAX_MB", "HEADLINE_TARGET", "RUN_FILES", "ZOO_DIR", "ZOO_FILE", "ZOO_FORMAT", "ZOO_FORMAT_VERSION",
    "IGSM_PROBE_TARGETS", "IGSM_RUN_FILES", "Z_TOLERANCE", "Comparison", "NotebookModel", "ZooError",
    "build_zoo_entry", "check_igsm_entry", "check_zoo_entry", "default_zoo_entry", "entry_task",
    "headline_from_run", "igsm_headline_from_run", "igsm_probe_headline", "list_zoo", "list_zoo_task",
    "load_zoo_model", "measure_ancestor_at_end", "measure_generation_accuracy", "measure_igsm_accuracy",
    "notebook_model", "read_zoo_record", "reproduction_commands",
    "train_tiny_model", "zoo_build", "zoo_check", "zoo_grammar", "zoo_list", "zoo_path",
]


# -- the `physlm zoo` commands -----------------------------------------------------------------------
def zoo_list(zoo_dir: Path = ZOO_DIR) -> int:
    """List the zoo's entries with their grammar (iGSM: preset), model preset and training step.

    Args:
        zoo_dir: zoo folder (default: the package's).
    """
    names = list_zoo(zoo_dir)
    if not names:
        print(f"the zoo in {zoo_dir} is empty")
    for name in names:
        record = read_zoo_record(name, zoo_dir)
        data = f"iGSM preset {record['preset']}" if entry_task(record) == "igsm" else f"grammar {record['grammar']}"
        print(f"{name}: {data}, {record['model_preset']}, step {record['step']}")
    return 0


def zoo_build(
    name: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="NAME")],
    run: Path,
    command: str | None = None,
    overwrite: bool = False,
    max_mb: float = DEFAULT_MAX_MB,
    zoo_dir: Path = ZOO_DIR,
) -> int:
    """Copy a finished run into the zoo as entry NAME (without optimizer state), with its headline numbers.

    Args:
        name: entry name (letters, digits, _ - .).
        run: run directory with training, probes (`physlm probe cfg`) and generation (`physlm analyze generation`);
            or an iGSM run with its eval (`physlm analyze igsm`) and optionally probes (`physlm probe igsm`).
        command: reproduction command (default: the physlm command lines recorded in the run).
        overwrite: replace an existing entry.
        max_mb: largest weights file accepted (MB).
        zoo_dir: zoo folder (default: the package's).
    """
    path = build_zoo_entry(name, run, zoo_dir, command, overwrite, max_mb)
    record = json.loads((path / ZOO_FILE).read_text())
    print(f"zoo entry {path}")
    if entry_task(record) == "igsm":
        print(f"  iGSM preset {record['preset']}, step {record['step']}")
        print(f"  reproduce: {record['reproduce']}")
        for cell, v in record["headline"]["eval"]["cells"].items():
            print(f"  {cell}: fully correct {v['correct']}/{v['n']} = {v['accuracy']:.4f} "
                  f"[{v['ci_low']:.4f}, {v['ci_high']:.4f}], answer {v['answer_accuracy']:.4f}")
        if record["headline"]["probe"] is None:
            print("  no finished `physlm probe igsm` stage: no probe headline")
        return 0
    print(f"  grammar {record['grammar']}, step {record['step']}")
    print(f"  reproduce: {record['reproduce']}")
    print(f"  generation accuracy_cut0 {record['headline']['generation']['accuracy_cut0']:.4f}")
    for level, v in record["headline"]["probe"]["levels"].items():
        print(f"  {HEADLINE_TARGET} level {level}: {v['accuracy']:.4f} [{v['ci_low']:.4f}, {v['ci_high']:.4f}]")
    return 0


def zoo_check(
    name: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="NAME")],
    n_samples: int = 300,
    n_problems: int = 60,
    seed_offset: int = 1,
    device: str = "cpu",
    zoo_dir: Path = ZOO_DIR,
) -> int:
    """Re-measure entry NAME's headline numbers on fresh samples and compare them with its zoo.json (exit 1 on
    a mismatch).

    Args:
        name: entry name (`physlm zoo list`).
        n_samples: cut0 generation samples (CFG entries).
        n_problems: fresh in-distribution test problems solved greedily (iGSM entries).
        seed_offset: added to the recorded seeds (fresh, independent draws).
        device: torch device of the re-measurement.
        zoo_dir: zoo folder (default: the package's).
    """
    results = check_zoo_entry(name, zoo_dir, n_samples=n_samples, seed_offset=seed_offset, device=device,
                              n_problems=n_problems)
    for c in results:
        print(c)
    return 0 if all(c.ok for c in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m physlm.experiments.zoo {build,list,check} ...``: the same as ``physlm zoo ...``."""
    from physlm.experiments.cli import console_main

    return console_main(["zoo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())

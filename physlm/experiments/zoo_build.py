"""Building a zoo entry from a finished run: ``physlm zoo build NAME --run RUN_DIR``.

The run's weights (without optimizer state), its records and results are copied into the zoo with a
``zoo.json`` holding the reproduction command, the grammar and the headline numbers measured on the run.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

from physlm.experiments.zoo_registry import (
    HEADLINE_TARGET,
    IGSM_PROBE_TARGETS,
    IGSM_RUN_FILES,
    RUN_FILES,
    ZOO_DIR,
    ZOO_FILE,
    ZOO_FORMAT,
    ZOO_FORMAT_VERSION,
    ZooError,
)

DEFAULT_MAX_MB = 20.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _physlm_command(argv: str) -> str | None:
    """``argv`` as a portable ``physlm ...`` command, or None when it was not run through the physlm CLI."""
    try:
        words = shlex.split(argv)
    except ValueError:
        words = argv.split()
    if not words:
        return None
    if Path(words[0]).name == "physlm":
        rest = words[1:]
    elif "-m" in words[:3] and "physlm.experiments.cli" in words[:4]:
        rest = words[words.index("physlm.experiments.cli") + 1 :]
    else:
        return None
    return shlex.join(["physlm", *rest])


def reproduction_commands(run_record: dict[str, Any]) -> list[str]:
    """The distinct ``physlm`` command lines recorded in a run's config.json, in the order they ran."""
    out: list[str] = []
    for entry in run_record.get("commands", []):
        command = _physlm_command(str(entry.get("argv", "")))
        if command is not None and command not in out:
            out.append(command)
    return out


def headline_from_run(run_dir: str | Path, last_layer: int) -> dict[str, Any]:
    """Generation accuracy_cut0 and the last-layer ``ancestor_at_end`` probe accuracy per level of a run.

    Read from the run's ``generation.json`` and ``probe_results.csv``, with their sample sizes, seeds and 95%
    intervals (and the random-init control where it was probed), so that a re-measurement can be compared
    within sampling error.
    """
    from physlm.results import read_results

    run_dir = Path(run_dir)
    generation = json.loads((run_dir / "generation.json").read_text())
    gen_config = generation.get("config") or {}
    rows = [
        r for r in read_results(run_dir / "probe_results.csv")
        if r["target"] == HEADLINE_TARGET and r["layer"] == last_layer and r["metric"] == "accuracy"
    ]
    trained = {r["level"]: r for r in rows if r["features"] == "trained"}
    if not trained:
        raise ZooError(
            f"{run_dir}/probe_results.csv has no trained '{HEADLINE_TARGET}' accuracy at the last layer "
            f"({last_layer}); run `physlm probe cfg` with that target and layer"
        )
    control = {r["level"]: r["value"] for r in rows if r["features"] == "random_init"}
    probe_config = json.loads((run_dir / "config.json").read_text())["configs"].get("probe") or {}
    levels = {}
    for level in sorted(trained):
        r = trained[level]
        levels[str(level)] = {
            "accuracy": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
            "random_init": control.get(level),
        }
    return {
        "generation": {
            "accuracy_cut0": float(generation["accuracy_cut0"]),
            "n_samples": int(generation["n_samples"]),
            "seed": gen_config.get("seed"),
            "temperature": gen_config.get("temperature", 1.0),
        },
        "probe": {
            "target": HEADLINE_TARGET,
            "layer": last_layer,
            "n_train": probe_config.get("n_train"),
            "n_test": probe_config.get("n_test"),
            "seed": probe_config.get("seed"),
            "levels": levels,
        },
    }


_IGSM_CELL_FIELDS = (
    "ood", "reask", "op", "n", "correct", "accuracy", "ci_low", "ci_high", "answer_accuracy",
    "mean_unnecessary_params", "mean_unnecessary_ops", "frac_with_unnecessary", "mean_unnecessary_available",
    "dropped_too_long",
)


def igsm_probe_headline(run_dir: str | Path, last_layer: int) -> dict[str, Any] | None:
    """The last-layer V-probe rows of nece / dep / can_next (level 0, each target's headline metric) per
    population and cell: trained (with its 95% interval), random-init and majority; None when the run has no
    finished probe stage or its probe_results.csv lacks a trained last-layer row of one of the targets."""
    from physlm.probing.igsm_figures import headline_metric
    from physlm.results import read_results
    from physlm.rundir import RunDir

    run_dir = Path(run_dir)
    path = run_dir / "probe_results.csv"
    if not path.is_file() or not RunDir.open(run_dir).is_complete("probe"):
        return None
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for r in read_results(path):
        target = r["target"]
        if (target not in IGSM_PROBE_TARGETS or int(r["layer"]) != last_layer or int(r["level"]) != 0
                or r["metric"] != headline_metric(target)):
            continue
        key = f"{r.get('population') or 'all_param'} {r.get('cell') or 'in_dist'}"
        entry = rows.setdefault(target, {}).setdefault(key, {
            "population": r.get("population") or "all_param", "cell": r.get("cell") or "in_dist",
            "metric": r["metric"], "n_examples": r.get("n_examples"),
        })
        entry[str(r["features"])] = {"value": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}
    if any(not any("trained" in e for e in rows.get(t, {}).values()) for t in IGSM_PROBE_TARGETS):
        return None
    probe_config = json.loads((run_dir / "config.json").read_text())["configs"].get("probe") or {}
    return {
        "layer": last_layer,
        "n_train": probe_config.get("n_train"),
        "n_test": probe_config.get("n_test"),
        "seed": probe_config.get("seed"),
        "targets": {t: rows[t] for t in IGSM_PROBE_TARGETS},
    }


def igsm_headline_from_run(run_dir: str | Path, last_layer: int) -> dict[str, Any]:
    """An iGSM run's measured headline: per eval cell of ``igsm_eval.json`` the fully-correct count / n /
    accuracy with its Wilson 95% interval, answer accuracy and the level-1 statistics over correct solutions
    (mean unnecessary params next to what a level-0 solver would compute, ``mean_unnecessary_available``), and
    the last-layer V-probe rows (:func:`igsm_probe_headline`, None without a finished probe stage)."""
    from physlm.analysis.igsm_eval import read_eval

    run_dir = Path(run_dir)
    record = read_eval(run_dir / "igsm_eval.json")
    if record is None or not record.get("cells"):
        raise ZooError(f"{run_dir} has no igsm_eval.json; run `physlm analyze igsm --run {run_dir}` first")
    config = record.get("config") or {}
    cells = {c["cell"]: {k: c.get(k) for k in _IGSM_CELL_FIELDS} for c in record["cells"]}
    in_dist = next(c["cell"] for c in record["cells"] if not c.get("ood") and not c.get("reask"))
    return {
        "eval": {
            "preset": record.get("preset"),
            "n_ctx": record.get("n_ctx"),
            "seed": config.get("seed"),
            "n_problems": config.get("n_problems"),
            "length_factor": config.get("length_factor"),
            "in_distribution": in_dist,
            "cells": cells,
        },
        "probe": igsm_probe_headline(run_dir, last_layer),
    }


def build_zoo_entry(
    name: str,
    run_dir: str | Path,
    zoo_dir: str | Path = ZOO_DIR,
    command: str | None = None,
    overwrite: bool = False,
    max_mb: float = DEFAULT_MAX_MB,
) -> Path:
    """Copy a finished run into the zoo as entry ``name`` (without optimizer state) and return its folder.

    The run needs a final checkpoint (``COMPLETE.train``), ``generation.json`` and ``probe_results.csv`` with
    the last layer's ``ancestor_at_end`` accuracy. ``command`` is the reproduction command; by default it is
    assembled from the ``physlm`` command lines recorded in the run's config.json. The entry is written to a
    temporary folder and renamed into place, so a failed build leaves no half entry.
    """
    from physlm.rundir import RunDir, write_atomic
    from physlm.training.checkpoint import META_FILE, WEIGHTS_FILE, read_checkpoint_meta, resolve_checkpoint

    if not _NAME.match(name):
        raise ZooError(f"zoo entry names use letters, digits, '_', '-' and '.', got {name!r}")
    run_dir = Path(run_dir)
    run = RunDir.open(run_dir)
    if not run.is_complete("train"):
        raise ZooError(f"{run_dir} has no finished training (no COMPLETE.train)")
    trained_on = run.trained_on()
    is_igsm = trained_on.task == "igsm"
    missing = [f for f in (IGSM_RUN_FILES if is_igsm else RUN_FILES) if not (run_dir / f).is_file()]
    if missing:
        hints = {"generation.json": "physlm analyze generation", "probe_results.csv": "physlm probe cfg",
                 "igsm_eval.json": "physlm analyze igsm"}
        todo = sorted({f"`{hints[f]} --run {run_dir}`" for f in missing if f in hints})
        raise ZooError(
            f"{run_dir} lacks {', '.join(missing)}"
            + (f"; run {' and '.join(todo)} first" if todo else "; it is not a complete `physlm train` run")
        )
    checkpoint = resolve_checkpoint(run_dir)
    meta = read_checkpoint_meta(checkpoint, verify=True)
    weights = checkpoint / WEIGHTS_FILE
    size_mb = weights.stat().st_size / 2**20
    if size_mb > max_mb:
        raise ZooError(f"{weights} is {size_mb:.1f} MB, over the zoo's limit of {max_mb} MB (see --max-mb)")
    model_config = meta["model_config"]
    last_layer = int(model_config["n_layers"]) - 1
    if is_igsm:
        from physlm.tasks.igsm import PRESETS

        if trained_on.preset not in PRESETS:
            raise ZooError(f"{run_dir} records no built-in iGSM preset (got {trained_on.preset!r})")
        headline = igsm_headline_from_run(run_dir, last_layer)
        # a partial or missing probe stage records no probe headline, and its file is left out
        run_files = (*IGSM_RUN_FILES, *(("probe_results.csv",) if headline["probe"] is not None else ()))
        task_fields: dict[str, Any] = {"task": "igsm", "preset": trained_on.preset}
    else:
        grammar = trained_on.grammar
        if trained_on.task != "cfg" or grammar is None:
            raise ZooError(
                f"{run_dir} was not trained on a CFG or iGSM task with a recorded grammar or preset "
                f"(task: {meta.get('task')})"
            )
        from physlm.tasks.cfg import list_presets

        if grammar not in list_presets():
            raise ZooError(
                f"{run_dir} used grammar {grammar!r}, which is not a built-in preset; a zoo entry must name a "
                f"grammar that ships with physlm ({', '.join(list_presets())})"
            )
        headline = headline_from_run(run_dir, last_layer)
        run_files = RUN_FILES
        task_fields = {"grammar": grammar}
    record_run = run.read_record()
    commands = [command] if command is not None else reproduction_commands(record_run)
    if not commands:
        raise ZooError(
            f"{run_dir}/config.json records no `physlm` command line (was it made from Python?); pass the "
            "reproduction command with --command"
        )

    root = Path(zoo_dir)
    final = root / name
    if final.exists() and not overwrite:
        raise ZooError(f"zoo entry {final} exists; pass --overwrite to replace it")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{name}-"))
    try:
        shutil.copy2(weights, tmp / WEIGHTS_FILE)
        # The checkpoint record lists the files load_model verifies: keep only the weights' entry.
        zoo_meta = dict(meta)
        zoo_meta["files"] = {WEIGHTS_FILE: meta["files"][WEIGHTS_FILE]}
        zoo_meta["zoo"] = {"source_checkpoint": checkpoint.name, "dropped": sorted(set(meta["files"]) - {WEIGHTS_FILE})}
        write_atomic(tmp / META_FILE, json.dumps(zoo_meta, indent=2, sort_keys=True) + "\n")
        for fname in run_files:
            shutil.copy2(run_dir / fname, tmp / fname)
        record = {
            "format": ZOO_FORMAT,
            "format_version": ZOO_FORMAT_VERSION,
            "name": name,
            **task_fields,
            "model_preset": record_run["configs"].get("model_preset"),
            "model": {k: model_config.get(k) for k in ("n_layers", "d_model", "n_heads", "n_ctx", "positional")},
            "step": int(meta["step"]),
            "reproduce": " && ".join(commands),
            "commands": commands,
            "headline": headline,
            "probe_config": record_run["configs"].get("probe"),
            "source": {
                "run": str(run_dir),
                "checkpoint": checkpoint.name,
                "git_sha": meta.get("git_sha"),
                "built": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            },
            "files": {
                f: {"bytes": (tmp / f).stat().st_size, "sha256": _sha256(tmp / f)}
                for f in (WEIGHTS_FILE, META_FILE, *run_files)
            },
        }
        write_atomic(tmp / ZOO_FILE, json.dumps(record, indent=2) + "\n")
        # mkdtemp/mkstemp create private files; package data must be readable by everyone
        os.chmod(tmp, 0o755)
        for path in tmp.iterdir():
            os.chmod(path, 0o644)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


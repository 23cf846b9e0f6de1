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

The entry folder is itself a checkpoint directory (``physlm.training.load_model`` resolves a folder holding
``checkpoint.json``) and a run directory (``RunDir.open`` needs ``config.json``), so every function that takes a
run also takes a zoo entry read-only.

Build an entry from a finished run (``physlm run cfg``, or ``physlm train`` + ``physlm probe cfg`` +
``physlm analyze generation``)::

    python -m physlm.experiments.zoo build cfg_small-rot --run runs/cfg_small-long
    python -m physlm.experiments.zoo list
    python -m physlm.experiments.zoo check cfg_small-rot     # re-measure the headline numbers on fresh samples
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ZOO_DIR = Path(__file__).resolve().parent / "zoo"
"""Folder of the shipped zoo entries (package data of ``experiments``)."""
ZOO_FILE = "zoo.json"
ZOO_FORMAT = "physlm-zoo"
ZOO_FORMAT_VERSION = 1
RUN_FILES = ("config.json", "metrics.jsonl", "log.txt", "probe_results.csv", "generation.json")
"""Files copied from the run directory next to the checkpoint."""
HEADLINE_TARGET = "ancestor_at_end"
Z_TOLERANCE = 4.0
"""Tolerance of :func:`check_zoo_entry` in standard errors of the difference of two independent estimates
(two-sided false-alarm rate about 6e-5 per number under a normal approximation)."""
DEFAULT_MAX_MB = 20.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ZooError(RuntimeError):
    """A zoo entry is missing or malformed, or a run cannot become one."""


# -- reading the zoo ---------------------------------------------------------------------------------
def list_zoo(zoo_dir: str | Path = ZOO_DIR) -> list[str]:
    """Names of the entries in ``zoo_dir`` (folders holding a ``zoo.json``), sorted."""
    root = Path(zoo_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / ZOO_FILE).is_file())


def default_zoo_entry(zoo_dir: str | Path = ZOO_DIR) -> str | None:
    """The entry notebooks and examples open by default: the one trained on the default grammar (what
    `physlm run cfg` trains), else the first entry; None when the zoo is empty."""
    from physlm.tasks.cfg.presets import DEFAULT_GRAMMAR

    names = list_zoo(zoo_dir)
    for name in names:
        if read_zoo_record(name, zoo_dir).get("grammar") == DEFAULT_GRAMMAR:
            return name
    return names[0] if names else None


def zoo_path(name: str, zoo_dir: str | Path = ZOO_DIR) -> Path:
    """The folder of entry ``name``; :class:`ZooError` listing the entries when it does not exist."""
    path = Path(zoo_dir) / name
    if not (path / ZOO_FILE).is_file():
        have = list_zoo(zoo_dir)
        raise ZooError(
            f"no zoo entry {name!r} in {zoo_dir}; "
            + (f"entries: {', '.join(have)}" if have else "the zoo is empty (build one with "
               "`python -m physlm.experiments.zoo build NAME --run RUN_DIR`)")
        )
    return path


def read_zoo_record(name: str, zoo_dir: str | Path = ZOO_DIR) -> dict[str, Any]:
    """The parsed ``zoo.json`` of entry ``name``."""
    path = zoo_path(name, zoo_dir) / ZOO_FILE
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ZooError(f"{path} is not valid JSON: {exc}") from exc
    if record.get("format") != ZOO_FORMAT or record.get("format_version", 0) > ZOO_FORMAT_VERSION:
        raise ZooError(f"{path} is not a {ZOO_FORMAT} record of version <= {ZOO_FORMAT_VERSION}")
    return record


def load_zoo_model(name: str, device: str = "cpu", zoo_dir: str | Path = ZOO_DIR) -> Any:
    """Load entry ``name`` as a :class:`physlm.training.load.LoadedModel` (eval mode, weights' SHA-256 verified)."""
    from physlm.training.load import load_model

    return load_model(zoo_path(name, zoo_dir), device=device)


def zoo_grammar(name: str, zoo_dir: str | Path = ZOO_DIR) -> Any:
    """The :class:`physlm.tasks.cfg.Grammar` entry ``name`` was trained on."""
    from physlm.tasks.cfg import load_grammar

    return load_grammar(read_zoo_record(name, zoo_dir)["grammar"])


# -- a model for the notebooks -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class NotebookModel:
    """The model a notebook works on: a zoo entry, or a tiny model trained on the spot."""

    loaded: Any
    """physlm.training.load.LoadedModel"""
    grammar: Any
    """physlm.tasks.cfg.Grammar the model was trained on"""
    path: Path
    """the zoo entry or the fallback run directory (both hold config.json and the checkpoint)"""
    from_zoo: bool
    description: str

    @property
    def probe_results(self) -> Path | None:
        """The entry's (or run's) probe_results.csv when there is one."""
        path = self.path / "probe_results.csv"
        return path if path.is_file() else None


def train_tiny_model(
    out: str | Path, grammar: str = "cfg_small", steps: int = 40, seed: int = 0, preset: str = "gpt_rot-tiny"
) -> Any:
    """Train a tiny model for a few steps into the run directory ``out`` (replaced) and load it.

    The fallback of the notebooks when the zoo is empty or they run at smoke size: it runs the same trainer as
    ``physlm train`` and is far too short to learn the grammar.
    """
    from physlm.training.cli import train
    from physlm.training.load import load_model
    from physlm.training.train_config import TrainConfig

    config = TrainConfig(
        steps=steps, batch_size=16, seq_len=64, lr=3e-3, warmup_steps=min(10, steps // 4), schedule="cosine",
        eval_every=0, eval_batches=1, save_every=0, log_every=max(1, steps // 10), seed=seed, device="cpu",
    )
    train(Path(out), config=config, task="cfg", grammar=grammar, preset=preset,
          model_option=(f"seed={seed}",), overwrite=True)
    return load_model(out)


def notebook_model(
    zoo_model: str | None,
    smoke: bool,
    fallback_dir: str | Path,
    fallback_grammar: str = "cfg_small",
    fallback_steps: int = 40,
    seed: int = 0,
    zoo_dir: str | Path = ZOO_DIR,
) -> NotebookModel:
    """Entry ``zoo_model`` (default: :func:`default_zoo_entry`), or, when the zoo is empty or ``smoke`` is set, a tiny
    model trained for ``fallback_steps`` steps into ``fallback_dir``. ``description`` says which."""
    from physlm.tasks.cfg import load_grammar

    names = list_zoo(zoo_dir)
    if names and not smoke:
        name = zoo_model or default_zoo_entry(zoo_dir) or names[0]
        record = read_zoo_record(name, zoo_dir)
        gen = record["headline"]["generation"]["accuracy_cut0"]
        return NotebookModel(
            loaded=load_zoo_model(name, zoo_dir=zoo_dir),
            grammar=zoo_grammar(name, zoo_dir),
            path=zoo_path(name, zoo_dir),
            from_zoo=True,
            description=(f"zoo model {name!r}: grammar {record['grammar']}, {record['model_preset']}, "
                         f"step {record['step']}, generation accuracy {gen:.3f}; reproduce with "
                         f"{record['reproduce']}"),
        )
    why = "smoke mode (PHYSLM_NOTEBOOK_SMOKE=1)" if smoke else f"the zoo ({zoo_dir}) is empty"
    if zoo_model is not None and not smoke:
        raise ZooError(f"zoo model {zoo_model!r} requested but {why}")
    loaded = train_tiny_model(fallback_dir, fallback_grammar, fallback_steps, seed)
    return NotebookModel(
        loaded=loaded,
        grammar=load_grammar(fallback_grammar),
        path=Path(fallback_dir),
        from_zoo=False,
        description=(f"{why}: using a tiny model trained here for {fallback_steps} steps on {fallback_grammar}; "
                     "it has not learned the grammar, so expect results close to the controls"),
    )


# -- building an entry -------------------------------------------------------------------------------
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
    from physlm.probing.cfg_recipe import read_results

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
    missing = [f for f in RUN_FILES if not (run_dir / f).is_file()]
    if not run.is_complete("train"):
        raise ZooError(f"{run_dir} has no finished training (no COMPLETE.train)")
    if missing:
        hints = {"generation.json": "physlm analyze generation", "probe_results.csv": "physlm probe cfg"}
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
    task = meta.get("task") or {}
    grammar = (task.get("config") or {}).get("grammar")
    if task.get("name") != "cfg" or grammar is None:
        raise ZooError(f"{run_dir} was not trained on a CFG task with a recorded grammar (task: {task})")
    from physlm.tasks.cfg import list_presets

    if grammar not in list_presets():
        raise ZooError(
            f"{run_dir} used grammar {grammar!r}, which is not a built-in preset; a zoo entry must name a grammar "
            f"that ships with physlm ({', '.join(list_presets())})"
        )
    model_config = meta["model_config"]
    last_layer = int(model_config["n_layers"]) - 1
    headline = headline_from_run(run_dir, last_layer)
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
        for fname in RUN_FILES:
            shutil.copy2(run_dir / fname, tmp / fname)
        record = {
            "format": ZOO_FORMAT,
            "format_version": ZOO_FORMAT_VERSION,
            "name": name,
            "grammar": grammar,
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
                for f in (WEIGHTS_FILE, META_FILE, *RUN_FILES)
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


# -- re-measuring the headline numbers ---------------------------------------------------------------
def measure_generation_accuracy(
    model: Any, grammar: Any, table: Any, n_samples: int, seed: int, temperature: float = 1.0, batch_size: int = 64
) -> dict[str, Any]:
    """cut0 generation accuracy: ``n_samples`` sentences sampled from BOS, judged by the exact DP (seeded)."""
    import torch

    from physlm.analysis.generation import exact_dp, membership, run_completions
    from physlm.analysis.sampling import ModelSampler

    sampler = ModelSampler(model, table.eos_id, int(model.cfg.n_ctx), True)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        result = run_completions(
            sampler, [[]] * n_samples, table, grammar.num_terminals, membership(grammar, exact_dp()),
            temperature, gen, batch_size, desc="cut0",
        )
    return {"accuracy_cut0": result["accuracy"], "n_samples": result["n"]}


def measure_ancestor_at_end(
    model: Any, grammar: Any, table: Any, probe_config: Any, layer: int | None = None
) -> dict[str, dict[str, float]]:
    """The ``ancestor_at_end`` probe accuracy on one layer (default: the last), per level, with 95% intervals.

    ``probe_config`` is a :class:`probing.ProbeConfig` (sizes, seed, probe shape); only its target and layer
    are overridden, and no controls are fitted.
    """
    from physlm.probing.cfg_recipe import probe_cfg_model, sample_probe_data

    layer = int(model.cfg.n_layers) - 1 if layer is None else layer
    config = probe_config.replace(layers=(layer,), targets=(HEADLINE_TARGET,), controls=())
    data = sample_probe_data(
        grammar, config.n_train + config.n_test, config.seed, int(model.cfg.n_ctx),
        table.bos_id, table.eos_id, table.pad_id,
    )
    with tempfile.TemporaryDirectory(prefix="physlm-zoo-probe-") as cache:
        rows = probe_cfg_model({"trained": model}, data, config, Path(cache), table.d_vocab, log=lambda *a: None)
    return {
        str(r["level"]): {"accuracy": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}
        for r in rows if r["metric"] == "accuracy" and r["features"] == "trained"
    }


def _binomial_se(p: float, n: int) -> float:
    """Agresti–Coull standard error of a proportion (never 0, also at p = 0 or 1)."""
    p_adj = (p * n + 2.0) / (n + 4.0)
    return math.sqrt(p_adj * (1.0 - p_adj) / (n + 4.0))


def _interval_se(value: float, ci_low: float, ci_high: float, n_units: int) -> float:
    """Standard error from a 95% bootstrap interval, floored by the binomial SE over the resampled units.

    The bootstrap resamples whole test sentences; a degenerate interval (all resamples equal) would give
    0, so the floor treats each of the ``n_units`` sentences as one Bernoulli trial at the measured accuracy.
    """
    return max((ci_high - ci_low) / (2 * 1.959964), _binomial_se(value, n_units))


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One headline number: recorded in zoo.json against re-measured, with the allowed difference."""

    name: str
    recorded: float
    measured: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return abs(self.measured - self.recorded) <= self.tolerance

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        return (f"{self.name}: recorded {self.recorded:.4f}, measured {self.measured:.4f}, "
                f"|diff| {abs(self.measured - self.recorded):.4f} vs tolerance {self.tolerance:.4f} [{verdict}]")


def check_zoo_entry(
    name: str,
    zoo_dir: str | Path = ZOO_DIR,
    n_samples: int = 300,
    seed_offset: int = 1,
    z: float = Z_TOLERANCE,
    device: str = "cpu",
) -> list[Comparison]:
    """Re-measure an entry's headline numbers on fresh samples and compare them with its zoo.json.

    Generation: ``n_samples`` cut0 samples with the recorded seed + ``seed_offset`` (independent draws).
    Probe: the recorded probe config (same n_train / n_test, probe shape and fit) with seed + ``seed_offset``,
    i.e. fresh training and test sentences. Each tolerance is ``z`` standard errors of the difference of the
    two independent estimates: binomial for generation, the bootstrap intervals (floored by a binomial SE
    over test sentences) for the probe.
    """
    from physlm.probing.cfg_recipe import ProbeConfig

    record = read_zoo_record(name, zoo_dir)
    loaded = load_zoo_model(name, device=device, zoo_dir=zoo_dir)
    grammar = zoo_grammar(name, zoo_dir)
    head = record["headline"]
    out: list[Comparison] = []

    gen = head["generation"]
    gen_seed = int(gen["seed"] if gen.get("seed") is not None else 0) + seed_offset
    measured = measure_generation_accuracy(
        loaded.model, grammar, loaded.token_table, n_samples, gen_seed, float(gen.get("temperature", 1.0))
    )
    tol = z * math.hypot(_binomial_se(gen["accuracy_cut0"], gen["n_samples"]),
                         _binomial_se(measured["accuracy_cut0"], measured["n_samples"]))
    out.append(Comparison("generation accuracy_cut0", gen["accuracy_cut0"], measured["accuracy_cut0"], tol))

    probe = head["probe"]
    base = ProbeConfig.from_dict(record["probe_config"]) if record.get("probe_config") else ProbeConfig()
    config = base.replace(seed=base.seed + seed_offset, device=device)
    levels = measure_ancestor_at_end(loaded.model, grammar, loaded.token_table, config, int(probe["layer"]))
    for level, rec in probe["levels"].items():
        if level not in levels:
            raise ZooError(f"re-measurement produced no accuracy for level {level} (got {sorted(levels)})")
        new = levels[level]
        se_rec = _interval_se(rec["accuracy"], rec["ci_low"], rec["ci_high"], int(probe["n_test"] or base.n_test))
        se_new = _interval_se(new["accuracy"], new["ci_low"], new["ci_high"], config.n_test)
        out.append(Comparison(
            f"{HEADLINE_TARGET} accuracy, level {level}, layer {probe['layer']}",
            rec["accuracy"], new["accuracy"], z * math.hypot(se_rec, se_new),
        ))
    return out


# -- command line ------------------------------------------------------------------------------------
def _cmd_build(args: argparse.Namespace) -> int:
    path = build_zoo_entry(args.name, args.run, args.zoo_dir, args.command, args.overwrite, args.max_mb)
    record = json.loads((path / ZOO_FILE).read_text())
    print(f"zoo entry {path}")
    print(f"  grammar {record['grammar']}, step {record['step']}")
    print(f"  reproduce: {record['reproduce']}")
    print(f"  generation accuracy_cut0 {record['headline']['generation']['accuracy_cut0']:.4f}")
    for level, v in record["headline"]["probe"]["levels"].items():
        print(f"  {HEADLINE_TARGET} level {level}: {v['accuracy']:.4f} [{v['ci_low']:.4f}, {v['ci_high']:.4f}]")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    names = list_zoo(args.zoo_dir)
    if not names:
        print(f"the zoo in {args.zoo_dir} is empty")
    for name in names:
        record = read_zoo_record(name, args.zoo_dir)
        print(f"{name}: grammar {record['grammar']}, {record['model_preset']}, step {record['step']}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    results = check_zoo_entry(args.name, args.zoo_dir, n_samples=args.n_samples, seed_offset=args.seed_offset)
    for c in results:
        print(c)
    return 0 if all(c.ok for c in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m physlm.experiments.zoo {build,list,check}``."""
    parser = argparse.ArgumentParser(prog="python -m physlm.experiments.zoo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo-dir", type=Path, default=ZOO_DIR, help="zoo folder (default: the package's)")
    sub = parser.add_subparsers(dest="command_name", required=True)
    build = sub.add_parser("build", help="copy a finished run into the zoo (without optimizer state)")
    build.add_argument("name", help="entry name (letters, digits, _ - .)")
    build.add_argument("--run", required=True, type=Path, help="run directory with training, probes, generation")
    build.add_argument("--command", default=None, help="reproduction command (default: the run's physlm commands)")
    build.add_argument("--overwrite", action="store_true", help="replace an existing entry")
    build.add_argument("--max-mb", type=float, default=DEFAULT_MAX_MB, help="largest weights file accepted (MB)")
    sub.add_parser("list", help="list the entries")
    check = sub.add_parser("check", help="re-measure an entry's headline numbers and compare with zoo.json")
    check.add_argument("name")
    check.add_argument("--n-samples", type=int, default=300, help="cut0 generation samples")
    check.add_argument("--seed-offset", type=int, default=1, help="added to the recorded seeds")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "build": _cmd_build, "list": _cmd_list, "check": _cmd_check,
    }
    try:
        return commands[args.command_name](args)
    except ZooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The model zoo's registry: the entries shipped as package data, read and loaded (and the notebooks' model).

Each entry is one folder of :data:`ZOO_DIR` (``experiments/zoo/<name>/``) holding the weights, the checkpoint
record, the run's records and results and ``zoo.json`` (the layout is in :mod:`physlm.experiments.zoo`); it is both a
checkpoint directory and a run directory, so every function that takes a run also takes a zoo entry read-only.

Building an entry is :mod:`physlm.experiments.zoo_build`, re-measuring one :mod:`physlm.experiments.zoo_check`;
:mod:`physlm.experiments.zoo` gathers the three and is what ``physlm zoo list|check|build`` runs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

ZOO_DIR = Path(__file__).resolve().parent / "zoo"
"""Folder of the shipped zoo entries (package data of ``experiments``)."""
ZOO_FILE = "zoo.json"
ZOO_FORMAT = "physlm-zoo"
ZOO_FORMAT_VERSION = 1
RUN_FILES = ("config.json", "metrics.jsonl", "log.txt", "probe_results.csv", "generation.json")
"""Files copied from the run directory next to the checkpoint."""
IGSM_RUN_FILES = ("config.json", "metrics.jsonl", "log.txt", "igsm_eval.json")
"""Files copied from an iGSM run directory (plus ``probe_results.csv`` when its probe headline is recorded)."""
HEADLINE_TARGET = "ancestor_at_end"
IGSM_PROBE_TARGETS = ("nece", "dep", "can_next")
"""The iGSM V-probe targets whose last-layer rows make an iGSM entry's probe headline."""


class ZooError(RuntimeError):
    """A zoo entry is missing or malformed, or a run cannot become one."""


def list_zoo(zoo_dir: str | Path = ZOO_DIR) -> list[str]:
    """Names of the entries in ``zoo_dir`` (folders holding a ``zoo.json``), sorted."""
    root = Path(zoo_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / ZOO_FILE).is_file())


def entry_task(record: dict[str, Any]) -> str:
    """The task of a zoo record: ``igsm`` or ``cfg`` (records written before iGSM entries name no task)."""
    return str(record.get("task") or "cfg")


def list_zoo_task(task: str, zoo_dir: str | Path = ZOO_DIR) -> list[str]:
    """Names of the entries trained on ``task`` (``cfg`` or ``igsm``), sorted."""
    return [name for name in list_zoo(zoo_dir) if entry_task(read_zoo_record(name, zoo_dir)) == task]


def default_zoo_entry(zoo_dir: str | Path = ZOO_DIR, task: str = "cfg") -> str | None:
    """The entry notebooks and examples open by default for ``task``: for ``cfg`` the one trained on the default
    grammar (what `physlm run cfg` trains), for ``igsm`` the one trained on the default iGSM preset (what
    `physlm run igsm` trains); else the task's first entry; None when the zoo holds none of that task."""
    names = list_zoo_task(task, zoo_dir)
    if task == "igsm":
        from physlm.experiments.run_igsm import IGSMExperimentConfig

        key, default = "preset", IGSMExperimentConfig().preset
    else:
        from physlm.tasks.cfg.presets import DEFAULT_GRAMMAR

        key, default = "grammar", DEFAULT_GRAMMAR
    for name in names:
        if read_zoo_record(name, zoo_dir).get(key) == default:
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
               "`physlm zoo build NAME --run RUN_DIR`)")
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
    """The :class:`physlm.tasks.cfg.Grammar` entry ``name`` was trained on (:func:`physlm.rundir.read_trained_on`)."""
    from physlm.rundir import read_trained_on

    return read_trained_on(zoo_path(name, zoo_dir)).load_grammar()


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

    names = list_zoo_task("cfg", zoo_dir)  # the notebooks that call this probe a CFG model
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


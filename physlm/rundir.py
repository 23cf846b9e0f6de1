"""Run directories: every command writes its configs, a log and its artifacts into one.

Layout of ``runs/<name>/``::

    config.json        all configs of every stage run here, library versions, git SHA, commands
    log.txt            the log of every stage
    <artifacts>        checkpoints, datasets, probe_results.csv, report.html, ...
    COMPLETE.<stage>   written last, only when that stage finished (e.g. COMPLETE.train)
    FAILED             the error of the last stage that failed (removed when a stage succeeds)

An existing run directory is never overwritten by a *new* run unless ``overwrite=True``;
later stages (probing, analysis) add to an existing run with :meth:`RunDir.open`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import logging
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from physlm.config import Config
from physlm.provenance import git_sha, library_versions


class RunDirExistsError(FileExistsError):
    """Raised when a new run would overwrite an existing run directory."""


@dataclasses.dataclass(frozen=True)
class TrainedOn:
    """What a run's model was trained on, from its records (:meth:`RunDir.trained_on`)."""

    task: str | None
    """the task's name (cfg, igsm), None when the run records none"""
    options: dict[str, Any]
    """the task's build options (``physlm train --task-option``, the recipes' task options)"""
    task_config: dict[str, Any]
    """the task's full config as recorded ({} when none was)"""
    grammar: str | None
    """CFG runs: the grammar preset or file; None for other tasks"""
    preset: str | None
    """iGSM runs: the iGSM preset; None for other tasks"""
    token_table: Any
    """the model's vocabulary (physlm.tasks.base.TokenTable), from its latest checkpoint (None before the first
    checkpoint)"""
    model_config: Any
    """physlm.training.ModelConfig of the model (from the checkpoint, else config.json); None when unrecorded"""
    model_preset: str | None
    """the model preset the run was built from, when recorded"""
    step: int | None
    """the latest checkpoint's step (None before the first checkpoint)"""
    path: Path
    """the run directory (or zoo entry) read"""

    def require(self, task: str, what: str = "this analysis") -> TrainedOn:
        """Itself when the run was trained on ``task``; else a ValueError naming both tasks."""
        if self.task != task:
            raise ValueError(f"run {self.path} was trained on task {self.task!r}, not {task!r}; {what} needs {task}")
        return self

    def load_grammar(self) -> Any:
        """The :class:`physlm.tasks.cfg.Grammar` of a CFG run (ValueError when it records none)."""
        from physlm.tasks.cfg import load_grammar

        self.require("cfg", "a grammar")
        if self.grammar is None:
            raise ValueError(f"run {self.path} records no grammar")
        return load_grammar(self.grammar)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _jsonable_configs(configs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in configs.items():
        out[key] = value.to_dict() if isinstance(value, Config) else value
    return out


class RunDir:
    """A run directory on disk. Create a new one with :meth:`create`, reopen one with :meth:`open`."""

    CONFIG_FILE = "config.json"
    LOG_FILE = "log.txt"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.logger = self._make_logger()

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        configs: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        command: str | None = None,
    ) -> RunDir:
        """Create a fresh run directory; refuse to touch an existing non-empty one unless ``overwrite``."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            if not overwrite:
                raise RunDirExistsError(
                    f"run directory {path} already exists and is not empty; choose another --out, "
                    "or pass --overwrite to replace it (its contents will be deleted)"
                )
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        record = {
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions(),
            "git_sha": git_sha(),
            "commands": [],
            "configs": {},
        }
        write_atomic(path / cls.CONFIG_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
        run.record(configs or {}, command=command)
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Open an existing run directory to read it or add a later stage's artifacts."""
        path = Path(path)
        if not (path / cls.CONFIG_FILE).is_file():
            raise FileNotFoundError(
                f"{path} is not a physlm run directory (no {cls.CONFIG_FILE}); "
                "pass the --out directory of an earlier physlm command"
            )
        return cls(path)

    # -- records ------------------------------------------------------------------------------
    def read_record(self) -> dict[str, Any]:
        """The parsed config.json."""
        return json.loads((self.path / self.CONFIG_FILE).read_text())

    def record(self, configs: Mapping[str, Any], command: str | None = None) -> None:
        """Merge configs (by name) into config.json and note the command line that ran."""
        record = self.read_record()
        record["configs"].update(_jsonable_configs(configs))
        record["commands"].append(
            {
                "argv": command if command is not None else " ".join(sys.argv),
                "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "git_sha": git_sha(),
                "versions": library_versions(),
            }
        )
        write_atomic(self.path / self.CONFIG_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")

    def config(self, name: str) -> dict[str, Any]:
        """The dict of one stored config (KeyError naming what exists when absent)."""
        configs = self.read_record()["configs"]
        if name not in configs:
            raise KeyError(f"run {self.path} has no '{name}' config; it has {sorted(configs)}")
        return configs[name]

    def trained_on(self) -> TrainedOn:
        """What this run's model was trained on (:func:`read_trained_on`)."""
        return read_trained_on(self.path)

    def artifact(self, name: str) -> Path:
        """Path of an artifact inside the run directory (parents created)."""
        out = self.path / name
        out.parent.mkdir(parents=True, exist_ok=True)
        return out

    def is_complete(self, stage: str) -> bool:
        """Whether ``stage`` finished in this run."""
        return (self.path / f"COMPLETE.{stage}").exists()

    # -- stages -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[RunDir]:
        """Run one stage: on success write ``COMPLETE.<name>``; on error write ``FAILED`` and re-raise."""
        marker = self.path / f"COMPLETE.{name}"
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
        self.logger.info("stage %s started", name)
        try:
            yield self
        except BaseException as exc:
            message = f"stage '{name}' failed: {type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"
            write_atomic(self.path / "FAILED", message)
            self.logger.error("stage %s failed: %s: %s", name, type(exc).__name__, exc)
            raise
        with contextlib.suppress(FileNotFoundError):
            (self.path / "FAILED").unlink()
        write_atomic(marker, _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds") + "\n")
        self.logger.info("stage %s complete", name)

    def _make_logger(self) -> logging.Logger:
        logger = logging.getLogger(f"physlm.run.{self.path.resolve()}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        if not logger.handlers:
            self.path.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(self.path / self.LOG_FILE)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(handler)
        return logger

    def log(self, message: str, *args: Any, echo: bool = True) -> None:
        """Log a line to log.txt and, by default, to stderr."""
        self.logger.info(message, *args)
        if echo:
            print(message % args if args else message, file=sys.stderr, flush=True)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


def read_trained_on(path: str | Path) -> TrainedOn:
    """What the model of run directory ``path`` was trained on: task, grammar or iGSM preset, token table, model
    config.

    The one reader of a run's training records for every later stage: the latest checkpoint's record
    (what the weights were trained with) first, then config.json (a run stopped before its first
    checkpoint; the recipes' ``experiment`` config). Only reads: zoo entries (which hold both files) work too.
    """
    from physlm.tasks.base import TokenTable
    from physlm.training import ModelConfig
    from physlm.training.checkpoint import CHECKPOINTS_DIR, META_FILE, latest_checkpoint, read_checkpoint_meta

    path = Path(path)
    config_file = path / RunDir.CONFIG_FILE
    if not config_file.is_file():
        raise FileNotFoundError(f"{path} is not a physlm run directory (no {RunDir.CONFIG_FILE})")
    configs = json.loads(config_file.read_text()).get("configs", {})
    experiment = configs.get("experiment") or {}
    checkpoint = path if (path / META_FILE).is_file() else latest_checkpoint(path / CHECKPOINTS_DIR)
    meta = read_checkpoint_meta(checkpoint, verify=False) if checkpoint is not None else {}
    task = meta.get("task") or configs.get("task") or {}
    table = TokenTable.from_dict(meta["token_table"]) if meta.get("token_table") else None
    name = task.get("name") or (table.task.split(":", 1)[0] if table is not None and table.task else None)
    options = dict(task.get("options") or {})
    task_config = dict(task.get("config") or {})
    grammar = preset = None
    if name == "cfg":
        grammar = task_config.get("grammar") or options.get("grammar") or experiment.get("grammar")
        if grammar is None and table is not None and table.task.startswith("cfg:"):
            grammar = table.task.split(":", 1)[1]
    elif name == "igsm":
        preset = options.get("preset") or experiment.get("preset")
    model = meta.get("model_config") or configs.get("model")
    return TrainedOn(
        task=name,
        options=options,
        task_config=task_config,
        grammar=grammar,
        preset=preset,
        token_table=table,
        model_config=ModelConfig.from_dict(model) if model else None,
        model_preset=configs.get("model_preset"),
        step=int(meta["step"]) if "step" in meta else None,
        path=path,
    )

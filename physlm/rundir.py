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

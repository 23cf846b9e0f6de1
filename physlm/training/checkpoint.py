"""Checkpoints: safetensors weights, optimizer/RNG state and a JSON record; a crash never corrupts one.

Layout under a run's ``checkpoints/`` directory::

    step_00001000/
        model.safetensors     the model's state_dict
        trainer_state.pt      optimizer state and torch RNG states (read back with weights_only=True)
        checkpoint.json       model/task/train configs, token table, versions, seed, step, data-stream state,
                              and the size and SHA-256 of the two files above
    latest                    the name of the newest complete checkpoint

A checkpoint is assembled in a hidden temporary directory, flushed to disk, then renamed into place;
``latest`` is rewritten (atomically) only after that. A crash at any point leaves the previous checkpoint and
``latest`` intact; leftovers of an interrupted save are removed by the next save.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from physlm.provenance import git_sha, library_versions
from physlm.rundir import write_atomic

CHECKPOINTS_DIR = "checkpoints"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
META_FILE = "checkpoint.json"
LATEST_FILE = "latest"
FORMAT = "physlm-checkpoint"
FORMAT_VERSION = 1

_STEP_DIR = re.compile(r"^step_(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, corrupted, or does not match its own config."""


def step_dir_name(step: int) -> str:
    """Directory name of the checkpoint at ``step``."""
    return f"step_{step:08d}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _plain_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses views and shared storage, so every tensor gets its own contiguous CPU copy.
    return {name: t.detach().to("cpu").contiguous().clone() for name, t in state.items()}


def save_checkpoint(
    checkpoints_dir: str | Path,
    step: int,
    model_state: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    trainer_state: Mapping[str, Any] | None = None,
    keep: int = 0,
) -> Path:
    """Write the checkpoint of ``step`` atomically, point ``latest`` at it, and prune old ones.

    ``meta`` is the JSON-able record (configs, token table, data state...); the step, versions, git SHA and
    file digests are added here. ``keep`` > 0 keeps only that many newest checkpoints.
    """
    from safetensors.torch import save_file

    root = Path(checkpoints_dir)
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root)
    name = step_dir_name(step)
    tmp = root / f".tmp-{name}-{os.getpid()}"
    tmp.mkdir()
    try:
        save_file(_plain_state_dict(model_state), str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
        torch.save(dict(trainer_state or {}), tmp / STATE_FILE)
        files = {}
        for fname in (WEIGHTS_FILE, STATE_FILE):
            _fsync(tmp / fname)
            files[fname] = {"bytes": (tmp / fname).stat().st_size, "sha256": _sha256(tmp / fname)}
        record = {
            **meta,
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "step": step,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions(),
            "git_sha": git_sha(),
            "files": files,
        }
        write_atomic(tmp / META_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
        _fsync(tmp)
        final = root / name
        if final.exists():  # re-saving a step (e.g. after a resume): swap, then drop the old copy
            old = root / f".old-{name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_atomic(root / LATEST_FILE, name + "\n")
    if keep > 0:
        for path in list_checkpoints(root)[:-keep]:
            if path.name != name:
                shutil.rmtree(path, ignore_errors=True)
    return final


def _remove_leftovers(root: Path) -> None:
    for path in root.iterdir():
        if path.is_dir() and (path.name.startswith(".tmp-") or path.name.startswith(".old-")):
            shutil.rmtree(path, ignore_errors=True)


def list_checkpoints(checkpoints_dir: str | Path) -> list[Path]:
    """Complete-looking checkpoint directories, oldest step first."""
    root = Path(checkpoints_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(checkpoints_dir: str | Path) -> Path | None:
    """The checkpoint named by ``latest``, or None when there is none yet."""
    root = Path(checkpoints_dir)
    pointer = root / LATEST_FILE
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    path = root / name
    if not path.is_dir():
        raise CheckpointError(f"{pointer} names {name!r}, but {path} does not exist")
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from a run directory, a ``checkpoints/`` directory, a checkpoint directory or one
    of its files."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    if path.is_file() and path.name in (META_FILE, WEIGHTS_FILE, STATE_FILE):
        path = path.parent
    if (path / META_FILE).is_file() or _STEP_DIR.match(path.name):
        return path
    for root in (path / CHECKPOINTS_DIR, path):
        if (root / LATEST_FILE).is_file():
            found = latest_checkpoint(root)
            assert found is not None
            return found
    raise CheckpointError(
        f"{path} holds no physlm checkpoint: expected a run directory with {CHECKPOINTS_DIR}/{LATEST_FILE}, "
        f"a checkpoints directory with {LATEST_FILE}, or a checkpoint directory with {META_FILE}"
    )


def read_checkpoint_meta(checkpoint: str | Path, verify: bool = True) -> dict[str, Any]:
    """The checkpoint's JSON record, after checking that its files are present, complete and unchanged.

    ``verify=False`` skips the SHA-256 comparison (sizes are always checked).
    """
    checkpoint = Path(checkpoint)
    meta_path = checkpoint / META_FILE
    if not meta_path.is_file():
        raise CheckpointError(
            f"checkpoint {checkpoint} has no {META_FILE}; the save did not finish or the path is wrong"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{meta_path} is not valid JSON (truncated or corrupted?): {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path} is not a {FORMAT} record")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{meta_path} has format version {meta['format_version']}; "
            f"this physlm reads up to {FORMAT_VERSION}"
        )
    for fname, info in meta.get("files", {}).items():
        path = checkpoint / fname
        if not path.is_file():
            raise CheckpointError(f"checkpoint {checkpoint} is missing {fname}")
        size = path.stat().st_size
        if size != info["bytes"]:
            what = "truncated" if size < info["bytes"] else "larger than when it was saved"
            raise CheckpointError(
                f"{path} is {what}: {size} bytes on disk, {info['bytes']} bytes recorded in {META_FILE}"
            )
        if verify and _sha256(path) != info["sha256"]:
            raise CheckpointError(
                f"{path} is corrupted: its SHA-256 differs from the one recorded in {META_FILE}"
            )
    return meta


def load_weights(checkpoint: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The saved state_dict (call :func:`read_checkpoint_meta` first to verify the file)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(checkpoint) / WEIGHTS_FILE
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot read {path} (truncated or corrupted?): {exc}") from exc


def load_trainer_state(checkpoint: str | Path) -> dict[str, Any]:
    """Optimizer and RNG states (tensors loaded on the CPU)."""
    path = Path(checkpoint) / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {checkpoint} is missing {STATE_FILE}") from None
    except Exception as exc:  # torch raises several types for damaged archives
        raise CheckpointError(
            f"cannot read {path} (truncated or corrupted?): {type(exc).__name__}: {exc}"
        ) from exc


def weights_mismatch(expected: Mapping[str, torch.Size], found: Mapping[str, torch.Size]) -> list[str]:
    """Human-readable differences between a model's state_dict shapes and a checkpoint's."""
    problems = []
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        problems.append(
            f"missing from the weights: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    if unexpected:
        more = " ..." if len(unexpected) > 5 else ""
        problems.append(f"not in the model: {', '.join(unexpected[:5])}{more}")
    for name in sorted(set(expected) & set(found)):
        if tuple(expected[name]) != tuple(found[name]):
            problems.append(
                f"{name}: config gives shape {tuple(expected[name])}, weights have {tuple(found[name])}"
            )
    return problems

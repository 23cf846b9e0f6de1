"""Library versions and git SHA recorded with every artifact."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

_TRACKED = ("physlm", "torch", "transformer-lens", "numpy", "datasets", "safetensors", "plotly", "einops")


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries whose behaviour shapes physlm's results."""
    versions = {"python": platform.python_version()}
    for name in _TRACKED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_sha(path: str | Path | None = None) -> str | None:
    """The commit of the physlm checkout (with '-dirty' when it has local changes), or None."""
    where = Path(path) if path is not None else Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")

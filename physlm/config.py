"""Frozen, JSON-serialisable config dataclasses.

Every concern (task, model, training, probing) has one frozen dataclass that subclasses
:class:`Config`. Configs round-trip through JSON exactly, are saved next to every artifact
they produce, and drive the command line (tyro builds the options from the fields).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C", bound="Config")


def _to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _from_jsonable(tp: Any, value: Any) -> Any:
    """Rebuild ``value`` as type ``tp`` (nested configs, tuples, optionals)."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        for arg in args:
            try:
                return _from_jsonable(arg, value)
            except (TypeError, ValueError, KeyError):
                continue
        return value
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ValueError(f"{value!r} is not one of {typing.get_args(tp)}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise TypeError(f"expected a JSON object for {tp.__name__}, got {type(value).__name__}")
        return config_from_dict(tp, value)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_jsonable(args[0], v) for v in value)
        if args:
            return tuple(_from_jsonable(a, v) for a, v in zip(args, value))
        return tuple(value)
    if origin is dict:
        key_tp, val_tp = typing.get_args(tp) or (Any, Any)
        return {k: _from_jsonable(val_tp, v) for k, v in value.items()}
    if tp is Path:
        return Path(value)
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Build a config dataclass from a dict, rejecting unknown keys with a clear message."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(
            f"{cls.__name__} has no field(s) {unknown}; known fields: {sorted(names)}. "
            "Was this config written by a different physlm version?"
        )
    kwargs = {k: _from_jsonable(hints[k], v) for k, v in data.items()}
    return cls(**kwargs)


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class for physlm configs: frozen dataclasses with exact JSON round-trips."""

    def to_dict(self) -> dict[str, Any]:
        """A plain-JSON dict of every field (nested configs become dicts, tuples lists)."""
        return _to_jsonable(self)

    def to_json(self, path: str | Path | None = None, indent: int = 2) -> str:
        """Serialise to a JSON string, and write it to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Inverse of :meth:`to_dict`."""
        return config_from_dict(cls, data)

    @classmethod
    def from_json(cls: type[C], text_or_path: str | Path) -> C:
        """Load from a JSON string or a path to a JSON file."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text()
        return cls.from_dict(json.loads(text))

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (configs are frozen)."""
        return dataclasses.replace(self, **changes)


def load_config(cls: type[C], path: str | Path) -> C:
    """Load a config of type ``cls`` from a JSON file."""
    return cls.from_json(Path(path))

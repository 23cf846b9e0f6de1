import dataclasses
import json
from typing import Literal

import pytest

from physlm.config import Config


@dataclasses.dataclass(frozen=True)
class Inner(Config):
    width: int = 3
    name: str = "x"


@dataclasses.dataclass(frozen=True)
class Outer(Config):
    inner: Inner = Inner()
    windows: tuple[int, ...] = (1, 3, 7)
    mode: Literal["a", "b"] = "a"
    lr: float = 3e-4
    maybe: int | None = None
    table: dict[str, int] = dataclasses.field(default_factory=dict)


def test_round_trip_is_exact():
    cfg = Outer(inner=Inner(width=5, name="y"), windows=(2, 4), mode="b", lr=1.0, maybe=7, table={"k": 1})
    again = Outer.from_json(cfg.to_json())
    assert again == cfg
    assert isinstance(again.inner, Inner) and isinstance(again.windows, tuple)
    assert isinstance(again.lr, float)


def test_to_json_writes_file(tmp_path):
    path = tmp_path / "c.json"
    Outer().to_json(path)
    assert json.loads(path.read_text())["inner"]["width"] == 3
    assert Outer.from_json(path) == Outer()


def test_unknown_field_is_named():
    with pytest.raises(ValueError, match="no field"):
        Outer.from_dict({"nonsense": 1})


def test_bad_literal_rejected():
    with pytest.raises(ValueError):
        Outer.from_dict({"mode": "z"})


def test_frozen_and_replace():
    cfg = Outer()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 2.0  # type: ignore[misc]
    assert cfg.replace(lr=2.0).lr == 2.0 and cfg.lr == 3e-4

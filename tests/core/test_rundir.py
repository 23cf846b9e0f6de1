import dataclasses
import json

import pytest

from physlm.config import Config
from physlm.rundir import RunDir, RunDirExistsError, write_atomic


@dataclasses.dataclass(frozen=True)
class Demo(Config):
    steps: int = 10


def test_create_writes_config_versions_and_log(tmp_path):
    run = RunDir.create(tmp_path / "run", {"demo": Demo(steps=3)}, command="physlm test")
    record = json.loads((run.path / "config.json").read_text())
    assert record["configs"]["demo"] == {"steps": 3}
    assert "torch" in record["versions"] and "python" in record["versions"]
    assert "git_sha" in record
    assert record["commands"][0]["argv"] == "physlm test"
    run.log("hello %d", 5, echo=False)
    assert "hello 5" in (run.path / "log.txt").read_text()


def test_existing_run_is_not_overwritten(tmp_path):
    RunDir.create(tmp_path / "run", {"demo": Demo()})
    with pytest.raises(RunDirExistsError, match="--overwrite"):
        RunDir.create(tmp_path / "run", {"demo": Demo()})
    run = RunDir.create(tmp_path / "run", {"demo": Demo(steps=4)}, overwrite=True)
    assert run.config("demo") == {"steps": 4}


def test_stage_markers_on_success_and_failure(tmp_path):
    run = RunDir.create(tmp_path / "run")
    with run.stage("train"):
        pass
    assert run.is_complete("train")
    with pytest.raises(RuntimeError):
        with run.stage("probe"):
            raise RuntimeError("boom")
    assert not run.is_complete("probe")
    assert "boom" in (run.path / "FAILED").read_text()
    # a later success clears the failure note but never fakes the failed stage's marker
    with run.stage("probe"):
        pass
    assert run.is_complete("probe") and not (run.path / "FAILED").exists()


def test_rerunning_a_stage_that_fails_removes_old_marker(tmp_path):
    run = RunDir.create(tmp_path / "run")
    with run.stage("train"):
        pass
    with pytest.raises(ValueError):
        with run.stage("train"):
            raise ValueError("bad")
    assert not run.is_complete("train")


def test_open_requires_a_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a physlm run directory"):
        RunDir.open(tmp_path)
    RunDir.create(tmp_path / "r", {"demo": Demo()})
    reopened = RunDir.open(tmp_path / "r")
    reopened.record({"other": Demo(steps=1)}, command="second")
    record = reopened.read_record()
    assert set(record["configs"]) == {"demo", "other"} and len(record["commands"]) == 2


def test_write_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "a" / "f.txt"
    write_atomic(path, "one")
    write_atomic(path, b"two")
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["f.txt"]

"""`physlm data cfg` and `physlm data grammar-info` through the real CLI dispatcher."""

from __future__ import annotations

import json

import pytest

from physlm.experiments.cli import main
from physlm.rundir import RunDir
from physlm.tasks.cfg import load_cfg_dataset, load_grammar


def test_data_cfg_writes_a_run_directory(tmp_path):
    out = tmp_path / "run"
    args = [
        "data",
        "cfg",
        "--grammar",
        "cfg_tiny",
        "--n",
        "30",
        "--out",
        str(out),
        "--shard-size",
        "8",
        "--num-proc",
        "1",
        "--corrupt-rate",
        "0.5",
    ]
    assert main(args) == 0
    run = RunDir.open(out)
    assert run.is_complete("data")
    assert run.config("cfg_data")["n"] == 30 and run.config("cfg_data")["corrupt_rate"] == 0.5
    ds = load_cfg_dataset(out)
    assert len(ds) == 30 and 0 < sum(ds["corrupted"]) < 30
    assert load_grammar(out / "grammar.json") == load_grammar("cfg_tiny").replace(name="grammar")
    # same options -> the same data, bit for bit
    out2 = tmp_path / "run2"
    assert main(args[:-4] + ["--num-proc", "2", "--corrupt-rate", "0.5"] + ["--out", str(out2)]) == 0
    assert load_cfg_dataset(out2).data.equals(ds.data)
    with pytest.raises(FileExistsError, match="--overwrite"):
        main(args)


def test_data_cfg_bad_grammar_fails_before_creating_the_run(tmp_path):
    with pytest.raises(Exception, match="neither a preset grammar nor an existing file"):
        main(["data", "cfg", "--grammar", "nope", "--n", "3", "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()


def test_grammar_info_prints_structure_and_statistics(capsys):
    assert main(["data", "grammar-info", "cfg_tiny", "--samples", "200", "--dp-samples", "20"]) == 0
    out = capsys.readouterr().out
    assert "grammar cfg_tiny: L = 4 levels" in out
    assert "terminals: 1 2 3" in out and " -> " in out
    assert "sampled (200) mean" in out and "exact range 12..22" in out
    assert "from last 2 tok" in out


def test_grammar_info_of_a_user_text_file(tmp_path, capsys):
    path = tmp_path / "mine.txt"
    path.write_text("S -> A B | B A\nA -> 1 2 | 2 1 1\nB -> 3 3 | 1 3\n")
    assert main(["data", "grammar-info", str(path), "--rules-only"]) == 0
    out = capsys.readouterr().out
    assert "grammar mine: L = 3 levels" in out and "S -> A B | B A" in out
    assert "sentence length" not in out
    json.dumps(out)  # printable text only

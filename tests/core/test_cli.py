import subprocess
import sys

import pytest

from physlm.experiments.cli import COMMANDS, SINGLE_COMMAND_STAGES, main


def test_top_level_help_lists_every_stage(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for stage in ("data", "train", "probe", "analyze", "run"):
        assert f"  {stage}" in out


@pytest.mark.parametrize("stage", [s for s in COMMANDS if s != "train"])
def test_stage_help_lists_commands(stage, capsys):
    assert main([stage, "--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS[stage][1]:
        assert name in out


def test_unknown_stage_and_command_fail_clearly(capsys):
    assert main(["nope"]) == 2
    assert "unknown stage" in capsys.readouterr().err
    assert main(["data", "nope"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_console_script_help_runs_in_a_subprocess():
    out = subprocess.run(
        [sys.executable, "-m", "physlm.experiments.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "stages:" in out


def test_console_script_turns_user_errors_into_one_clear_line(tmp_path, capsys, monkeypatch):
    from physlm.experiments.cli import console_main

    monkeypatch.delenv("PHYSLM_DEBUG", raising=False)
    assert console_main(["probe", "cfg", "--run", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "physlm: error:" in err and "not a physlm run directory" in err
    assert "Traceback" not in err


def test_every_registered_command_resolves_to_a_documented_function(capsys):
    import importlib

    for stage, (_, commands) in COMMANDS.items():
        for name, (target, _) in commands.items():
            module, func = target.split(":")
            function = getattr(importlib.import_module(module), func)
            assert callable(function) and function.__doc__, f"physlm {stage} {name}: {target}"
        if stage not in SINGLE_COMMAND_STAGES:  # `physlm train --help` is tyro's option help
            assert main([stage, "--help"]) == 0
            assert "not yet available" not in capsys.readouterr().out


def test_zoo_probe_and_analyze_igsm_commands_are_registered(capsys):
    assert set(COMMANDS["zoo"][1]) == {"list", "check", "build"}
    assert "igsm" in COMMANDS["probe"][1] and "igsm" in COMMANDS["analyze"][1]
    assert main(["zoo", "list"]) == 0
    assert capsys.readouterr().out.strip()  # the shipped entries (or "the zoo ... is empty")

"""The ``physlm`` command line: ``physlm <stage> <command> [options]``.

Options are generated from each command's config dataclasses by tyro. We chose tyro over typer
and simple_parsing because it builds nested options straight from frozen dataclasses (our
configs) with their docstrings as help, without a second declaration of each field.

Commands are registered here by import path (every registered module exists) and imported only when run, so
``physlm --help`` answers without importing torch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# stage -> (stage help, {command: ("module:function", command help)})
COMMANDS: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "data": (
        "generate synthetic data sets with exact per-token labels",
        {
            "cfg": ("physlm.tasks.cfg.cli:data_cfg", "sample CFG sentences with their labels into a HF dataset"),
            "grammar-info": ("physlm.tasks.cfg.cli:grammar_info", "print a grammar's levels, rules and statistics"),
            "igsm": ("physlm.tasks.igsm.cli:data_igsm", "generate iGSM problems with solutions and labels"),
            "igsm-show": ("physlm.tasks.igsm.cli:igsm_show", "print one iGSM problem, its solution, graph, labels"),
            "igsm-info": ("physlm.tasks.igsm.cli:igsm_info", "a preset's lengths, parameters, ops, probe base rates"),
        },
    ),
    "train": (
        "train a HookedTransformer from scratch on a task",
        {"model": ("physlm.training.cli:train", "train (or --resume) a model on a task's data")},
    ),
    "probe": (
        "fit probes with controls on a trained run (CFG, iGSM)",
        {
            "cfg": ("physlm.probing.cli:probe_cfg", "layer-wise NT-ancestor / NT-end probes with controls"),
            "igsm": ("physlm.probing.igsm_cli:probe_igsm", "V-probes of nece / dep / known / value with controls"),
        },
    ),
    "analyze": (
        "attention against the true structure, generation evaluation, iGSM solutions",
        {
            "attention": ("physlm.analysis.cli:analyze_attention", "attention statistics against the true parse"),
            "generation": ("physlm.analysis.cli:analyze_generation", "generation accuracy, diversity and KL"),
            "igsm": ("physlm.analysis.igsm_cli:analyze_igsm", "judge greedy iGSM solutions in and out of distribution"),
        },
    ),
    "run": (
        "end-to-end experiments: data, training, probing, analysis and a report",
        {
            "cfg": ("physlm.experiments.run_cfg:run_cfg", "the Part 1 CFG experiment (what `make demo` runs)"),
            "igsm": ("physlm.experiments.run_igsm:run_igsm", "the Part 2 iGSM experiment"),
            "bio": ("physlm.experiments.run_bio:run_bio", "the Part 3.1 experiment: BIO pretrain, QA finetune, probes"),
        },
    ),
    "sweep": (
        "families of runs, one `physlm run` per point, collected into one table and figure",
        {"igsm-shape": ("physlm.experiments.sweep_igsm:sweep_igsm_shape", "iGSM depth versus width (Part 2.1 Fig 9)")},
    ),
    "zoo": (
        "the model zoo: small trained models shipped with physlm",
        {
            "list": ("physlm.experiments.zoo:zoo_list", "list the entries"),
            "check": ("physlm.experiments.zoo:zoo_check", "re-measure an entry's headline numbers on fresh samples"),
            "build": ("physlm.experiments.zoo:zoo_build", "copy a finished run into the zoo (without optimizer state)"),
        },
    ),
}

# `physlm train ...` is a single command: its stage name is also its command.
SINGLE_COMMAND_STAGES = {"train": "model"}


def _load(target: str) -> Callable[..., object]:
    module_name, func_name = target.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def _print_top_help() -> None:
    print("usage: physlm <stage> <command> [options]\n")
    print("physlm: train small transformers on synthetic data with known structure, then look inside.\n")
    print("stages:")
    for stage, (help_text, _) in COMMANDS.items():
        print(f"  {stage:<9} {help_text}")
    print("\n`physlm <stage> --help` lists a stage's commands;")
    print("`physlm <stage> <command> --help` shows a command's options.")


def _print_stage_help(stage: str) -> None:
    help_text, commands = COMMANDS[stage]
    if stage in SINGLE_COMMAND_STAGES:
        print(f"usage: physlm {stage} [options]   ({help_text})")
        print(f"`physlm {stage} --help` shows the options.")
        return
    print(f"usage: physlm {stage} <command> [options]\n\n{help_text}\n\ncommands:")
    for name, (_, command_help) in commands.items():
        print(f"  {name:<14} {command_help}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``physlm`` console script."""
    import tyro

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        _print_top_help()
        return 0
    if args[0] == "--version":
        from physlm import __version__

        print(f"physlm {__version__}")
        return 0
    stage, rest = args[0], args[1:]
    if stage not in COMMANDS:
        print(f"physlm: unknown stage '{stage}'; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    commands = COMMANDS[stage][1]
    if stage in SINGLE_COMMAND_STAGES:
        # `physlm train --help` goes straight to tyro's option help
        name = SINGLE_COMMAND_STAGES[stage]
        prog = f"physlm {stage}"
    else:
        if not rest or rest[0] in ("-h", "--help"):
            _print_stage_help(stage)
            return 0
        name, rest = rest[0], rest[1:]
        prog = f"physlm {stage} {name}"
    if name not in commands:
        print(
            f"physlm {stage}: unknown command '{name}'; choose one of {', '.join(commands)}", file=sys.stderr
        )
        return 2
    target, _ = commands[name]
    func = _load(target)
    result = tyro.cli(func, args=rest, prog=prog)
    return int(result) if isinstance(result, int) else 0


# Errors that carry a message meant for the user (bad names, missing runs, refused overwrites, broken
# checkpoints): the console prints the message alone; PHYSLM_DEBUG=1 shows the traceback too.
_USER_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError, RuntimeError)


def console_main(argv: Sequence[str] | None = None) -> int:
    """The ``physlm`` console script: :func:`main`, with user errors printed as one clear line (exit 2)."""
    import os

    try:
        return main(argv)
    except _USER_ERRORS as exc:
        if os.environ.get("PHYSLM_DEBUG"):
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"physlm: error: {message}", file=sys.stderr)
        print("(set PHYSLM_DEBUG=1 to see the full traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(console_main())

"""``physlm analyze igsm --run runs/<name>``: judge a trained iGSM model's greedy solutions (``igsm_eval.json``).

The same evaluation as the eval stage of ``physlm run igsm`` (:func:`evaluate_run`): fresh test-split problems
per cell, in and out of distribution, solved greedily and judged step by step by
:mod:`physlm.analysis.igsm_eval`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import tyro

from physlm.analysis.igsm_eval import EVAL_FILE, IGSMEvalConfig
from physlm.rundir import RunDir


def evaluate_run(run: RunDir, model: Any, preset: str, config: IGSMEvalConfig) -> dict[str, Any]:
    """The ``eval`` stage: record ``config``, judge ``model``'s greedy solutions to ``preset``'s test cells and
    write ``igsm_eval.json`` into the run; returns the record (one accuracy per cell is logged)."""
    from physlm.analysis.igsm_eval import evaluate_model, write_eval

    run.record({"eval": config})
    with run.stage("eval"):
        result = evaluate_model(model, preset, config)
        write_eval(run.artifact(EVAL_FILE), result)
    run.log("eval accuracy: " + ", ".join(f"{c['cell']} {c['accuracy']:.2f}" for c in result["cells"]))
    return result


def analyze_igsm(
    run: Path,
    config: Annotated[IGSMEvalConfig, tyro.conf.OmitArgPrefixes] = IGSMEvalConfig(),  # noqa: B008
    preset: str | None = None,
    threads: int | None = None,
) -> int:
    """Judge a trained iGSM model's greedy solutions in and out of distribution, step by step.

    Writes igsm_eval.json into the run directory (accuracy, answer-only accuracy, unnecessary parameters and
    operations, error kinds and examples per cell); `physlm run igsm` runs the same evaluation as its eval stage.

    Args:
        run: run directory of a model trained on iGSM (the --out of `physlm train --task igsm` or `physlm run igsm`).
        config: how many problems per cell, which cells, and the device to generate on.
        preset: iGSM preset of the test problems (default: the one the model was trained on).
        threads: torch CPU threads (default: $OMP_NUM_THREADS, else every core).
    """
    from physlm.threads import set_torch_threads
    from physlm.training.load import load_model

    set_torch_threads(threads)
    run_dir = RunDir.open(run)
    trained_on = run_dir.trained_on().require("igsm", "the iGSM evaluation")
    preset = preset or trained_on.preset
    if preset is None:
        raise ValueError(f"run {run_dir.path} records no iGSM preset; pass --preset")
    loaded = load_model(run_dir.path, device=config.device)
    evaluate_run(run_dir, loaded.model, preset, config)
    return 0

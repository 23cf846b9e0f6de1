"""``physlm probe igsm --run runs/<name>``: the Part 2.1 V-probes with controls on a trained iGSM run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import tyro

from physlm.probing.igsm_config import IGSMProbeConfig


def probe_igsm(
    run: Path,
    config: Annotated[IGSMProbeConfig, tyro.conf.arg(name="")] = IGSMProbeConfig(),  # noqa: B008
    threads: int = 0,
) -> Path:
    """Fit the iGSM V-probes (nece, dep, known, value, can_next, nece_next) of a trained iGSM run, with the
    random-init and majority controls, in every test cell (in distribution, op=max, OOD op, reask) and
    population (all_param, G_d, necessary / unnecessary), plus the layer-wise nece by distance from the query.

    Writes probe_results.csv, probe_igsm.json (example counts, convergence curves, times, the first-wrong
    summary) and probe_<target>.json figures into the run directory.

    Args:
        run: run directory of a trained iGSM model (the --out of `physlm run igsm` or `physlm train`).
        config: what to probe and how (--embedding-update suffix is the cheap CPU variant).
        threads: torch intra-op threads (0 = leave torch's default).
    """
    import torch

    from physlm.probing.igsm_recipe import run_igsm_probes

    if threads > 0:
        torch.set_num_threads(threads)
    csv_path = run_igsm_probes(run, config)
    _print_summary(csv_path)
    return csv_path


def _print_summary(csv_path: Path) -> None:
    """The cells table at the last layer (trained / random-init / majority), one line per row."""
    from physlm.probing.igsm_figures import cells_table
    from physlm.results import read_results

    table = cells_table(read_results(csv_path))
    print(f"\n{'target':<10} {'population':<12} {'cell':<14} {'metric':<18} trained  random  majority    n")
    for e in table:
        print(f"{e['target']:<10} {e['population']:<12} {e['cell']:<14} {e['metric']:<18} "
              f"{_fmt(e.get('trained'))}   {_fmt(e.get('random_init'))}   {_fmt(e.get('majority'))}  {e['n']:>5}")
    print(f"\nresults: {csv_path}")


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "  -  "

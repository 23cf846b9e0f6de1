"""``physlm probe cfg --run runs/<name>``: layer-wise CFG probes with controls on a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import tyro

from physlm.probing.cfg_recipe import ProbeConfig


def probe_cfg(
    run: Path,
    config: Annotated[ProbeConfig, tyro.conf.arg(name="")] = ProbeConfig(),  # noqa: B008
    threads: int = 0,
) -> Path:
    """Fit NT-ancestor / NT-end probes on every layer and level of a trained CFG run, with controls.

    Writes probe_results.csv, probe_<target>.json figures and probes.html into the run directory.

    Args:
        run: run directory of a trained model (the --out of `physlm train`).
        config: what to probe and how.
        threads: torch intra-op threads (0 = leave torch's default).
    """
    import torch

    from physlm.probing.cfg_recipe import run_cfg_probes

    if threads > 0:
        torch.set_num_threads(threads)
    return run_cfg_probes(run, config)

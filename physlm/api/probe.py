"""``physlm.probe``: the probe recipes of :mod:`physlm.probing` on a loaded model, controls included.

CFG models get the Part 1 recipe (:func:`physlm.probing.cfg_recipe.probe_cfg_model` on fresh labelled sentences),
iGSM models the Part 2.1 V-probes (:func:`physlm.probing.igsm_vprobe.probe_igsm_models` on fresh problems of the
train and test hash splits). Both run in memory: nothing is written next to the model, so a zoo entry stays
read-only. The default sizes are the ones ``physlm run cfg`` / ``physlm run igsm`` use.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from physlm.api.model import CFGTaskSpec, Model
from physlm.probing.cfg_recipe import CONTROLS as CFG_CONTROLS
from physlm.probing.cfg_recipe import ProbeConfig
from physlm.probing.igsm_vprobe import CONTROLS as IGSM_CONTROLS
from physlm.probing.igsm_vprobe import TARGETS as IGSM_TARGETS
from physlm.probing.igsm_vprobe import IGSMProbeConfig
from physlm.results import ProbeResults

CFG_TARGETS = ("ancestor", "ancestor_at_end", "end", "end_level")
CFG_DEFAULT = ProbeConfig(
    n_train=200, n_test=100, n_boot=300, targets=("ancestor_at_end", "end"),
    controls=("random_init", "majority", "position", "position_token"), layers_per_fit=8,
)
"""What ``physlm.probe`` fits on a CFG model by default: the NT-ancestor probe at NT-ends (the Part 1 headline)
and the NT-end probe, every layer, against the random-init model and the majority / position baselines."""
IGSM_DEFAULT = IGSMProbeConfig(n_train=120, n_test=60, draws_per_problem=4, targets=("nece", "dep"))
"""What ``physlm.probe`` fits on an iGSM model by default: the sizes of ``physlm run igsm``, nece and dep at
every layer, in every test cell and population, against the random-init model and the majority class."""


def _checked(kind: str, given: Sequence[str] | None, allowed: Sequence[str]) -> tuple[str, ...] | None:
    if given is None:
        return None
    if isinstance(given, str):
        given = (given,)
    unknown = [g for g in given if g not in allowed]
    if unknown:
        raise ValueError(f"unknown {kind} {unknown}; choose among {tuple(allowed)}")
    return tuple(given)


def _quiet(*args: Any) -> None:
    """The recipes' log when ``verbose`` is off."""


def probe(
    model: Model,
    targets: Sequence[str] | None = None,
    controls: Sequence[str] | None = None,
    *,
    layers: Sequence[int] | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    n_boot: int | None = None,
    seed: int | None = None,
    config: ProbeConfig | IGSMProbeConfig | None = None,
    verbose: bool = False,
    **options: Any,
) -> ProbeResults:
    """Probe every layer of ``model`` for its task's hidden structure, with controls; returns the results.

    Args:
        model: from :func:`physlm.load` or :func:`physlm.train`.
        targets: CFG: ``ancestor``, ``ancestor_at_end``, ``end``, ``end_level`` (default ``ancestor_at_end``
            and ``end``); iGSM: ``nece``, ``dep``, ``known``, ``value``, ``can_next``, ``nece_next`` (default
            ``nece`` and ``dep``).
        controls: CFG: ``random_init``, ``majority``, ``position``, ``position_token``, ``shuffled`` (default
            all but ``shuffled``); iGSM: ``random_init``, ``majority`` (default both).
        layers: CFG only: layers to probe (−1 = embeddings); default all. iGSM probes nece/dep at every layer
            and the other targets at the last one.
        n_train, n_test: fresh sentences (CFG, default 200 / 100) or problems (iGSM, default 120 / 60) to fit
            on and to score on.
        n_boot: bootstrap resamples of the test units for the 95% intervals.
        seed: seeds the data, probe initialisation and the bootstrap (default 0).
        config: a full :class:`physlm.probing.ProbeConfig` / ``IGSMProbeConfig`` to start from; the arguments
            given above override its fields.
        verbose: print the recipe's progress lines.
        options: other fields of that config, e.g. ``delta=2`` (CFG) or ``draws_per_problem=6``,
            ``layerwise=()`` (iGSM: every target at the last layer only).
    """
    log = print if verbose else _quiet
    if isinstance(model.task, CFGTaskSpec):
        return _probe_cfg(model, targets, controls, layers, n_train, n_test, n_boot, seed, config, log, options)
    if layers is not None:
        raise ValueError("layers= applies to CFG probes; iGSM probes nece/dep at every layer, the rest at the last")
    return _probe_igsm(model, targets, controls, n_train, n_test, n_boot, seed, config, log, options)


def _overrides(**changes: Any) -> dict[str, Any]:
    return {k: v for k, v in changes.items() if v is not None}


def _probe_cfg(
    model: Model, targets: Sequence[str] | None, controls: Sequence[str] | None, layers: Sequence[int] | None,
    n_train: int | None, n_test: int | None, n_boot: int | None, seed: int | None, config: Any, log: Any,
    options: dict[str, Any],
) -> ProbeResults:
    from physlm.probing.cfg_data import sample_probe_data
    from physlm.probing.cfg_recipe import probe_cfg_model

    if config is not None and not isinstance(config, ProbeConfig):
        raise TypeError(f"a CFG model takes a ProbeConfig, got {type(config).__name__}")
    config = (config or CFG_DEFAULT).replace(**_overrides(
        targets=_checked("targets", targets, CFG_TARGETS), controls=_checked("controls", controls, CFG_CONTROLS),
        layers=None if layers is None else tuple(layers), n_train=n_train, n_test=n_test, n_boot=n_boot, seed=seed,
    ), **{**options, "device": str(model.device)})
    task = model.task
    data = sample_probe_data(task.grammar, config.n_train + config.n_test, config.seed, model.n_ctx, model.token_table)
    models = {"trained": model.model}
    if "random_init" in config.controls:
        models["random_init"] = model.random_init(config.random_init_seed).model
    with tempfile.TemporaryDirectory(prefix="physlm-probe-") as cache:
        rows = probe_cfg_model(models, data, config, Path(cache), model.token_table.d_vocab, log=log)
    return ProbeResults.from_rows(rows, task="cfg", config=config)


def _probe_igsm(
    model: Model, targets: Sequence[str] | None, controls: Sequence[str] | None, n_train: int | None,
    n_test: int | None, n_boot: int | None, seed: int | None, config: Any, log: Any, options: dict[str, Any],
) -> ProbeResults:
    from physlm.probing.igsm_vprobe import probe_cells, probe_igsm_models, probe_records

    if config is not None and not isinstance(config, IGSMProbeConfig):
        raise TypeError(f"an iGSM model takes an IGSMProbeConfig, got {type(config).__name__}")
    base = config or IGSM_DEFAULT
    chosen = _checked("targets", targets, IGSM_TARGETS)
    changes = _overrides(
        targets=chosen, controls=_checked("controls", controls, IGSM_CONTROLS), n_train=n_train, n_test=n_test,
        n_boot=n_boot, seed=seed,
    )
    if chosen is not None:  # the layer-wise targets must stay among the probed ones
        changes["layerwise"] = tuple(t for t in options.get("layerwise", base.layerwise) if t in chosen)
    config = base.replace(**{**options, **changes, "device": str(model.device)})
    preset_name = config.preset or model.task.preset
    if preset_name is None:
        raise ValueError(f"{model.name} records no iGSM preset; pass config=IGSMProbeConfig(preset=...)")
    # the longest suffix is [START] A [MID] B [END]: 3 markers + 2 names of 3 tokens (as run_igsm_probes)
    max_doc = model.n_ctx - 1 - 9
    train_records = probe_records(preset_name, "train", config.n_train, config.seed, max_doc)
    cells = probe_cells(preset_name, config, max_doc, log=log)  # test problems per cell, in distribution first
    models = {"trained": model.model}
    if "random_init" in config.controls:
        models["random_init"] = model.random_init(config.random_init_seed).model
    rows = probe_igsm_models(models, train_records, cells, config, log=log)
    if config.first_wrong:
        from physlm.probing.igsm_first_wrong import first_wrong_probe

        rows += first_wrong_probe(model.model, preset_name, train_records, cells[next(iter(cells))], config)[0]
    return ProbeResults.from_rows(rows, task="igsm", config=config.replace(preset=preset_name))

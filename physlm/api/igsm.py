"""``physlm.fit_vprobes``: nece and dep V-probes of an iGSM model, kept to ask about single problems.

``physlm.probe`` scores V-probes against their controls and keeps only the numbers; a notebook that wants to
see what the model believes about *one* problem (which parameters are necessary, what depends on what) needs
the fitted probes themselves. :func:`fit_vprobes` fits them on train-split problems, as the recipe does, and
:meth:`VProbes.beliefs` reads them on any problem.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from physlm.api.model import IGSMSample, IGSMTaskSpec, Model
from physlm.probing.fit import FitConfig
from physlm.probing.igsm_vprobe import FittedVProbe, IGSMProbeConfig

Param = tuple[int, int, int, int]
"""An iGSM parameter, as :mod:`physlm.tasks.igsm` names them."""


@dataclasses.dataclass(frozen=True, eq=False)
class VProbes:
    """Fitted ``nece`` and ``dep`` V-probes of one model, reading block ``layer``'s output at ``[END]``."""

    nece: FittedVProbe
    dep: FittedVProbe
    layer: int
    config: IGSMProbeConfig

    def beliefs(self, sample: IGSMSample, params: Sequence[Param] | None = None) -> dict[str, dict[Any, int]]:
        """What the probes say about one problem: ``{"nece": {A: 0/1}, "dep": {(A, B): 0/1}}`` for the parameters
        ``params`` (default: those of its dependency graph G_d), dep(A, B) meaning "A depends on B"; compare
        with the truth in ``sample.labels``."""
        from physlm.analysis.igsm_graph import graph_params
        from physlm.probing.igsm_vprobe import problem_beliefs

        shown = list(params) if params is not None else graph_params(sample.problem)
        index = {tuple(p): i for i, p in enumerate(sample.labels.params)}
        missing = [p for p in shown if tuple(p) not in index]
        if missing:
            raise ValueError(f"parameters {missing} are not parameters of this problem")
        candidates = [index[tuple(p)] for p in shown]
        raw = problem_beliefs(self.nece, self.dep, sample.record(), candidates)
        by_index = dict(zip(candidates, shown))
        return {
            "nece": {by_index[i]: int(v) for i, v in raw["nece"].items()},
            "dep": {(by_index[a], by_index[b]): int(v) for (a, b), v in raw["dep"].items()},
        }


def fit_vprobes(
    model: Model,
    n_train: int = 120,
    *,
    draws_per_problem: int = 4,
    layer: int | None = None,
    seed: int = 0,
    fit: FitConfig | None = None,
    config: IGSMProbeConfig | None = None,
) -> VProbes:
    """Fit the nece and dep V-probes of an iGSM model on ``n_train`` fresh train-split problems
    (``draws_per_problem`` draws each) at ``layer`` (default the last block), as ``physlm.probe`` does; ``fit``
    is the optimiser (default the recipe's), ``config`` any other field of the recipe's config."""
    from physlm.probing.igsm_vprobe import build_examples, fit_vprobe, probe_records

    if not isinstance(model.task, IGSMTaskSpec):
        raise TypeError("V-probes need an iGSM model")
    config = (config or IGSMProbeConfig()).replace(
        n_train=n_train, draws_per_problem=draws_per_problem, seed=seed, device=str(model.device)
    )
    if fit is not None:
        config = config.replace(fit=fit)
    preset_name = config.preset or model.task.preset
    if preset_name is None:
        raise ValueError(f"{model.name} records no iGSM preset; pass config=IGSMProbeConfig(preset=...)")
    layer = model.n_layers - 1 if layer is None else layer
    if not 0 <= layer < model.n_layers:
        raise ValueError(f"layer must lie in 0..{model.n_layers - 1}, got {layer}")
    records = probe_records(preset_name, "train", n_train, seed, model.n_ctx - 1 - 9)
    fitted = {}
    for target in ("nece", "dep"):
        train = build_examples(records, target, draws_per_problem, seed, config.embedding_update, model.n_ctx)
        fitted[target] = fit_vprobe(model.model, train, 2, layer, config)
    return VProbes(fitted["nece"], fitted["dep"], layer, config)

"""Re-measuring a zoo entry's headline numbers on fresh samples: ``physlm zoo check NAME``.

Generation accuracy (cut0, exact DP) and the last-layer ``ancestor_at_end`` probe accuracy are measured again
with fresh seeds and compared with the entry's ``zoo.json`` within a tolerance of a few standard errors.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from typing import Any

from physlm.experiments.zoo_registry import (
    HEADLINE_TARGET,
    ZOO_DIR,
    ZooError,
    entry_task,
    load_zoo_model,
    read_zoo_record,
    zoo_grammar,
)

Z_TOLERANCE = 4.0
"""Tolerance of :func:`check_zoo_entry` in standard errors of the difference of two independent estimates
(two-sided false-alarm rate about 6e-5 per number under a normal approximation)."""


def measure_generation_accuracy(
    model: Any, grammar: Any, table: Any, n_samples: int, seed: int, temperature: float = 1.0, batch_size: int = 64
) -> dict[str, Any]:
    """cut0 generation accuracy: ``n_samples`` sentences sampled from BOS, judged by the exact DP (seeded)."""
    import torch

    from physlm.analysis.generation import exact_dp, membership, run_completions
    from physlm.analysis.sampling import ModelSampler

    sampler = ModelSampler(model, table.eos_id, int(model.cfg.n_ctx), True)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        result = run_completions(
            sampler, [[]] * n_samples, table, grammar.num_terminals, membership(grammar, exact_dp()),
            temperature, gen, batch_size, desc="cut0",
        )
    return {"accuracy_cut0": result["accuracy"], "n_samples": result["n"]}


def measure_ancestor_at_end(
    model: Any, grammar: Any, table: Any, probe_config: Any, layer: int | None = None
) -> dict[str, dict[str, float]]:
    """The ``ancestor_at_end`` probe accuracy on one layer (default: the last), per level, with 95% intervals.

    ``probe_config`` is a :class:`probing.ProbeConfig` (sizes, seed, probe shape); only its target and layer
    are overridden, and no controls are fitted.
    """
    from physlm.probing.cfg_data import sample_probe_data
    from physlm.probing.cfg_recipe import probe_cfg_model

    layer = int(model.cfg.n_layers) - 1 if layer is None else layer
    config = probe_config.replace(layers=(layer,), targets=(HEADLINE_TARGET,), controls=())
    data = sample_probe_data(grammar, config.n_train + config.n_test, config.seed, int(model.cfg.n_ctx), table)
    with tempfile.TemporaryDirectory(prefix="physlm-zoo-probe-") as cache:
        rows = probe_cfg_model({"trained": model}, data, config, Path(cache), table.d_vocab, log=lambda *a: None)
    return {
        str(r["level"]): {"accuracy": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}
        for r in rows if r["metric"] == "accuracy" and r["features"] == "trained"
    }


def _binomial_se(p: float, n: int) -> float:
    """Agresti–Coull standard error of a proportion (never 0, also at p = 0 or 1)."""
    p_adj = (p * n + 2.0) / (n + 4.0)
    return math.sqrt(p_adj * (1.0 - p_adj) / (n + 4.0))


def _interval_se(value: float, ci_low: float, ci_high: float, n_units: int) -> float:
    """Standard error from a 95% bootstrap interval, floored by the binomial SE over the resampled units.

    The bootstrap resamples whole test sentences; a degenerate interval (all resamples equal) would give
    0, so the floor treats each of the ``n_units`` sentences as one Bernoulli trial at the measured accuracy.
    """
    return max((ci_high - ci_low) / (2 * 1.959964), _binomial_se(value, n_units))


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One headline number: recorded in zoo.json against re-measured, with the allowed difference."""

    name: str
    recorded: float
    measured: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return abs(self.measured - self.recorded) <= self.tolerance

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        return (f"{self.name}: recorded {self.recorded:.4f}, measured {self.measured:.4f}, "
                f"|diff| {abs(self.measured - self.recorded):.4f} vs tolerance {self.tolerance:.4f} [{verdict}]")


def measure_igsm_accuracy(
    model: Any, preset: str, cell: str, n_problems: int, seed: int, length_factor: float = 3.0,
    n_ctx: int | None = None,
) -> dict[str, Any]:
    """Greedy fully-correct and answer accuracy on ``n_problems`` fresh test-split problems of one eval cell
    (:func:`physlm.analysis.igsm_eval.evaluate_model`; ``seed`` picks the problems)."""
    from physlm.analysis.igsm_eval import IGSMEvalConfig, evaluate_model

    config = IGSMEvalConfig(n_problems=n_problems, seed=seed, n_examples=0, length_factor=length_factor)
    record = evaluate_model(model, preset, config, n_ctx=n_ctx, progress=False, cells=(cell,))
    if not record["cells"]:
        raise ZooError(f"iGSM preset {preset!r} has no eval cell {cell!r}")
    return record["cells"][0]


def check_igsm_entry(
    record: dict[str, Any], model: Any, n_problems: int = 60, seed_offset: int = 1, z: float = Z_TOLERANCE
) -> list[Comparison]:
    """Re-measure an iGSM entry's in-distribution greedy accuracy (fully correct, and the answer alone) on
    ``n_problems`` fresh test problems drawn with the recorded eval seed + ``seed_offset``; each tolerance is
    ``z`` binomial standard errors of the difference of the two independent estimates."""
    ev = record["headline"]["eval"]
    cell = ev["in_distribution"]
    rec = ev["cells"][cell]
    new = measure_igsm_accuracy(model, record["preset"], cell, n_problems, int(ev.get("seed") or 0) + seed_offset,
                                float(ev.get("length_factor") or 3.0), ev.get("n_ctx"))
    out = []
    for key, label in (("accuracy", "fully-correct accuracy"), ("answer_accuracy", "answer accuracy")):
        tol = z * math.hypot(_binomial_se(rec[key], int(rec["n"])), _binomial_se(new[key], int(new["n"])))
        out.append(Comparison(f"{label}, {cell} (greedy, n={new['n']})", rec[key], new[key], tol))
    return out


def check_zoo_entry(
    name: str,
    zoo_dir: str | Path = ZOO_DIR,
    n_samples: int = 300,
    seed_offset: int = 1,
    z: float = Z_TOLERANCE,
    device: str = "cpu",
    n_problems: int = 60,
) -> list[Comparison]:
    """Re-measure an entry's headline numbers on fresh samples and compare them with its zoo.json.

    Generation: ``n_samples`` cut0 samples with the recorded seed + ``seed_offset`` (independent draws).
    Probe: the recorded probe config (same n_train / n_test, probe shape and fit) with seed + ``seed_offset``,
    i.e. fresh training and test sentences. Each tolerance is ``z`` standard errors of the difference of the
    two independent estimates: binomial for generation, the bootstrap intervals (floored by a binomial SE
    over test sentences) for the probe. iGSM entries: :func:`check_igsm_entry` on ``n_problems`` problems.
    """
    from physlm.probing.cfg_recipe import ProbeConfig

    record = read_zoo_record(name, zoo_dir)
    loaded = load_zoo_model(name, device=device, zoo_dir=zoo_dir)
    if entry_task(record) == "igsm":
        return check_igsm_entry(record, loaded.model, n_problems, seed_offset, z)
    grammar = zoo_grammar(name, zoo_dir)
    head = record["headline"]
    out: list[Comparison] = []

    gen = head["generation"]
    gen_seed = int(gen["seed"] if gen.get("seed") is not None else 0) + seed_offset
    measured = measure_generation_accuracy(
        loaded.model, grammar, loaded.token_table, n_samples, gen_seed, float(gen.get("temperature", 1.0))
    )
    tol = z * math.hypot(_binomial_se(gen["accuracy_cut0"], gen["n_samples"]),
                         _binomial_se(measured["accuracy_cut0"], measured["n_samples"]))
    out.append(Comparison("generation accuracy_cut0", gen["accuracy_cut0"], measured["accuracy_cut0"], tol))

    probe = head["probe"]
    base = ProbeConfig.from_dict(record["probe_config"]) if record.get("probe_config") else ProbeConfig()
    config = base.replace(seed=base.seed + seed_offset, device=device)
    levels = measure_ancestor_at_end(loaded.model, grammar, loaded.token_table, config, int(probe["layer"]))
    for level, rec in probe["levels"].items():
        if level not in levels:
            raise ZooError(f"re-measurement produced no accuracy for level {level} (got {sorted(levels)})")
        new = levels[level]
        se_rec = _interval_se(rec["accuracy"], rec["ci_low"], rec["ci_high"], int(probe["n_test"] or base.n_test))
        se_new = _interval_se(new["accuracy"], new["ci_low"], new["ci_high"], config.n_test)
        out.append(Comparison(
            f"{HEADLINE_TARGET} accuracy, level {level}, layer {probe['layer']}",
            rec["accuracy"], new["accuracy"], z * math.hypot(se_rec, se_new),
        ))
    return out


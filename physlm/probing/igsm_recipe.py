"""The Part 2.1 V-probing recipe for iGSM (spec part2_igsm.md §3): fit, evaluate, controls, result rows.

Probes train on problems of the *train* hash split, drawn from the official ``all_param`` population, and are
scored on fresh *test*-split problems in every cell of the paper's columns: in distribution (op <= max_op),
op = max_op, the first OOD op and re-asked questions at that op. Each cell is scored on every population of
:mod:`physlm.probing.igsm_examples` (all_param, G_d, and necessary / unnecessary A for dep and can_next); the
nece probe of every layer is also scored on necessary parameters binned by their distance t from the query
(Fig 10/14: rows with ``level = t``, pooled over the cells, ``cell = "all cells"``).

Controls: the same probe on a randomly initialised model of the same shape (``random_init``), and the majority
class of the training labels of the same population (``majority``). Metrics: accuracy, balanced accuracy and
per-class accuracy (``class_1_accuracy`` = accuracy on positives, ``class_0_accuracy`` on negatives), with
bootstrap intervals over test problems. Rows (:mod:`physlm.results`) carry the shared columns (``level`` 0, or t
for the distance bins; ``layer`` = the block whose output the head reads) and the extra columns ``cell``,
``population`` and ``n_examples``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from physlm.probing.igsm_cache import PrefixCache
from physlm.probing.igsm_config import IGSMProbeConfig
from physlm.probing.igsm_examples import (
    N_CLASSES,
    VProbeExamples,
    build_examples,
    cell_configs,
    distance_examples,
    populations_for,
    probe_records,
    record_document,
)
from physlm.probing.igsm_fit import FittedVProbe, fit_vprobe
from physlm.probing.metrics import Metric, classification_metrics

POOLED = "all cells"
"""The ``cell`` of the layer-wise nece rows by distance t (pooled over the test cells)."""
INFO_FILE = "probe_igsm.json"
"""Beside probe_results.csv: the config, example counts, stage times, convergence curves, first-wrong summary."""


def score(
    pred: Int[Tensor, " n"], examples: VProbeExamples, n_classes: int, config: IGSMProbeConfig,
    per_class: bool = True,
) -> list[Metric]:
    """Accuracy, balanced accuracy and per-class accuracy with bootstrap intervals over problems."""
    return classification_metrics(
        pred, examples.labels, examples.group, n_classes, n_boot=config.n_boot, seed=config.seed,
        per_class=per_class,
    )


def majority_prediction(train_labels: Int[Tensor, " n_train"], n: int) -> Int[Tensor, " n"]:
    """The training labels' most frequent class, ``n`` times."""
    return torch.full((n,), int(torch.bincount(train_labels).argmax()), dtype=torch.long)


def result_rows(
    target: str, layer: int, features: str, metrics: Sequence[Metric], cell: str, population: str,
    n_examples: int, level: int = 0,
) -> list[dict]:
    """probe_results.csv rows of one scored probe (or control)."""
    return [
        dict(target=target, level=level, layer=layer, features=features, metric=m.name, value=m.value,
             ci_low=m.ci_low, ci_high=m.ci_high, cell=cell, population=population, n_examples=n_examples)
        for m in metrics
    ]


@dataclasses.dataclass
class _Plan:
    """One target's examples (model-independent): training draws, test sets per (cell, population)."""

    target: str
    n_classes: int
    layers: list[int]
    train: VProbeExamples
    tests: dict[tuple[str, str], VProbeExamples]
    distance: dict[str, tuple[VProbeExamples, Tensor]]
    """per cell: nece examples of the necessary parameters at distance t >= 1, and each row's t"""


def _plans(train_records: Sequence[dict], cells: Mapping[str, Sequence[dict]], config: IGSMProbeConfig,
           n_layers: int, n_ctx: int, log: Any) -> list[_Plan]:
    mode, k = config.embedding_update, config.draws_per_problem
    base = next(iter(cells))
    plans = []
    for target in config.targets:
        train = build_examples(train_records, target, k, config.seed, mode, n_ctx)
        tests = {}
        for cell, records in cells.items():
            for pop in populations_for(target, config.populations):
                try:
                    tests[(cell, pop)] = build_examples(records, target, k, config.seed + 1, mode, n_ctx, pop)
                except ValueError as exc:  # e.g. no unnecessary parameter in any problem of a tiny preset
                    log(f"probe {target}: no {cell} / {pop} examples ({exc})")
        distance = {}
        if target == "nece" and config.distance_bins:
            for cell, records in cells.items():
                found = distance_examples(records, config.distance_bins, mode, n_ctx)
                if found is not None:
                    distance[cell] = found
        layers = list(range(n_layers)) if target in config.layerwise else [n_layers - 1]
        plans.append(_Plan(target, N_CLASSES[target], layers, train, tests, distance))
        head = tests.get((base, "all_param"))
        rate = f", {100 * float(head.labels.float().mean()):.1f}% positive" if head and N_CLASSES[target] == 2 else ""
        log(f"probe {target}: {len(train)} train / {sum(len(t) for t in tests.values())} test examples in "
            f"{len(tests)} (cell, population) sets, layers {layers}{rate}")
    return plans


def _majority_rows(plan: _Plan, train_records: Sequence[dict], config: IGSMProbeConfig, n_ctx: int) -> list[dict]:
    rows: list[dict] = []
    train_labels = {"all_param": plan.train.labels}
    for (cell, pop), test in plan.tests.items():
        if pop not in train_labels:  # the majority of the same population's training draws
            try:
                train_labels[pop] = build_examples(train_records, plan.target, config.draws_per_problem,
                                                   config.seed, config.embedding_update, n_ctx, pop).labels
            except ValueError:  # no such parameter among the training problems: the all_param majority
                train_labels[pop] = plan.train.labels
        metrics = score(majority_prediction(train_labels[pop], len(test)), test, plan.n_classes, config)
        for layer in plan.layers:
            rows += result_rows(plan.target, layer, "majority", metrics, cell, pop, len(test))
    return rows


def probe_igsm_models(
    models: dict[str, Any],
    train_records: Sequence[dict],
    test_records: Sequence[dict] | Mapping[str, Sequence[dict]],
    config: IGSMProbeConfig,
    log: Any = print,
    info: dict | None = None,
) -> list[dict]:
    """All result rows for ``models`` ({"trained": model, "random_init": model?}). ``test_records``: the
    in-distribution test problems, or a mapping cell name -> problems whose first entry is in distribution.
    ``info`` (a dict) receives the convergence curves, example counts and fit times."""
    cells = dict(test_records) if isinstance(test_records, Mapping) else {"in_dist": list(test_records)}
    base = next(iter(cells))
    trained = models["trained"]
    n_layers, n_ctx = trained.cfg.n_layers, trained.cfg.n_ctx
    info = {} if info is None else info
    plans = _plans(train_records, cells, config, n_layers, n_ctx, log)
    info["examples"] = {p.target: {"train": len(p.train), **{f"{c} / {q}": len(t) for (c, q), t in p.tests.items()}}
                        for p in plans}
    info.setdefault("curves", {})
    info.setdefault("fit_seconds", {})
    rows: list[dict] = []
    if "majority" in config.controls:
        for plan in plans:
            rows += _majority_rows(plan, train_records, config, n_ctx)
    for features, model in models.items():
        caches: dict[str, PrefixCache] = {}
        if config.embedding_update == "suffix":  # one pass per document serves every target, layer and epoch
            caches = {"train": PrefixCache.build(model, [record_document(r) for r in train_records])}
            caches.update({c: PrefixCache.build(model, [record_document(r) for r in rs]) for c, rs in cells.items()})
        for plan in plans:
            start = time.perf_counter()
            for layer in tqdm(plan.layers, desc=f"{plan.target} ({features})", leave=False):
                curve_on = plan.tests.get((base, "all_param"))
                if not (config.curves and features == "trained" and layer == n_layers - 1):
                    curve_on = None
                fitted = fit_vprobe(model, plan.train, plan.n_classes, layer, config, cache=caches.get("train"),
                                    curve_on=curve_on, curve_cache=caches.get(base))
                rows += _score_fitted(fitted, plan, layer, features, config, caches)
                if fitted.curve is not None:
                    info["curves"][plan.target] = {"layer": layer, "cell": base, "population": "all_param",
                                                   "best_epoch": fitted.history.best_epoch[0], "epochs": fitted.curve}
            seconds = info["fit_seconds"][f"{plan.target} ({features})"] = round(time.perf_counter() - start, 2)
            epochs = info["curves"].get(plan.target, {}).get("epochs", [])
            log(f"probe {plan.target} ({features}): {len(plan.layers)} fit(s) in {seconds:.0f} s"
                + (f", {len(epochs)} epochs at the last layer" if features == "trained" and epochs else ""))
        del caches
    return rows


def _score_fitted(fitted: FittedVProbe, plan: _Plan, layer: int, features: str, config: IGSMProbeConfig,
                  caches: Mapping[str, PrefixCache]) -> list[dict]:
    rows: list[dict] = []
    for (cell, pop), test in plan.tests.items():
        pred = fitted.predict(test, caches.get(cell))
        rows += result_rows(plan.target, layer, features, score(pred, test, plan.n_classes, config), cell, pop,
                            len(test))
    if plan.distance:  # pooled over the cells: the OOD cells hold the larger distances
        preds, labels, groups, distance = [], [], [], []
        for i, (cell, (examples, t)) in enumerate(plan.distance.items()):
            preds.append(fitted.predict(examples, caches.get(cell)))
            labels.append(examples.labels)
            groups.append(examples.group + i * 1_000_000)  # problems of different cells stay distinct
            distance.append(t)
        pred, label, group, dist = (torch.cat(x) for x in (preds, labels, groups, distance))
        for t in sorted(set(dist.tolist())):
            keep = dist == t
            metrics = classification_metrics(pred[keep], label[keep], group[keep], 2, n_boot=config.n_boot,
                                             seed=config.seed, per_class=False)
            rows += result_rows(plan.target, layer, features, [m for m in metrics if m.name == "accuracy"],
                                POOLED, "necessary", int(keep.sum()), level=int(t))
    return rows


def probe_cells(preset_name: str, config: IGSMProbeConfig, max_doc: int, log: Any = print) -> dict[str, list[dict]]:
    """Test problems of every configured cell that fits ``max_doc`` tokens (name -> records; in-distribution
    first). A cell whose problems do not fit the context is skipped with a log line."""
    out: dict[str, list[dict]] = {}
    for name, (cell_config, reask) in cell_configs(preset_name, config.cells).items():
        try:
            if reask or cell_config.op is not None:
                out[name] = probe_records(preset_name, "test", config.n_test, config.seed, max_doc,
                                          config=cell_config, reask=reask, name=name)
            else:  # the same problems as before cells existed
                out[name] = probe_records(preset_name, "test", config.n_test, config.seed, max_doc)
        except ValueError as exc:
            log(f"probe cell {name} skipped: {exc}")
    return out


def run_igsm_probes(run_dir: str | Path, config: IGSMProbeConfig | None = None) -> Path:
    """V-probe a trained iGSM run: writes ``probe_results.csv``, ``probe_<target>.json`` figures and
    ``probe_igsm.json`` into the run directory and records ``config`` as "probe"; returns the CSV path."""
    from physlm.probing.igsm_figures import write_igsm_figures
    from physlm.results import RESULTS_FILE, read_results, write_results
    from physlm.rundir import RunDir, write_atomic
    from physlm.tasks.igsm import igsm_token_table
    from physlm.training.load import load_model
    from physlm.training.model import build_model

    config = config if config is not None else IGSMProbeConfig()
    run = RunDir.open(run_dir)
    start = time.perf_counter()
    with run.stage("probe"):
        run.record({"probe": config})
        loaded = load_model(run.path, device=config.device)
        task = loaded.task or {}
        if task.get("name") != "igsm":
            raise ValueError(f"run {run.path} was trained on task {task.get('name')!r}, not iGSM")
        if tuple(loaded.token_table.tokens) != tuple(igsm_token_table().tokens):
            raise ValueError("the model's token table is not the iGSM vocabulary")
        preset_name = config.preset or (task.get("options") or {}).get("preset")
        if preset_name is None:
            raise ValueError(f"run {run.path} records no iGSM preset; pass --probe.preset")
        # the longest suffix is [START] A [MID] B [END]: 3 markers + 2 names of 3 tokens
        max_doc = loaded.model_config.n_ctx - 1 - 9
        train_records = probe_records(preset_name, "train", config.n_train, config.seed, max_doc)
        cells = probe_cells(preset_name, config, max_doc, log=run.log)
        run.log(f"V-probing {run.path.name}: preset {preset_name}, {config.n_train} train / {config.n_test} test "
                f"problems per cell ({', '.join(cells)}), rank {config.rank}, embedding update "
                f"{config.embedding_update}")
        models = {"trained": loaded.model}
        if "random_init" in config.controls:
            seed = config.random_init_seed if config.random_init_seed is not None else loaded.model_config.seed + 1
            models["random_init"] = build_model(loaded.model_config.replace(seed=seed), device=config.device).eval()
        info: dict[str, Any] = {"preset": preset_name, "config": config.to_dict(),
                                "test_problems": {c: len(r) for c, r in cells.items()}}
        rows = probe_igsm_models(models, train_records, cells, config, log=run.log, info=info)
        if config.first_wrong:
            from physlm.probing.igsm_first_wrong import first_wrong_probe

            base = next(iter(cells))
            fw_rows, info["first_wrong"] = first_wrong_probe(loaded.model, preset_name, train_records, cells[base],
                                                             config, test_cell=base)
            rows += fw_rows
        csv_path = write_results(run.artifact(RESULTS_FILE), rows)
        write_igsm_figures(run.path, read_results(csv_path))
        info["seconds"] = round(time.perf_counter() - start, 1)
        write_atomic(run.artifact(INFO_FILE), json.dumps(info, indent=2) + "\n")
        run.log(f"wrote {csv_path} ({len(rows)} rows) in {info['seconds']:.0f} s")
    return csv_path


def problem_beliefs(
    nece_probe: FittedVProbe, dep_probe: FittedVProbe, record: dict[str, Any], candidates: Sequence[int]
) -> dict[str, Any]:
    """What fitted nece and dep probes say about one problem for the parameters ``candidates`` (indices into
    ``record['params']``): ``nece`` maps a parameter index to the predicted label, ``dep`` maps (a, b) to the
    predicted dep(a, b) ("a depends on b")."""
    from physlm.probing.igsm_examples import assemble_examples

    candidates = list(candidates)
    nece_ex = assemble_examples([record], "nece", [(0, 0, (a,)) for a in candidates], nece_probe.embedding_update)
    pairs = [(a, b) for a in candidates for b in candidates if a != b]
    out: dict[str, Any] = {"nece": dict(zip(candidates, nece_probe.predict(nece_ex).tolist())), "dep": {}}
    if pairs:
        dep_ex = assemble_examples([record], "dep", [(0, 0, pair) for pair in pairs], dep_probe.embedding_update)
        out["dep"] = dict(zip(pairs, dep_probe.predict(dep_ex).tolist()))
    return out

"""Typed results shared by every task: probe rows (``probe_results.csv``), generation and iGSM evaluation records.

``probe_results.csv`` (DEVELOPERS.md "Probe results") has the columns ``target, level, layer, features, metric,
value, ci_low, ci_high`` and, after them, any task-specific extra columns. One :class:`ProbeRow` is one line;
:func:`write_results` and :func:`read_results` are the only writer and reader, for the CFG and the iGSM recipes
alike. A row is also a read-only mapping (``row["value"]``), so code written against plain dict rows keeps working.

:class:`ProbeResults` is what ``physlm.probe`` returns: the rows with ``.table()``, ``.figure(target)`` and
``.to_csv(path)``. :class:`GenerationResults` and :class:`IGSMEvalResults` wrap the records of
``physlm.analysis.generation.evaluate_generation`` and ``physlm.analysis.igsm_eval.evaluate_model``.

This module imports nothing heavy (plotly and pandas load on first use), so ``physlm.results`` stays cheap.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from physlm.rundir import write_atomic

CSV_COLUMNS = ("target", "level", "layer", "features", "metric", "value", "ci_low", "ci_high")
"""The shared columns of ``probe_results.csv``, in file order."""
RESULTS_FILE = "probe_results.csv"
FEATURE_ORDER = ("trained", "random_init", "majority", "position", "position_token", "shuffled")
"""Rows of one (target, level, layer) are written in this order of ``features`` (others after them)."""
IGSM_TARGETS = frozenset({"nece", "dep", "known", "value", "can_next", "nece_next"})
"""Targets that mark a results file as iGSM V-probes (the others are CFG probes)."""

Extra = str | int | float
"""The value of a task-specific extra column."""


def _parse_extra(text: Any) -> Extra:
    """A CSV cell of an extra column as int, float or (failing both) the string itself."""
    if not isinstance(text, str):
        return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _cell(value: Any) -> str:
    """How ``probe_results.csv`` writes a value: floats with 6 decimals, everything else as ``str``."""
    return f"{value:.6f}" if isinstance(value, float) else str(value)


@dataclasses.dataclass(frozen=True)
class ProbeRow(Mapping[str, Any]):
    """One line of ``probe_results.csv``: one metric of one probe (or control) on one layer."""

    target: str
    """what is probed: a CFG target (ancestor, ancestor_at_end, end, end_level) or an iGSM one (nece, dep, ...)"""
    level: int
    """paper level ℓ of a CFG target; 0 where the target has no level (end_level, every iGSM target)"""
    layer: int
    """-1 = embeddings, l = the output of block l"""
    features: str
    """``trained``, or the control the row measures (random_init, majority, position, position_token, shuffled)"""
    metric: str
    """accuracy, balanced_accuracy, class_<c>_accuracy, selectivity, ..."""
    value: float
    ci_low: float
    """lower end of the 95% bootstrap interval"""
    ci_high: float
    """upper end of the 95% bootstrap interval"""
    extra: tuple[tuple[str, Extra], ...] = ()
    """task-specific extra columns as (column, value) pairs, written after the shared columns"""

    def __post_init__(self) -> None:
        names = [k for k, _ in self.extra]
        clash = sorted(set(names) & set(CSV_COLUMNS))
        if clash or len(set(names)) != len(names):
            raise ValueError(f"extra columns must be distinct and not shared columns, got {names}")

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> ProbeRow:
        """A row from a mapping with the shared columns (CSV strings are parsed); other keys become extra columns
        (empty cells are left out)."""
        if isinstance(row, ProbeRow):
            return row
        missing = [c for c in CSV_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"a probe result row needs the columns {CSV_COLUMNS}; {missing} missing in {dict(row)}")
        extra = tuple(
            (str(k), _parse_extra(v)) for k, v in row.items() if k not in CSV_COLUMNS and v not in ("", None)
        )
        return cls(
            target=str(row["target"]), level=int(row["level"]), layer=int(row["layer"]),
            features=str(row["features"]), metric=str(row["metric"]), value=float(row["value"]),
            ci_low=float(row["ci_low"]), ci_high=float(row["ci_high"]), extra=extra,
        )

    @property
    def extras(self) -> dict[str, Extra]:
        """The extra columns as a dict."""
        return dict(self.extra)

    def to_dict(self) -> dict[str, Any]:
        """Shared columns, then the extra ones, as a plain dict."""
        return dict(self.items())

    # -- the read-only mapping interface (row["value"], dict(row), row.get("n_examples")) --------------
    def __getitem__(self, key: str) -> Any:
        if key in CSV_COLUMNS:
            return getattr(self, key)
        for name, value in self.extra:
            if name == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from CSV_COLUMNS
        yield from (name for name, _ in self.extra)

    def __len__(self) -> int:
        return len(CSV_COLUMNS) + len(self.extra)


def _sort_key(row: ProbeRow) -> tuple[str, int, int, int, str]:
    order = {f: i for i, f in enumerate(FEATURE_ORDER)}
    return (row.target, row.level, row.layer, order.get(row.features, len(order)), row.metric)


def write_results(path: str | Path, rows: Iterable[ProbeRow | Mapping[str, Any]]) -> Path:
    """Write ``probe_results.csv`` (atomically): the shared columns, then every extra column that some row has,
    rows sorted by (target, level, layer, features, metric) for stable diffs. Returns ``path``."""
    typed = sorted((ProbeRow.from_mapping(r) for r in rows), key=_sort_key)
    columns = (*CSV_COLUMNS, *dict.fromkeys(name for r in typed for name, _ in r.extra))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for r in typed:
        writer.writerow([_cell(r.get(c, "")) for c in columns])
    path = Path(path)
    write_atomic(path, out.getvalue())
    return path


def read_results(path: str | Path) -> list[ProbeRow]:
    """The rows of a ``probe_results.csv`` (numbers parsed; extra columns kept)."""
    with open(path, newline="") as handle:
        return [ProbeRow.from_mapping(r) for r in csv.DictReader(handle)]


def results_task(rows: Iterable[Mapping[str, Any]]) -> str:
    """``"igsm"`` when the rows probe iGSM targets, else ``"cfg"``."""
    return "igsm" if any(r["target"] in IGSM_TARGETS for r in rows) else "cfg"


@dataclasses.dataclass(frozen=True)
class ProbeResults:
    """Probe results with their controls: the rows of one ``probe_results.csv``, ready for a notebook.

    ``.table()`` gives a pandas DataFrame (a list of rows without pandas), ``.figure(target)`` the layer-wise
    plotly figure with the controls dashed, ``.select(...)`` a subset, ``.to_csv(path)`` the file.
    """

    rows: tuple[ProbeRow, ...]
    task: str = "cfg"
    """``cfg`` or ``igsm``: which recipe made the rows (it picks the figure)"""
    config: Any = None
    """the probe config that produced the rows, when known (physlm.probing ProbeConfig / IGSMProbeConfig)"""

    @classmethod
    def from_rows(cls, rows: Iterable[ProbeRow | Mapping[str, Any]], task: str | None = None,
                  config: Any = None) -> ProbeResults:
        """Typed, sorted results from rows (dicts as the recipes make them, or :class:`ProbeRow`)."""
        typed = tuple(sorted((ProbeRow.from_mapping(r) for r in rows), key=_sort_key))
        return cls(typed, task if task is not None else results_task(typed), config)

    @classmethod
    def read(cls, path: str | Path, task: str | None = None) -> ProbeResults:
        """The results of a ``probe_results.csv`` (``task`` is inferred from the targets when None)."""
        return cls.from_rows(read_results(path), task)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[ProbeRow]:
        return iter(self.rows)

    def __repr__(self) -> str:
        layers = sorted({r.layer for r in self.rows})
        span = f"layers {layers[0]}..{layers[-1]}" if layers else "no layers"
        return (f"ProbeResults({self.task}, {len(self.rows)} rows; targets {sorted(self.targets)}, "
                f"features {sorted(self.features)}, {span})")

    @property
    def targets(self) -> set[str]:
        """The probed targets."""
        return {r.target for r in self.rows}

    @property
    def features(self) -> set[str]:
        """``trained`` and the controls present."""
        return {r.features for r in self.rows}

    def select(
        self,
        target: str | None = None,
        features: str | None = None,
        metric: str | None = None,
        level: int | None = None,
        layer: int | None = None,
        **extra: Extra,
    ) -> ProbeResults:
        """The rows matching every criterion given (None matches anything); ``extra`` matches extra columns,
        e.g. ``cell="in_dist", population="all_param"`` of the iGSM rows."""
        want = {"target": target, "features": features, "metric": metric, "level": level, "layer": layer, **extra}
        want = {k: v for k, v in want.items() if v is not None}
        kept = tuple(r for r in self.rows if all(r.get(k) == v for k, v in want.items()))
        return dataclasses.replace(self, rows=kept)

    def table(self) -> Any:
        """A pandas DataFrame with one row per result (shared columns first), or the list of
        :class:`ProbeRow` when pandas is not installed (it is optional)."""
        try:
            import pandas as pd
        except ImportError:
            return list(self.rows)
        columns = list(dict.fromkeys([*CSV_COLUMNS, *(name for r in self.rows for name, _ in r.extra)]))
        return pd.DataFrame([r.to_dict() for r in self.rows], columns=columns)

    def headline_metric(self, target: str) -> str:
        """The metric a summary leads with: balanced accuracy for the imbalanced binary targets (NT-ends, iGSM's
        binary labels), accuracy otherwise."""
        if self.task == "igsm":
            from physlm.probing.igsm_vprobe import headline_metric

            return headline_metric(target)
        from physlm.probing.plots import HEADLINE_METRIC

        return HEADLINE_METRIC.get(target, "accuracy")

    def summary(self, layer: int | None = None) -> Any:
        """The headline metric at ``layer`` (default: the last) of the trained probe, with its 95% interval, next
        to every control: one row per target and level (and, for iGSM, test cell and population). A pandas
        DataFrame, or a list of dicts without pandas."""
        if not self.rows:
            return []
        layer = max(r.layer for r in self.rows) if layer is None else layer
        out: dict[tuple, dict[str, Any]] = {}
        for r in self.rows:
            if r.layer != layer or r.metric != self.headline_metric(r.target):
                continue
            group = {"target": r.target, "level": r.level, **{k: v for k, v in r.extra if k != "n_examples"}}
            entry = out.setdefault(tuple(group.items()), {**group, "metric": r.metric})
            entry[r.features] = r.value
            if r.features == "trained":
                entry["ci_low"], entry["ci_high"] = r.ci_low, r.ci_high
        rows = list(out.values())
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows)

    def figure(self, target: str, **options: Any) -> Any:
        """The layer-wise plotly Figure of one target: trained probe solid with 95% intervals, controls dashed.

        ``options`` go to :func:`physlm.probing.plots.layerwise_figure` (CFG; e.g. ``features=``) or to
        :func:`physlm.probing.igsm_vprobe.layerwise_igsm_figure` (iGSM; e.g. ``metric=``).
        """
        if target not in self.targets:
            raise ValueError(f"no results for target {target!r}; these results have {sorted(self.targets)}")
        if self.task == "igsm":
            from physlm.probing.igsm_vprobe import layerwise_igsm_figure

            return layerwise_igsm_figure(self.rows, target, **options)
        from physlm.probing.plots import layerwise_figure

        return layerwise_figure(self.rows, target, **options)

    def to_csv(self, path: str | Path) -> Path:
        """Write the rows as ``probe_results.csv`` (the format :func:`read_results` reads); returns ``path``."""
        return write_results(path, self.rows)


# -- generation and iGSM evaluation --------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GenerationResults:
    """Generation quality of a CFG model against the exact grammar (the ``generation.json`` record)."""

    accuracy_cut0: float
    """fraction of sentences sampled from BOS that the grammar accepts (exact DP)"""
    accuracy_cut50: float
    """the same after a true prefix of ``cut`` tokens"""
    cut: int
    n_samples: int
    kl: float | None
    """KL(true || model) of the next-token distributions, nats per token (None when not measured)"""
    model_entropy: float | None
    grammar_entropy: float | None
    record: Mapping[str, Any]
    """the whole record, as physlm.analysis.generation.evaluate_generation returns it"""

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> GenerationResults:
        """Wrap an ``evaluate_generation`` record (or a parsed ``generation.json``)."""
        return cls(
            accuracy_cut0=float(record["accuracy_cut0"]), accuracy_cut50=float(record["accuracy_cut50"]),
            cut=int(record["cut"]), n_samples=int(record["n_samples"]), kl=record.get("kl"),
            model_entropy=record.get("model_entropy"), grammar_entropy=record.get("grammar_entropy"),
            record=dict(record),
        )

    @classmethod
    def read(cls, path: str | Path) -> GenerationResults:
        """The results of a ``generation.json``."""
        return cls.from_record(json.loads(Path(path).read_text()))

    def to_json(self, path: str | Path) -> Path:
        """Write the record as ``generation.json`` (atomically); returns ``path``."""
        path = Path(path)
        write_atomic(path, json.dumps(self.record, indent=2) + "\n")
        return path


@dataclasses.dataclass(frozen=True)
class IGSMEvalCell:
    """Greedy solutions of one iGSM test cell, judged step by step."""

    cell: str
    """e.g. ``op<=4``, ``op=6``, ``op=6 reask``"""
    op: int | None
    ood: bool
    reask: bool
    n: int
    correct: int
    accuracy: float | None
    """fully correct solutions / n"""
    ci_low: float
    ci_high: float
    answer_accuracy: float | None
    """the value after [ANS] alone"""
    errors: Mapping[str, int]
    """first-error kind -> count"""


@dataclasses.dataclass(frozen=True)
class IGSMEvalResults:
    """An iGSM model's generation evaluation (the ``igsm_eval.json`` record), one :class:`IGSMEvalCell` per cell."""

    preset: str
    n_ctx: int
    cells: tuple[IGSMEvalCell, ...]
    record: Mapping[str, Any]
    """the whole record, as physlm.analysis.igsm_eval.evaluate_model returns it"""

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> IGSMEvalResults:
        """Wrap an ``evaluate_model`` record (or a parsed ``igsm_eval.json``)."""
        cells = tuple(
            IGSMEvalCell(
                cell=c["cell"], op=c.get("op"), ood=bool(c["ood"]), reask=bool(c["reask"]), n=int(c["n"]),
                correct=int(c["correct"]), accuracy=c["accuracy"], ci_low=float(c["ci_low"]),
                ci_high=float(c["ci_high"]), answer_accuracy=c.get("answer_accuracy"), errors=dict(c["errors"]),
            )
            for c in record["cells"]
        )
        return cls(preset=str(record["preset"]), n_ctx=int(record["n_ctx"]), cells=cells, record=dict(record))

    @classmethod
    def read(cls, path: str | Path) -> IGSMEvalResults:
        """The results of an ``igsm_eval.json``."""
        return cls.from_record(json.loads(Path(path).read_text()))

    def cell(self, name: str) -> IGSMEvalCell:
        """One cell by name."""
        for c in self.cells:
            if c.cell == name:
                return c
        raise KeyError(f"no cell {name!r}; the cells are {[c.cell for c in self.cells]}")

    def table(self) -> Any:
        """One row per cell (without the verbatim examples): a pandas DataFrame, or a list of dicts."""
        rows = [{k: v for k, v in dataclasses.asdict(c).items() if k != "errors"} for c in self.cells]
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows)

    def to_json(self, path: str | Path) -> Path:
        """Write the record as ``igsm_eval.json`` (atomically); returns ``path``."""
        path = Path(path)
        write_atomic(path, json.dumps(self.record, indent=2) + "\n")
        return path


__all__ = [
    "CSV_COLUMNS",
    "FEATURE_ORDER",
    "RESULTS_FILE",
    "GenerationResults",
    "IGSMEvalCell",
    "IGSMEvalResults",
    "ProbeResults",
    "ProbeRow",
    "read_results",
    "results_task",
    "write_results",
]

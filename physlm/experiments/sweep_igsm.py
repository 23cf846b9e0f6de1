"""`physlm sweep igsm-shape`: depth against width at a fixed parameter count (Part 2.1 §4 "depth matters", Fig 9).

The sweep trains models of several depths whose widths are chosen so their non-embedding parameter counts match
(within ``max_param_mismatch``), each on the same iGSM preset and the same budget (steps x batch x window), then
compares their greedy-solution accuracy (:mod:`physlm.analysis.igsm_eval`) and their nece V-probe
(:func:`physlm.probing.igsm_vprobe.run_igsm_probes`). The default shapes 2x256, 4x184, 8x128 and 12x104 (4 heads
each) have 1.57M-1.64M non-embedding parameters (within 4% of 8x128). The points probe nece alone, at every
layer, with the suffix-only embedding update (see ``DEFAULT_EXPERIMENT``); the table reads the final layer.

Every point is its own run directory and its own command: the sweep writes ``OUT/commands.txt`` with one
``physlm run igsm --out OUT/<shape> ...`` line per point (built from the point's config and checked to parse
back to it), so a cluster scheduler can run them; the local runner runs the same commands in ``--workers``
subprocesses (default 1: on 2 cores, two trainings halve each other), skips points whose run is complete
(``COMPLETE.report``) and reruns unfinished ones from scratch. Then it collects every run under ``OUT`` into
``sweep.csv`` (one row per point: shape, parameters, budget, seconds/step, accuracy with its Wilson interval,
nece probe with its bootstrap interval and the random-init control) and ``sweep.html`` (+ ``sweep.png`` when
kaleido and Chromium work). ``--collect-only`` rebuilds those two from existing runs (e.g. after a cluster
ran ``commands.txt``); ``--plan-only`` writes ``commands.txt`` and stops.

Cost of the defaults (``micro``, 4000 steps x 16 x 256 tokens = 16.4M tokens per point). Measured over 5 training
steps per shape, 1 thread, on a 2-core CPU shared with several other jobs (load ~10): 1.0-1.2 / 1.3 / 1.1-1.2 /
1.8 CPU seconds per step for 2x256 / 4x184 / 8x128 / 12x104, where the same measure gave 0.57 s for 4x128, which
trains at 0.26 s per step on an idle machine (16k tokens/s in a 4000-step `physlm run igsm`). Scaled by that
factor of 2.2, an idle 2-core machine needs about 0.5 / 0.6 / 0.5 / 0.8 s per step: 35 / 40 / 35 / 55 minutes of
training, plus evaluation and probing (the nece probe of 12x104 fits 2 x 12 layers at ~30 s each under that
load: about 5 minutes idle), about 3 hours for the sweep with one worker.
Whether 16M tokens are enough for ``micro`` is not established yet: the comparison of Fig 9 needs the shapes clear
of 0% and 100%, so raise ``--steps`` when every shape fails (the paper trains each shape on the same, far larger
budget).
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from physlm.analysis.igsm_eval import EVAL_FILE, wilson_interval
from physlm.config import Config
from physlm.experiments.run_igsm import IGSMExperimentConfig, model_config
from physlm.probing.igsm_vprobe import RESULTS_FILE, cell_configs
from physlm.rundir import RunDir, write_atomic

CSV_FILE, FIGURE_FILE, COMMANDS_FILE = "sweep.csv", "sweep.html", "commands.txt"
DONE_MARKER = "COMPLETE.report"
"""a point is complete when its run wrote its report, the last stage of `physlm run igsm`"""
COMMAND = ("physlm", "run", "igsm")
_GROUPS = ("model", "train")
"""nested option groups of the experiment config that may hold n_layers / d_model / seed / steps"""


def get_option(config: Config, name: str) -> Any:
    """A field of ``config`` by name, looked up at the top level and then in its ``model`` / ``train`` groups."""
    if name in {f.name for f in dataclasses.fields(config)}:
        return getattr(config, name)
    for group in _GROUPS:
        sub = getattr(config, group, None)
        if isinstance(sub, Config) and name in {f.name for f in dataclasses.fields(sub)}:
            return getattr(sub, name)
    raise KeyError(f"{type(config).__name__} has no option {name!r}")


def with_options(config: Config, **values: Any) -> Any:
    """``config`` with fields replaced by name, wherever :func:`get_option` finds them."""
    top = {f.name for f in dataclasses.fields(config)}
    changes: dict[str, Any] = {k: v for k, v in values.items() if k in top}
    for name, value in values.items():
        if name in top:
            continue
        for group in _GROUPS:
            sub = changes.get(group, getattr(config, group, None))
            if isinstance(sub, Config) and name in {f.name for f in dataclasses.fields(sub)}:
                changes[group] = sub.replace(**{name: value})
                break
        else:
            raise KeyError(f"{type(config).__name__} has no option {name!r}")
    return config.replace(**changes)


_RECIPE_DEFAULTS = IGSMExperimentConfig()
DEFAULT_EXPERIMENT: IGSMExperimentConfig = with_options(
    _RECIPE_DEFAULTS,
    preset="micro", steps=4000, batch_size=16, png=False,
    # 100 problems per cell: Wilson half-widths of <= 10 points
    eval=_RECIPE_DEFAULTS.eval.replace(n_problems=100, reask=False, n_examples=2),
    # nece alone, at every layer (Fig 10 per run), on in-distribution problems; the suffix-only embedding update
    # (a deviation, tens of times cheaper than the paper's full-matrix update) keeps the 2 x 12 layer fits of the
    # deepest shape to minutes
    probe=_RECIPE_DEFAULTS.probe.replace(targets=("nece",), layerwise=("nece",), cells=("in_dist",), curves=False,
                                         embedding_update="suffix"),
)


@dataclasses.dataclass(frozen=True)
class IGSMShapeSweepConfig(Config):
    """Which shapes the depth-versus-width sweep trains, and the experiment every point runs."""

    depths: tuple[int, ...] = (2, 4, 8, 12)
    """numbers of layers; each one's width is fitted to the reference shape's non-embedding parameter count"""
    ref_n_layers: int = 8
    """layers of the reference shape"""
    ref_d_model: int = 128
    """width of the reference shape (its non-embedding parameters are the target of every point)"""
    max_param_mismatch: float = 0.1
    """refuse a shape whose non-embedding parameters differ from the reference by more than this fraction"""
    seeds: tuple[int, ...] = ()
    """training seeds per shape (the paper reports the best of 2), each replacing the experiment's --seed;
    empty: that seed alone"""
    nece_metric: Literal["balanced_accuracy", "accuracy"] = "balanced_accuracy"
    """nece probe metric in sweep.csv and the figure (nece is ~25% positive: balanced accuracy is the fair one)"""
    experiment: IGSMExperimentConfig = DEFAULT_EXPERIMENT
    """the `physlm run igsm` settings of every point (its n_layers / d_model must stay unset: the sweep sets
    them)"""

    def __post_init__(self) -> None:
        if not self.depths or min(self.depths) < 1:
            raise ValueError(f"need at least one depth, each >= 1, got {self.depths}")
        if len(set(self.depths)) != len(self.depths) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"depths and seeds must not repeat, got {self.depths} and {self.seeds}")
        for name in ("n_layers", "d_model"):
            if get_option(self.experiment, name) is not None:
                raise ValueError(f"leave the experiment's {name} unset: the sweep chooses it per point")


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    """One run of the sweep: a shape, a seed and the full experiment config of its `physlm run igsm`."""

    name: str
    """its run directory under OUT, e.g. ``2x256`` (``2x256-seed1`` with several seeds)"""
    n_layers: int
    d_model: int
    seed: int
    params: int
    """non-embedding parameters"""
    experiment: IGSMExperimentConfig


def non_embedding_params(mc: Any) -> int:
    """Parameters of the blocks and the final norm (no embeddings, unembedding or positions) of a softmax-attention
    ModelConfig, exactly as :func:`physlm.training.build_model` makes them."""
    if mc.attention != "softmax":
        raise ValueError(f"parameter counts are implemented for softmax attention, not {mc.attention!r}")
    d, inner, mlp = mc.d_model, mc.n_heads * mc.head_dim, mc.mlp_dim
    norm = {"LN": 2 * d, "RMS": d, "none": 0}[mc.normalization]
    block = 3 * (d * inner + inner) + inner * d + d + 2 * d * mlp + mlp + d + 2 * norm
    return mc.n_layers * block + norm


def total_params(mc: Any) -> int:
    """Every parameter: :func:`non_embedding_params` plus the embedding, unembedding (with bias) and positions."""
    positions = mc.n_ctx * mc.d_model if mc.positional == "standard" else 0
    return non_embedding_params(mc) + 2 * mc.d_vocab * mc.d_model + mc.d_vocab + positions


def resolved_model(experiment: IGSMExperimentConfig) -> Any:
    """The ModelConfig `physlm run igsm` builds for ``experiment`` (over the iGSM vocabulary)."""
    from physlm.tasks.igsm import igsm_token_table

    return model_config(experiment, igsm_token_table().d_vocab)


def fit_width(experiment: IGSMExperimentConfig, n_layers: int, target: int) -> tuple[int, int]:
    """The width (a multiple of the heads, with an even head size for rotary) whose non-embedding parameter count
    at ``n_layers`` layers is closest to ``target``; returns (d_model, parameters)."""
    base = resolved_model(experiment)
    step = base.n_heads * (2 if base.positional == "rotary" else 1)
    # blocks cost ~12 d^2 each: solve 12 L d^2 = target, then try the multiples of `step` around it
    guess = math.sqrt(target / (12 * n_layers))
    widths = range(step * max(1, int(0.7 * guess / step)), step * (int(1.3 * guess / step) + 2), step)
    counts = {d: non_embedding_params(resolved_model(with_options(experiment, n_layers=n_layers, d_model=d)))
              for d in widths}
    best = min(counts, key=lambda d: (abs(counts[d] - target), d))
    return best, counts[best]


def plan_points(config: IGSMShapeSweepConfig) -> list[SweepPoint]:
    """Every (depth, seed) point with its fitted width; ValueError when a shape misses the parameter target."""
    exp = config.experiment
    target = non_embedding_params(
        resolved_model(with_options(exp, n_layers=config.ref_n_layers, d_model=config.ref_d_model)))
    seeds = config.seeds or (get_option(exp, "seed"),)
    points = []
    for n_layers in sorted(config.depths):
        d_model, params = fit_width(exp, n_layers, target)
        if abs(params - target) > config.max_param_mismatch * target:
            raise ValueError(
                f"no width at {n_layers} layers comes within {config.max_param_mismatch:.0%} of the reference "
                f"{config.ref_n_layers}x{config.ref_d_model} ({target:,} parameters; best {d_model}: {params:,})")
        for seed in seeds:
            name = f"{n_layers}x{d_model}" + (f"-seed{seed}" if len(seeds) > 1 else "")
            points.append(SweepPoint(name, n_layers, d_model, seed, params,
                                     with_options(exp, n_layers=n_layers, d_model=d_model, seed=seed)))
    return points


# -- commands ------------------------------------------------------------------------------------------------


SHOWN_OPTIONS = frozenset({"preset", "n_layers", "d_model", "steps", "batch_size", "seq_len", "lr", "seed"})
"""options every point's command states even at their defaults (top level or in the model / train groups), so
commands.txt still says what a point is if the recipe's defaults change"""


def cli_args(config: Config, default: Config | None = None, shown: frozenset[str] = frozenset()) -> list[str]:
    """The tyro options that turn ``default`` (the class defaults) into ``config``: one per changed leaf field
    (and per ``shown`` field of the top level and the model / train groups), nested groups as ``--group.field``
    unless annotated ``tyro.conf.OmitArgPrefixes``."""
    return _cli_args(config, default if default is not None else type(config)(), "", False, shown)


def _scalar(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _cli_args(config: Config, default: Config, prefix: str, omit: bool, shown: frozenset[str]) -> list[str]:
    hints = typing.get_type_hints(type(config), include_extras=True)
    args: list[str] = []
    for f in dataclasses.fields(config):
        value, base = getattr(config, f.name), getattr(default, f.name)
        name = f.name.replace("_", "-")
        if isinstance(value, Config):
            if type(value) is not type(base):
                raise ValueError(f"cannot express {f.name}={type(value).__name__} as options of {type(base)}")
            flat = omit or any(m is tyro.conf.OmitArgPrefixes for m in getattr(hints[f.name], "__metadata__", ()))
            args += _cli_args(value, base, "" if flat else f"{prefix}{name}.", flat,
                              shown if f.name in _GROUPS else frozenset())
        elif value == base and f.name not in shown:
            continue
        elif isinstance(value, bool):
            args.append(f"--{prefix}{name}" if value else f"--{prefix}no-{name}")
        elif isinstance(value, tuple):
            args += [f"--{prefix}{name}", *(_scalar(v) for v in value)]
        else:
            args += [f"--{prefix}{name}", "None" if value is None else _scalar(value)]
    return args


def point_args(point: SweepPoint, out: Path) -> list[str]:
    """The arguments after ``physlm`` of a point's `physlm run igsm` command, checked to parse back to its config."""
    options = cli_args(point.experiment, IGSMExperimentConfig(), shown=SHOWN_OPTIONS)
    try:
        parsed = tyro.cli(IGSMExperimentConfig, args=options)
    except SystemExit as exc:
        raise ValueError(f"`physlm run igsm` rejects the options built for {point.name}: {options}") from exc
    if parsed != point.experiment:
        raise ValueError(f"the options built for {point.name} do not parse back to its config: {options}")
    return [*COMMAND[1:], "--out", str(out / point.name), *options]


def write_commands(out: Path, points: list[SweepPoint]) -> Path:
    """``commands.txt``: one shell-quoted `physlm run igsm` line per point."""
    lines = [shlex.join([COMMAND[0], *point_args(p, out)]) for p in points]
    write_atomic(out / COMMANDS_FILE, "\n".join(lines) + "\n")
    return out / COMMANDS_FILE


def is_complete(run_dir: Path) -> bool:
    """Whether a point's `physlm run igsm` finished every stage."""
    return (run_dir / DONE_MARKER).is_file()


def check_point(run_dir: Path, point: SweepPoint) -> None:
    """Refuse to reuse a complete run made with other settings (a stale point would mix budgets)."""
    try:
        stored = IGSMExperimentConfig.from_dict(RunDir.open(run_dir).config("experiment"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{run_dir} holds a run whose settings cannot be read ({exc}); use another --out") from exc
    if stored != point.experiment:
        raise ValueError(f"{run_dir} was run with other settings than this sweep's; use another --out, or "
                         "--overwrite to replace the whole sweep")


def run_points(out: Path, points: list[SweepPoint], workers: int = 1) -> dict[str, str]:
    """Run the points' commands in ``workers`` subprocesses (logs in ``OUT/logs``); complete points are skipped,
    unfinished ones rerun from scratch. Returns each point's status: skipped, done or failed."""
    todo = [p for p in points if not is_complete(out / p.name)]
    status = {p.name: "skipped" for p in points if p not in todo}
    env = dict(os.environ)
    # the cores are shared out between the workers unless the caller chose a thread count
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, workers))))
    (out / "logs").mkdir(parents=True, exist_ok=True)

    def launch(point: SweepPoint, args: list[str]) -> int:
        with (out / "logs" / f"{point.name}.log").open("w") as log:
            cmd = [sys.executable, "-m", "physlm.experiments.cli", *args]
            return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode

    # the commands are built here, not in the threads: tyro's parser caches are not thread-safe
    commands = {p.name: point_args(p, out) + (["--overwrite"] if (out / p.name).exists() else []) for p in todo}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(launch, p, commands[p.name]): p for p in todo}
        for future in concurrent.futures.as_completed(futures):
            point = futures[future]
            ok = future.result() == 0 and is_complete(out / point.name)
            status[point.name] = "done" if ok else "failed"
            print(f"sweep: {point.name} {status[point.name]} (log: {out / 'logs' / (point.name + '.log')})",
                  file=sys.stderr, flush=True)
    return {p.name: status[p.name] for p in points}


# -- collection ----------------------------------------------------------------------------------------------


def _point_row(run_dir: Path, nece_metric: str) -> dict[str, Any]:
    """The sweep.csv row of one run directory (empty metric cells where a stage is missing)."""
    from physlm.analysis.report_html import read_jsonl, read_result_rows
    from physlm.training import ModelConfig

    configs = RunDir.open(run_dir).read_record()["configs"]
    mc, train = ModelConfig.from_dict(configs["model"]), configs["train"]
    rates = [r["tokens_per_s"] for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("tokens_per_s")]
    tokens = train["batch_size"] * train["seq_len"]
    row: dict[str, Any] = {
        "shape": run_dir.name, "status": "complete" if is_complete(run_dir) else "incomplete",
        "n_layers": mc.n_layers, "d_model": mc.d_model, "n_heads": mc.n_heads, "seed": mc.seed,
        "params": non_embedding_params(mc), "params_total": total_params(mc),
        "steps": train["steps"], "tokens": train["steps"] * tokens,
        "seconds_per_step": tokens / statistics.median(rates) if rates else None,
    }
    record = run_dir / EVAL_FILE
    if record.is_file():
        cells = json.loads(record.read_text())["cells"]
        main = cells[0]  # the preset's natural op distribution, op <= max_op
        ood = [c for c in cells if c["ood"] and not c["reask"]]
        k, n = sum(c["correct"] for c in ood), sum(c["n"] for c in ood)
        low, high = wilson_interval(k, n) if n else (None, None)
        row.update(eval_cell=main["cell"], n_eval=main["n"], accuracy=main["accuracy"],
                   accuracy_ci_low=main["ci_low"], accuracy_ci_high=main["ci_high"],
                   ood_accuracy=k / n if n else None, ood_ci_low=low, ood_ci_high=high)
    # the headline rows: in-distribution test problems, the official all_param population, no distance bin
    probed = (configs.get("probe") or {}).get("preset") or (configs.get("task", {}).get("options") or {}).get("preset")
    in_dist = next(iter(cell_configs(probed, ("in_dist",)))) if probed else None
    probes = [r for r in read_result_rows(run_dir / RESULTS_FILE)
              if r["target"] == "nece" and r["metric"] == nece_metric and r["level"] == 0
              and r.get("cell", in_dist) == in_dist and r.get("population", "all_param") == "all_param"]
    if probes:
        layer = max(r["layer"] for r in probes)  # the final block's output: what the model answers from
        row.update(nece_metric=nece_metric, nece_layer=layer)
        for features, key in (("trained", "nece"), ("random_init", "nece_random_init")):
            for r in probes:
                if r["layer"] == layer and r["features"] == features:
                    row.update({key: r["value"], f"{key}_ci_low": r["ci_low"], f"{key}_ci_high": r["ci_high"]})
    return row


CSV_COLUMNS = (
    "shape", "status", "n_layers", "d_model", "n_heads", "seed", "params", "params_total", "steps", "tokens",
    "seconds_per_step", "eval_cell", "n_eval", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "ood_accuracy",
    "ood_ci_low", "ood_ci_high", "nece_metric", "nece_layer", "nece", "nece_ci_low", "nece_ci_high",
    "nece_random_init", "nece_random_init_ci_low", "nece_random_init_ci_high",
)


def collect(out: Path, nece_metric: str = "balanced_accuracy") -> list[dict[str, Any]]:
    """One row per run directory under ``out`` that holds an iGSM experiment, by depth then seed."""
    rows = []
    for run_dir in sorted(p for p in out.iterdir() if (p / RunDir.CONFIG_FILE).is_file()):
        if "experiment" in RunDir.open(run_dir).read_record()["configs"]:
            rows.append(_point_row(run_dir, nece_metric))
    return sorted(rows, key=lambda r: (r["n_layers"], r["seed"], r["d_model"]))


def write_sweep_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """``sweep.csv`` with :data:`CSV_COLUMNS` (empty cells where a point lacks a value)."""
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    write_atomic(path, buffer.getvalue())
    return path


def sweep_figure(rows: list[dict[str, Any]]) -> Any:
    """Accuracy (left) and nece probe (right) against depth, one line per seed, with 95% intervals."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    metric = next((r["nece_metric"] for r in rows if r.get("nece_metric")), "balanced_accuracy")
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "greedy solutions fully correct", f"nece V-probe {metric.replace('_', ' ')} (final layer)"))
    series = (("accuracy", "in distribution", 1, "solid"), ("ood_accuracy", "out of distribution", 1, "dash"),
              ("nece", "trained", 2, "solid"), ("nece_random_init", "random-init control", 2, "dash"))
    for seed in sorted({r["seed"] for r in rows}):
        mine = [r for r in rows if r["seed"] == seed]
        for key, label, col, dash in series:
            low, high = ("ood_ci_low", "ood_ci_high") if key == "ood_accuracy" else (f"{key}_ci_low",
                                                                                    f"{key}_ci_high")
            pts = [r for r in mine if r.get(key) is not None]
            if not pts:
                continue
            fig.add_trace(go.Scatter(
                x=[r["n_layers"] for r in pts], y=[r[key] for r in pts], text=[r["shape"] for r in pts],
                mode="lines+markers", line=dict(dash=dash), name=f"{label} (seed {seed})",
                hovertemplate="%{text}: %{y:.3f}<extra>" + label + "</extra>",
                error_y=dict(type="data", symmetric=False, array=[r[high] - r[key] for r in pts],
                             arrayminus=[r[key] - r[low] for r in pts]),
            ), row=1, col=col)
    params = sorted({r["params"] for r in rows})
    span = f"{params[0]:,}-{params[-1]:,}" if params else "?"
    fig.update_layout(title=f"Depth versus width at {span} non-embedding parameters (Part 2.1 Fig 9)",
                      template="plotly_white")
    fig.update_xaxes(title_text="layers (width shrinks as depth grows)", tickvals=sorted({r["n_layers"]
                                                                                          for r in rows}))
    fig.update_yaxes(range=[0, 1.02])
    return fig


def write_outputs(out: Path, rows: list[dict[str, Any]], png: bool = True) -> list[Path]:
    """Write sweep.csv and sweep.html (+ sweep.png when kaleido and Chromium work); returns the paths."""
    import plotly.io as pio

    from physlm.analysis.report_html import write_pngs

    fig = sweep_figure(rows)
    written = [write_sweep_csv(out / CSV_FILE, rows)]
    write_atomic(out / FIGURE_FILE, pio.to_html(fig, include_plotlyjs=True, full_html=True))
    written.append(out / FIGURE_FILE)
    if png:
        pngs, reason = write_pngs({"sweep": fig}, out)
        written += pngs
        if reason:
            print(f"sweep: no PNG ({reason})", file=sys.stderr)
    return written


def run_sweep(out: Path, config: IGSMShapeSweepConfig, workers: int = 1, collect_only: bool = False,
              plan_only: bool = False, overwrite: bool = False, png: bool = True) -> dict[str, str]:
    """Plan, write commands.txt, run the missing points, collect; returns each point's status (see module doc)."""
    if collect_only:
        run = RunDir.open(out)
        with run.stage("collect"):
            write_outputs(out, collect(out, config.nece_metric), png=png)
        return {}
    points = plan_points(config)
    if overwrite or not (out / RunDir.CONFIG_FILE).is_file():
        run = RunDir.create(out, {"sweep": config}, overwrite=overwrite)
    else:
        run = RunDir.open(out)
        run.record({"sweep": config})
    for point in points:
        if is_complete(out / point.name):
            check_point(out / point.name, point)
    write_commands(out, points)
    run.log(f"sweep of {len(points)} points: " + ", ".join(f"{p.name} ({p.params:,})" for p in points)
            + f"; commands in {out / COMMANDS_FILE}")
    if plan_only:
        return {p.name: "planned" for p in points}
    status = run_points(out, points, workers)
    with run.stage("collect"):
        write_outputs(out, collect(out, config.nece_metric), png=png)
    run.log("points: " + ", ".join(f"{k} {v}" for k, v in status.items()) + f"; results in {out / CSV_FILE}")
    with run.stage("sweep"):
        failed = sorted(k for k, v in status.items() if v == "failed")
        if failed:
            raise RuntimeError(f"sweep points failed: {', '.join(failed)} (logs in {out / 'logs'}); rerun to retry")
    return status


def sweep_igsm_shape(
    out: Path = Path("runs/igsm-shape"),
    config: Annotated[IGSMShapeSweepConfig, tyro.conf.arg(name="")] = IGSMShapeSweepConfig(),  # noqa: B008
    workers: int = 1,
    collect_only: bool = False,
    plan_only: bool = False,
    overwrite: bool = False,
    png: bool = True,
) -> int:
    """Depth versus width at a fixed parameter count on iGSM (Part 2.1 Fig 9): one `physlm run igsm` per shape.

    Args:
        out: sweep directory: commands.txt, one run directory per point, sweep.csv, sweep.html; rerunning resumes.
        config: shapes, seeds and the experiment every point runs.
        workers: points run at once (each a subprocess; the cores are shared out between them).
        collect_only: only rebuild sweep.csv and the figure from the runs already under --out.
        plan_only: only write commands.txt (for a cluster scheduler), run nothing.
        overwrite: delete the whole sweep directory first and rerun every point.
        png: also write sweep.png (needs kaleido and a Chromium executable).
    """
    run_sweep(out, config, workers=workers, collect_only=collect_only, plan_only=plan_only, overwrite=overwrite,
              png=png)
    print(f"\nsweep: {(out / (COMMANDS_FILE if plan_only else CSV_FILE)).resolve()}")
    return 0

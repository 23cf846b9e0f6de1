"""The Part 1 CFG probing recipe: every layer × NT level, four targets, controls on by default.

Data: fresh labelled sentences fed one per row as ``BOS x EOS`` (:mod:`physlm.probing.cfg_data`, whose
``ProbeData`` and ``sample_probe_data`` are re-exported here).

Targets (level = paper level ℓ; layer −1 = embeddings, l = output of block l):

* ``ancestor``: s_ℓ(i) at every position, the full multi-head linear probe (spec §2.3).
* ``ancestor_at_end``: s_ℓ(i) at positions with b_ℓ(i) = 1, the local probe (window δ).
* ``end``: b_ℓ(i), a per-position logistic regression with balanced class weights; read balanced accuracy.
* ``end_level``: b♯(i) ∈ {0, 2..L−1} (0 = ends no NT), one multi-class regression written with level 0;
  its ``class_<ℓ>_accuracy`` rows give the recall of each level.

Features: ``trained``; ``random_init`` (same probe on a freshly initialised model of the same config);
``majority``, ``position``, ``position_token`` (Bayes classifiers of those features, repeated on every layer);
``shuffled`` (the same probe on a control task whose labels are a random function of (position, token);
with ``selectivity`` = trained − control accuracy, which can be negative).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from physlm.config import Config
from physlm.probing.activations import collect_activations, layer_hook, rows_to_padded
from physlm.probing.align import IGNORE_INDEX, SentenceLayout
from physlm.probing.baselines import TableClassifier, control_task, position_token_key
from physlm.probing.cfg_data import TARGETS, ProbeData, sample_probe_data
from physlm.probing.fit import FitConfig
from physlm.probing.linear import LINEAR_DEFAULT, LinearProbe
from physlm.probing.metrics import Metric, classification_metrics, paired_difference
from physlm.probing.multihead import MULTIHEAD_DEFAULT, LocalProbe, MultiHeadLinearProbe
from physlm.results import CSV_COLUMNS, RESULTS_FILE, read_results, write_results  # noqa: F401 (re-exported)
from physlm.rundir import RunDir

CONTROLS = ("random_init", "majority", "position", "position_token", "shuffled")


@dataclasses.dataclass(frozen=True)
class ProbeConfig(Config):
    """What `physlm probe cfg` fits and how."""

    n_train: int = 400
    """fresh labelled sentences to fit probes on (10% of them held out for early stopping)"""
    n_test: int = 200
    """fresh labelled sentences to score on (bootstrap intervals resample these)"""
    seed: int = 0
    """seeds sentence sampling, probe initialisation, splits, control labels and the bootstrap"""
    random_init_seed: int | None = None
    """weight seed of the random-init control model; None = the trained model's seed + 1"""
    layers: tuple[int, ...] | None = None
    """layers to probe (−1 = embeddings); None = all"""
    levels: tuple[int, ...] | None = None
    """paper levels ℓ to probe; None = every NT level 2..L−1"""
    targets: tuple[Literal["ancestor", "ancestor_at_end", "end", "end_level"], ...] = TARGETS
    controls: tuple[Literal["random_init", "majority", "position", "position_token", "shuffled"], ...] = CONTROLS
    delta: int = 0
    """window of the local NT-end probe: |i − k| ≤ delta (0 = the diagonal probe)"""
    n_heads: int = 16
    """heads H of the multi-head probe (the paper uses 16)"""
    d_pos: int = 64
    """dimension d' of its position vectors (the paper uses 1024; the weights depend only on their dot products)"""
    layers_per_fit: int = 4
    """layers fitted together in one probe module (bounds memory: sentences × length × this × d_model floats)"""
    multihead_fit: FitConfig = MULTIHEAD_DEFAULT
    linear_fit: FitConfig = LINEAR_DEFAULT
    n_boot: int = 1000
    """bootstrap resamples of test sentences for the 95% intervals"""
    batch_size: int = 32
    """sentences per forward pass when collecting activations"""
    grammar: str | None = None
    """grammar preset or file; None = the one recorded with the trained model"""
    device: str = "cpu"
    keep_cache: bool = False
    """keep the streamed activation shards (probe_cache/) after the stage"""

    def __post_init__(self) -> None:
        if self.n_train < 10 or self.n_test < 2:
            raise ValueError(f"need n_train >= 10 and n_test >= 2, got {self.n_train} and {self.n_test}")
        if self.delta < 0 or self.layers_per_fit < 1:
            raise ValueError("delta must be >= 0 and layers_per_fit >= 1")


def _rows(target: str, level: int, layer: int, features: str, metrics: Sequence[Metric]) -> list[dict]:
    return [
        dict(target=target, level=level, layer=layer, features=features, metric=m.name,
             value=m.value, ci_low=m.ci_low, ci_high=m.ci_high)
        for m in metrics
    ]


class _Scorer:
    """Fits one target's probes on a layer group and turns predictions into result rows."""

    def __init__(self, data: ProbeData, n_train: int, config: ProbeConfig, vocab: int):
        self.data, self.config, self.vocab = data, config, vocab
        n = data.mask.shape[0]
        self.train = torch.arange(n) < n_train
        width = data.mask.shape[1]
        self.position = torch.arange(width).expand(n, width)
        self.sentence = torch.arange(n)[:, None].expand(n, width)

    def target_labels(self, target: str, level: int) -> tuple[torch.Tensor, int, bool]:
        """(labels [n, width] with IGNORE_INDEX where unscored, classes, balanced?)."""
        return self.data.target_labels(target, level)

    def metrics(self, pred: torch.Tensor, labels: torch.Tensor, classes: int, balanced: bool) -> list[Metric]:
        """Metrics over the scored test positions; ``pred`` is ``[n, width]``."""
        scored = (labels != IGNORE_INDEX) & ~self.train[:, None]
        out = classification_metrics(
            pred[scored], labels[scored], self.sentence[scored], classes,
            n_boot=self.config.n_boot, seed=self.config.seed,
        )
        if not balanced:
            out = [m for m in out if m.name != "balanced_accuracy"]
        return out

    def baselines(self, target: str, level: int, layers: Sequence[int]) -> list[dict]:
        labels, classes, balanced = self.target_labels(target, level)
        keys = {
            "majority": torch.zeros_like(self.position),
            "position": self.position,
            "position_token": position_token_key(self.position, self.data.tokens, self.vocab),
        }
        rows: list[dict] = []
        for name, key in keys.items():
            if name not in self.config.controls:
                continue
            fit_on = (labels != IGNORE_INDEX) & self.train[:, None]
            table = TableClassifier(classes, balanced=balanced).fit(key[fit_on], labels[fit_on])
            pred = table.predict(key.reshape(-1)).view_as(key)
            metrics = self.metrics(pred, labels, classes, balanced)
            for layer in layers:
                rows += _rows(target, level, layer, name, metrics)
        return rows

    def fit_predict(
        self, target: str, labels: torch.Tensor, classes: int, balanced: bool, feats: torch.Tensor
    ) -> torch.Tensor:
        """Fit the target's probe on the training sentences; predictions ``[n, width, layers]``."""
        c, d = self.config, self.data
        n_layers, d_model = feats.shape[2], feats.shape[3]
        tr = self.train
        if target in ("ancestor", "ancestor_at_end"):
            width = feats.shape[1]
            if target == "ancestor":
                probe: MultiHeadLinearProbe = MultiHeadLinearProbe(
                    d_model, classes, width, n_layers, c.n_heads, c.d_pos, seed=c.seed
                )
            else:
                probe = LocalProbe(d_model, classes, width, n_layers, c.delta, c.n_heads, c.d_pos, seed=c.seed)
            probe.fit(feats[tr], labels[tr], d.mask[tr], config=c.multihead_fit)
            return probe.predict(feats, d.mask)
        flat_train = tr[:, None] & d.mask
        linear = LinearProbe(d_model, classes, n_layers)
        linear.fit(
            feats[flat_train], labels[flat_train], groups=self.sentence[flat_train],
            class_weight="balanced" if balanced else None, config=c.linear_fit,
        )
        pred = torch.zeros(*d.mask.shape, n_layers, dtype=torch.long)
        pred[d.mask] = linear.predict(feats[d.mask])
        return pred


def _probe_features(
    model: Any, layout: SentenceLayout, layers: Sequence[int], cache: Path, config: ProbeConfig
) -> Any:
    return collect_activations(
        model, layout, [layer_hook(layer) for layer in layers], batch_size=config.batch_size, out=cache,
    )


def probe_cfg_model(
    models: dict[str, Any], data: ProbeData, config: ProbeConfig, cache_dir: Path, vocab: int,
    log: Any = print,
) -> list[dict]:
    """All result rows for ``models`` ({"trained": model, "random_init": model?}) on labelled ``data``."""
    n_model_layers = models["trained"].cfg.n_layers
    layers = list(config.layers) if config.layers is not None else list(range(-1, n_model_layers))
    bad = [layer for layer in layers if not -1 <= layer < n_model_layers]
    if bad:
        raise ValueError(f"layers {bad} do not exist: the model has layers -1..{n_model_layers - 1}")
    levels = list(config.levels) if config.levels is not None else sorted(data.classes)
    bad = [lv for lv in levels if lv not in data.classes]
    if bad:
        raise ValueError(f"levels {bad} are not NT levels of this grammar ({sorted(data.classes)})")
    scorer = _Scorer(data, config.n_train, config, vocab)
    jobs = [(t, lv) for t in config.targets for lv in (levels if t != "end_level" else [0])]
    rows: list[dict] = []
    for target, level in jobs:
        rows += scorer.baselines(target, level, layers)
    n, width = data.mask.shape
    control: dict[tuple[str, int], torch.Tensor] = {}
    if "shuffled" in config.controls:
        key = position_token_key(scorer.position, data.tokens, vocab)
        for target, level in jobs:
            labels, classes, _ = scorer.target_labels(target, level)
            scored = labels != IGNORE_INDEX
            ctrl = torch.full_like(labels, IGNORE_INDEX)
            ctrl[scored] = control_task(key[scored], labels[scored], classes, seed=config.seed)
            control[(target, level)] = ctrl
    feature_sets = ["trained"] + (["random_init"] if "random_init" in models else [])
    for features in feature_sets:
        acts = _probe_features(models[features], data.layout, layers, cache_dir / features, config)
        column = data.layout.token_index[acts.sequence_index, acts.position_index]
        for start in range(0, len(layers), config.layers_per_fit):
            group = layers[start : start + config.layers_per_fit]
            log(f"probing {features} layers {group}")
            stacked = acts.stack([layer_hook(layer) for layer in group])
            feats = rows_to_padded(stacked, acts.sequence_index, column, n, width)
            del stacked
            for target, level in tqdm(jobs, desc=f"{features} {group}", leave=False):
                labels, classes, balanced = scorer.target_labels(target, level)
                pred = scorer.fit_predict(target, labels, classes, balanced, feats)
                for j, layer in enumerate(group):
                    rows += _rows(target, level, layer, features,
                                  scorer.metrics(pred[..., j], labels, classes, balanced))
                if features != "trained" or (target, level) not in control:
                    continue
                ctrl = control[(target, level)]
                cpred = scorer.fit_predict(target, ctrl, classes, balanced, feats)
                scored = (labels != IGNORE_INDEX) & ~scorer.train[:, None]
                for j, layer in enumerate(group):
                    rows += _rows(target, level, layer, "shuffled",
                                  scorer.metrics(cpred[..., j], ctrl, classes, balanced))
                    sel = paired_difference(
                        pred[..., j][scored], labels[scored], cpred[..., j][scored], ctrl[scored],
                        scorer.sentence[scored], n_boot=config.n_boot, seed=config.seed,
                    )
                    rows += _rows(target, level, layer, "shuffled", [sel])
            del feats
    return rows


def run_cfg_probes(run_dir: str | Path, config: ProbeConfig | None = None) -> Path:
    """Probe a trained CFG run: writes ``probe_results.csv``, ``probe_<target>.json`` figures and
    ``probes.html`` into the run directory, records ``config`` as "probe" in config.json; returns the CSV path."""
    from physlm.probing.plots import write_figures
    from physlm.tasks.cfg import cfg_token_table, load_grammar
    from physlm.training.load import load_model
    from physlm.training.model import build_model

    config = config if config is not None else ProbeConfig()
    run = RunDir.open(run_dir)
    with run.stage("probe"):
        run.record({"probe": config})
        loaded = load_model(run.path, device=config.device)
        task = loaded.task or {}
        if config.grammar is None and task.get("name") not in (None, "cfg"):
            raise ValueError(f"run {run.path} was trained on task {task.get('name')!r}, not a CFG")
        grammar_name = config.grammar or (task.get("config") or {}).get("grammar")
        if grammar_name is None:
            raise ValueError(f"run {run.path} records no grammar; pass --config.grammar")
        grammar = load_grammar(grammar_name)
        table = loaded.token_table
        if tuple(cfg_token_table(grammar).tokens) != tuple(table.tokens):
            raise ValueError(f"grammar {grammar_name!r} does not match the model's token table {table.task!r}")
        run.log(f"probing {run.path.name}: grammar {grammar.name}, {config.n_train}+{config.n_test} sentences")
        data = sample_probe_data(grammar, config.n_train + config.n_test, config.seed, loaded.model_config.n_ctx, table)
        if data.n_cut:
            run.log(f"{data.n_cut} sentences longer than n_ctx - 1 were cut (their labels stay exact)")
        models = {"trained": loaded.model}
        if "random_init" in config.controls:
            seed = config.random_init_seed if config.random_init_seed is not None else loaded.model_config.seed + 1
            models["random_init"] = build_model(loaded.model_config.replace(seed=seed), device=config.device).eval()
        cache = run.path / "probe_cache"
        rows = probe_cfg_model(models, data, config, cache, table.d_vocab, log=run.log)
        csv_path = run.artifact(RESULTS_FILE)
        write_results(csv_path, rows)
        write_figures(run.path, read_results(csv_path))
        if not config.keep_cache:
            shutil.rmtree(cache, ignore_errors=True)
        run.log(f"wrote {csv_path} ({len(rows)} rows)")
    return csv_path

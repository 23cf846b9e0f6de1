"""The Part 2.1 V-probing recipe for iGSM (spec part2_igsm.md §3): what the model "knows" mid-problem.

Each example truncates a problem's document at a probe position and appends a query suffix,
``[START] A [END]`` (one parameter) or ``[START] A [MID] B [END]`` (dep); a frozen model reads it, and
:class:`physlm.probing.vprobe.LowRankEmbeddingProbe` (rank 8 by default) learns a low-rank update of the input
embedding plus a linear head on the hidden state at ``[END]``. Positions (pq format; qp in brackets):

* ``nece(A)``: at the end of the question (the end of the problem);
* ``dep(A, B)``: at the end of the problem statement, before the question (after the problem);
* ``known``, ``value``, ``can_next``, ``nece_next``: at a solution-sentence boundary drawn uniformly among
  ``[SOL]`` and every sentence's final ".", labelled with the state after that many sentences.

Parameters are drawn uniformly from the official ``all_param`` population (spec §3.1: it reproduces the paper's
majority baselines), ``draws_per_problem`` (position, parameter) draws per problem and target, without
replacement. Probes train on problems of the *train* hash split and are scored on the *test* split. Labels
come from :func:`physlm.tasks.igsm.problem_record` (the generator's labels), never re-derived here.

By default the embedding update applies to the suffix only (``update_scope="suffix"``): the frozen model's keys
and values of the prefix are then computed once (:class:`PrefixCache`) and every epoch and layer runs just the
5-9 suffix tokens, tens of times cheaper on a CPU. The paper updates the whole embedding matrix, i.e. every
input token; ``update_scope="all"`` does that (a documented deviation otherwise).

Controls: the same probe on a randomly initialised model of the same shape (``random_init``), and the
majority class of the training labels (``majority``). Metrics: accuracy, balanced accuracy and per-class
accuracy (``class_1_accuracy`` = accuracy on positives, ``class_0_accuracy`` on negatives), with bootstrap
intervals over test problems. Rows go to ``probe_results.csv`` with the CFG recipe's columns; ``level`` is 0
(iGSM has no levels), ``layer`` is the block whose output the head reads.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from physlm.config import Config
from physlm.probing.fit import (
    FitConfig,
    FitHistory,
    balanced_class_weight,
    per_layer_cross_entropy,
    split_indices,
    train_layers,
)
from physlm.probing.metrics import Metric, classification_metrics
from physlm.probing.vprobe import LowRankEmbeddingProbe

TARGETS = ("nece", "dep", "known", "value", "can_next", "nece_next")
STEP_TARGETS = ("known", "value", "can_next", "nece_next")
N_CLASSES = {"nece": 2, "dep": 2, "known": 2, "value": 24, "can_next": 2, "nece_next": 2}
"""value: 0..22, or 23 when the parameter is not computed yet."""
CONTROLS = ("random_init", "majority")
RESULTS_FILE = "probe_results.csv"
Target = Literal["nece", "dep", "known", "value", "can_next", "nece_next"]

IGSM_VPROBE_FIT = FitConfig(lr=3e-3, weight_decay=0.01, batch_size=32, max_epochs=6, patience=2)
"""The V-probe optimiser for iGSM (the paper: lr 0.002, wd 0.01; epochs bounded for CPU budgets)."""


@dataclasses.dataclass(frozen=True)
class IGSMProbeConfig(Config):
    """What the iGSM V-probing stage fits and how."""

    n_train: int = 200
    """train-split problems to fit probes on (10% of their examples held out for early stopping)"""
    n_test: int = 100
    """test-split problems to score on (bootstrap intervals resample these)"""
    draws_per_problem: int = 4
    """(position, parameter) draws per problem and target, without replacement (the paper: at most 10)"""
    targets: tuple[Target, ...] = TARGETS
    layerwise: tuple[Target, ...] = ("nece", "dep")
    """targets probed at every layer; the others at the final layer only (each layer is a separate fit)"""
    rank: int = 8
    """rank of the embedding update (the paper: 8)"""
    update_scope: Literal["suffix", "all"] = "suffix"
    """where the embedding update applies: only to the appended [START] ... [END] suffix (the prefix's keys
    and values are then computed once and cached: tens of times cheaper), or to every input token, as the
    paper's update of the whole embedding matrix (a full forward and backward pass per example and epoch)"""
    controls: tuple[Literal["random_init", "majority"], ...] = CONTROLS
    random_init_seed: int | None = None
    """weight seed of the random-init control model; None = the trained model's seed + 1"""
    fit: FitConfig = IGSM_VPROBE_FIT
    balanced_loss: bool = True
    """weight the binary targets' cross-entropy by inverse class frequency (nece is ~25% positive, dep ~15%):
    without it a probe on weak features settles on the majority class and every accuracy equals the baseline"""
    n_boot: int = 500
    """bootstrap resamples of test problems for the 95% intervals"""
    seed: int = 0
    """seeds the probe problems, the draws, probe initialisation and the bootstrap"""
    preset: str | None = None
    """iGSM preset of the probe problems; None = the one the model was trained on"""
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.n_train < 2 or self.n_test < 1:
            raise ValueError(f"need n_train >= 2 and n_test >= 1, got {self.n_train} and {self.n_test}")
        if self.draws_per_problem < 1 or self.rank < 1:
            raise ValueError("draws_per_problem and rank must be >= 1")
        unknown = [t for t in self.layerwise if t not in self.targets]
        if unknown:
            raise ValueError(f"layerwise targets {unknown} are not among targets {self.targets}")


@dataclasses.dataclass
class VProbeExamples:
    """Right-padded V-probe inputs for one target: ``prefix + [START] A ([MID] B) [END]`` per row."""

    tokens: Tensor
    """[n, width] token ids (pad after each row's [END])"""
    update_mask: Tensor
    """[n, width] where the embedding update applies"""
    read_pos: Tensor
    """[n] position of [END]"""
    labels: Tensor
    """[n] class labels"""
    group: Tensor
    """[n] index of the problem each row comes from (bootstrap unit)"""
    params: list[tuple[int, ...]]
    """per row: the probed parameter indices into the problem's ``params`` (one, or two for dep)"""
    positions: list[int]
    """per row: the truncation position in the document (without <bos>)"""
    prefixes: list[list[int]]
    """the distinct prefixes ``<bos> doc[: position + 1]`` (rows share one when problem and position agree)"""
    prefix_id: Tensor
    """[n] index of each row's prefix in ``prefixes``"""
    suffix: Tensor
    """[n, suffix_len] each row's ``[START] A ([MID] B) [END]`` (every name is 3 tokens, so one length)"""

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def probe_position(record: dict[str, Any], target: str, step: int = 0) -> int:
    """The document position (no <bos>) after which the suffix goes, for ``target`` (spec §3.1)."""
    pq = record["p_format"] == "pq"
    if target == "nece":
        return record["pos_question_end"] if pq else record["pos_problem_end"]
    if target == "dep":
        return record["pos_body_end"] if pq else record["pos_problem_end"]
    if target in STEP_TARGETS:
        return record["pos_steps"][step]
    raise ValueError(f"unknown iGSM probe target {target!r}; choose one of {TARGETS}")


def label_of(record: dict[str, Any], target: str, params: tuple[int, ...], step: int = 0) -> int:
    """The generator's label of one draw."""
    if target == "nece":
        return int(record["nece"][params[0]])
    if target == "dep":
        return int(record["dep"][params[0]][params[1]])
    return int(record[target][step][params[0]])


def draw_examples(record: dict[str, Any], target: str, k: int, rng: random.Random) -> list[tuple[int, tuple[int, ...]]]:
    """Up to ``k`` distinct (solution step, parameter indices) draws of one problem for ``target``."""
    n = len(record["params"])
    if target == "nece":
        space = [(0, (a,)) for a in range(n)]
    elif target == "dep":
        space = [(0, (a, b)) for a in range(n) for b in range(n) if a != b]
    else:
        space = [(t, (a,)) for t in range(len(record["pos_steps"])) for a in range(n)]
    return rng.sample(space, min(k, len(space)))


def build_examples(
    records: Sequence[dict[str, Any]],
    target: str,
    draws_per_problem: int,
    seed: int,
    update_scope: str = "all",
    n_ctx: int | None = None,
) -> VProbeExamples:
    """V-probe examples of ``target`` from problem records (:func:`physlm.tasks.igsm.problem_record`):
    ``draws_per_problem`` seeded draws per problem."""
    if target not in TARGETS:
        raise ValueError(f"unknown iGSM probe target {target!r}; choose one of {TARGETS}")
    rng = random.Random(f"physlm-igsm-vprobe:{seed}:{target}")
    draws = [(g, step, chosen) for g, record in enumerate(records)
             for step, chosen in draw_examples(record, target, draws_per_problem, rng)]
    return assemble_examples(records, target, draws, update_scope, n_ctx)


def assemble_examples(
    records: Sequence[dict[str, Any]],
    target: str,
    draws: Sequence[tuple[int, int, tuple[int, ...]]],
    update_scope: str = "all",
    n_ctx: int | None = None,
) -> VProbeExamples:
    """Examples for explicit draws ``(record index, solution step, parameter indices)``; draws that do not fit
    ``n_ctx`` are left out."""
    from physlm.tasks.igsm import encode, igsm_token_table

    if update_scope not in ("all", "suffix"):
        raise ValueError(f"update_scope must be 'all' or 'suffix', got {update_scope!r}")
    table = igsm_token_table()
    start, mid, end = table.encode(["[START]", "[MID]", "[END]"])
    names: dict[str, list[int]] = {}
    prefix_index: dict[tuple[int, int], int] = {}
    prefixes: list[list[int]] = []
    rows, labels, groups, params, positions, prefix_ids, suffixes = [], [], [], [], [], [], []
    for g, step, chosen in draws:
        record = records[g]
        pos = probe_position(record, target, step)
        suffix = [start]
        for i, a in enumerate(chosen):
            name = record["param_names"][a]
            if name not in names:
                names[name] = encode(name)
            suffix += ([mid] if i else []) + names[name]
        suffix.append(end)
        if n_ctx is not None and pos + 2 + len(suffix) > n_ctx:
            continue  # longer than the model's context: the model cannot read it
        if (g, pos) not in prefix_index:
            prefix_index[(g, pos)] = len(prefixes)
            prefixes.append([table.bos_id] + list(record["input_ids"][: pos + 1]))
        prefix_ids.append(prefix_index[(g, pos)])
        rows.append(prefixes[prefix_ids[-1]] + suffix)
        suffixes.append(suffix)
        labels.append(label_of(record, target, chosen, step))
        groups.append(g)
        params.append(tuple(chosen))
        positions.append(pos)
    if not rows:
        raise ValueError(f"no {target} examples fit the context of {n_ctx} tokens")
    if len({len(x) for x in suffixes}) != 1:
        raise ValueError(f"{target} suffixes differ in length: every parameter name must be 3 tokens")
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), table.pad_id, dtype=torch.long)
    update = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, (row, suffix) in enumerate(zip(rows, suffixes)):
        tokens[i, : len(row)] = torch.tensor(row)
        update[i, (0 if update_scope == "all" else len(row) - len(suffix)) : len(row)] = True
    return VProbeExamples(
        tokens=tokens,
        update_mask=update,
        read_pos=torch.tensor([len(r) - 1 for r in rows]),
        labels=torch.tensor(labels),
        group=torch.tensor(groups),
        params=params,
        positions=positions,
        prefixes=prefixes,
        prefix_id=torch.tensor(prefix_ids),
        suffix=torch.tensor(suffixes),
    )


class PrefixCache:
    """Keys and values of every layer for a set of prefixes, computed once by a frozen model.

    With the embedding update confined to the suffix, the prefix's activations do not depend on the probe, so
    each epoch and each layer's probe only runs the few suffix tokens against these cached keys and values
    (exactly the same function as the full forward pass; the tests check it).
    """

    def __init__(self, keys: list[Tensor], values: list[Tensor], lengths: Tensor, cfg: Any, device: torch.device):
        self.keys, self.values, self.lengths, self.cfg, self.device = keys, values, lengths, cfg, device

    @classmethod
    @torch.no_grad()
    def build(cls, model: Any, prefixes: Sequence[Sequence[int]], batch_size: int = 16) -> PrefixCache:
        """Run ``model`` over ``prefixes`` (left-padded batches of similar length) and keep each one's K/V,
        left-padded to the longest prefix."""
        from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

        if not prefixes or min(len(p) for p in prefixes) < 1:
            raise ValueError("need at least one non-empty prefix")
        device = next(model.parameters()).device
        lengths = torch.tensor([len(p) for p in prefixes])
        width = int(lengths.max())
        n_heads = model.cfg.n_key_value_heads or model.cfg.n_heads
        shape = (len(prefixes), width, n_heads, model.cfg.d_head)
        keys = [torch.zeros(shape, dtype=model.cfg.dtype, device=device) for _ in range(model.cfg.n_layers)]
        values = [torch.zeros_like(k) for k in keys]
        order = sorted(range(len(prefixes)), key=lambda i: len(prefixes[i]))
        for s in range(0, len(order), batch_size):
            chunk = order[s : s + batch_size]
            chunk_width = max(len(prefixes[i]) for i in chunk)
            tokens = torch.zeros(len(chunk), chunk_width, dtype=torch.long)
            mask = torch.zeros(len(chunk), chunk_width, dtype=torch.long)
            for r, i in enumerate(chunk):
                tokens[r, chunk_width - len(prefixes[i]) :] = torch.tensor(list(prefixes[i]))
                mask[r, chunk_width - len(prefixes[i]) :] = 1
            cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, len(chunk))
            model(tokens.to(device), return_type=None, past_kv_cache=cache, attention_mask=mask.to(device))
            idx = torch.tensor(chunk, device=device)
            for layer, entry in enumerate(cache.entries):
                # padding stays on the left: the chunk's padded block is the tail of the full-width block
                keys[layer][idx, width - chunk_width :] = entry.past_keys * mask[..., None, None].to(device)
                values[layer][idx, width - chunk_width :] = entry.past_values * mask[..., None, None].to(device)
        return cls(keys, values, lengths.to(device), model.cfg, device)

    def batch(self, ids: Int[Tensor, " batch"]) -> Any:
        """A frozen, left-padded TransformerLens KV cache holding the prefixes ``ids``."""
        from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

        ids = ids.to(self.device)
        lengths = self.lengths[ids]
        full = self.keys[0].shape[1]
        width = int(lengths.max())
        cache = TransformerLensKeyValueCache.init_cache(self.cfg, self.device, len(ids))
        for layer, entry in enumerate(cache.entries):
            entry.past_keys = self.keys[layer][ids, full - width :]
            entry.past_values = self.values[layer][ids, full - width :]
        columns = torch.arange(width, device=self.device)
        cache.previous_attention_mask = (columns[None, :] >= (width - lengths)[:, None]).long()
        cache.freeze()
        return cache


class CachedVProbe(LowRankEmbeddingProbe):
    """:class:`LowRankEmbeddingProbe` with the update on the suffix only, run against a :class:`PrefixCache`."""

    def forward_cached(
        self, cache: PrefixCache, prefix_id: Int[Tensor, " batch"], suffix: Int[Tensor, "batch suffix"]
    ) -> Float[Tensor, "batch classes"]:
        """Logits at the last suffix token ([END]) with ΔE added to every suffix token."""
        suffix = suffix.to(cache.device)
        delta = self.down[0][suffix] @ self.up[0]

        def add_update(embed: Tensor, hook: object) -> Tensor:
            return embed + delta

        kv = cache.batch(prefix_id)
        with self.model.hooks(fwd_hooks=[("hook_embed", add_update)]):
            resid = self.model(suffix, past_kv_cache=kv, attention_mask=torch.ones_like(suffix),
                               stop_at_layer=self.layer + 1)
        return resid[:, -1] @ self.head[0] + self.head_bias[0]

    def fit_cached(
        self,
        cache: PrefixCache,
        prefix_id: Int[Tensor, " n"],
        suffix: Int[Tensor, "n suffix"],
        labels: Int[Tensor, " n"],
        config: FitConfig = IGSM_VPROBE_FIT,
        class_weight: Float[Tensor, " classes"] | None = None,
    ) -> FitHistory:
        """Train the update and head (model frozen) with early stopping on a held-out split; ``class_weight``
        weights the cross-entropy per class."""
        n = labels.shape[0]
        if not prefix_id.shape[0] == suffix.shape[0] == n:
            raise ValueError("prefix_id, suffix and labels need the same number of examples")
        if int(labels.min()) < 0 or int(labels.max()) >= self.n_classes:
            raise ValueError(f"labels must lie in [0, {self.n_classes})")
        gen = torch.Generator().manual_seed(config.seed)
        train_idx, val_idx = split_indices(n, config.val_fraction, gen)
        labels = labels.to(cache.device)

        def loss(idx: Tensor) -> Tensor:
            logits = self.forward_cached(cache, prefix_id[idx], suffix[idx])
            weight = None if class_weight is None else class_weight.to(logits.device)
            return per_layer_cross_entropy(logits[:, None], labels[idx.to(labels.device)], weight)

        def val_loss() -> Tensor:
            total = torch.zeros(1)
            for s in range(0, len(val_idx), 256):
                idx = val_idx[s : s + 256]
                total += loss(idx).cpu() * len(idx)
            return total / len(val_idx)

        with self._frozen_model():
            return train_layers(self, 1, train_idx, loss, val_loss, config, gen)

    @torch.no_grad()
    def predict_cached(
        self, cache: PrefixCache, prefix_id: Int[Tensor, " n"], suffix: Int[Tensor, "n suffix"], batch_size: int = 128
    ) -> Int[Tensor, " n"]:
        """Predicted class per example."""
        parts = [self.forward_cached(cache, prefix_id[s : s + batch_size], suffix[s : s + batch_size]).cpu()
                 for s in range(0, suffix.shape[0], batch_size)]
        return torch.cat(parts).argmax(-1)


def probe_records(preset_name: str, split: str, n: int, seed: int, max_doc_tokens: int | None) -> list[dict]:
    """``n`` labelled problems of a preset's ``split`` (train/test hash buckets) that fit ``max_doc_tokens``."""
    from physlm.tasks.igsm import generate_problem, preset, problem_record

    config = preset(preset_name, split=split)
    rng = random.Random(f"physlm-igsm-probe:{seed}:{split}")
    out: list[dict] = []
    for _ in tqdm(range(50 * n), desc=f"probe problems ({split})", leave=False):
        problem = generate_problem(config, rng)
        if max_doc_tokens is None or len(problem.document_tokens()) <= max_doc_tokens:
            out.append(problem_record(problem))
            if len(out) == n:
                return out
    raise ValueError(f"fewer than {n} {preset_name} problems fit {max_doc_tokens} tokens in {50 * n} draws")


@dataclasses.dataclass
class FittedVProbe:
    """A fitted V-probe and how to run it: with a prefix cache (suffix-only update) or on full sequences."""

    probe: LowRankEmbeddingProbe
    update_scope: str

    def predict(self, examples: VProbeExamples, cache: PrefixCache | None = None) -> Int[Tensor, " n"]:
        """Predicted classes of ``examples`` (on the CPU); ``cache`` must hold ``examples.prefixes``."""
        if self.update_scope == "suffix":
            if cache is None:
                cache = PrefixCache.build(self.probe.model, examples.prefixes)
            assert isinstance(self.probe, CachedVProbe)
            return self.probe.predict_cached(cache, examples.prefix_id, examples.suffix)
        device = next(self.probe.parameters()).device
        return self.probe.predict(
            examples.tokens.to(device), examples.update_mask.to(device), examples.read_pos.to(device), 64
        ).cpu()


def fit_vprobe(
    model: Any, train: VProbeExamples, n_classes: int, layer: int, config: IGSMProbeConfig,
    cache: PrefixCache | None = None,
) -> FittedVProbe:
    """A V-probe fitted on ``train`` reading ``layer``: rank-``config.rank`` embedding update and linear head."""
    device = next(model.parameters()).device
    weight = balanced_class_weight(train.labels, n_classes) if config.balanced_loss and n_classes == 2 else None
    if config.update_scope == "suffix":
        probe: LowRankEmbeddingProbe = CachedVProbe(model, n_classes, rank=config.rank, layer=layer,
                                                    seed=config.seed).to(device)
        if cache is None:
            cache = PrefixCache.build(model, train.prefixes)
        assert isinstance(probe, CachedVProbe)
        probe.fit_cached(cache, train.prefix_id, train.suffix, train.labels, config=config.fit, class_weight=weight)
    else:
        probe = LowRankEmbeddingProbe(model, n_classes, rank=config.rank, layer=layer, seed=config.seed).to(device)
        probe.fit(train.tokens.to(device), train.update_mask.to(device), train.read_pos.to(device),
                  train.labels.to(device), config=config.fit, class_weight=weight)
    return FittedVProbe(probe, config.update_scope)


def _rows(target: str, layer: int, features: str, metrics: Sequence[Metric]) -> list[dict]:
    return [
        dict(target=target, level=0, layer=layer, features=features, metric=m.name,
             value=m.value, ci_low=m.ci_low, ci_high=m.ci_high)
        for m in metrics
    ]


def score(
    pred: Int[Tensor, " n"], examples: VProbeExamples, n_classes: int, config: IGSMProbeConfig
) -> list[Metric]:
    """Accuracy, balanced accuracy and per-class accuracy with bootstrap intervals over problems."""
    return classification_metrics(
        pred, examples.labels, examples.group, n_classes, n_boot=config.n_boot, seed=config.seed,
        per_class=True,
    )


def majority_prediction(train_labels: Int[Tensor, " n_train"], n: int) -> Int[Tensor, " n"]:
    """The training labels' most frequent class, ``n`` times."""
    return torch.full((n,), int(torch.bincount(train_labels).argmax()), dtype=torch.long)


def probe_igsm_models(
    models: dict[str, Any],
    train_records: Sequence[dict],
    test_records: Sequence[dict],
    config: IGSMProbeConfig,
    log: Any = print,
) -> list[dict]:
    """All result rows for ``models`` ({"trained": model, "random_init": model?})."""
    trained = models["trained"]
    n_layers, n_ctx = trained.cfg.n_layers, trained.cfg.n_ctx
    rows: list[dict] = []
    for target in config.targets:
        n_classes = N_CLASSES[target]
        train = build_examples(train_records, target, config.draws_per_problem, config.seed,
                               config.update_scope, n_ctx)
        test = build_examples(test_records, target, config.draws_per_problem, config.seed + 1,
                              config.update_scope, n_ctx)
        layers = list(range(n_layers)) if target in config.layerwise else [n_layers - 1]
        positives = float(test.labels.float().mean()) if n_classes == 2 else float("nan")
        log(f"probe {target}: {len(train)} train / {len(test)} test examples, layers {layers}"
            + (f", {100 * positives:.1f}% positive" if n_classes == 2 else ""))
        if "majority" in config.controls:
            metrics = score(majority_prediction(train.labels, len(test)), test, n_classes, config)
            for layer in layers:
                rows += _rows(target, layer, "majority", metrics)
        for features, model in models.items():
            caches: tuple[PrefixCache | None, PrefixCache | None] = (None, None)
            if config.update_scope == "suffix":  # one pass over the prefixes serves every layer and epoch
                caches = (PrefixCache.build(model, train.prefixes), PrefixCache.build(model, test.prefixes))
            for layer in tqdm(layers, desc=f"{target} ({features})", leave=False):
                fitted = fit_vprobe(model, train, n_classes, layer, config, cache=caches[0])
                pred = fitted.predict(test, cache=caches[1])
                rows += _rows(target, layer, features, score(pred, test, n_classes, config))
            del caches
    return rows


def headline_metric(target: str) -> str:
    """The metric a figure or summary leads with: balanced accuracy for the imbalanced binary targets."""
    return "accuracy" if target == "value" else "balanced_accuracy"


def layerwise_igsm_figure(
    rows: Sequence[dict], target: str, metric: str | None = None,
    features: Sequence[str] = ("trained", "random_init", "majority"),
) -> go.Figure:
    """Probe ``metric`` against layer for one iGSM target; trained solid with 95% intervals, controls dashed."""
    if target not in TARGETS:
        raise ValueError(f"unknown iGSM probe target {target!r}; choose one of {TARGETS}")
    metric = metric or headline_metric(target)
    dash = {"trained": "solid", "random_init": "dash", "majority": "dot"}
    colour = {"trained": "#1f77b4", "random_init": "#d62728", "majority": "#7f7f7f"}
    fig = go.Figure()
    for feat in features:
        series = sorted(
            (r for r in rows if r["target"] == target and r["metric"] == metric and r["features"] == feat),
            key=lambda r: r["layer"],
        )
        if not series:
            continue
        error = None
        if feat != "majority":
            error = dict(type="data", symmetric=False, array=[r["ci_high"] - r["value"] for r in series],
                         arrayminus=[r["value"] - r["ci_low"] for r in series])
        fig.add_trace(go.Scatter(
            x=[r["layer"] for r in series], y=[r["value"] for r in series], error_y=error,
            mode="lines+markers", name=feat, line=dict(color=colour.get(feat), dash=dash.get(feat, "dash")),
        ))
    label = metric.replace("_", " ")
    fig.update_layout(
        title=f"{target}: V-probe {label} by layer (solid: trained model; dashed: random init; dotted: majority)",
        xaxis=dict(title="layer (block output read at [END])", dtick=1),
        yaxis=dict(title=label, range=[0, 1.02]),
        template="plotly_white",
    )
    return fig


def write_igsm_figures(directory: str | Path, rows: Sequence[dict]) -> list[Path]:
    """``probe_<target>.json`` per target (plotly JSON) for the report and the notebook."""
    from physlm.rundir import write_atomic

    directory = Path(directory)
    written = []
    for target in TARGETS:
        if any(r["target"] == target for r in rows):
            path = directory / f"probe_{target}.json"
            write_atomic(path, layerwise_igsm_figure(rows, target).to_json())
            written.append(path)
    return written


def run_igsm_probes(run_dir: str | Path, config: IGSMProbeConfig | None = None) -> Path:
    """V-probe a trained iGSM run: writes ``probe_results.csv`` and ``probe_<target>.json`` into the run
    directory and records ``config`` as "probe"; returns the CSV path."""
    from physlm.probing.cfg_recipe import read_results, write_results
    from physlm.rundir import RunDir
    from physlm.tasks.igsm import igsm_token_table
    from physlm.training.load import load_model
    from physlm.training.model import build_model

    config = config if config is not None else IGSMProbeConfig()
    run = RunDir.open(run_dir)
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
        n_ctx = loaded.model_config.n_ctx
        # the longest suffix is [START] A [MID] B [END]: 3 markers + 2 names of 3 tokens
        max_doc = n_ctx - 1 - 9
        train_records = probe_records(preset_name, "train", config.n_train, config.seed, max_doc)
        test_records = probe_records(preset_name, "test", config.n_test, config.seed, max_doc)
        run.log(f"V-probing {run.path.name}: preset {preset_name}, {config.n_train} train / "
                f"{config.n_test} test problems, rank {config.rank}")
        models = {"trained": loaded.model}
        if "random_init" in config.controls:
            seed = config.random_init_seed if config.random_init_seed is not None else loaded.model_config.seed + 1
            models["random_init"] = build_model(loaded.model_config.replace(seed=seed), device=config.device).eval()
        rows = probe_igsm_models(models, train_records, test_records, config, log=run.log)
        csv_path = run.artifact(RESULTS_FILE)
        write_results(csv_path, rows)
        write_igsm_figures(run.path, read_results(csv_path))
        run.log(f"wrote {csv_path} ({len(rows)} rows)")
    return csv_path


def problem_beliefs(
    nece_probe: FittedVProbe, dep_probe: FittedVProbe, record: dict[str, Any], candidates: Sequence[int]
) -> dict[str, Any]:
    """What fitted nece and dep probes say about one problem for the parameters ``candidates`` (indices into
    ``record['params']``): ``nece`` maps a parameter index to the predicted label, ``dep`` maps (a, b) to the
    predicted dep(a, b) ("a depends on b")."""
    candidates = list(candidates)
    nece_ex = assemble_examples([record], "nece", [(0, 0, (a,)) for a in candidates], nece_probe.update_scope)
    pairs = [(a, b) for a in candidates for b in candidates if a != b]
    out: dict[str, Any] = {"nece": dict(zip(candidates, nece_probe.predict(nece_ex).tolist())), "dep": {}}
    if pairs:
        dep_ex = assemble_examples([record], "dep", [(0, 0, pair) for pair in pairs], dep_probe.update_scope)
        out["dep"] = dict(zip(pairs, dep_probe.predict(dep_ex).tolist()))
    return out

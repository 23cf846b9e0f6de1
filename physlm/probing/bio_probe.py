"""P-probing and Q-probing of bio models (Part 3.1 §5, App. E-F; spec part3_knowledge.md §3 and §6.2).

Both probes freeze the language model and train, per target, three things: a rank-r update ΔE = A·B of the token
embedding (A: V×r zero-initialised, B: r×d), a normalisation with trainable affine, and a linear head d×M. The
update enters the model's own TransformerLens forward through a hook on ``hook_embed`` that adds ``A[tokens] @ B``
(= ``(A·B)[tokens]``), so gradients reach A and B through the frozen blocks; the head reads the last block's
output ``blocks.{L-1}.hook_resid_post`` (the paper reads "the last layer's hidden state", before the final norm).

* P-probing: a biography entry, read at the six P-probe positions (the token before each attribute's value);
  LayerNorm, rank 2, batch 50. One parameter set per target, shared by the six positions, with the accuracy
  reported per position: footnote 17 gives one embedding update and one head per target attribute, read here as
  shared across positions [I].
* Q-probing: ``<bos> full-name <eos>`` read at the end token (which tokens frame the name is not stated [I]);
  BatchNorm, rank 16, batch 200.

Optimiser (both, §6.2): AdamW, lr 1e-3, eps 1e-6, weight decay 0.3 (on every probe parameter), no warmup, linear
decay to 0. The paper trains 30,000 steps; the default here is a CPU-sized :attr:`BioFitConfig.steps`. The paper
keeps dropout on while probing; physlm models have no dropout, so the model is simply kept in train mode while a
probe fits (which also lets the blocks take physlm's fused path: the only hook sits outside them) and put in eval
mode to score. The paper does not state the probe's split of people; probes train on P_train's rows and are scored
on P_test's [I] (with celebrities, P_train is the celebrities, as in Result 6).

Controls (on by default): the same probe on a randomly initialised model of the same config (``random_init``), and
the majority class of the training people scored on the test people (``majority``). Intervals: 95% percentile
bootstrap over test people (:func:`physlm.probing.metrics.classification_metrics` with people as groups).
"""

from __future__ import annotations

import contextlib
import dataclasses
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from physlm.config import Config
from physlm.probing.bio_probe_data import (
    BIO_TARGETS,
    LEVEL_IDS,
    BioProbeData,
    BioTarget,
    bio_targets,
    p_probe_data,
    parse_target,
    q_probe_data,
)
from physlm.probing.metrics import classification_metrics
from physlm.results import ProbeRow
from physlm.tasks.bio.config import BioWorld
from physlm.tasks.bio.pools import ATTRIBUTES
from physlm.tasks.bio.tokenizer import bio_token_table
from physlm.training.load import LoadedModel
from physlm.training.model import build_model
from physlm.training.model_config import ModelConfig

Kind = Literal["P", "Q"]
Norm = Literal["layer", "batch"]


@dataclasses.dataclass(frozen=True)
class BioFitConfig(Config):
    """How one embedding-update probe is trained (spec §6.2's optimiser rows)."""

    rank: int = 2
    """rank r of the embedding update (P: 2, Q: 16 on bioS)"""
    batch_size: int = 50
    """rows per step (P: 50 entries, Q: 200 names); a batch larger than the training rows repeats some"""
    steps: int = 300
    """optimiser steps; the paper uses 30,000. Each P step is a forward and backward pass of 50 entries through the
    model, once per target: at 300 steps a full :func:`run_bio_probes` (P and Q, 11 targets, controls) of a 2-layer
    d=64 model on 100 people takes about 11 minutes on one CPU thread. A probe reads a planted linear signal well
    within 150 steps; with so few training people, more steps mostly overfit"""
    lr: float = 1e-3
    weight_decay: float = 0.3
    eps: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.999)
    """not stated in the paper: PyTorch's AdamW default"""

    def __post_init__(self) -> None:
        if min(self.rank, self.batch_size, self.steps) < 1:
            raise ValueError(f"rank, batch_size and steps must be >= 1, got {self.rank}, {self.batch_size}, "
                             f"{self.steps}")
        if self.lr <= 0 or self.weight_decay < 0 or self.eps <= 0:
            raise ValueError("lr and eps must be > 0 and weight_decay >= 0")


P_FIT = BioFitConfig(rank=2, batch_size=50)
Q_FIT = BioFitConfig(rank=16, batch_size=200)


@dataclasses.dataclass(frozen=True)
class BioProbeConfig(Config):
    """What :func:`run_bio_probes` probes, and how."""

    targets: tuple[str, ...] = BIO_TARGETS
    """``attribute:level`` tasks; the default is the paper's 11"""
    p: BioFitConfig = P_FIT
    """P-probe training (LayerNorm head)"""
    q: BioFitConfig = Q_FIT
    """Q-probe training (BatchNorm head)"""
    q_end_token: str = "<eos>"
    """token after the name in Q-probe inputs (the paper does not say which)"""
    n_boot: int = 1000
    """bootstrap resamples of the test people for the 95% intervals"""
    random_init_seed: int | None = None
    """seed of the random_init control's weights; None: the model config's seed + 1"""
    max_entries: int | None = None
    """P-probe: at most this many fixed entries per person (None: all, e.g. 5 for multi5)"""
    fresh_entries: int = 1
    """P-probe: entries drawn per multi∞ person (they have no fixed entries)"""
    eval_batch_size: int = 100
    seed: int = 0
    """seeds every probe's initialisation and batch order (the same for trained and random_init: a paired
    comparison), the fresh entries and the bootstrap"""

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError("BioProbeConfig.targets is empty")
        for name in self.targets:
            parse_target(name)
        if len(set(self.targets)) != len(self.targets):
            raise ValueError(f"duplicate targets in {self.targets}")
        if self.n_boot < 1 or self.fresh_entries < 1 or self.eval_batch_size < 1:
            raise ValueError("n_boot, fresh_entries and eval_batch_size must be >= 1")
        if self.max_entries is not None and self.max_entries < 1:
            raise ValueError(f"max_entries must be >= 1 or None, got {self.max_entries}")
        bio_token_table().id(self.q_end_token)


class EmbeddingUpdateProbe(nn.Module):
    """A frozen model's last-block output at chosen positions, with ΔE = A·B added to its token embedding,
    through a norm (LayerNorm for P, BatchNorm for Q; trainable affine) and a linear head.

    The model is held by reference, not registered as a submodule: ``parameters()`` and ``state_dict()`` are the
    probe's own (A, B, norm, head), so an optimiser over them can never touch the model.
    """

    def __init__(self, model: HookedTransformer, n_classes: int, rank: int, norm: Norm, seed: int = 0):
        super().__init__()
        if n_classes < 2 or rank < 1:
            raise ValueError(f"need n_classes >= 2 and rank >= 1, got {n_classes}, {rank}")
        cfg = model.cfg
        self._model = (model,)  # a tuple hides it from nn.Module registration
        gen = torch.Generator().manual_seed(seed)
        # A = 0: the probe starts from the unmodified model; B on the embedding's own scale, so the update's size
        # is in the embedding's units whatever the model's init std.
        self.A = nn.Parameter(torch.zeros(cfg.d_vocab, rank))
        scale = float(model.W_E.detach().float().std().cpu())
        self.B = nn.Parameter(torch.randn(rank, cfg.d_model, generator=gen) * scale)
        self.norm: nn.Module = nn.LayerNorm(cfg.d_model) if norm == "layer" else nn.BatchNorm1d(cfg.d_model)
        # a zero head: the first steps fit the (convex) read-out instead of undoing random logits
        self.head = nn.Parameter(torch.zeros(cfg.d_model, n_classes))
        self.head_bias = nn.Parameter(torch.zeros(n_classes))
        self.n_classes, self.rank = n_classes, rank
        self.to(model.W_E.device)

    @property
    def model(self) -> HookedTransformer:
        return self._model[0]

    def embedding_update(self) -> Float[Tensor, "vocab d_model"]:
        """ΔE = A·B, the learned change of the token-embedding matrix."""
        return self.A @ self.B

    def hidden(self, tokens: Int[Tensor, "batch seq"], read_pos: Int[Tensor, "batch k"]
               ) -> Float[Tensor, "batch k d_model"]:
        """``blocks.{L-1}.hook_resid_post`` at ``read_pos`` with the embedding update applied to every token."""
        # A[tokens] @ B equals (A·B)[tokens] without forming the V×d product at every step.
        delta = self.A[tokens] @ self.B

        def add_update(embed: Tensor, hook: object) -> Tensor:
            return embed + delta.to(embed.dtype)

        with self.model.hooks(fwd_hooks=[("hook_embed", add_update)]):
            resid = self.model(tokens, stop_at_layer=self.model.cfg.n_layers)
        return resid.gather(1, read_pos[..., None].expand(*read_pos.shape, resid.shape[-1]))

    def forward(self, tokens: Int[Tensor, "batch seq"], read_pos: Int[Tensor, "batch k"]
                ) -> Float[Tensor, "batch k classes"]:
        """Class logits at every read position."""
        h = self.hidden(tokens, read_pos)
        z = self.norm(h.reshape(-1, h.shape[-1]).float())  # BatchNorm pools the batch's items at all positions
        return (z @ self.head + self.head_bias).view(*read_pos.shape, self.n_classes)


@contextlib.contextmanager
def frozen(model: HookedTransformer, train: bool) -> Iterator[None]:
    """While active, no model parameter requires grad and the model is in train (``train=True``: the paper's
    "dropout on") or eval mode; flags and mode are restored afterwards."""
    params = list(model.parameters())
    flags, mode = [p.requires_grad for p in params], model.training
    for p in params:
        p.requires_grad_(False)
    model.train(train)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        model.train(mode)


def _batches(n: int, batch_size: int, steps: int, gen: torch.Generator) -> Iterator[Int[Tensor, " b"]]:
    """``steps`` batches from consecutive seeded permutations of ``range(n)`` (every row once per epoch)."""
    stream = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        while len(stream) < batch_size:
            stream = torch.cat([stream, torch.randperm(n, generator=gen)])
        yield stream[:batch_size]
        stream = stream[batch_size:]


def fit_embedding_probe(
    model: HookedTransformer,
    data: BioProbeData,
    labels: Int[Tensor, " n"],
    n_classes: int,
    fit: BioFitConfig,
    norm: Norm,
    seed: int = 0,
    on_step: Callable[[], None] | None = None,
) -> EmbeddingUpdateProbe:
    """Train one probe on ``data``'s rows with one label per row (read at all of the row's positions; the loss is
    the mean cross-entropy over rows and positions). The model is frozen and left unchanged."""
    if labels.shape != (len(data),):
        raise ValueError(f"need one label per row: {len(data)} rows, labels of shape {tuple(labels.shape)}")
    if int(labels.min()) < 0 or int(labels.max()) >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes})")
    probe = EmbeddingUpdateProbe(model, n_classes, fit.rank, norm, seed)
    device = probe.A.device
    opt = torch.optim.AdamW(probe.parameters(), lr=fit.lr, betas=fit.betas, eps=fit.eps,
                            weight_decay=fit.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / fit.steps)  # linear to 0, no warmup
    gen = torch.Generator().manual_seed(seed)
    probe.train()
    with frozen(model, train=True):
        for idx in _batches(len(data), fit.batch_size, fit.steps, gen):
            read = data.read_pos[idx]
            width = int(read.max()) + 1  # positions after the last read never reach it (causal model)
            logits = probe(data.tokens[idx, :width].to(device), read.to(device))
            target = labels[idx].to(device)[:, None].expand(read.shape)
            loss = nn.functional.cross_entropy(logits.reshape(-1, n_classes), target.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if on_step is not None:
                on_step()
    probe.eval()
    return probe


@torch.no_grad()
def predict(probe: EmbeddingUpdateProbe, data: BioProbeData, batch_size: int = 100) -> Int[Tensor, "n k"]:
    """Predicted class of every row at every read position (model and probe in eval mode)."""
    probe.eval()
    device = probe.A.device
    out = []
    with frozen(probe.model, train=False):
        for s in range(0, len(data), batch_size):
            read = data.read_pos[s : s + batch_size]
            tokens = data.tokens[s : s + batch_size, : int(read.max()) + 1]
            out.append(probe(tokens.to(device), read.to(device)).argmax(-1).cpu())
    return torch.cat(out)


def _seed(config: BioProbeConfig, kind: str, target: str) -> int:
    # a stable per-(kind, target) seed: the same for the trained and the random_init model (paired controls)
    return zlib.crc32(f"physlm/bio-probe/{config.seed}/{kind}/{target}".encode())


def _accuracy_row(pred: Tensor, truth: Tensor, person: Tensor, target: BioTarget, features: str, kind: str,
                  position: str, layer: int, config: BioProbeConfig) -> ProbeRow:
    metric = next(m for m in classification_metrics(pred, truth, person, target.n_classes, n_boot=config.n_boot,
                                                    seed=config.seed, per_class=False) if m.name == "accuracy")
    extra = (("probe", kind), ("position", position), ("level_name", target.level),
             ("n_people", int(person.unique().numel())), ("n_examples", int(truth.numel())))
    return ProbeRow(target=target.attribute, level=LEVEL_IDS[target.level], layer=layer, features=features,
                    metric="accuracy", value=metric.value, ci_low=metric.ci_low, ci_high=metric.ci_high,
                    extra=extra)


def _model_config_of(model: HookedTransformer) -> ModelConfig:
    """The physlm ModelConfig that builds a model of ``model``'s shape (for the random_init control when only a
    HookedTransformer is given); checked against its parameter shapes."""
    cfg = model.cfg
    attn = model.blocks[0].attn
    kind = getattr(attn, "kind", "softmax")
    positional = cfg.positional_embedding_type
    if kind != "softmax" and positional == "rotary":
        positional = "none"  # ModelConfig maps "none" to TransformerLens' rotary type
    norm = {"LN": "LN", "LNPre": "LN", "RMS": "RMS", "RMSPre": "RMS", None: "none"}.get(cfg.normalization_type)
    try:
        config = ModelConfig(
            n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads, n_ctx=cfg.n_ctx, d_vocab=cfg.d_vocab,
            d_head=cfg.d_head, d_mlp=cfg.d_mlp, positional=positional, attention=kind,
            position_scores=getattr(attn, "position_scores", "relative"),
            uniform_windows=tuple(attn.windows.tolist()) if kind == "uniform" else None,
            act_fn=cfg.act_fn, normalization=norm, rotary_base=int(cfg.rotary_base),
            init_std=cfg.initializer_range,
        )
        built = {k: v.shape for k, v in build_model(config).state_dict().items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot rebuild this model's config for the random_init control ({exc}); pass "
                         "model_config= or a LoadedModel") from exc
    if built != {k: v.shape for k, v in model.state_dict().items()}:
        raise ValueError("cannot rebuild this model's shape for the random_init control; pass model_config= or a "
                         "LoadedModel")
    return config


def run_bio_probes(
    model: HookedTransformer | LoadedModel,
    world: BioWorld,
    config: BioProbeConfig = BioProbeConfig(),
    kinds: Sequence[Kind] = ("P", "Q"),
    controls: bool = True,
    progress: bool = True,
    model_config: ModelConfig | None = None,
) -> list[ProbeRow]:
    """P- and/or Q-probe ``model`` on ``world``: train on P_train's rows, score on P_test's.

    Rows (shared long format): ``target`` = attribute, ``level`` = 0 first token / 1 whole (``level_name`` says
    which), ``layer`` = the last block, ``features`` in {trained, random_init, majority}, ``metric`` = accuracy,
    95% bootstrap interval over test people; extra columns ``probe`` (P/Q), ``position`` (the attribute whose
    preceding token is read, or ``name_end``), ``level_name``, ``n_people``, ``n_examples``.

    ``controls`` adds the random_init and majority rows. The random_init model is built from ``model_config``, the
    LoadedModel's config, or (for a bare HookedTransformer) a config rebuilt from its shape.
    """
    if isinstance(model, LoadedModel):
        model_config = model_config or model.model_config
        model = model.model
    kinds = tuple(kinds)
    if not kinds or any(k not in ("P", "Q") for k in kinds) or len(set(kinds)) != len(kinds):
        raise ValueError(f"kinds must be distinct values among ('P', 'Q'), got {kinds}")
    if model.cfg.d_vocab != bio_token_table().d_vocab:
        raise ValueError(f"the model has d_vocab={model.cfg.d_vocab}, the bio vocabulary {bio_token_table().d_vocab}")
    targets = bio_targets(world, config.targets)
    n_ctx = model.cfg.n_ctx
    data: dict[str, tuple[BioProbeData, BioProbeData]] = {}
    for kind in kinds:
        if kind == "P":
            make: Callable[[Sequence[int]], BioProbeData] = lambda people: p_probe_data(
                world, people, config.seed, config.max_entries, config.fresh_entries, n_ctx)
        else:
            make = lambda people: q_probe_data(world, people, config.q_end_token, n_ctx)
        data[kind] = (make(world.train_people), make(world.test_people))
    models = {"trained": model}
    if controls:
        base = model_config or _model_config_of(model)
        seed = config.random_init_seed if config.random_init_seed is not None else base.seed + 1
        models["random_init"] = build_model(base.replace(seed=seed), device=model.W_E.device).eval()
    layer = model.cfg.n_layers - 1
    fits = {"P": config.p, "Q": config.q}
    total = len(models) * len(targets) * sum(fits[k].steps for k in kinds)
    rows: list[ProbeRow] = []
    with tqdm(total=total, desc="bio probes", disable=not progress) as bar:
        for features, m in models.items():
            for kind in kinds:
                train, test = data[kind]
                for target in targets:
                    bar.set_postfix_str(f"{kind} {features} {target.name}")
                    probe = fit_embedding_probe(m, train, train.labels(target), target.n_classes, fits[kind],
                                                "layer" if kind == "P" else "batch", _seed(config, kind, target.name),
                                                on_step=lambda: bar.update(1))
                    pred, truth = predict(probe, test, config.eval_batch_size), test.labels(target)
                    for j, position in enumerate(test.positions):
                        rows.append(_accuracy_row(pred[:, j], truth, test.person, target, features, kind, position,
                                                  layer, config))
    if controls:
        for kind in kinds:
            train, test = data[kind]
            for target in targets:
                # the majority over training *people* (a person with several entries counts once)
                majority = int(torch.bincount(target.labels[list(world.train_people)], minlength=2).argmax())
                pred, truth = torch.full_like(test.person, majority), test.labels(target)
                for position in test.positions:
                    rows.append(_accuracy_row(pred, truth, test.person, target, "majority", kind, position, layer,
                                              config))
    return rows


@dataclasses.dataclass(frozen=True)
class ProbeGrid:
    """A position × attribute grid of P-probe accuracies for heat maps (NaN where no row exists)."""

    values: np.ndarray
    """``[positions, attributes]``"""
    ci_low: np.ndarray
    ci_high: np.ndarray
    positions: tuple[str, ...]
    """row labels: the attribute whose preceding token is read"""
    attributes: tuple[str, ...]
    """column labels: the attribute predicted"""


def p_probe_matrix(rows: Sequence[Mapping[str, Any]], level: str | int = "first_token", features: str = "trained",
                   metric: str = "accuracy") -> ProbeGrid:
    """The P-probe grid of one level (``first_token`` or ``whole``, or its int id) and feature set, rows and
    columns in ATTRIBUTES order (``whole`` has no birth_date column). ``rows`` as returned by
    :func:`run_bio_probes` or :func:`physlm.results.read_results`."""
    level_id = LEVEL_IDS[level] if isinstance(level, str) else int(level)
    if level_id not in LEVEL_IDS.values():
        raise ValueError(f"level must be one of {tuple(LEVEL_IDS)} or their ids {tuple(LEVEL_IDS.values())}")
    attributes = ATTRIBUTES if level_id == LEVEL_IDS["first_token"] else ATTRIBUTES[1:]
    cells = {(r["position"], r["target"]): r for r in rows
             if r.get("probe") == "P" and r["level"] == level_id and r["features"] == features
             and r["metric"] == metric}
    grid = np.full((3, len(ATTRIBUTES), len(attributes)), np.nan)
    for i, position in enumerate(ATTRIBUTES):
        for j, attribute in enumerate(attributes):
            r = cells.get((position, attribute))
            if r is not None:
                grid[:, i, j] = (r["value"], r["ci_low"], r["ci_high"])
    return ProbeGrid(grid[0], grid[1], grid[2], tuple(ATTRIBUTES), tuple(attributes))


__all__ = [
    "P_FIT",
    "Q_FIT",
    "BioFitConfig",
    "BioProbeConfig",
    "EmbeddingUpdateProbe",
    "ProbeGrid",
    "fit_embedding_probe",
    "frozen",
    "p_probe_matrix",
    "predict",
    "run_bio_probes",
]

"""Fitting iGSM V-probes: the paper's whole-embedding update, the cached suffix-only variant, one train loop.

:class:`FullVProbe` is the paper's V-probe (spec §3.1): the rank-r update ΔE = A·B is added to the *whole*
input embedding matrix, so every input token, the prefix included, is embedded with E + ΔE; a linear head reads
one layer's hidden state at the read-out token. The draws of one problem share their document, so they run as
one packed sequence (:func:`packed_forward`: the document's longest prefix once, then every draw's suffix, each
masked to its own prefix length), which computes each draw exactly as the model would alone, several times
cheaper. Model variants the packed forward does not reproduce run each padded row through the model's own
forward with the updated matrix (``torch.func.functional_call`` on the fused fast path of
:mod:`physlm.training.fast_path`). :class:`physlm.probing.igsm_cache.CachedVProbe` is the cheaper suffix-only
variant. Both train with :func:`train_probe`: AdamW minibatches of a few problems' draws, early stopping on
held-out *problems* (all draws of a problem on one side), optionally recording the test accuracy after every
epoch (the convergence curve).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from physlm.probing.fit import (
    FitConfig,
    FitHistory,
    balanced_class_weight,
    per_layer_cross_entropy,
    split_indices,
    train_layers,
)
from physlm.probing.igsm_cache import CachedVProbe, PrefixCache, fused_suffix_supported, pack_rows, rotate
from physlm.probing.igsm_config import IGSM_VPROBE_FIT, IGSMProbeConfig
from physlm.probing.igsm_examples import VProbeExamples
from physlm.probing.metrics import classification_metrics
from physlm.probing.vprobe import LowRankEmbeddingProbe


@contextlib.contextmanager
def fused_forward(model: Any) -> Iterator[None]:
    """Let the model's fused fast path run in eval mode too (it still never runs while hooks are attached)."""
    saved = [(m, m.__dict__.get("fast_mode")) for m in model.modules() if hasattr(type(m), "fast_mode")]
    for m, _ in saved:
        m.fast_mode = "always"
    try:
        yield
    finally:
        for m, mode in saved:
            if mode is None:
                del m.fast_mode
            else:
                m.fast_mode = mode


class FullVProbe(LowRankEmbeddingProbe):
    """The paper's V-probe: ΔE = A·B added to the whole embedding matrix (every input token), linear head."""

    reference: bool = False
    """run every row on its own (:meth:`forward_full`) even where the packed forward applies (tests)"""

    def forward_full(
        self, tokens: Int[Tensor, "batch seq"], read_pos: Int[Tensor, " batch"]
    ) -> Float[Tensor, "batch classes"]:
        """Logits from the hidden state at ``read_pos`` with every token embedded by E + ΔE."""
        from torch.func import functional_call

        if int(read_pos.min()) < 0 or int(read_pos.max()) >= tokens.shape[1]:
            raise ValueError(f"read_pos must lie in [0, {tokens.shape[1]})")
        weight = self.model.embed.W_E + self.embedding_update()
        with fused_forward(self.model):
            resid = functional_call(self.model, {"embed.W_E": weight}, (tokens,),
                                    {"stop_at_layer": self.layer + 1}, strict=False)
        hidden = resid[torch.arange(tokens.shape[0], device=resid.device), read_pos]
        return hidden @ self.head[0] + self.head_bias[0]

    def forward_rows(
        self, examples: VProbeExamples, idx: Int[Tensor, " batch"]
    ) -> Float[Tensor, "batch classes"]:
        """Logits of the rows ``idx`` of ``examples``: one packed sequence per document where the model allows
        it (:func:`packed_forward`), else :meth:`forward_full` on the padded rows."""
        if not fused_suffix_supported(self.model) or self.reference:
            device = next(self.parameters()).device
            read = examples.read_pos[idx]
            tokens = examples.tokens[idx, : int(read.max()) + 1]  # right padding past the read-out is never read
            return self.forward_full(tokens.to(device), read.to(device))
        resid = packed_forward(self.model, self.model.embed.W_E + self.embedding_update(), examples.docs,
                               examples.doc_id[idx], examples.prefix_len[idx], examples.suffix[idx], self.layer + 1)
        return resid[:, -1] @ self.head[0] + self.head_bias[0]


def packed_forward(
    model: Any,
    embedding: Float[Tensor, "vocab d_model"],
    docs: Sequence[Sequence[int]],
    ids: Int[Tensor, " batch"],
    prefix_len: Int[Tensor, " batch"],
    suffix: Int[Tensor, "batch suffix"],
    stop_at_layer: int,
) -> Float[Tensor, "batch suffix d_model"]:
    """The residual stream after block ``stop_at_layer - 1`` at each row's suffix tokens, every token embedded
    with ``embedding``: row r is ``docs[ids[r]][:prefix_len[r]] + suffix[r]``.

    The rows of one document share one sequence, the document's longest prefix followed by every row's suffix:
    the prefix attends causally to itself, each suffix to its own prefix length and causally to itself (the
    model's own function of each row, computed once per document; :func:`fused_suffix_supported`).
    """
    from physlm.training.fast_path import fast_mlp, fast_norm, merge_heads_out, project_heads, rotary_tables

    device = embedding.device
    ids, prefix_len, suffix = ids.to(device), prefix_len.to(device), suffix.to(device)
    uniq, inv, rank, slots, need = pack_rows(ids, prefix_len)
    n_docs, n_suffix, width = len(uniq), suffix.shape[1], int(need.max())
    prefix = torch.zeros(n_docs, width, dtype=torch.long)
    for i, (d, k) in enumerate(zip(uniq.tolist(), need.tolist())):
        prefix[i, :k] = torch.tensor(list(docs[d][:k]))
    packed = torch.zeros(n_docs, slots, n_suffix, dtype=torch.long, device=device)
    packed[inv, rank] = suffix
    steps = torch.arange(n_suffix, device=device)
    positions = torch.zeros(n_docs, slots, n_suffix, dtype=torch.long, device=device)
    positions[inv, rank] = prefix_len[:, None] + steps[None, :]
    lengths = torch.zeros(n_docs, slots, dtype=torch.long, device=device)
    lengths[inv, rank] = prefix_len
    tokens = torch.cat([prefix.to(device), packed.view(n_docs, -1)], dim=1)
    positions = torch.cat([torch.arange(width, device=device).expand(n_docs, -1), positions.view(n_docs, -1)], 1)
    # attention: prefix causal; suffix slot (r, j) -> prefix[: length r] and its own slot's tokens <= j
    n_packed = slots * n_suffix
    column = torch.arange(width, device=device)
    prefix_rows = torch.cat([column[None, :, None] >= column[None, None, :],
                             torch.zeros(1, width, n_packed, dtype=torch.bool, device=device)], dim=2)
    slot, step = torch.arange(n_packed, device=device).div(n_suffix, rounding_mode="floor"), steps.repeat(slots)
    own = (slot[:, None] == slot[None, :]) & (step[None, :] <= step[:, None])
    reads = column[None, None, :] < lengths.repeat_interleave(n_suffix, dim=1)[:, :, None]
    suffix_rows = torch.cat([reads, own[None].expand(n_docs, -1, -1)], dim=2)
    mask = torch.cat([prefix_rows.expand(n_docs, -1, -1), suffix_rows], dim=1)[:, None]
    x = embedding[tokens]
    if model.cfg.positional_embedding_type == "standard":
        x = x + model.pos_embed.W_pos[positions]
    for block in model.blocks[:stop_at_layer]:
        attn = block.attn
        q, k, v = project_heads(fast_norm(block.ln1, x), [attn.W_Q, attn.W_K, attn.W_V],
                                [attn.b_Q, attn.b_K, attn.b_V]).unbind(0)
        if model.cfg.positional_embedding_type == "rotary":
            tables = rotary_tables(attn, model.cfg.n_ctx)
            q, k = rotate(q, positions, tables), rotate(k, positions, tables)
        z = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0 / attn.attn_scale)
        x = x + merge_heads_out(attn, z)
        x = x + fast_mlp(block.mlp, fast_norm(block.ln2, x))
    return x[:, width:].reshape(n_docs, slots, n_suffix, -1)[inv, rank]


def train_probe(
    probe: LowRankEmbeddingProbe,
    logits_fn: Callable[[Tensor], Tensor],
    labels: Int[Tensor, " n"],
    config: FitConfig = IGSM_VPROBE_FIT,
    class_weight: Float[Tensor, " classes"] | None = None,
    groups: Int[Tensor, " n"] | None = None,
    on_epoch: Callable[[float, float, int], None] | None = None,
) -> FitHistory:
    """Train ``probe`` (model frozen) on ``logits_fn(example indices)`` with AdamW and early stopping on a
    held-out split of ``groups`` (whole problems; single examples when None).

    The held-out score is the balanced accuracy of a binary target (the accuracy of a multi-class one), ties
    broken by the held-out loss: the stage reports accuracies, and the class-weighted loss of an imbalanced
    target can rise (over-confidence) while its accuracy still climbs. The best epoch's weights are kept; a fit
    stops after ``patience`` epochs without a better score. Each epoch visits the problems in a fresh random
    order and a problem's draws in a random order, so a minibatch holds the draws of a few problems (they share
    a prefix: several times cheaper per step) and every draw is seen once per epoch. ``on_epoch(held-out loss,
    held-out score, optimizer steps so far)`` runs after every epoch (e.g. to record the test accuracy). LBFGS
    configs use :func:`physlm.probing.fit.train_layers` (early stopping on the loss).
    """
    n = labels.shape[0]
    if int(labels.min()) < 0 or int(labels.max()) >= probe.n_classes:
        raise ValueError(f"labels must lie in [0, {probe.n_classes})")
    gen = torch.Generator().manual_seed(config.seed)
    if groups is not None and len(groups.unique()) < 2:
        groups = None  # one problem only: hold out examples instead
    train_idx, val_idx = split_indices(n, config.val_fraction, gen, groups=groups)
    device = next(probe.parameters()).device
    labels = labels.to(device)
    weight = None if class_weight is None else class_weight.to(device)
    steps = [0]

    def loss(idx: Tensor, logits: Tensor | None = None) -> Tensor:
        logits = logits_fn(idx) if logits is None else logits
        return per_layer_cross_entropy(logits[:, None], labels[idx.to(device)], weight)

    def held_out() -> tuple[float, float]:
        total, pred = 0.0, []
        for s in range(0, len(val_idx), 256):
            idx = val_idx[s : s + 256]
            logits = logits_fn(idx)
            total += float(loss(idx, logits)) * len(idx)
            pred.append(logits.argmax(-1).cpu())
        truth, guess = labels[val_idx.to(device)].cpu(), torch.cat(pred)
        if probe.n_classes == 2:  # balanced accuracy over the classes present
            score = float(sum((guess[truth == c] == c).float().mean() for c in truth.unique()) / len(truth.unique()))
        else:
            score = float((guess == truth).float().mean())
        if on_epoch is not None:
            on_epoch(total / len(val_idx), score, steps[0])
        return total / len(val_idx), score

    with probe._frozen_model():
        if config.optimizer != "adamw":
            return train_layers(probe, 1, train_idx, loss, lambda: torch.tensor([held_out()[0]]), config, gen)
        params = [p for p in probe.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
        unit = (groups if groups is not None else torch.arange(n))[train_idx]
        best, best_key, best_epoch, bad, history = [p.detach().clone() for p in params], None, 0, 0, []
        epoch = 0
        for epoch in range(1, config.max_epochs + 1):
            probe.train()
            rank = torch.randperm(int(unit.max()) + 1, generator=gen)[unit]  # a random order of the problems
            order = train_idx[torch.argsort(rank * len(unit) + torch.randperm(len(unit), generator=gen))]
            for start in range(0, len(order), config.batch_size):
                opt.zero_grad(set_to_none=True)
                loss(order[start : start + config.batch_size]).sum().backward()
                opt.step()
                steps[0] += 1
            probe.eval()
            with torch.no_grad():
                val_loss, score = held_out()
            history.append([val_loss])
            key = (round(score, 6), -val_loss)  # a higher score, then a lower loss
            if best_key is None or key > best_key:
                best, best_key, best_epoch, bad = [p.detach().clone() for p in params], key, epoch, 0
            else:
                bad += 1
                if bad >= config.patience:
                    break
        with torch.no_grad():
            for b, p in zip(best, params):
                p.copy_(b)
    return FitHistory(val_loss=history, best_epoch=[best_epoch], epochs_run=epoch)


@dataclasses.dataclass
class FittedVProbe:
    """A fitted V-probe and how it runs: on full sequences (``all``) or against a prefix cache (``suffix``)."""

    probe: LowRankEmbeddingProbe
    embedding_update: str
    history: FitHistory | None = None
    curve: list[dict] | None = None
    """per epoch: optimizer steps so far, held-out loss, test accuracy and balanced accuracy (when recorded)"""

    @property
    def update_scope(self) -> str:
        """The former name of :attr:`embedding_update`."""
        return self.embedding_update

    def logits(
        self, examples: VProbeExamples, idx: Int[Tensor, " batch"], cache: PrefixCache | None = None
    ) -> Float[Tensor, "batch classes"]:
        """Logits of the rows ``idx`` of ``examples``."""
        if self.embedding_update == "suffix":
            if cache is None:
                raise ValueError("the suffix-only probe needs the prefix cache of the examples' documents")
            assert isinstance(self.probe, CachedVProbe)
            return self.probe.forward_cached(cache, examples.doc_id[idx], examples.suffix[idx],
                                             examples.prefix_len[idx])
        assert isinstance(self.probe, FullVProbe)
        return self.probe.forward_rows(examples, idx)

    @torch.no_grad()
    def predict(self, examples: VProbeExamples, cache: PrefixCache | None = None) -> Int[Tensor, " n"]:
        """Predicted classes of ``examples`` (on the CPU); ``cache`` must hold ``examples.docs`` (suffix mode;
        built here when None)."""
        if self.embedding_update == "suffix" and cache is None:
            cache = PrefixCache.build(self.probe.model, examples.docs)
        if cache is not None and cache.n_docs != len(examples.docs):
            raise ValueError(f"the cache holds {cache.n_docs} documents, the examples use {len(examples.docs)}")
        # the rows of one document share a batch: its prefix is read (cached) or computed (packed) once
        order, batch = torch.argsort(examples.doc_id, stable=True), 256 if self.embedding_update == "suffix" else 64
        out = torch.empty(len(examples), dtype=torch.long)
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            out[idx] = self.logits(examples, idx, cache).argmax(-1).cpu()
        return out


def fit_vprobe(
    model: Any,
    train: VProbeExamples,
    n_classes: int,
    layer: int,
    config: IGSMProbeConfig,
    cache: PrefixCache | None = None,
    curve_on: VProbeExamples | None = None,
    curve_cache: PrefixCache | None = None,
) -> FittedVProbe:
    """A V-probe fitted on ``train`` reading ``layer``: rank-``config.rank`` embedding update (whole matrix or
    suffix only, ``config.embedding_update``) and linear head. ``curve_on``: test examples whose accuracy is
    recorded after every epoch (``curve_cache`` holds their documents in suffix mode)."""
    device = next(model.parameters()).device
    weight = balanced_class_weight(train.labels, n_classes) if config.balanced_loss and n_classes == 2 else None
    cls = CachedVProbe if config.embedding_update == "suffix" else FullVProbe
    probe = cls(model, n_classes, rank=config.rank, layer=layer, seed=config.seed).to(device)
    fitted = FittedVProbe(probe, config.embedding_update)
    if config.embedding_update == "suffix" and cache is None:
        cache = PrefixCache.build(model, train.docs)
    if curve_on is not None and config.embedding_update == "suffix" and curve_cache is None:
        curve_cache = PrefixCache.build(model, curve_on.docs)
    curve: list[dict] = []

    def record(val_loss: float, val_score: float, steps: int) -> None:
        assert curve_on is not None
        metrics = {m.name: m.value for m in classification_metrics(
            fitted.predict(curve_on, curve_cache), curve_on.labels, curve_on.group, n_classes, n_boot=1,
            per_class=False)}
        curve.append({"epoch": len(curve) + 1, "step": steps, "val_loss": val_loss, "val_score": val_score,
                      "test_accuracy": metrics["accuracy"], "test_balanced_accuracy": metrics["balanced_accuracy"]})

    fitted.history = train_probe(
        probe, lambda idx: fitted.logits(train, idx, cache), train.labels, config.fit, weight, train.group,
        on_epoch=record if curve_on is not None else None,
    )
    fitted.curve = curve if curve_on is not None else None
    return fitted

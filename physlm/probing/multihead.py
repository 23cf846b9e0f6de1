"""The Part 1 multi-head linear probe (spec part1_cfg.md §2.3) and its local NT-end variant.

    G_i(x) = Σ_{r=1..H} Σ_k w_{r,i→k} · U_r E_k(x),   w_{r,i→k} = softmax_k ⟨P_{i,r}, P_{k,r}⟩ / √d'

with trainable position vectors P_{i,r} ∈ R^{d'} and per-head maps U_r: R^d → R^{classes}; the softmax runs
over the sentence's own positions k (all of them, so the probe is non-causal), or over |i − k| ≤ δ for the
local probe. The weights depend on positions only, so G_i is linear in the hidden states E.
Every parameter carries a leading layer dimension: one module fits all layers at once.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from physlm.probing.align import IGNORE_INDEX
from physlm.probing.fit import FitConfig, FitHistory, split_indices, train_layers

MULTIHEAD_DEFAULT = FitConfig(lr=3e-3, betas=(0.9, 0.98), weight_decay=1e-3, batch_size=32, max_epochs=30)


class MultiHeadLinearProbe(nn.Module):
    """Position-attention linear probe over whole sentences: ``[batch, pos, layers, d]`` → class logits.

    ``window=None`` attends over every position of the sentence (the paper's full probe); ``window=δ``
    restricts attention to |i − k| ≤ δ (δ = 0 is a per-position linear map summed over heads).
    """

    def __init__(
        self,
        d_model: int,
        n_classes: int,
        n_positions: int,
        n_layers: int = 1,
        n_heads: int = 16,
        d_pos: int = 64,
        window: int | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a probe needs at least 2 classes, got {n_classes}")
        if window is not None and window < 0:
            raise ValueError(f"window must be >= 0 or None, got {window}")
        self.d_model, self.n_classes, self.n_positions = d_model, n_classes, n_positions
        self.n_layers, self.n_heads, self.d_pos, self.window = n_layers, n_heads, d_pos, window
        gen = torch.Generator().manual_seed(seed)
        self.pos = nn.Parameter(torch.randn(n_layers, n_positions, n_heads, d_pos, generator=gen))
        self.unembed = nn.Parameter(
            torch.randn(n_layers, n_heads, d_model, n_classes, generator=gen) / math.sqrt(d_model * n_heads)
        )
        self.bias = nn.Parameter(torch.zeros(n_layers, n_classes))
        self.register_buffer("mean", torch.zeros(n_layers, d_model))
        self.register_buffer("scale", torch.ones(n_layers, d_model))

    def _check(self, h: Tensor, mask: Tensor) -> None:
        if h.shape[2:] != (self.n_layers, self.d_model):
            raise ValueError(
                f"expected hidden states [batch, pos, {self.n_layers} layers, {self.d_model}], got {tuple(h.shape)}"
            )
        if h.shape[1] > self.n_positions:
            raise ValueError(f"sentences of {h.shape[1]} tokens exceed the probe's {self.n_positions} positions")
        if mask.shape != h.shape[:2]:
            raise ValueError(f"mask {tuple(mask.shape)} does not match hidden states {tuple(h.shape[:2])}")

    def forward(
        self, h: Float[Tensor, "batch pos layers d_model"], mask: Bool[Tensor, "batch pos"]
    ) -> Float[Tensor, "batch pos layers classes"]:
        """Logits at every position; ``mask`` marks the sentence's real tokens (keys outside it get no weight)."""
        self._check(h, mask)
        n = h.shape[1]
        m = mask.to(h.dtype)
        z = (h - self.mean) / self.scale * m[:, :, None, None]
        ue = torch.einsum("bkld,lhdc->bklhc", z, self.unembed)
        pos = self.pos[:, :n]
        if self.window is None:
            scores = torch.einsum("lihe,lkhe->lhik", pos, pos) / math.sqrt(self.d_pos)
            # Softmax over each sentence's own keys without a [batch, heads, pos, pos] tensor: shared
            # numerators exp(s - rowmax) times the key mask, normalised per sentence.
            a = torch.exp(scores - scores.amax(-1, keepdim=True))
            num = torch.einsum("lhik,bklhc->bilhc", a, ue)
            den = torch.einsum("lhik,bk->bilh", a, m).clamp(min=1e-30)
            g = (num / den[..., None]).sum(3)
        else:
            g = self._local(pos, ue, m)
        return g + self.bias

    def _local(self, pos: Tensor, ue: Tensor, m: Tensor) -> Tensor:
        n, delta = pos.shape[1], self.window
        assert delta is not None
        offsets = range(-delta, delta + 1)
        scores, values, valid = [], [], []
        for o in offsets:
            shifted_pos = _shift(pos, o, dim=1)
            scores.append((pos * shifted_pos).sum(-1) / math.sqrt(self.d_pos))  # [l, i, h]
            values.append(_shift(ue, o, dim=1))  # [b, i, l, h, c]
            in_range = torch.zeros(n, dtype=m.dtype, device=m.device)
            lo, hi = max(0, -o), min(n, n - o)
            in_range[lo:hi] = 1
            valid.append(_shift(m, o, dim=1) * in_range)  # [b, i]
        s = torch.stack(scores, -1).permute(1, 0, 2, 3)  # [i, l, h, o]
        v = torch.stack(valid, -1)  # [b, i, o]
        # Out-of-sentence neighbours get -inf-like scores; the centre key is always valid on real tokens.
        logits = s[None] + torch.log(v.clamp(min=1e-30))[:, :, None, None, :]
        w = torch.softmax(logits, -1)  # [b, i, l, h, o]
        return torch.einsum("bilho,bilhco->bilc", w, torch.stack(values, -1))

    @torch.no_grad()
    def predict(
        self, h: Float[Tensor, "n pos layers d_model"], mask: Bool[Tensor, "n pos"], batch_size: int = 64
    ) -> Int[Tensor, "n pos layers"]:
        """Predicted class at every position and layer."""
        return torch.cat(
            [self(h[s : s + batch_size], mask[s : s + batch_size]).argmax(-1) for s in range(0, len(h), batch_size)]
        )

    def fit(
        self,
        h: Float[Tensor, "n pos layers d_model"],
        labels: Int[Tensor, "n pos"],
        mask: Bool[Tensor, "n pos"],
        config: FitConfig = MULTIHEAD_DEFAULT,
    ) -> FitHistory:
        """Fit on sentences ``h`` with per-position ``labels`` (``IGNORE_INDEX`` where unscored, e.g. away from
        NT-ends for the local probe); ``mask`` marks real tokens. Held-out items are whole sentences."""
        self._check(h, mask)
        if labels.shape != mask.shape:
            raise ValueError(f"labels {tuple(labels.shape)} do not match mask {tuple(mask.shape)}")
        scored = labels != IGNORE_INDEX
        if bool((scored & ~mask).any()):
            raise ValueError("labels are set at positions outside the mask (padding)")
        if not bool(scored.any()):
            raise ValueError("no position carries a label")
        if int(labels[scored].min()) < 0 or int(labels[scored].max()) >= self.n_classes:
            raise ValueError(f"labels must lie in [0, {self.n_classes}) or be IGNORE_INDEX")
        gen = torch.Generator().manual_seed(config.seed)
        train_idx, val_idx = split_indices(h.shape[0], config.val_fraction, gen)
        with torch.no_grad():
            rows = h[train_idx][mask[train_idx]]
            self.mean.copy_(rows.mean(0))
            self.scale.copy_(rows.std(0).clamp(min=1e-6))
            del rows

        def loss(idx: Tensor) -> Tensor:
            return _masked_ce(self(h[idx], mask[idx]), labels[idx])

        def val_loss() -> Tensor:
            total = torch.zeros(self.n_layers)
            count = 0
            for s in range(0, len(val_idx), config.batch_size):
                idx = val_idx[s : s + config.batch_size]
                k = int((labels[idx] != IGNORE_INDEX).sum())
                if k:
                    total += _masked_ce(self(h[idx], mask[idx]), labels[idx]) * k
                    count += k
            return total / max(count, 1)

        return train_layers(self, self.n_layers, train_idx, loss, val_loss, config, gen)


class LocalProbe(MultiHeadLinearProbe):
    """The NT-ancestor-at-NT-end probe: attention restricted to |i − k| ≤ δ (δ = 0: the diagonal probe)."""

    def __init__(
        self,
        d_model: int,
        n_classes: int,
        n_positions: int,
        n_layers: int = 1,
        delta: int = 0,
        n_heads: int = 16,
        d_pos: int = 64,
        seed: int = 0,
    ):
        super().__init__(d_model, n_classes, n_positions, n_layers, n_heads, d_pos, window=delta, seed=seed)


def _shift(x: Tensor, offset: int, dim: int) -> Tensor:
    """out[..., i, ...] = x[..., i + offset, ...] along ``dim``, zero where i + offset is out of range."""
    if offset == 0:
        return x
    out = torch.zeros_like(x)
    n = x.shape[dim]
    if abs(offset) >= n:
        return out
    if offset > 0:
        out.narrow(dim, 0, n - offset).copy_(x.narrow(dim, offset, n - offset))
    else:
        out.narrow(dim, -offset, n + offset).copy_(x.narrow(dim, 0, n + offset))
    return out


def _masked_ce(logits: Float[Tensor, "b pos layers classes"], labels: Int[Tensor, "b pos"]) -> Tensor:
    keep = labels != IGNORE_INDEX
    if not bool(keep.any()):
        return logits.sum((0, 1, 3)) * 0.0
    sel = logits[keep]  # [k, layers, classes]
    target = labels[keep]
    ce = nn.functional.cross_entropy(sel.permute(0, 2, 1), target[:, None].expand(-1, sel.shape[1]), reduction="none")
    return ce.mean(0)

"""Per-position logistic regression, all layers in one module (a layer dimension in the weights)."""

from __future__ import annotations

from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from physlm.probing.fit import (
    FitConfig,
    FitHistory,
    balanced_class_weight,
    per_layer_cross_entropy,
    split_indices,
    train_layers,
)

LINEAR_DEFAULT = FitConfig(lr=1e-2, batch_size=1024, weight_decay=1e-4, max_epochs=20, patience=2)


class LinearProbe(nn.Module):
    """Logistic regression from a hidden state to ``n_classes`` (2 = binary), one per layer.

    Inputs are centred and whitened per layer with training-set statistics (``whiten=True``; buffers
    ``mean`` and ``transform``), or only standardised per feature (``whiten=False``). An invertible linear
    change of the inputs leaves the family of classifiers unchanged, but residual streams are strongly
    correlated and badly scaled, and on whitened inputs first-order optimisers converge in a few epochs.
    Directions with variance below ``rcond`` × the largest are dropped (a pseudo-inverse whitening).
    """

    def __init__(
        self, d_model: int, n_classes: int, n_layers: int = 1, whiten: bool = True, rcond: float = 1e-9
    ):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a probe needs at least 2 classes, got {n_classes}")
        self.d_model, self.n_classes, self.n_layers = d_model, n_classes, n_layers
        self.whiten, self.rcond = whiten, rcond
        # A convex problem: zero init is exact and deterministic.
        self.weight = nn.Parameter(torch.zeros(n_layers, d_model, n_classes))
        self.bias = nn.Parameter(torch.zeros(n_layers, n_classes))
        self.register_buffer("mean", torch.zeros(n_layers, d_model))
        self.register_buffer("transform", torch.eye(d_model).repeat(n_layers, 1, 1))

    def _check(self, x: Tensor) -> None:
        if x.shape[1:] != (self.n_layers, self.d_model):
            raise ValueError(
                f"expected features [n, {self.n_layers} layers, {self.d_model}], got {tuple(x.shape)}"
            )

    def forward(self, x: Float[Tensor, "n layers d_model"]) -> Float[Tensor, "n layers classes"]:
        """Per-layer class logits."""
        self._check(x)
        # Fold the whitening into the weights: [layers, d, d] @ [layers, d, C] costs nothing next to the data.
        w = self.transform @ self.weight
        b = self.bias - torch.einsum("ld,ldc->lc", self.mean, w)
        return torch.einsum("nld,ldc->nlc", x, w) + b

    @torch.no_grad()
    def predict(self, x: Float[Tensor, "n layers d_model"], chunk: int = 65536) -> Int[Tensor, "n layers"]:
        """Predicted class per item and layer."""
        return torch.cat([self(x[s : s + chunk]).argmax(-1) for s in range(0, x.shape[0], chunk)])

    @torch.no_grad()
    def _set_standardisation(self, x: Tensor, rows: Tensor, chunk: int = 65536) -> None:
        # Chunked float64 moments: no copy of the whole training set next to the features.
        total = torch.zeros(self.n_layers, self.d_model, dtype=torch.float64)
        gram = torch.zeros(self.n_layers, self.d_model, self.d_model, dtype=torch.float64)
        for start in range(0, len(rows), chunk):
            part = x[rows[start : start + chunk]].double()
            total += part.sum(0)
            gram += torch.einsum("nld,nle->lde", part, part)
        n = max(len(rows), 2)
        mean = total / n
        cov = (gram - n * mean[:, :, None] * mean[:, None, :]) / (n - 1)
        if self.whiten:
            eigval, eigvec = torch.linalg.eigh(cov)
            keep = eigval > self.rcond * eigval[:, -1:].clamp(min=1e-300)
            inv_sqrt = torch.where(keep, eigval.clamp(min=1e-300).rsqrt(), torch.zeros_like(eigval))
            transform = eigvec * inv_sqrt[:, None, :]
        else:
            std = torch.diagonal(cov, dim1=1, dim2=2).clamp(min=0).sqrt().clamp(min=1e-6)
            transform = torch.diag_embed(1.0 / std)
        self.mean.copy_(mean)
        self.transform.copy_(transform)

    def fit(
        self,
        x: Float[Tensor, "n layers d_model"],
        y: Int[Tensor, " n"],
        groups: Int[Tensor, " n"] | None = None,
        class_weight: Literal["balanced"] | None = None,
        config: FitConfig = LINEAR_DEFAULT,
    ) -> FitHistory:
        """Fit every layer's regression on ``(x, y)``; ``groups`` (e.g. sentence ids) keep held-out items
        apart by group; ``class_weight='balanced'`` reweights rare classes (NT-end labels)."""
        self._check(x)
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{x.shape[0]} feature rows but {y.shape[0]} labels")
        if int(y.min()) < 0 or int(y.max()) >= self.n_classes:
            raise ValueError(f"labels must lie in [0, {self.n_classes}), got [{int(y.min())}, {int(y.max())}]")
        gen = torch.Generator().manual_seed(config.seed)
        train_idx, val_idx = split_indices(x.shape[0], config.val_fraction, gen, groups)
        self._set_standardisation(x, train_idx)
        weight = balanced_class_weight(y[train_idx], self.n_classes) if class_weight == "balanced" else None
        x_val, y_val = x[val_idx], y[val_idx]

        def loss(idx: Tensor) -> Tensor:
            return per_layer_cross_entropy(self(x[idx]), y[idx], weight)

        def val_loss() -> Tensor:
            return per_layer_cross_entropy(self(x_val), y_val, weight)

        return train_layers(self, self.n_layers, train_idx, loss, val_loss, config, gen)

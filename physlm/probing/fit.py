"""One seeded training loop for every probe: AdamW minibatches (or full-batch LBFGS) with early stopping
on a held-out split, run for all layers at once.

Probes keep one independent copy of their parameters per layer (every parameter's leading dimension is
the layer), the loss is the sum of the per-layer losses, so layers do not interact; early stopping and
the restored best weights are tracked per layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from physlm.config import Config


@dataclasses.dataclass(frozen=True)
class FitConfig(Config):
    """How a probe is optimised."""

    optimizer: Literal["adamw", "lbfgs"] = "adamw"
    """AdamW minibatches, or full-batch LBFGS (small convex probes)"""
    lr: float = 3e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 1e-3
    batch_size: int = 32
    """items per step (tokens for token-level probes, sentences for sentence-level probes)"""
    max_epochs: int = 30
    """passes over the training items (LBFGS: rounds of ``lbfgs_iters`` iterations)"""
    patience: int = 3
    """epochs without held-out improvement before a layer stops counting"""
    val_fraction: float = 0.1
    """fraction of the training items (grouped by sentence when groups are given) held out for stopping"""
    lbfgs_iters: int = 20
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("batch_size, max_epochs and patience must be positive")


@dataclasses.dataclass
class FitHistory:
    """Per-epoch held-out losses (``[epochs, layers]``) and the epoch each layer's weights come from."""

    val_loss: list[list[float]]
    best_epoch: list[int]
    epochs_run: int


def split_indices(
    n: int, val_fraction: float, generator: torch.Generator, groups: Int[Tensor, " n"] | None = None
) -> tuple[Int[Tensor, " n_train"], Int[Tensor, " n_val"]]:
    """A seeded train/held-out split of ``range(n)``; with ``groups`` whole groups (sentences) go to one side."""
    if n < 2:
        raise ValueError(f"need at least 2 training items to hold some out, got {n}")
    if groups is None:
        perm = torch.randperm(n, generator=generator)
        n_val = min(n - 1, max(1, round(n * val_fraction)))
        return perm[n_val:].sort().values, perm[:n_val].sort().values
    if groups.shape != (n,):
        raise ValueError(f"groups must have shape ({n},), got {tuple(groups.shape)}")
    unique = groups.unique()
    if len(unique) < 2:
        raise ValueError("need at least 2 groups (sentences) to hold some out")
    perm = unique[torch.randperm(len(unique), generator=generator)]
    n_val = min(len(unique) - 1, max(1, round(len(unique) * val_fraction)))
    is_val = torch.isin(groups, perm[:n_val])
    return (~is_val).nonzero().squeeze(1), is_val.nonzero().squeeze(1)


def train_layers(
    module: nn.Module,
    n_layers: int,
    train_idx: Int[Tensor, " n_train"],
    loss_fn: Callable[[Tensor], Tensor],
    val_loss_fn: Callable[[], Tensor],
    config: FitConfig,
    generator: torch.Generator,
) -> FitHistory:
    """Optimise ``module`` on ``loss_fn(batch_indices) -> [layers]`` with per-layer early stopping.

    ``val_loss_fn() -> [layers]`` is the held-out loss; each layer ends with its best weights.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        if p.shape[0] != n_layers:
            raise ValueError(f"probe parameter of shape {tuple(p.shape)} lacks the leading layer dim {n_layers}")
    best = [p.detach().clone() for p in params]
    best_loss = torch.full((n_layers,), float("inf"))
    best_epoch = [0] * n_layers
    bad = torch.zeros(n_layers, dtype=torch.long)
    history: list[list[float]] = []
    if config.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(
            params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
    else:
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=config.lbfgs_iters, line_search_fn="strong_wolfe")
    epoch = 0
    for epoch in tqdm(range(1, config.max_epochs + 1), desc="probe fit", disable=not config.progress):
        module.train()
        if config.optimizer == "adamw":
            order = train_idx[torch.randperm(len(train_idx), generator=generator)]
            for start in range(0, len(order), config.batch_size):
                opt.zero_grad(set_to_none=True)
                loss_fn(order[start : start + config.batch_size]).sum().backward()
                opt.step()
        else:

            def closure() -> Tensor:
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(train_idx).sum() + _l2(params, config.weight_decay)
                loss.backward()
                return loss

            opt.step(closure)
        module.eval()
        with torch.no_grad():
            val = val_loss_fn().detach().float().cpu()
        history.append(val.tolist())
        # A relative tolerance so that float noise does not count as progress (inf - inf would be NaN).
        threshold = torch.where(best_loss.isinf(), best_loss, best_loss - 1e-4 * best_loss.abs())
        improved = val < threshold
        for layer in improved.nonzero().flatten().tolist():
            for b, p in zip(best, params):
                b[layer] = p.detach()[layer]
            best_loss[layer] = val[layer]
            best_epoch[layer] = epoch
        bad = torch.where(improved, torch.zeros_like(bad), bad + 1)
        if bool((bad >= config.patience).all()):
            break
    with torch.no_grad():
        for b, p in zip(best, params):
            p.copy_(b)
    return FitHistory(val_loss=history, best_epoch=best_epoch, epochs_run=epoch)


def _l2(params: list[Tensor], weight_decay: float) -> Tensor:
    # LBFGS has no decoupled weight decay; an explicit ridge term plays its role.
    return 0.5 * weight_decay * sum((p * p).sum() for p in params)


def per_layer_cross_entropy(
    logits: Float[Tensor, "n layers classes"],
    target: Int[Tensor, " n"],
    class_weight: Float[Tensor, " classes"] | None = None,
) -> Float[Tensor, " layers"]:
    """Mean (class-weighted when given) cross-entropy of each layer's logits against one target."""
    n, n_layers, _ = logits.shape
    ce = nn.functional.cross_entropy(
        logits.permute(0, 2, 1), target[:, None].expand(n, n_layers), reduction="none"
    )
    if class_weight is None:
        return ce.mean(0)
    w = class_weight[target]
    return (ce * w[:, None]).sum(0) / w.sum().clamp(min=1e-12)


def balanced_class_weight(target: Int[Tensor, " n"], n_classes: int) -> Float[Tensor, " classes"]:
    """Weights n / (k · count_c) for the k classes present (absent classes get 0), as scikit-learn's
    ``class_weight='balanced'``."""
    counts = torch.bincount(target, minlength=n_classes).float()
    present = counts > 0
    weight = torch.zeros(n_classes)
    weight[present] = target.numel() / (present.sum() * counts[present])
    return weight

"""Probe metrics with 95% bootstrap confidence intervals over sentences.

Everything is computed from per-sentence, per-class counts (correct, total), so one bootstrap replicate
is a weighted sum of those counts: resampling sentences never touches the token-level arrays.
"""

from __future__ import annotations

import dataclasses

import torch
from jaxtyping import Float, Int
from torch import Tensor


@dataclasses.dataclass(frozen=True)
class Metric:
    """One measurement: ``name`` (accuracy, balanced_accuracy, class_<k>_accuracy, ...) and its interval."""

    name: str
    value: float
    ci_low: float
    ci_high: float


def _group_counts(
    pred: Tensor, target: Tensor, groups: Tensor, n_classes: int
) -> tuple[Tensor, Tensor]:
    """(correct, total) per (group, true class): ``[n_groups, classes]`` each (groups relabelled 0..G-1)."""
    _, g = torch.unique(groups, return_inverse=True)
    n_groups = int(g.max()) + 1 if g.numel() else 0
    cell = g * n_classes + target
    total = torch.bincount(cell, minlength=n_groups * n_classes).view(n_groups, n_classes).double()
    correct = torch.bincount(cell, weights=(pred == target).double(), minlength=n_groups * n_classes)
    return correct.view(n_groups, n_classes), total


def _from_counts(correct: Float[Tensor, "r classes"], total: Float[Tensor, "r classes"]) -> dict[str, Tensor]:
    """Metric values for each row r of class-count sums."""
    acc = correct.sum(-1) / total.sum(-1).clamp(min=1)
    recall = correct / total.clamp(min=1)
    present = total > 0
    balanced = (recall * present).sum(-1) / present.sum(-1).clamp(min=1)
    out = {"accuracy": acc, "balanced_accuracy": balanced}
    for k in range(correct.shape[-1]):
        out[f"class_{k}_accuracy"] = torch.where(present[:, k], recall[:, k], torch.nan)
    return out


def classification_metrics(
    pred: Int[Tensor, " n"],
    target: Int[Tensor, " n"],
    groups: Int[Tensor, " n"],
    n_classes: int,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    per_class: bool = True,
) -> list[Metric]:
    """Accuracy, balanced accuracy (mean per-class recall over present classes) and per-class accuracy,
    with percentile bootstrap intervals from resampling ``groups`` (sentences) with a seeded generator."""
    if not (pred.shape == target.shape == groups.shape):
        raise ValueError(f"shapes differ: pred {pred.shape}, target {target.shape}, groups {groups.shape}")
    if target.numel() == 0:
        raise ValueError("no scored items to compute metrics on")
    if int(target.min()) < 0 or int(target.max()) >= n_classes:
        raise ValueError(f"targets must lie in [0, {n_classes})")
    correct, total = _group_counts(pred.long(), target.long(), groups.long(), n_classes)
    point = _from_counts(correct.sum(0, keepdim=True), total.sum(0, keepdim=True))
    gen = torch.Generator().manual_seed(seed)
    n_groups = correct.shape[0]
    draws = torch.randint(n_groups, (n_boot, n_groups), generator=gen)
    weight = torch.zeros(n_boot, n_groups, dtype=torch.float64).scatter_add_(
        1, draws, torch.ones(n_boot, n_groups, dtype=torch.float64)
    )
    boot = _from_counts(weight @ correct, weight @ total)
    alpha = (1.0 - confidence) / 2
    out = []
    for name, value in point.items():
        if name.startswith("class_") and not per_class:
            continue
        v = float(value[0])
        if v != v:  # class absent from the test set
            continue
        samples = boot[name][~torch.isnan(boot[name])]
        low, high = torch.quantile(samples, torch.tensor([alpha, 1 - alpha], dtype=samples.dtype)).tolist()
        out.append(Metric(name, v, low, high))
    return out


def paired_difference(
    pred_a: Int[Tensor, " n"],
    target_a: Int[Tensor, " n"],
    pred_b: Int[Tensor, " n"],
    target_b: Int[Tensor, " n"],
    groups: Int[Tensor, " n"],
    name: str = "selectivity",
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Metric:
    """accuracy(a) − accuracy(b) on the same items, with a paired bootstrap over ``groups``."""
    _, g = torch.unique(groups, return_inverse=True)
    n_groups = int(g.max()) + 1
    hits_a = torch.bincount(g, weights=(pred_a == target_a).double(), minlength=n_groups)
    hits_b = torch.bincount(g, weights=(pred_b == target_b).double(), minlength=n_groups)
    count = torch.bincount(g, minlength=n_groups).double()
    gen = torch.Generator().manual_seed(seed)
    draws = torch.randint(n_groups, (n_boot, n_groups), generator=gen)
    w = torch.zeros(n_boot, n_groups, dtype=torch.float64).scatter_add_(
        1, draws, torch.ones(n_boot, n_groups, dtype=torch.float64)
    )
    boot = (w @ hits_a - w @ hits_b) / (w @ count)
    alpha = (1.0 - confidence) / 2
    low, high = torch.quantile(boot, torch.tensor([alpha, 1 - alpha], dtype=boot.dtype)).tolist()
    return Metric(name, float((hits_a.sum() - hits_b.sum()) / count.sum()), low, high)

"""Content-free baselines and the control task.

* :class:`TableClassifier` predicts the majority label of a discrete key seen in training: key 0 for
  everything is the *majority* baseline, the token's position gives the *position-only* baseline, and
  (position, token) the *position × token* baseline. These are the Bayes classifiers of those features,
  i.e. the best any probe restricted to them can do (spec part1_cfg.md §1.6).
* :func:`control_task` is the Hewitt & Liang (2019) control task: every (position, token) type gets a random
  label drawn from the real label distribution; a probe that scores high on it memorises types rather than
  reading the structure, and *selectivity* = real-task accuracy − control-task accuracy.
"""

from __future__ import annotations

import torch
from jaxtyping import Int
from torch import Tensor


class TableClassifier:
    """Majority label per key, with the global majority for keys unseen in training.

    ``balanced=True`` predicts argmax_c count(key, c) / count(c), the rule that maximises balanced accuracy
    (used for rare binary labels such as NT-ends).
    """

    def __init__(self, n_classes: int, balanced: bool = False):
        self.n_classes, self.balanced = n_classes, balanced
        self.keys: Tensor | None = None
        self.table: Tensor | None = None
        self.default = 0

    def fit(self, keys: Int[Tensor, " n"], y: Int[Tensor, " n"]) -> TableClassifier:
        """Count labels per key."""
        if keys.shape != y.shape or keys.numel() == 0:
            raise ValueError(f"keys {tuple(keys.shape)} and labels {tuple(y.shape)} must be equal, non-empty")
        uniq, inv = torch.unique(keys, return_inverse=True)
        counts = torch.zeros(len(uniq), self.n_classes, dtype=torch.float64)
        counts.index_put_((inv, y), torch.ones_like(y, dtype=torch.float64), accumulate=True)
        prior = counts.sum(0)
        score = counts / prior.clamp(min=1) if self.balanced else counts
        self.keys, self.table = uniq, score.argmax(-1)
        self.default = int(prior.argmax())
        return self

    def predict(self, keys: Int[Tensor, " n"]) -> Int[Tensor, " n"]:
        """Majority label of each key (the global default for unseen keys)."""
        if self.keys is None or self.table is None:
            raise RuntimeError("TableClassifier.predict called before fit")
        idx = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        seen = self.keys[idx] == keys
        return torch.where(seen, self.table[idx], torch.full_like(keys, self.default))


def position_token_key(
    position: Int[Tensor, "*shape"], token: Int[Tensor, "*shape"], n_tokens: int
) -> Int[Tensor, "*shape"]:
    """One integer key per (position, token) pair."""
    return position.long() * n_tokens + token.long()


def control_task(
    type_key: Int[Tensor, " n"], y: Int[Tensor, " n"], n_classes: int, seed: int
) -> Int[Tensor, " n"]:
    """Control labels: a seeded random label per type (key), drawn from the empirical distribution of ``y``.

    Call it once on the concatenation of training and test items so both share one type → label map.
    """
    if type_key.shape != y.shape:
        raise ValueError("type_key and y must have the same shape")
    uniq, inv = torch.unique(type_key, return_inverse=True)
    prior = torch.bincount(y, minlength=n_classes).double()
    gen = torch.Generator().manual_seed(seed)
    labels = torch.multinomial(prior / prior.sum(), len(uniq), replacement=True, generator=gen)
    return labels[inv]

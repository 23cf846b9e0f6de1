"""V-probing (spec part2_igsm.md §3.1): a frozen model, a rank-r update of its input embedding added
through ``hook_embed`` at chosen positions, and a linear head on one layer's hidden state at a chosen
position. Only the update (A: V×r, B: r×d) and the head train.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn
from transformer_lens import HookedTransformer

from physlm.probing.fit import FitConfig, FitHistory, per_layer_cross_entropy, split_indices, train_layers

VPROBE_DEFAULT = FitConfig(lr=2e-3, weight_decay=0.01, batch_size=64, max_epochs=30, patience=3)


class LowRankEmbeddingProbe(nn.Module):
    """Rank-``rank`` embedding update plus a linear head on ``blocks.{layer}.hook_resid_post``.

    The model is held by reference, not registered as a submodule: ``parameters()`` and ``state_dict()``
    are the probe's own, and fitting never changes (or accumulates gradients in) the model.
    """

    def __init__(
        self, model: HookedTransformer, n_classes: int, rank: int = 8, layer: int | None = None, seed: int = 0
    ):
        super().__init__()
        cfg = model.cfg
        self.layer = cfg.n_layers - 1 if layer is None else layer
        if not 0 <= self.layer < cfg.n_layers:
            raise ValueError(f"layer must be in [0, {cfg.n_layers}), got {self.layer}")
        if rank < 1 or n_classes < 2:
            raise ValueError(f"need rank >= 1 and n_classes >= 2, got rank={rank}, n_classes={n_classes}")
        self._model = (model,)  # a tuple hides it from nn.Module registration
        self.n_classes, self.rank = n_classes, rank
        gen = torch.Generator().manual_seed(seed)
        # LoRA-style init: B = 0, so the probe starts from the unmodified model.
        self.down = nn.Parameter(torch.randn(1, cfg.d_vocab, rank, generator=gen) / rank**0.5)
        self.up = nn.Parameter(torch.zeros(1, rank, cfg.d_model))
        self.head = nn.Parameter(torch.randn(1, cfg.d_model, n_classes, generator=gen) / cfg.d_model**0.5)
        self.head_bias = nn.Parameter(torch.zeros(1, n_classes))

    @property
    def model(self) -> HookedTransformer:
        return self._model[0]

    def embedding_update(self) -> Float[Tensor, "vocab d_model"]:
        """ΔE = A·B, the learned change of the input embedding matrix."""
        return self.down[0] @ self.up[0]

    def forward(
        self,
        tokens: Int[Tensor, "batch seq"],
        update_mask: Bool[Tensor, "batch seq"],
        read_pos: Int[Tensor, " batch"],
    ) -> Float[Tensor, "batch classes"]:
        """Logits from the hidden state at ``read_pos`` with ΔE added at the ``update_mask`` positions."""
        if update_mask.shape != tokens.shape:
            raise ValueError(f"update_mask {tuple(update_mask.shape)} != tokens {tuple(tokens.shape)}")
        if int(read_pos.min()) < 0 or int(read_pos.max()) >= tokens.shape[1]:
            raise ValueError(f"read_pos must lie in [0, {tokens.shape[1]})")
        delta = (self.down[0][tokens] @ self.up[0]) * update_mask[..., None].to(self.up.dtype)

        def add_update(embed: Tensor, hook: object) -> Tensor:
            return embed + delta

        with self.model.hooks(fwd_hooks=[("hook_embed", add_update)]):
            resid = self.model(tokens, stop_at_layer=self.layer + 1)
        hidden = resid[torch.arange(tokens.shape[0]), read_pos]
        return hidden @ self.head[0] + self.head_bias[0]

    @contextlib.contextmanager
    def _frozen_model(self) -> Iterator[None]:
        params = list(self.model.parameters())
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in zip(params, flags):
                p.requires_grad_(flag)

    @torch.no_grad()
    def predict(
        self,
        tokens: Int[Tensor, "n seq"],
        update_mask: Bool[Tensor, "n seq"],
        read_pos: Int[Tensor, " n"],
        batch_size: int = 128,
    ) -> Int[Tensor, " n"]:
        """Predicted class per example."""
        parts = [
            self(tokens[s : s + batch_size], update_mask[s : s + batch_size], read_pos[s : s + batch_size])
            for s in range(0, tokens.shape[0], batch_size)
        ]
        return torch.cat(parts).argmax(-1)

    def fit(
        self,
        tokens: Int[Tensor, "n seq"],
        update_mask: Bool[Tensor, "n seq"],
        read_pos: Int[Tensor, " n"],
        labels: Int[Tensor, " n"],
        config: FitConfig = VPROBE_DEFAULT,
        class_weight: Float[Tensor, " classes"] | None = None,
    ) -> FitHistory:
        """Train the update and head (model frozen) with early stopping on a held-out split.

        ``class_weight`` (e.g. :func:`physlm.probing.fit.balanced_class_weight`) weights the cross-entropy per class,
        so a rare class is not simply ignored on imbalanced targets.
        """
        n = tokens.shape[0]
        if not (update_mask.shape[0] == read_pos.shape[0] == labels.shape[0] == n):
            raise ValueError("tokens, update_mask, read_pos and labels need the same number of examples")
        if int(labels.min()) < 0 or int(labels.max()) >= self.n_classes:
            raise ValueError(f"labels must lie in [0, {self.n_classes})")
        gen = torch.Generator().manual_seed(config.seed)
        train_idx, val_idx = split_indices(n, config.val_fraction, gen)

        def loss(idx: Tensor) -> Tensor:
            logits = self(tokens[idx], update_mask[idx], read_pos[idx])
            weight = None if class_weight is None else class_weight.to(logits.device)
            return per_layer_cross_entropy(logits[:, None], labels[idx], weight)

        def val_loss() -> Tensor:
            total = torch.zeros(1)
            for s in range(0, len(val_idx), 256):
                idx = val_idx[s : s + 256]
                total += loss(idx) * len(idx)
            return total / len(val_idx)

        with self._frozen_model():
            return train_layers(self, 1, train_idx, loss, val_loss, config, gen)

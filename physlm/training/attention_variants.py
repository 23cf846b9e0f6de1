"""TransformerLens attention with the papers' score variants (subclassing its ``Attention``).

* "softmax": TransformerLens' own attention (content ``q . k`` with standard/rotary/ALiBi positions).
* "position_only" (GPT_pos): the scores are a learned per-head function of positions only,
  ``pos_scores[h, i - j]`` ("relative", the spec's ``A_ij = f(i - j)``) or ``pos_scores[h, i, j]``
  ("absolute"); initialised to 0, i.e. a uniform average over the causal past.
* "uniform" (GPT_uni): head ``h`` averages the last ``windows[h]`` tokens (the current one included); nothing
  in the pattern is trained.

The variants keep every hook point: ``hook_v``, ``hook_attn_scores`` (the scores actually used, ``-inf`` where
masked), ``hook_pattern`` (the attention actually applied), ``hook_z`` and ``hook_result``;
``hook_q``/``hook_k`` never fire because there are no queries or keys. ``W_Q``/``W_K``/``b_Q``/``b_K`` stay in
the module so that TransformerLens' weight accessors keep working, but they are zero, frozen and unused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens import HookedTransformerConfig
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry
from transformer_lens.components import Attention
from transformer_lens.utilities.attention import simple_attn_linear

from physlm.training.fast_path import (
    FastMode,
    attention_is_plain,
    fast_fixed_pattern_attention,
    fast_path_allowed,
    fast_softmax_attention,
)
from physlm.training.model_config import AttentionKind


class PhysAttention(Attention):
    """Attention with a selectable score rule and a training fast path (:mod:`physlm.training.fast_path`)."""

    fast_mode: FastMode = "train"

    def __init__(
        self,
        cfg: HookedTransformerConfig,
        layer_id: int,
        kind: AttentionKind = "softmax",
        position_scores: str = "relative",
        windows: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(cfg, "global", layer_id)
        self.kind = kind
        self.position_scores = position_scores
        if kind == "position_only":
            shape = (self.cfg.n_heads, self.cfg.n_ctx)
            if position_scores == "absolute":
                shape = (self.cfg.n_heads, self.cfg.n_ctx, self.cfg.n_ctx)
            elif position_scores != "relative":
                raise ValueError(f"position_scores must be 'relative' or 'absolute', got {position_scores!r}")
            self.pos_scores = nn.Parameter(torch.zeros(shape, dtype=self.cfg.dtype))
        elif kind == "uniform":
            if windows is None or len(windows) != self.cfg.n_heads or min(windows) < 1:
                raise ValueError(f"uniform attention needs one window >= 1 per head, got {windows}")
            # Not persistent: the windows are config, saved in ModelConfig, not weights.
            self.register_buffer("windows", torch.tensor(windows, dtype=torch.long), persistent=False)
        elif kind != "softmax":
            raise ValueError(f"unknown attention kind {kind!r}")
        if kind != "softmax":
            for name in ("W_Q", "W_K", "b_Q", "b_K"):
                param = getattr(self, name)
                with torch.no_grad():
                    param.zero_()
                param.requires_grad_(False)
        self.last_path: str | None = None
        """Which path the last forward took ("fast" or "reference"); for tests and profiling."""

    def fixed_scores(self, n_query: int, n_key: int, offset: int = 0) -> Float[Tensor, "head query key"]:
        """Pre-softmax scores of the position-only/uniform rule, ``-inf`` where attention is not allowed.

        Query ``i`` sits at position ``offset + i`` (``offset`` > 0 when generating with a KV cache).
        """
        device = self.W_V.device
        q_pos = torch.arange(offset, offset + n_query, device=device)
        k_pos = torch.arange(n_key, device=device)
        delta = q_pos[:, None] - k_pos[None, :]
        allowed = delta >= 0
        if self.kind == "position_only":
            if self.position_scores == "relative":
                scores = self.pos_scores[:, delta.clamp(min=0)]
            else:
                scores = self.pos_scores[:, q_pos][:, :, :n_key]
        elif self.kind == "uniform":
            allowed = allowed & (delta[None] < self.windows.to(device)[:, None, None])
            scores = torch.zeros(allowed.shape, dtype=self.W_V.dtype, device=device)
        else:
            raise ValueError("fixed_scores is only defined for position_only and uniform attention")
        return scores.masked_fill(~allowed, float("-inf"))

    def fast_forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        """The fast path on one normalised input (q, k and v all read ``x``); caller checks eligibility."""
        self.last_path = "fast"
        if self.kind == "softmax":
            return fast_softmax_attention(self, x, x, x)
        n_pos = x.shape[1]
        pattern = F.softmax(self.fixed_scores(n_pos, n_pos), dim=-1)
        return fast_fixed_pattern_attention(self, x, pattern)

    def forward(
        self,
        query_input: Tensor,
        key_input: Tensor,
        value_input: Tensor,
        past_kv_cache_entry: TransformerLensKeyValueCacheEntry | None = None,
        additive_attention_mask: Tensor | None = None,
        attention_mask: Tensor | None = None,
        position_bias: Tensor | None = None,
    ) -> Tensor:
        if (
            past_kv_cache_entry is None
            and additive_attention_mask is None
            and attention_mask is None
            and position_bias is None
            and query_input.dim() == 3
            and query_input.shape == key_input.shape == value_input.shape
            and attention_is_plain(self.cfg)
            and fast_path_allowed(self)
        ):
            self.last_path = "fast"
            if self.kind == "softmax":
                # TransformerLens' own block normalises q, k and v inputs separately (three tensors).
                return fast_softmax_attention(self, query_input, key_input, value_input)
            return self.fast_forward(value_input)
        self.last_path = "reference"
        if self.kind == "softmax":
            return super().forward(
                query_input,
                key_input,
                value_input,
                past_kv_cache_entry=past_kv_cache_entry,
                additive_attention_mask=additive_attention_mask,
                attention_mask=attention_mask,
                position_bias=position_bias,
            )
        return self._reference_fixed(
            value_input, past_kv_cache_entry, additive_attention_mask, attention_mask
        )

    def _reference_fixed(
        self,
        value_input: Tensor,
        past_kv_cache_entry: TransformerLensKeyValueCacheEntry | None,
        additive_attention_mask: Tensor | None,
        attention_mask: Tensor | None,
    ) -> Tensor:
        """Position-only / uniform attention through every TransformerLens hook point."""
        v = self.hook_v(simple_attn_linear(value_input, self.W_V, self.b_V))
        offset = 0
        if past_kv_cache_entry is not None:
            offset = past_kv_cache_entry.past_keys.size(1)
            # The cache stores keys too; these variants have none, so zeros keep its bookkeeping consistent.
            _, v = past_kv_cache_entry.append(torch.zeros_like(v), v)
        batch, n_query, n_key = v.shape[0], value_input.shape[1], v.shape[1]
        # A real per-batch tensor (not an expanded view) so hooks may edit it in place, as with softmax heads.
        scores = self.fixed_scores(n_query, n_key, offset).unsqueeze(0).expand(batch, -1, -1, -1).contiguous()
        if attention_mask is not None:
            keep = attention_mask[:, None, None, -n_key:].bool().to(scores.device)
            scores = scores.masked_fill(~keep, float("-inf"))
        if additive_attention_mask is not None:
            scores = scores + additive_attention_mask
        scores = self.hook_attn_scores(scores)
        pattern = F.softmax(scores, dim=-1)
        pattern = torch.where(torch.isnan(pattern), torch.zeros_like(pattern), pattern)
        pattern = self.hook_pattern(pattern).to(v.dtype)
        z = self.calculate_z_scores(v, pattern)
        if self.cfg.use_attn_result:
            result = self.hook_result(torch.einsum("bphd,hdm->bphm", z, self.W_O))
            return result.sum(dim=2) + self.b_O
        w = self.W_O.reshape(self.cfg.n_heads * self.cfg.d_head, self.cfg.d_model)
        return F.linear(z.reshape(batch, n_query, -1), w.T, self.b_O)

"""The prefix cache of the suffix-only V-probe (``embedding_update="suffix"``, a documented deviation).

When the embedding update applies to the appended suffix only, the frozen model's activations on the prefix do
not depend on the probe: the keys and values of every layer are computed once per *document* (attention is
causal, so every prefix of a document is a slice of the document's keys and values) and every epoch, layer,
target and population runs just the 5-9 suffix tokens against them. Exactly the same function as the full
forward pass with the update on the suffix tokens (the tests check it); on a CPU one epoch is about 3x cheaper
than the packed whole-embedding probe and 20x cheaper than one padded sequence per draw
(``benchmarks/igsm_vprobe.py``: 1.1 / 3.4 / 21 s per epoch of 1,200 tiny draws on one thread).

For the plain GPT blocks (softmax attention with rotary or learned positions) the suffix runs through a fused
forward (:func:`suffix_forward`: SDPA against the cached keys, rotated once per document); other variants run
TransformerLens' own KV-cache path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from physlm.probing.fit import FitConfig, FitHistory
from physlm.probing.vprobe import LowRankEmbeddingProbe


class PrefixCache:
    """Keys and values of every layer for a set of documents, computed once by a frozen model.

    Stored left-padded to the longest document: document ``i`` fills the last ``lengths[i]`` columns.
    """

    def __init__(
        self, keys: list[Tensor], values: list[Tensor], lengths: Tensor, cfg: Any, device: torch.device,
        rotary: list[tuple[Tensor, Tensor]] | None = None,
    ):
        self.keys, self.values, self.lengths, self.cfg, self.device = keys, values, lengths, cfg, device
        self.rotary = rotary
        """per layer, the (cos, sign-folded sin) rotary tables over the context (rotary models only)"""
        self._rotated: list[Tensor] | None = None

    @property
    def n_docs(self) -> int:
        """Number of documents held."""
        return int(self.lengths.shape[0])

    @classmethod
    @torch.no_grad()
    def build(
        cls, model: Any, docs: Sequence[Sequence[int]], batch_size: int = 16, max_len: int | None = None
    ) -> PrefixCache:
        """Run ``model`` over ``docs`` (left-padded batches of similar length; each cut to ``max_len``, default
        the model's context) and keep each one's K/V."""
        from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

        max_len = model.cfg.n_ctx if max_len is None else max_len
        docs = [list(d)[:max_len] for d in docs]
        if not docs or min(len(d) for d in docs) < 1:
            raise ValueError("need at least one non-empty document")
        device = next(model.parameters()).device
        lengths = torch.tensor([len(d) for d in docs])
        width = int(lengths.max())
        n_heads = model.cfg.n_key_value_heads or model.cfg.n_heads
        shape = (len(docs), width, n_heads, model.cfg.d_head)
        keys = [torch.zeros(shape, dtype=model.cfg.dtype, device=device) for _ in range(model.cfg.n_layers)]
        values = [torch.zeros_like(k) for k in keys]
        order = sorted(range(len(docs)), key=lambda i: len(docs[i]))
        for s in range(0, len(order), batch_size):
            chunk = order[s : s + batch_size]
            chunk_width = max(len(docs[i]) for i in chunk)
            tokens = torch.zeros(len(chunk), chunk_width, dtype=torch.long)
            mask = torch.zeros(len(chunk), chunk_width, dtype=torch.long)
            for r, i in enumerate(chunk):
                tokens[r, chunk_width - len(docs[i]) :] = torch.tensor(docs[i])
                mask[r, chunk_width - len(docs[i]) :] = 1
            cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, len(chunk))
            model(tokens.to(device), return_type=None, past_kv_cache=cache, attention_mask=mask.to(device))
            idx = torch.tensor(chunk, device=device)
            for layer, entry in enumerate(cache.entries):
                # padding stays on the left: the chunk's padded block is the tail of the full-width block
                keys[layer][idx, width - chunk_width :] = entry.past_keys * mask[..., None, None].to(device)
                values[layer][idx, width - chunk_width :] = entry.past_values * mask[..., None, None].to(device)
        rotary = None
        if model.cfg.positional_embedding_type == "rotary":
            from physlm.training.fast_path import rotary_tables

            rotary = [rotary_tables(b.attn, model.cfg.n_ctx) for b in model.blocks]
        return cls(keys, values, lengths.to(device), model.cfg, device, rotary)

    def batch(self, ids: Int[Tensor, " batch"], prefix_len: Int[Tensor, " batch"] | None = None) -> Any:
        """A frozen, left-padded TransformerLens KV cache holding the first ``prefix_len`` tokens (default:
        all) of the documents ``ids``."""
        from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

        ids = ids.to(self.device)
        doc_len = self.lengths[ids]
        lengths = doc_len if prefix_len is None else prefix_len.to(self.device)
        if bool((lengths > doc_len).any()) or bool((lengths < 1).any()):
            raise ValueError("a prefix is empty or longer than its cached document")
        full = self.keys[0].shape[1]
        width = int(lengths.max())
        columns = torch.arange(width, device=self.device)
        pad = (width - lengths)[:, None]
        # block column c of row r holds document column (full - doc_len + c - pad); padding columns point at
        # any valid column (the attention mask hides them)
        source = (full - doc_len)[:, None] + (columns[None, :] - pad).clamp(min=0)
        cache = TransformerLensKeyValueCache.init_cache(self.cfg, self.device, len(ids))
        for layer, entry in enumerate(cache.entries):
            entry.past_keys = self.keys[layer][ids[:, None], source]
            entry.past_values = self.values[layer][ids[:, None], source]
        cache.previous_attention_mask = (columns[None, :] >= pad).long()
        cache.freeze()
        return cache


    def gather(
        self, ids: Int[Tensor, " batch"], prefix_len: Int[Tensor, " batch"]
    ) -> tuple[list[Tensor], list[Tensor], Bool[Tensor, "batch width"]]:
        """Per layer, the rotated keys and the values ``[batch, head, width, d_head]`` of the first
        ``prefix_len`` tokens of documents ``ids`` (left-padded), and the mask of the real (non-pad) columns."""
        ids, lengths = ids.to(self.device), prefix_len.to(self.device)
        doc_len = self.lengths[ids]
        if bool((lengths > doc_len).any()) or bool((lengths < 1).any()):
            raise ValueError("a prefix is empty or longer than its cached document")
        full, width = self.keys[0].shape[1], int(lengths.max())
        columns = torch.arange(width, device=self.device)
        pad = (width - lengths)[:, None]
        source = (full - doc_len)[:, None] + (columns[None, :] - pad).clamp(min=0)
        keys = self.rotated_keys()
        return ([k[ids[:, None], source].transpose(1, 2) for k in keys],
                [v[ids[:, None], source].transpose(1, 2) for v in self.values],
                columns[None, :] >= pad)

    def rotated_keys(self) -> list[Tensor]:
        """The cached keys with rotary applied at each token's position in its document (once, then kept)."""
        if getattr(self, "_rotated", None) is None:
            if self.cfg.positional_embedding_type != "rotary":
                self._rotated = self.keys
            else:
                full = self.keys[0].shape[1]
                pos = (torch.arange(full, device=self.device)[None, :] - (full - self.lengths)[:, None]).clamp(min=0)
                assert self.rotary is not None
                self._rotated = [rotate(k.transpose(1, 2), pos, self.rotary[layer]).transpose(1, 2)
                                 for layer, k in enumerate(self.keys)]
        return self._rotated


def fused_suffix_supported(model: Any) -> bool:
    """Whether :func:`suffix_forward` reproduces ``model`` (plain pre-norm GPT blocks with softmax attention,
    rotary or learned absolute positions)."""
    from physlm.training.fast_path import attention_is_plain

    cfg = model.cfg
    plain_block = not (cfg.attn_only or cfg.parallel_attn_mlp or cfg.use_normalization_before_and_after
                       or cfg.use_attn_in or cfg.use_split_qkv_input or cfg.use_hook_mlp_in)
    # the fused forwards run no hook points: with any hook attached (patching, ablation, a planted signal) the
    # reference TransformerLens forward must run, or the user's intervention would be silently dropped
    hooked = any(hp.fwd_hooks or hp.bwd_hooks for hp in model.hook_dict.values())
    return (not hooked and plain_block and attention_is_plain(cfg)
            and cfg.positional_embedding_type in ("rotary", "standard")
            and all(getattr(b.attn, "kind", "softmax") == "softmax" for b in model.blocks))


def rotate(
    x: Float[Tensor, "batch head pos d_head"], positions: Int[Tensor, "batch pos"], tables: tuple[Tensor, Tensor]
) -> Float[Tensor, "batch head pos d_head"]:
    """GPT-NeoX rotary of ``x`` at per-row ``positions`` (TransformerLens' ``apply_rotary``), from the
    ``(cos, sign-folded sin)`` tables of :func:`physlm.training.fast_path.rotary_tables`."""
    cos, sin = (t[positions][:, None].to(x.dtype) for t in tables)
    rot = cos.shape[-1]
    half = rot // 2
    x_rot = x[..., :rot]
    out = x_rot * cos + torch.cat([x_rot[..., half:], x_rot[..., :half]], dim=-1) * sin
    return out if rot == x.shape[-1] else torch.cat([out, x[..., rot:]], dim=-1)


def pack_rows(
    ids: Int[Tensor, " batch"], prefix_len: Int[Tensor, " batch"]
) -> tuple[Tensor, Tensor, Tensor, int, Tensor]:
    """Group rows by document: (distinct documents, each row's document slot, its rank among the document's
    rows, the most rows of one document, the longest prefix each document needs)."""
    docs, inv = torch.unique(ids, return_inverse=True)
    counts = torch.bincount(inv, minlength=len(docs))
    order = torch.argsort(inv, stable=True)
    rank = torch.empty_like(inv)
    rank[order] = torch.arange(len(ids), device=ids.device) - (torch.cumsum(counts, 0) - counts)[inv[order]]
    need = torch.zeros(len(docs), dtype=torch.long, device=ids.device).scatter_reduce(0, inv, prefix_len, "amax")
    return docs, inv, rank, int(counts.max()), need


def suffix_forward(
    model: Any,
    cache: PrefixCache,
    ids: Int[Tensor, " batch"],
    prefix_len: Int[Tensor, " batch"],
    embed: Float[Tensor, "batch suffix d_model"],
    stop_at_layer: int,
) -> Float[Tensor, "batch suffix d_model"]:
    """The residual stream after block ``stop_at_layer - 1`` at the suffix tokens, whose token embeddings are
    ``embed``, continuing the cached prefixes (the model's own function; :func:`fused_suffix_supported`).

    Rows of one document are packed into one query sequence that reads the document's keys once: each row's
    suffix attends to its own prefix (a mask per row) and causally to its own suffix tokens only.
    """
    from physlm.training.fast_path import fast_mlp, fast_norm, merge_heads_out, project_heads

    device = embed.device
    ids, prefix_len = ids.to(device), prefix_len.to(device)
    docs, inv, rank, slots, need = pack_rows(ids, prefix_len)
    n_docs, n_suffix = len(docs), embed.shape[1]
    keys, values, _ = cache.gather(docs, need)
    width = keys[0].shape[2]
    # slot (doc, rank, j) holds suffix token j of the rank-th row of the doc
    steps = torch.arange(n_suffix, device=device)
    positions = torch.zeros(n_docs, slots, n_suffix, dtype=torch.long, device=device)
    positions[inv, rank] = prefix_len[:, None] + steps[None, :]
    lengths = torch.zeros(n_docs, slots, dtype=torch.long, device=device)
    lengths[inv, rank] = prefix_len
    token = torch.arange(width, device=device)[None, :] - (width - need)[:, None]  # index in the doc (< 0: pad)
    lengths = lengths.repeat_interleave(n_suffix, dim=1)
    prefix_ok = (token[:, None, :] >= 0) & (token[:, None, :] < lengths[:, :, None])
    slot, step = torch.arange(slots * n_suffix, device=device).div(n_suffix, rounding_mode="floor"), steps.repeat(slots)
    own_suffix = (slot[:, None] == slot[None, :]) & (step[None, :] <= step[:, None])
    mask = torch.cat([prefix_ok, own_suffix[None].expand(n_docs, -1, -1)], dim=-1)[:, None]
    positions = positions.view(n_docs, slots * n_suffix)
    x = embed.new_zeros(n_docs, slots, n_suffix, embed.shape[-1])
    x[inv, rank] = embed
    x = x.view(n_docs, slots * n_suffix, -1)
    if model.cfg.positional_embedding_type == "standard":
        x = x + model.pos_embed.W_pos[positions]
    for layer, block in enumerate(model.blocks[:stop_at_layer]):
        attn = block.attn
        q, k, v = project_heads(fast_norm(block.ln1, x), [attn.W_Q, attn.W_K, attn.W_V],
                                [attn.b_Q, attn.b_K, attn.b_V]).unbind(0)
        if model.cfg.positional_embedding_type == "rotary":
            tables = cache.rotary[layer]
            q, k = rotate(q, positions, tables), rotate(k, positions, tables)
        z = F.scaled_dot_product_attention(q, torch.cat([keys[layer], k], dim=2), torch.cat([values[layer], v], dim=2),
                                           attn_mask=mask, scale=1.0 / attn.attn_scale)
        x = x + merge_heads_out(attn, z)
        x = x + fast_mlp(block.mlp, fast_norm(block.ln2, x))
    return x.view(n_docs, slots, n_suffix, -1)[inv, rank]


class CachedVProbe(LowRankEmbeddingProbe):
    """:class:`LowRankEmbeddingProbe` with the update on the suffix only, run against a :class:`PrefixCache`."""

    reference: bool = False
    """run TransformerLens' KV-cache path even where the fused suffix forward applies (tests compare them)"""

    def forward_cached(
        self,
        cache: PrefixCache,
        prefix_id: Int[Tensor, " batch"],
        suffix: Int[Tensor, "batch suffix"],
        prefix_len: Int[Tensor, " batch"] | None = None,
    ) -> Float[Tensor, "batch classes"]:
        """Logits at the last suffix token with ΔE added to every suffix token; row r continues the first
        ``prefix_len[r]`` tokens (default: all) of cached document ``prefix_id[r]``."""
        suffix = suffix.to(cache.device)
        delta = self.down[0][suffix] @ self.up[0]
        if fused_suffix_supported(self.model) and not self.reference:
            lengths = cache.lengths[prefix_id.to(cache.device)] if prefix_len is None else prefix_len
            embed = self.model.embed.W_E[suffix] + delta
            resid = suffix_forward(self.model, cache, prefix_id, lengths, embed, self.layer + 1)
            return resid[:, -1] @ self.head[0] + self.head_bias[0]

        def add_update(embed: Tensor, hook: object) -> Tensor:
            return embed + delta

        kv = cache.batch(prefix_id, prefix_len)
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
        config: FitConfig | None = None,
        class_weight: Float[Tensor, " classes"] | None = None,
        prefix_len: Int[Tensor, " n"] | None = None,
        groups: Int[Tensor, " n"] | None = None,
    ) -> FitHistory:
        """Train the update and head (model frozen) with early stopping on held-out ``groups`` (problems; by
        default single examples); ``class_weight`` weights the cross-entropy per class."""
        from physlm.probing.igsm_fit import IGSM_VPROBE_FIT, train_probe

        if not prefix_id.shape[0] == suffix.shape[0] == labels.shape[0]:
            raise ValueError("prefix_id, suffix and labels need the same number of examples")

        def logits(idx: Tensor) -> Tensor:
            return self.forward_cached(cache, prefix_id[idx], suffix[idx],
                                       None if prefix_len is None else prefix_len[idx])

        return train_probe(self, logits, labels, config or IGSM_VPROBE_FIT, class_weight, groups)

    @torch.no_grad()
    def predict_cached(
        self,
        cache: PrefixCache,
        prefix_id: Int[Tensor, " n"],
        suffix: Int[Tensor, "n suffix"],
        batch_size: int = 256,
        prefix_len: Int[Tensor, " n"] | None = None,
    ) -> Int[Tensor, " n"]:
        """Predicted class per example."""
        parts = [
            self.forward_cached(cache, prefix_id[s : s + batch_size], suffix[s : s + batch_size],
                                None if prefix_len is None else prefix_len[s : s + batch_size]).cpu()
            for s in range(0, suffix.shape[0], batch_size)
        ]
        return torch.cat(parts).argmax(-1)

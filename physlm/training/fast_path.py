"""The training fast path: the same HookedTransformer parameters, computed with fused kernels.

While a module is in training mode and nothing can observe its internals, the blocks skip TransformerLens'
instrumented code: attention runs through ``F.scaled_dot_product_attention`` (causal, with rotary applied from
the precomputed tables), LayerNorm/RMSNorm through ``F.layer_norm``/``F.rms_norm``, the MLP through two
``addmm`` with a fused activation, and the three LayerNorm calls TransformerLens makes for q, k and v collapse
into one.

"Nothing can observe" means: no forward, forward-pre, backward or backward-pre hook on any submodule (every
HookPoint included; ``run_with_cache``, ``run_with_hooks`` and ``model.hooks()`` all attach such hooks), no
global module hooks, no KV cache, no attention or additive mask. Otherwise, and in eval mode by default, the
exact TransformerLens reference code runs, so analysis (``run_with_cache``, patching, generation) is
unchanged. :func:`physlm.training.set_fast_path` switches the policy: "train" (default), "always" (also in eval
mode), "never".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from torch.nn.modules import module as _torch_module
from transformer_lens import HookedTransformerConfig
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry
from transformer_lens.components import LayerNorm, RMSNorm, TransformerBlock
from transformer_lens.components.mlps.mlp import MLP

FastMode = Literal["train", "always", "never"]

_FAST_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    # gelu_new is GPT-2's tanh approximation; PyTorch's fused tanh GELU computes the same function.
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
}


def global_hooks_active() -> bool:
    """Whether any global ``nn.Module`` hook is registered (they would see every module call)."""
    return bool(
        _torch_module._global_forward_hooks
        or _torch_module._global_forward_pre_hooks
        or _torch_module._global_backward_hooks
        or _torch_module._global_backward_pre_hooks
    )


def has_hooks(module: nn.Module) -> bool:
    """Whether any strict descendant of ``module`` has a forward/backward (pre-)hook attached."""
    for sub in module.modules():
        if sub is module:
            continue
        if sub._forward_hooks or sub._forward_pre_hooks or sub._backward_hooks or sub._backward_pre_hooks:
            return True
    return False


def fast_path_allowed(module: nn.Module) -> bool:
    """The policy check shared by the fast modules (mode, training flag, hooks)."""
    mode: FastMode = getattr(module, "fast_mode", "train")
    if mode == "never" or (mode == "train" and not module.training):
        return False
    return not global_hooks_active() and not has_hooks(module)


def fast_norm(
    norm: nn.Module, x: Float[Tensor, "batch pos d_model"]
) -> Float[Tensor, "batch pos d_model"]:
    """LayerNorm / RMSNorm / identity with PyTorch's fused kernels (same function as TransformerLens')."""
    if isinstance(norm, LayerNorm):
        return F.layer_norm(x, (norm.length,), norm.w, norm.b, norm.eps)
    if isinstance(norm, RMSNorm):
        return F.rms_norm(x, (norm.length,), norm.w, norm.eps)
    if isinstance(norm, nn.Identity):
        return x
    return norm(x)


def fast_mlp(mlp: nn.Module, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
    """A GPT-2 MLP as two ``addmm`` and a fused activation; anything else runs its own forward."""
    act = _FAST_ACTIVATIONS.get(mlp.cfg.act_fn) if type(mlp) is MLP else None
    if act is None:
        return mlp(x)
    hidden = act(torch.addmm(mlp.b_in, x.reshape(-1, x.shape[-1]), mlp.W_in))
    return torch.addmm(mlp.b_out, hidden, mlp.W_out).view(x.shape)


class FastLayerNorm(LayerNorm):
    """TransformerLens LayerNorm (same parameters and hooks) that uses ``F.layer_norm`` on the fast path."""

    fast_mode: FastMode = "train"

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3 and fast_path_allowed(self):
            return fast_norm(self, x)
        return super().forward(x)


class FastRMSNorm(RMSNorm):
    """TransformerLens RMSNorm (same parameters and hooks) that uses ``F.rms_norm`` on the fast path."""

    fast_mode: FastMode = "train"

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3 and fast_path_allowed(self):
            return fast_norm(self, x)
        return super().forward(x)


def _block_is_plain(cfg: HookedTransformerConfig) -> bool:
    """Whether the block is the pre-norm GPT layout the fused block reproduces."""
    return not (
        cfg.attn_only
        or cfg.parallel_attn_mlp
        or cfg.use_normalization_before_and_after
        or cfg.use_attn_in
        or cfg.use_split_qkv_input
        or cfg.use_hook_mlp_in
        or cfg.n_key_value_heads is not None
    )


class FastBlock(TransformerBlock):
    """A TransformerLens block that runs fused when nothing observes it (see the module docstring).

    Same submodules, parameters, hook points and state_dict keys as :class:`TransformerBlock`; its ``attn``
    must provide ``fast_forward(x)`` (see :class:`physlm.training.attention_variants.PhysAttention`).
    """

    fast_mode: FastMode = "train"

    def forward(
        self,
        resid_pre: Float[Tensor, "batch pos d_model"],
        shortformer_pos_embed: Tensor | None = None,
        past_kv_cache_entry: TransformerLensKeyValueCacheEntry | None = None,
        attention_mask: Tensor | None = None,
    ) -> Float[Tensor, "batch pos d_model"]:
        if (
            shortformer_pos_embed is None
            and past_kv_cache_entry is None
            and attention_mask is None
            and _block_is_plain(self.cfg)
            and attention_is_plain(self.cfg)
            and hasattr(self.attn, "fast_forward")
            and fast_path_allowed(self)
        ):
            resid_mid = resid_pre + self.attn.fast_forward(fast_norm(self.ln1, resid_pre))
            return resid_mid + fast_mlp(self.mlp, fast_norm(self.ln2, resid_mid))
        return super().forward(resid_pre, shortformer_pos_embed, past_kv_cache_entry, attention_mask)


def rotary_tables(attn: nn.Module, n_pos: int) -> tuple[Tensor, Tensor]:
    """cos and sign-folded sin tables ``[n_pos, rotary_dim]`` from the module's precomputed rotary buffers.

    Folding rotate-half's sign into sin turns rotary into ``x * cos + swap_halves(x) * sin``; the result is
    cached on the module, keyed by the buffer's identity and version so in-place reloads invalidate it.
    """
    sin_buf, cos_buf = attn.rotary_sin, attn.rotary_cos
    if n_pos > cos_buf.shape[0]:
        attn._extend_rotary_embeddings(min(attn.cfg.n_ctx, max(n_pos, 2 * cos_buf.shape[0])))
        sin_buf, cos_buf = attn.rotary_sin, attn.rotary_cos
    key = ("rotary", n_pos, sin_buf.data_ptr(), sin_buf._version, cos_buf.data_ptr(), cos_buf._version)
    cache = attn.__dict__.setdefault("_fast_cache", {})
    if key not in cache:
        cache.clear()
        half = sin_buf.shape[1] // 2
        sin = sin_buf[:n_pos]
        signed = torch.cat([-sin[:, :half], sin[:, half:]], dim=-1)
        cache[key] = (cos_buf[:n_pos].contiguous(), signed.contiguous())
    return cache[key]


def apply_rotary_fast(
    x: Float[Tensor, "batch head pos d_head"],
    cos: Float[Tensor, "pos rot"],
    sin_signed: Float[Tensor, "pos rot"],
) -> Float[Tensor, "batch head pos d_head"]:
    """GPT-NeoX rotary on the first ``rot`` dims of ``x``, matching TransformerLens' ``apply_rotary``."""
    rot = cos.shape[-1]
    half = rot // 2
    x_rot = x[..., :rot]
    swapped = torch.cat([x_rot[..., half:], x_rot[..., :half]], dim=-1)
    rotated = x_rot * cos + swapped * sin_signed
    if rot == x.shape[-1]:
        return rotated
    return torch.cat([rotated, x[..., rot:]], dim=-1)


def alibi_mask(attn: nn.Module, n_pos: int, like: Tensor) -> Float[Tensor, "head pos pos"]:
    """ALiBi bias plus the causal ``-inf`` mask as one additive SDPA mask (cached per length/device/dtype)."""
    key = ("alibi", n_pos, like.device, like.dtype)
    cache = attn.__dict__.setdefault("_fast_cache", {})
    if key not in cache:
        cache.clear()
        bias = attn.create_alibi_bias(attn.cfg.n_heads, n_pos, like.device).to(like.dtype)
        causal = torch.ones(n_pos, n_pos, dtype=torch.bool, device=like.device).tril()
        cache[key] = bias.masked_fill(~causal, float("-inf"))
    return cache[key]


def project_heads(
    x: Float[Tensor, "batch pos d_model"],
    weights: list[Tensor],
    biases: list[Tensor],
) -> Float[Tensor, "n batch head pos d_head"]:
    """Project ``x`` with several ``[head, d_model, d_head]`` weights in one matmul -> ``[n, b, h, p, d]``."""
    n, (n_heads, d_model, d_head) = len(weights), weights[0].shape
    w = torch.cat(weights, dim=0).permute(1, 0, 2).reshape(d_model, n * n_heads * d_head)
    b = torch.cat(biases, dim=0).reshape(n * n_heads * d_head)
    out = torch.addmm(b, x.reshape(-1, d_model), w)
    return out.view(x.shape[0], x.shape[1], n, n_heads, d_head).permute(2, 0, 3, 1, 4)


def merge_heads_out(
    attn: nn.Module, z: Float[Tensor, "batch head pos d_head"]
) -> Float[Tensor, "batch pos d_model"]:
    """The output projection ``sum_h z_h W_O[h] + b_O`` as one matmul."""
    batch, n_heads, n_pos, d_head = z.shape
    flat = z.transpose(1, 2).reshape(batch * n_pos, n_heads * d_head)
    w_o = attn.W_O.reshape(n_heads * d_head, -1)
    return torch.addmm(attn.b_O, flat, w_o).view(batch, n_pos, -1)


def fast_softmax_attention(
    attn: nn.Module,
    x_q: Float[Tensor, "batch pos d_model"],
    x_k: Float[Tensor, "batch pos d_model"],
    x_v: Float[Tensor, "batch pos d_model"],
) -> Float[Tensor, "batch pos d_model"]:
    """Content attention through SDPA, with rotary/ALiBi/standard positions as configured.

    q, k and v read ``x_q``, ``x_k``, ``x_v``; passing one tensor three times fuses the projections.
    """
    if x_q is x_k and x_k is x_v:
        q, k, v = project_heads(x_q, [attn.W_Q, attn.W_K, attn.W_V], [attn.b_Q, attn.b_K, attn.b_V]).unbind(0)
    else:
        q, k, v = (
            project_heads(x, [w], [b]).squeeze(0)
            for x, w, b in ((x_q, attn.W_Q, attn.b_Q), (x_k, attn.W_K, attn.b_K), (x_v, attn.W_V, attn.b_V))
        )
    n_pos = x_q.shape[1]
    positional = attn.cfg.positional_embedding_type
    if positional == "rotary":
        cos, sin_signed = rotary_tables(attn, n_pos)
        q = apply_rotary_fast(q, cos.to(q.dtype), sin_signed.to(q.dtype))
        k = apply_rotary_fast(k, cos.to(k.dtype), sin_signed.to(k.dtype))
    scale = 1.0 / attn.attn_scale
    if positional == "alibi":
        z = F.scaled_dot_product_attention(q, k, v, attn_mask=alibi_mask(attn, n_pos, q), scale=scale)
    else:
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    return merge_heads_out(attn, z)


def fast_fixed_pattern_attention(
    attn: nn.Module, x: Float[Tensor, "batch pos d_model"], pattern: Float[Tensor, "head pos pos"]
) -> Float[Tensor, "batch pos d_model"]:
    """Attention whose pattern does not depend on the input (position-only, uniform): one broadcast matmul."""
    (v,) = project_heads(x, [attn.W_V], [attn.b_V]).unbind(0)
    return merge_heads_out(attn, torch.matmul(pattern.to(v.dtype), v))


def attention_is_plain(cfg: HookedTransformerConfig) -> bool:
    """Whether an attention config uses only features the fast path reproduces exactly."""
    return (
        cfg.attention_dir == "causal"
        and cfg.positional_embedding_type in ("standard", "rotary", "alibi")
        and not cfg.use_qk_norm
        and not cfg.use_attention_sinks
        and cfg.clip_qkv is None
        and not cfg.use_logn_attn
        and (cfg.attn_scores_soft_cap is None or cfg.attn_scores_soft_cap <= 0)
        and not cfg.load_in_4bit
        and not cfg.rotary_adjacent_pairs
        and cfg.n_key_value_heads is None
    )

"""The model configuration (:class:`ModelConfig`) and the named presets of the papers' architectures.

Variants (Part 1 spec §5.1), each a plain :class:`transformer_lens.HookedTransformer`:

* ``gpt``       learned absolute position embeddings (vanilla GPT-2).
* ``gpt_rot``   rotary position embeddings on q/k (GPT-NeoX style, full ``d_head``).
* ``gpt_alibi`` ALiBi linear distance biases (the relative-position variant TransformerLens supports; it
  stands in for the paper's DeBERTa-style GPT_rel, which TransformerLens does not implement).
* ``gpt_pos``   position-only attention: a learned per-layer, per-head score ``f(i - j)`` of the query-key
  offset replaces ``q . k`` (no content term, no positional embedding).
* ``gpt_uni``   uniform attention: head ``h`` averages a fixed window of the most recent tokens (see
  :attr:`ModelConfig.uniform_windows`), with no Q/K and nothing trained in the attention pattern.

Sizes: ``tiny`` (tests, 2L/64d), ``small`` (CPU, 4L/128d), ``medium`` (CPU/GPU, 6L/256d), ``gpt2`` (the
papers' GPT-2 small, 12L/768d/12 heads). All but ``tiny`` use the papers' 512-token context. Preset names join
the two: ``"gpt_rot-small"``, ``"gpt-tiny"``, ``"gpt_uni-gpt2"``. Every variant has the same shape at a given
size, for like-for-like comparisons (one third-party source gives GPT_uni 8 heads and 1024 dims "to match the
parameter count"; override ``n_heads``/``d_model`` to follow it). Presets leave ``d_vocab`` None: the task's
token table fills it in.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Literal

from physlm.config import Config

if TYPE_CHECKING:
    from transformer_lens import HookedTransformerConfig

Positional = Literal["standard", "rotary", "alibi", "none"]
AttentionKind = Literal["softmax", "position_only", "uniform"]


def default_uniform_windows(n_heads: int) -> tuple[int, ...]:
    """Window sizes ``2**h`` for heads ``h = 0 .. n_heads - 1``, counting the current token.

    The spec's two sources disagree ("head h averages the previous 2^h - 1 tokens" vs "head h averages the
    previous 2^(h-1) tokens, 1..128"). Read as "the previous 2^h - 1 tokens plus the current one" (0-based h)
    and "2^(h-1) tokens including the current one" (1-based h), both give the same windows 1, 2, 4, ..., which
    is the default.
    """
    return tuple(2**h for h in range(n_heads))


@dataclasses.dataclass(frozen=True)
class ModelConfig(Config):
    """Shape and architecture of a decoder-only HookedTransformer trained from scratch."""

    n_layers: int = 4
    """Number of transformer blocks."""
    d_model: int = 128
    """Width of the residual stream."""
    n_heads: int = 4
    """Attention heads per layer."""
    n_ctx: int = 512
    """Maximum context length (the papers train on 512-token windows)."""
    d_vocab: int | None = None
    """Vocabulary size; None until filled in from the task's token table (``config.replace(d_vocab=...)``)."""
    d_head: int | None = None
    """Per-head dimension; None means ``d_model // n_heads``."""
    d_mlp: int | None = None
    """MLP hidden width; None means ``4 * d_model``."""
    positional: Positional = "rotary"
    """Position information: learned absolute ("standard"), "rotary" on q/k, "alibi" biases, or "none" (only
    with position-only or uniform attention, whose patterns carry position themselves)."""
    attention: AttentionKind = "softmax"
    """Attention scores: content ``q . k`` ("softmax"), learned per-head scores of the position offset only
    ("position_only", GPT_pos), or fixed uniform averages over per-head windows ("uniform", GPT_uni)."""
    position_scores: Literal["relative", "absolute"] = "relative"
    """For position_only attention: scores ``f(i - j)`` of the offset (the spec's GPT_pos) or a full learned
    ``n_ctx x n_ctx`` query-key position table per head."""
    uniform_windows: tuple[int, ...] | None = None
    """For uniform attention: per-head window sizes, counting the current token (1 = attend to itself only);
    the same in every layer. None means 1, 2, 4, ..., 2**(n_heads - 1)."""
    act_fn: Literal["gelu_new", "gelu", "relu", "silu"] = "gelu_new"
    """MLP activation ("gelu_new" is GPT-2's tanh approximation)."""
    normalization: Literal["LN", "RMS", "none"] = "LN"
    """Pre-norm type in every block and before the unembedding."""
    rotary_base: int = 10000
    """Rotary frequency base (rotary positional only)."""
    init_std: float | None = None
    """Std of the normal init of weight matrices; None: TransformerLens' GPT-2 rule 0.8 / sqrt(d_model)."""
    seed: int = 0
    """Seed of the weight initialisation (a private torch.Generator; global RNG state is never touched)."""

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "n_ctx"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_vocab is not None and self.d_vocab < 1:
            raise ValueError(f"ModelConfig.d_vocab must be >= 1, got {self.d_vocab}")
        if self.d_head is None and self.d_model % self.n_heads != 0:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; set d_head explicitly"
            )
        if self.d_head is not None and self.d_head < 1:
            raise ValueError(f"ModelConfig.d_head must be >= 1, got {self.d_head}")
        if self.d_mlp is not None and self.d_mlp < 1:
            raise ValueError(f"ModelConfig.d_mlp must be >= 1, got {self.d_mlp}")
        if self.positional == "rotary" and self.attention == "softmax" and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even d_head, got {self.head_dim}")
        if self.positional == "none" and self.attention == "softmax":
            raise ValueError(
                "positional='none' is only valid with attention='position_only' or 'uniform': softmax "
                "attention would have no position information at all"
            )
        if self.positional == "alibi" and self.attention == "uniform":
            raise ValueError("ALiBi biases have no effect on fixed uniform attention; use positional='none'")
        if self.uniform_windows is not None:
            if self.attention != "uniform":
                raise ValueError("uniform_windows is only used with attention='uniform'")
            if len(self.uniform_windows) != self.n_heads:
                raise ValueError(
                    f"uniform_windows has {len(self.uniform_windows)} entries "
                    f"but there are {self.n_heads} heads"
                )
            if any(w < 1 for w in self.uniform_windows):
                raise ValueError(f"uniform windows must be >= 1 token, got {self.uniform_windows}")

    @property
    def head_dim(self) -> int:
        """The resolved per-head dimension."""
        return self.d_head if self.d_head is not None else self.d_model // self.n_heads

    @property
    def mlp_dim(self) -> int:
        """The resolved MLP hidden width."""
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model

    @property
    def windows(self) -> tuple[int, ...]:
        """The resolved per-head uniform-attention windows (meaningful for attention='uniform')."""
        if self.uniform_windows is not None:
            return self.uniform_windows
        return default_uniform_windows(self.n_heads)

    @property
    def weight_std(self) -> float:
        """The resolved init std of weight matrices."""
        return self.init_std if self.init_std is not None else 0.8 / math.sqrt(self.d_model)

    def to_hooked_config(self) -> HookedTransformerConfig:
        """The equivalent :class:`transformer_lens.HookedTransformerConfig` (CPU, float32).

        positional='none' maps to TransformerLens' "rotary" type, the one type that adds nothing to the
        residual stream and creates no embedding weights; position-only and uniform attention never apply the
        rotation.
        """
        from transformer_lens import HookedTransformerConfig

        if self.d_vocab is None:
            raise ValueError(
                "ModelConfig.d_vocab is None: set it from the task's token table, e.g. "
                "config.replace(d_vocab=token_table.d_vocab)"
            )
        positional = "rotary" if self.positional == "none" else self.positional
        return HookedTransformerConfig(
            n_layers=self.n_layers,
            d_model=self.d_model,
            n_heads=self.n_heads,
            d_head=self.head_dim,
            d_mlp=self.mlp_dim,
            n_ctx=self.n_ctx,
            d_vocab=self.d_vocab,
            act_fn=self.act_fn,
            normalization_type=None if self.normalization == "none" else self.normalization,
            positional_embedding_type=positional,
            rotary_dim=self.head_dim if positional == "rotary" else None,
            rotary_base=self.rotary_base,
            attention_dir="causal",
            original_architecture="physlm",
            init_weights=False,
            initializer_range=self.weight_std,
            # TransformerLens reseeds every global RNG when given a seed; physlm seeds a private generator.
            seed=None,
            device="cpu",
            default_prepend_bos=False,
        )


# (layers, d_model, heads, n_ctx). The papers' models are all GPT-2 small; the smaller ones are for CPU runs.
MODEL_SIZES: dict[str, tuple[int, int, int, int]] = {
    "tiny": (2, 64, 4, 128),
    "small": (4, 128, 4, 512),
    "medium": (6, 256, 8, 512),
    "gpt2": (12, 768, 12, 512),
}

# Architecture fields of each paper variant (spec §5.1). gpt_uni keeps the learned absolute embeddings of the
# GPT-2 it is built from ([inferred]: the sources do not say); override positional="none" to drop them.
MODEL_VARIANTS: dict[str, dict[str, Any]] = {
    "gpt": {"positional": "standard", "attention": "softmax"},
    "gpt_rot": {"positional": "rotary", "attention": "softmax"},
    "gpt_alibi": {"positional": "alibi", "attention": "softmax"},
    "gpt_pos": {"positional": "none", "attention": "position_only"},
    "gpt_uni": {"positional": "standard", "attention": "uniform"},
}


def _make_presets() -> dict[str, ModelConfig]:
    presets = {}
    for variant, arch in MODEL_VARIANTS.items():
        for size, (n_layers, d_model, n_heads, n_ctx) in MODEL_SIZES.items():
            presets[f"{variant}-{size}"] = ModelConfig(
                n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_ctx=n_ctx, **arch
            )
    return presets


MODEL_PRESETS: dict[str, ModelConfig] = _make_presets()
"""Every ``<variant>-<size>`` preset, with ``d_vocab=None`` (filled in from the task)."""


def model_preset(name: str, **overrides: Any) -> ModelConfig:
    """The named preset (``"gpt_rot-small"``), with any fields overridden (``d_vocab=...``, ``seed=...``)."""
    try:
        base = MODEL_PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(MODEL_PRESETS))
        raise KeyError(f"unknown model preset {name!r}; known presets: {known}") from None
    return base.replace(**overrides) if overrides else base

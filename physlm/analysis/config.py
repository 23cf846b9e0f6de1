"""Configs of the analysis stages (saved in the run's config.json next to what they produced)."""

from __future__ import annotations

import dataclasses

from physlm.config import Config


@dataclasses.dataclass(frozen=True)
class AttentionConfig(Config):
    """Attention statistics against the true parse (spec part 1, §3)."""

    n_windows: int = 256
    """packed training-layout windows (`BOS x EOS BOS x' EOS ...`) streamed through the model"""
    n_ctx: int | None = None
    """window length; None = the model's context length (the training layout)"""
    batch_size: int = 8
    """windows per forward pass (only one layer's pattern is reduced at a time, so memory stays small)"""
    seed: int = 1234
    """seed of the fresh sentences (a stream disjoint from training's by construction of the seed strings)"""
    max_delta: int = 2
    """attention to positions near NT-ends is measured at offsets δ = -max_delta..max_delta"""
    max_r: int = 8
    """largest ancestor-index distance r kept in the most-adjacent-NT-end statistics"""
    r_level_offsets: tuple[int, ...] = (0, 1)
    """r is measured at level ℓ - offset for a key that ends a level-ℓ subtree: 0 = the key's own
    level (p_ℓ(j) - p_ℓ(i), most adjacent r = 1), 1 = its parent level (r = 0: a left sibling)"""
    include_self: bool = False
    """count query == key pairs in the parse statistics (the position average Ā always includes them)"""

    def __post_init__(self) -> None:
        if self.n_windows < 1 or self.batch_size < 1:
            raise ValueError("n_windows and batch_size must be positive")
        if self.n_ctx is not None and self.n_ctx < 2:
            raise ValueError(f"n_ctx must be at least 2, got {self.n_ctx}")
        if self.max_delta < 0 or self.max_r < 0:
            raise ValueError("max_delta and max_r must be non-negative")
        if not self.r_level_offsets or any(o < 0 for o in self.r_level_offsets):
            raise ValueError(f"r_level_offsets must be non-negative and non-empty, got {self.r_level_offsets}")


@dataclasses.dataclass(frozen=True)
class GenerationConfig(Config):
    """Generation accuracy, diversity, KL to the grammar and robustness (spec part 1, §4)."""

    n_samples: int = 1000
    """completions per setting (cut0, cut50, each robustness cell); the paper uses 20,000"""
    n_kl_sentences: int = 200
    """fresh sentences over which KL(true || model) of the next-token distributions is averaged"""
    n_entropy_sentences: int = 500
    """fresh sentences for the Monte-Carlo grammar (string) entropy"""
    prefix_tokens: int = 50
    """the "cut50" prefix length when every sentence of the grammar is longer than it"""
    prefix_fraction: float = 0.5
    """otherwise the prefix is this fraction of the grammar's shortest sentence (short toy grammars)"""
    batch_size: int = 64
    """sequences sampled in parallel"""
    temperature: float = 1.0
    """sampling temperature of the accuracy/diversity runs (the paper: multinomial at 1, no top-k)"""
    use_kv_cache: bool = True
    """reuse keys/values while sampling (TransformerLens KV cache); False recomputes the whole prefix"""
    corruption_fractions: tuple[float, ...] = (0.15,)
    """fractions of prefix tokens flipped for the robustness runs (spec §4.4: 15%); empty = skip"""
    robust_temperatures: tuple[float, ...] = (1.0, 0.15)
    """temperatures of the robustness runs (the spec: robust accuracy needs τ ≈ 0.1-0.2)"""
    kl_smoothing: float = 1e-5
    """ε added to both distributions before renormalising (the official demo's convention)"""
    seed: int = 4321
    """seed of the fresh sentences and of the sampling generator"""

    def __post_init__(self) -> None:
        if self.n_samples < 1 or self.batch_size < 1:
            raise ValueError("n_samples and batch_size must be positive")
        if self.n_kl_sentences < 0 or self.n_entropy_sentences < 0:
            raise ValueError("n_kl_sentences and n_entropy_sentences must be non-negative")
        if self.prefix_tokens < 1:
            raise ValueError(f"prefix_tokens must be positive, got {self.prefix_tokens}")
        if not 0.0 < self.prefix_fraction < 1.0:
            raise ValueError(f"prefix_fraction must lie in (0, 1), got {self.prefix_fraction}")
        for t in (self.temperature, *self.robust_temperatures):
            if t <= 0:
                raise ValueError(f"temperatures must be positive, got {t}")
        for f in self.corruption_fractions:
            if not 0.0 <= f <= 1.0:
                raise ValueError(f"corruption fractions must lie in [0, 1], got {f}")
        if self.kl_smoothing < 0:
            raise ValueError(f"kl_smoothing must be non-negative, got {self.kl_smoothing}")

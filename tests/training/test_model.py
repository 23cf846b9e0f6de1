"""ModelConfig, presets, build_model and the position-only / uniform attention variants."""

from __future__ import annotations

import math

import pytest
import torch
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from physlm.training import MODEL_PRESETS, ModelConfig, build_model, model_preset
from physlm.training.model_config import MODEL_SIZES, MODEL_VARIANTS, default_uniform_windows

TINY = dict(n_layers=2, d_model=32, n_heads=4, d_mlp=64, n_ctx=64, d_vocab=10, seed=0)


def tokens(batch: int = 2, n_pos: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 10, (batch, n_pos), generator=torch.Generator().manual_seed(seed))


def test_config_defaults_resolve_and_round_trip() -> None:
    config = ModelConfig(n_layers=3, d_model=48, n_heads=6, n_ctx=32, d_vocab=7, attention="uniform",
                         positional="none", uniform_windows=(1, 2, 3, 5, 8, 13))
    assert (config.head_dim, config.mlp_dim) == (8, 192)
    assert ModelConfig.from_json(config.to_json()) == config
    default = ModelConfig(d_vocab=5, attention="uniform", positional="none")
    assert default.windows == (1, 2, 4, 8) and default.uniform_windows is None
    assert ModelConfig.from_json(default.to_json()) == default
    assert default_uniform_windows(5) == (1, 2, 4, 8, 16)


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(d_model=30, n_heads=4), "divisible"),
        (dict(positional="none"), "positional='none'"),
        (dict(attention="uniform", positional="alibi"), "ALiBi"),
        (dict(attention="uniform", uniform_windows=(1, 2)), "4 heads"),
        (dict(attention="uniform", uniform_windows=(1, 0, 2, 4)), ">= 1"),
        (dict(uniform_windows=(1, 2, 4, 8)), "only used with attention='uniform'"),
        (dict(n_layers=0), "n_layers"),
        (dict(d_head=7, positional="rotary"), "even d_head"),
    ],
)
def test_config_rejects_bad_fields(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{"n_heads": 4, "d_model": 32, **fields})


def test_presets_cover_variants_and_sizes() -> None:
    assert set(MODEL_PRESETS) == {f"{v}-{s}" for v in MODEL_VARIANTS for s in MODEL_SIZES}
    gpt2 = model_preset("gpt_rot-gpt2")
    assert (gpt2.n_layers, gpt2.d_model, gpt2.n_heads, gpt2.mlp_dim) == (12, 768, 12, 3072)
    assert model_preset("gpt-small").positional == "standard"
    assert model_preset("gpt_pos-tiny").attention == "position_only"
    assert model_preset("gpt_rot-small", d_vocab=9, seed=3).replace(d_vocab=None, seed=0) == MODEL_PRESETS[
        "gpt_rot-small"
    ]
    with pytest.raises(KeyError, match="gpt_rot-small"):
        model_preset("gpt_rot-huge")


@pytest.mark.parametrize("variant", sorted(MODEL_VARIANTS))
def test_every_tiny_preset_builds_and_trains_one_step(variant: str) -> None:
    model = build_model(model_preset(f"{variant}-tiny", d_vocab=11))
    loss = model(tokens(), return_type="loss")
    assert math.isfinite(loss.item()) and abs(loss.item() - math.log(11)) < 1.0
    loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in trainable), "a trainable parameter got no gradient (DDP hangs)"


def test_build_requires_vocab() -> None:
    with pytest.raises(ValueError, match="d_vocab is None"):
        build_model(model_preset("gpt-tiny"))


def test_seeded_init_is_deterministic_and_leaves_global_rng_alone(tiny_model_config) -> None:
    state = torch.random.get_rng_state()
    a = build_model(tiny_model_config).state_dict()
    b = build_model(tiny_model_config).state_dict()
    c = build_model(tiny_model_config.replace(seed=1)).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["blocks.0.attn.W_Q"], c["blocks.0.attn.W_Q"])
    std = a["blocks.0.mlp.W_in"].std().item()
    assert abs(std - tiny_model_config.weight_std) < 0.2 * tiny_model_config.weight_std


@pytest.mark.parametrize("positional", ["standard", "rotary", "alibi"])
def test_softmax_models_match_stock_transformer_lens(positional: str) -> None:
    """Same state_dict keys as a stock HookedTransformer, and the same logits after loading our weights."""
    config = ModelConfig(**TINY, positional=positional)
    ours = build_model(config).eval()
    stock = HookedTransformer(config.to_hooked_config(), move_to_device=False).eval()
    assert set(stock.state_dict()) == set(ours.state_dict())
    stock.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours(tokens()), stock(tokens()))


def test_uniform_pattern_follows_windows() -> None:
    windows = (1, 2, 3, 16)
    model = build_model(ModelConfig(**TINY, attention="uniform", positional="none", uniform_windows=windows))
    _, cache = model.run_with_cache(tokens(n_pos=20), names_filter=lambda n: n.endswith("hook_pattern"))
    pattern = cache["blocks.1.attn.hook_pattern"]
    i, j = torch.meshgrid(torch.arange(20), torch.arange(20), indexing="ij")
    for h, w in enumerate(windows):
        inside = (i - j >= 0) & (i - j < w)
        expected = inside.float() / inside.sum(-1, keepdim=True)
        torch.testing.assert_close(pattern[:, h], expected.expand_as(pattern[:, h]))
    assert all(not p.requires_grad for n, p in model.named_parameters() if n.split(".")[-1] in ("W_Q", "W_K"))


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_position_only_scores_depend_on_positions_only(kind: str) -> None:
    config = ModelConfig(**TINY, attention="position_only", positional="none", position_scores=kind)
    model = build_model(config)
    attn = model.blocks[0].attn
    with torch.no_grad():
        attn.pos_scores.normal_(generator=torch.Generator().manual_seed(1))
    names = ["blocks.0.attn.hook_attn_scores", "blocks.0.attn.hook_pattern"]
    _, cache_a = model.run_with_cache(tokens(seed=1), names_filter=names)
    _, cache_b = model.run_with_cache(tokens(seed=2), names_filter=names)
    torch.testing.assert_close(cache_a[names[1]], cache_b[names[1]])  # content never enters the pattern
    scores = cache_a[names[0]][0]
    for i in range(12):
        for j in range(12):
            table = attn.pos_scores[:, i - j] if kind == "relative" else attn.pos_scores[:, i, j]
            expected = table if j <= i else torch.full((4,), float("-inf"))
            torch.testing.assert_close(scores[:, i, j], expected)


@pytest.mark.parametrize("attention, positional", [("position_only", "none"), ("uniform", "standard")])
def test_fixed_pattern_variants_generate_with_kv_cache(attention: str, positional: str) -> None:
    """Incremental decoding through the KV cache reproduces the full forward pass."""
    model = build_model(ModelConfig(**TINY, attention=attention, positional=positional)).eval()
    if attention == "position_only":
        with torch.no_grad():
            for block in model.blocks:
                block.attn.pos_scores.normal_(generator=torch.Generator().manual_seed(2))
    toks = tokens(n_pos=10)
    full = model(toks)
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, toks.shape[0])
    # Without a tokenizer TransformerLens needs the (all-ones) attention mask of each new chunk.
    first = model(toks[:, :6], past_kv_cache=cache, attention_mask=torch.ones_like(toks[:, :6]))
    rest = model(toks[:, 6:], past_kv_cache=cache, attention_mask=torch.ones_like(toks[:, 6:]))
    torch.testing.assert_close(torch.cat([first, rest], dim=1), full, atol=1e-5, rtol=1e-5)


def test_alibi_leaves_no_untrained_embedding() -> None:
    model = build_model(ModelConfig(**TINY, positional="alibi"))
    assert not model.pos_embed.W_pos.requires_grad
    assert torch.count_nonzero(model.pos_embed.W_pos) == 0

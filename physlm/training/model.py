"""Build a seeded HookedTransformer from a :class:`ModelConfig`.

The result is a plain ``transformer_lens.HookedTransformer`` whose blocks, attention and norms are the
TransformerLens classes' subclasses from :mod:`physlm.training.fast_path` and :mod:`physlm.training.attention_variants`:
same parameters, state_dict keys and hook points, plus the position-only/uniform attention variants and the
training fast path.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformer_lens import HookedTransformer
from transformer_lens.components import LayerNorm, RMSNorm
from transformer_lens.utilities import TypedModuleList

from physlm.training.attention_variants import PhysAttention
from physlm.training.fast_path import FastBlock, FastLayerNorm, FastMode, FastRMSNorm
from physlm.training.model_config import ModelConfig


def _fast_norm_like(norm: nn.Module, cfg: object) -> nn.Module:
    if isinstance(norm, LayerNorm):
        return FastLayerNorm(cfg)
    if isinstance(norm, RMSNorm):
        return FastRMSNorm(cfg)
    return norm


def _build_block(config: ModelConfig, cfg: object, layer: int) -> FastBlock:
    block = FastBlock(cfg, layer)
    block.ln1 = _fast_norm_like(block.ln1, cfg)
    block.ln2 = _fast_norm_like(block.ln2, cfg)
    block.attn = PhysAttention(
        cfg,
        layer,
        kind=config.attention,
        position_scores=config.position_scores,
        windows=config.windows if config.attention == "uniform" else None,
    )
    return block


@torch.no_grad()
def init_weights(model: HookedTransformer, config: ModelConfig) -> None:
    """GPT-2 initialisation from a private generator seeded with ``config.seed``.

    Weight matrices ~ N(0, std) with ``std = config.weight_std``; the matrices that write into the residual
    stream (``W_O``, ``W_out``) get ``std / sqrt(2 n_layers)`` as in GPT-2; biases and position-only scores
    are 0, norm gains 1. Frozen (unused) parameters stay 0. Same seed and config give bit-identical weights.
    """
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    residual_std = config.weight_std / math.sqrt(2 * config.n_layers)
    for name, param in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if not param.requires_grad or not leaf.startswith("W_"):
            continue
        std = residual_std if leaf in ("W_O", "W_out") else config.weight_std
        values = torch.randn(param.shape, generator=gen, dtype=torch.float32) * std
        param.copy_(values.to(device=param.device, dtype=param.dtype))


def build_model(config: ModelConfig, device: str | torch.device = "cpu") -> HookedTransformer:
    """A freshly initialised HookedTransformer for ``config`` (seeded by ``config.seed``), on ``device``."""
    cfg = config.to_hooked_config()
    model = HookedTransformer(cfg, move_to_device=False)
    model.blocks = TypedModuleList([_build_block(config, model.cfg, i) for i in range(config.n_layers)])
    if hasattr(model, "ln_final"):
        model.ln_final = _fast_norm_like(model.ln_final, model.cfg)
    if config.positional in ("alibi", "none") and hasattr(model, "pos_embed"):
        # TransformerLens keeps an unused absolute embedding for ALiBi; freeze it so DDP and AdamW skip it.
        with torch.no_grad():
            model.pos_embed.W_pos.zero_()
        model.pos_embed.W_pos.requires_grad_(False)
    init_weights(model, config)
    model.setup()  # re-register module names and the hook dictionary after swapping modules
    nn.Module.to(model, device)  # HookedTransformer.to prints a line per call
    model.cfg.device = str(torch.device(device))
    return model


def set_fast_path(model: nn.Module, mode: FastMode) -> None:
    """Choose when the fused training path may run: "train" (default: training mode only, no hooks),
    "always" (also in eval mode, still never with hooks), or "never" (always the reference code)."""
    if mode not in ("train", "always", "never"):
        raise ValueError(f"fast path mode must be 'train', 'always' or 'never', got {mode!r}")
    for module in model.modules():
        if hasattr(type(module), "fast_mode"):
            module.fast_mode = mode

"""Batched autoregressive sampling from a HookedTransformer (multinomial, seeded, optional KV cache)."""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn


@dataclasses.dataclass(frozen=True)
class Continuations:
    """What a sampler returns for a batch of prefixes.

    ``tokens[b]`` are the sampled token ids after the prefix, up to and excluding the first EOS (or up to the
    end of the context when no EOS came). ``logprob[b]`` is the sum of log p_model (temperature 1) of every
    sampled token including that EOS, so it is log p_model(completion) when ``ended[b]``.
    """

    tokens: list[list[int]]
    ended: list[bool]
    logprob: list[float]


@runtime_checkable
class Sampler(Protocol):
    """Anything that continues a batch of equal-length prefixes (a model, or a stub in tests)."""

    def __call__(
        self, prefixes: Int[Tensor, "batch prefix"], temperature: float, generator: torch.Generator
    ) -> Continuations: ...


@torch.no_grad()
def sample_continuations(
    model: nn.Module,
    prefixes: Int[Tensor, "batch prefix"],
    eos_id: int,
    max_total_len: int,
    temperature: float,
    generator: torch.Generator,
    use_kv_cache: bool = True,
) -> Continuations:
    """Sample until every row has emitted EOS or the sequence reaches ``max_total_len`` tokens.

    Draws come from ``generator`` (a CPU ``torch.Generator``) on CPU copies of the logits, so a seed gives the
    same samples on any device and with or without the KV cache. ``model`` maps token ids to logits; the KV
    cache needs a HookedTransformer.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive (multinomial sampling), got {temperature}")
    batch, prefix_len = prefixes.shape
    if prefix_len < 1:
        raise ValueError("prefixes must hold at least the BOS token")
    if prefix_len >= max_total_len:
        raise ValueError(f"prefix length {prefix_len} leaves no room in a context of {max_total_len}")
    device = next(model.parameters()).device
    seq = prefixes.to(device)
    cache = None
    if use_kv_cache:
        from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

        cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, batch)
    step_input = seq
    out: list[list[int]] = [[] for _ in range(batch)]
    ended = [False] * batch
    logprob = torch.zeros(batch, dtype=torch.float64)
    while seq.shape[1] < max_total_len and not all(ended):
        if cache is not None:
            mask = torch.ones_like(step_input)
            logits = model(step_input, past_kv_cache=cache, attention_mask=mask)[:, -1]
        else:
            logits = model(seq)[:, -1]
        next_tok, lp = _draw(logits.detach().float().cpu(), temperature, generator)
        for b in range(batch):
            if ended[b]:
                continue
            logprob[b] += float(lp[b])
            if int(next_tok[b]) == eos_id:
                ended[b] = True
            else:
                out[b].append(int(next_tok[b]))
        step_input = next_tok.to(device)[:, None]
        seq = torch.cat([seq, step_input], dim=1)
    return Continuations(tokens=out, ended=ended, logprob=logprob.tolist())


def _draw(
    logits: Float[Tensor, "batch vocab"], temperature: float, generator: torch.Generator
) -> tuple[Int[Tensor, " batch"], Float[Tensor, " batch"]]:
    """One multinomial draw per row at ``temperature``, and its log-probability at temperature 1."""
    probs = torch.softmax(logits / temperature, dim=-1)
    tok = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    logp = torch.log_softmax(logits, dim=-1).gather(1, tok[:, None]).squeeze(1)
    return tok, logp


class ModelSampler:
    """A :class:`Sampler` backed by a HookedTransformer with a fixed context length."""

    def __init__(self, model: nn.Module, eos_id: int, n_ctx: int, use_kv_cache: bool = True):
        self.model, self.eos_id, self.n_ctx, self.use_kv_cache = model, eos_id, n_ctx, use_kv_cache

    def __call__(
        self, prefixes: Int[Tensor, "batch prefix"], temperature: float, generator: torch.Generator
    ) -> Continuations:
        return sample_continuations(
            self.model, prefixes, self.eos_id, self.n_ctx, temperature, generator, self.use_kv_cache
        )

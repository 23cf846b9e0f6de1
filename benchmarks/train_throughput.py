"""Training throughput of physlm's HookedTransformer against a stock one and a plain PyTorch GPT.

Three models of the same shape train side by side, their steps interleaved so machine load hits all alike:

* ``stock``:  ``transformer_lens.HookedTransformer`` built from the same ``HookedTransformerConfig``;
* ``physlm``: ``physlm.training.build_model`` in training mode (the fast path, :mod:`physlm.training.fast_path`);
* ``plain``:  a minimal PyTorch GPT (fused qkv ``nn.Linear``, ``F.scaled_dot_product_attention``, the same
  positional scheme) written below, the reference for the ">= 0.9x" target.

A step is forward + next-token loss + backward + AdamW update. Reported per model: median tokens/s over the
timed steps and the best step's tokens/s (the least disturbed by other load), memory (peak CUDA allocation on
GPU; on CPU, which has no allocator statistics, the bytes of the tensors autograd saves for backward, i.e. the
activation memory, measured in one extra untimed step), and the ratios to ``plain``.

    python benchmarks/train_throughput.py            # 6 layers, d_model 256, 8 heads, ctx 256, batch 32
    python benchmarks/train_throughput.py --quick    # fewer steps
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from physlm.training import ModelConfig, build_model  # noqa: E402


class PlainBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_mlp: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc_in = nn.Linear(d_model, d_mlp)
        self.fc_out = nn.Linear(d_mlp, d_model)

    def forward(self, x: Tensor, rotary: tuple[Tensor, Tensor] | None) -> Tensor:
        batch, n_pos, d_model = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d_model, dim=-1)
        q, k, v = (t.view(batch, n_pos, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))
        if rotary is not None:
            # GPT-NeoX rotate-half with the sign folded into the sin table, as physlm's fast path does.
            cos, sin_signed = rotary
            half = q.shape[-1] // 2
            q, k = (t * cos + torch.cat([t[..., half:], t[..., :half]], -1) * sin_signed for t in (q, k))
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(z.transpose(1, 2).reshape(batch, n_pos, d_model))
        return x + self.fc_out(F.gelu(self.fc_in(self.ln2(x)), approximate="tanh"))


class PlainGPT(nn.Module):
    """nanoGPT-style decoder with learned absolute ("standard") or GPT-NeoX rotary positions."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        assert config.d_vocab is not None
        self.embed = nn.Embedding(config.d_vocab, config.d_model)
        self.pos = nn.Embedding(config.n_ctx, config.d_model) if config.positional == "standard" else None
        self.blocks = nn.ModuleList(
            PlainBlock(config.d_model, config.n_heads, config.mlp_dim) for _ in range(config.n_layers)
        )
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.d_vocab)
        if config.positional == "rotary":
            d_head = config.head_dim
            inv_freq = 1.0 / config.rotary_base ** (torch.arange(0, d_head, 2).float() / d_head)
            angles = torch.arange(config.n_ctx).float()[:, None] * inv_freq[None, :]
            angles = torch.cat([angles, angles], dim=-1)
            self.register_buffer("cos", angles.cos(), persistent=False)
            sin = angles.sin()
            half = d_head // 2
            self.register_buffer("sin", torch.cat([-sin[:, :half], sin[:, half:]], -1), persistent=False)
        elif config.positional != "standard":
            raise ValueError("the plain reference implements standard and rotary positions")

    def forward(self, tokens: Tensor) -> Tensor:
        n_pos = tokens.shape[1]
        x = self.embed(tokens)
        if self.pos is not None:
            x = x + self.pos.weight[:n_pos]
        rotary = (self.cos[:n_pos], self.sin[:n_pos]) if self.pos is None else None
        for block in self.blocks:
            x = block(x, rotary)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def make_models(config: ModelConfig, device: torch.device) -> dict[str, tuple[nn.Module, Callable]]:
    from transformer_lens import HookedTransformer

    torch.manual_seed(config.seed)  # stock and plain init from the global RNG; only a benchmark does this
    hooked_cfg = config.to_hooked_config()
    hooked_cfg.init_weights = True
    stock = HookedTransformer(hooked_cfg, move_to_device=False).to(device)
    physlm = build_model(config, device=device)
    plain = PlainGPT(config).to(device)

    def tl_loss(model: nn.Module) -> Callable[[Tensor], Tensor]:
        return lambda tokens: model(tokens, return_type="loss")

    return {"stock": (stock, tl_loss(stock)), "physlm": (physlm, tl_loss(physlm)), "plain": (plain, plain)}


def saved_activation_bytes(loss_fn: Callable[[Tensor], Tensor], tokens: Tensor) -> int:
    """Bytes of the distinct storages autograd keeps for backward during one forward."""
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(tokens)
    loss.backward()
    return sum(seen.values())


def run(positional: str, args: argparse.Namespace, device: torch.device) -> dict[str, dict[str, float]]:
    config = ModelConfig(
        n_layers=args.layers, d_model=args.d_model, n_heads=args.heads, n_ctx=args.ctx, d_vocab=args.vocab,
        positional=positional, seed=0,
    )
    models = make_models(config, device)
    gen = torch.Generator().manual_seed(0)
    shape = (args.batch, args.ctx)
    batches = [torch.randint(0, args.vocab, shape, generator=gen).to(device) for _ in range(4)]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda" and args.bf16)
    optimizers = {name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
                  for name, (m, _) in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    memory: dict[str, float] = {}
    for model, _ in models.values():
        model.train()
    for step in range(args.warmup + args.steps):
        tokens = batches[step % len(batches)]
        # Rotate the order each step so no model always runs first (cache / frequency effects).
        names = list(models)
        names = names[step % len(names):] + names[: step % len(names)]
        for name in names:
            model, loss_fn = models[name]
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            with autocast:
                loss = loss_fn(tokens)
            loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
                memory[name] = max(memory.get(name, 0.0), torch.cuda.max_memory_allocated() / 2**20)
            if step >= args.warmup:
                times[name].append(time.perf_counter() - start)
            if not math.isfinite(loss.item()):
                raise RuntimeError(f"{name} produced a non-finite loss")
    if device.type != "cuda":
        for name, (model, loss_fn) in models.items():
            memory[name] = saved_activation_bytes(loss_fn, batches[0]) / 2**20
            model.zero_grad(set_to_none=True)
    tokens_per_step = args.batch * args.ctx
    return {
        name: {
            "tokens_per_s": tokens_per_step / statistics.median(times[name]),
            "best_tokens_per_s": tokens_per_step / min(times[name]),
            "memory_mib": memory[name],
        }
        for name in models
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 warm-up and 2 timed steps")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--ctx", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=64, help="CFG-sized vocabulary")
    parser.add_argument(
        "--positional", nargs="+", default=["rotary", "standard"], choices=["rotary", "standard"]
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="fp32 on GPU too")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup = 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    device = torch.device(args.device)
    mem_label = "peak MiB" if device.type == "cuda" else "saved-act MiB"
    print(
        f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} layers={args.layers} "
        f"d_model={args.d_model} heads={args.heads} ctx={args.ctx} batch={args.batch} vocab={args.vocab} "
        f"steps={args.steps} (+{args.warmup} warm-up)"
    )
    for positional in args.positional:
        results = run(positional, args, device)
        plain, plain_best = results["plain"]["tokens_per_s"], results["plain"]["best_tokens_per_s"]
        ratio = "vs plain"
        print(
            f"\n[{positional}]  {'model':<8}{'tokens/s':>10}{ratio:>10}{'best tok/s':>12}{ratio:>10}"
            f"{mem_label:>16}{ratio:>10}"
        )
        for name, res in results.items():
            print(
                f"[{positional}]  {name:<8}{res['tokens_per_s']:>10,.0f}{res['tokens_per_s'] / plain:>9.2f}x"
                f"{res['best_tokens_per_s']:>12,.0f}{res['best_tokens_per_s'] / plain_best:>9.2f}x"
                f"{res['memory_mib']:>16,.1f}{res['memory_mib'] / results['plain']['memory_mib']:>9.2f}x"
            )


if __name__ == "__main__":
    main()

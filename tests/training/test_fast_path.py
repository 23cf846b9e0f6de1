"""The training fast path gives the reference path's logits and gradients, and yields to hooks and caching."""

from __future__ import annotations

import pytest
import torch
from torch.nn.modules.module import register_module_forward_hook

from physlm.training import ModelConfig, build_model, set_fast_path

TINY = dict(n_layers=2, d_model=32, n_heads=4, d_mlp=64, n_ctx=64, d_vocab=10, seed=0)

VARIANTS = [
    dict(positional="standard"),
    dict(positional="rotary"),
    dict(positional="alibi"),
    dict(attention="position_only", positional="none"),
    dict(attention="position_only", positional="standard", position_scores="absolute"),
    dict(attention="uniform", positional="standard"),
    dict(attention="uniform", positional="none", uniform_windows=(1, 3, 5, 64)),
    dict(positional="rotary", normalization="RMS", act_fn="relu"),
    dict(positional="standard", normalization="none", act_fn="silu", d_head=6),
    dict(positional="rotary", act_fn="gelu"),
]


def tokens(batch: int = 3, n_pos: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 10, (batch, n_pos), generator=torch.Generator().manual_seed(seed))


def make(**fields) -> torch.nn.Module:
    model = build_model(ModelConfig(**{**TINY, **fields}))
    with torch.no_grad():  # position-only scores start at 0; make them matter
        for block in model.blocks:
            if hasattr(block.attn, "pos_scores"):
                block.attn.pos_scores.normal_(generator=torch.Generator().manual_seed(3))
    return model.train()


def logits_and_grads(model: torch.nn.Module, toks: torch.Tensor) -> tuple[torch.Tensor, dict]:
    model.zero_grad(set_to_none=True)
    logits = model(toks)
    loss = model.loss_fn(logits, toks)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return logits.detach(), grads


def paths(model: torch.nn.Module) -> set[str]:
    return {block.attn.last_path for block in model.blocks}


@pytest.mark.parametrize("fields", VARIANTS, ids=lambda f: "-".join(str(v) for v in f.values()))
def test_fast_and_reference_paths_agree(fields: dict) -> None:
    model = make(**fields)
    toks = tokens()
    fast_logits, fast_grads = logits_and_grads(model, toks)
    assert paths(model) == {"fast"}
    set_fast_path(model, "never")
    ref_logits, ref_grads = logits_and_grads(model, toks)
    assert paths(model) == {"reference"}
    torch.testing.assert_close(fast_logits, ref_logits, atol=2e-5, rtol=1e-4)
    assert fast_grads.keys() == ref_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(fast_grads[name], ref_grads[name], atol=2e-5, rtol=1e-4, msg=name)


def test_eval_mode_runs_the_reference_unless_asked() -> None:
    model = make(positional="rotary").eval()
    model(tokens())
    assert paths(model) == {"reference"}
    set_fast_path(model, "always")
    model(tokens())
    assert paths(model) == {"fast"}
    with pytest.raises((ValueError, TypeError)):  # TypeError when the test-time type checker sees it first
        set_fast_path(model, "sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "hook_name, attn_path",
    # A hook outside attention sends the block to TransformerLens' code, whose attention call may stay fast.
    [("blocks.0.attn.hook_pattern", "reference"), ("blocks.0.hook_resid_post", "fast"),
     ("blocks.0.ln1.hook_scale", "fast")],
)
def test_forward_hook_switches_to_reference(hook_name: str, attn_path: str) -> None:
    model = make(positional="rotary")
    toks = tokens()
    expected = model(toks).detach()
    seen = []
    with model.hooks(fwd_hooks=[(hook_name, lambda act, hook: seen.append(act.shape))]):
        logits = model(toks)
    assert seen, "the hook did not run: the fast path skipped it"
    assert model.blocks[0].attn.last_path == attn_path
    torch.testing.assert_close(logits, expected, atol=2e-5, rtol=1e-4)
    model(toks)
    assert paths(model) == {"fast"}, "removing the hook must bring the fast path back"


def test_backward_hook_switches_to_reference() -> None:
    model = make(positional="standard")
    grads = []
    with model.hooks(bwd_hooks=[("blocks.1.attn.hook_z", lambda grad, hook: grads.append(grad.shape))]):
        model(tokens(), return_type="loss").backward()
    assert model.blocks[1].attn.last_path == "reference"
    assert grads == [torch.Size([3, 24, 4, 8])]


def test_plain_pytorch_hooks_switch_to_reference() -> None:
    model = make(positional="alibi")
    expected = model(tokens()).detach()
    calls = []
    handle = model.blocks[1].mlp.register_forward_hook(lambda mod, args, out: calls.append("mlp"))
    logits = model(tokens())
    handle.remove()
    assert calls == ["mlp"], "the fused block skipped a hook on one of its modules"
    torch.testing.assert_close(logits, expected, atol=2e-5, rtol=1e-4)
    handle = register_module_forward_hook(lambda mod, args, out: None)
    try:
        model(tokens())
    finally:
        handle.remove()
    assert paths(model) == {"reference"}


def test_run_with_cache_in_training_mode_matches_eval() -> None:
    model = make(attention="uniform", positional="standard")
    toks = tokens()
    logits_train, cache_train = model.run_with_cache(toks)
    assert paths(model) == {"reference"}
    model.eval()
    logits_eval, cache_eval = model.run_with_cache(toks)
    assert cache_train.keys() == cache_eval.keys()
    assert "blocks.1.attn.hook_pattern" in cache_train.keys()
    torch.testing.assert_close(logits_train, logits_eval)
    for name in cache_eval.keys():
        torch.testing.assert_close(cache_train[name], cache_eval[name], msg=name)


def test_padding_mask_uses_the_reference_path() -> None:
    model = make(positional="rotary")
    mask = torch.ones(3, 24, dtype=torch.long)
    mask[0, :5] = 0
    model(tokens(), attention_mask=mask)
    assert paths(model) == {"reference"}


@pytest.mark.parametrize("fields", [dict(positional="rotary"), dict(attention="position_only", positional="none")])
def test_fast_training_is_bit_reproducible(fields: dict) -> None:
    def train() -> dict[str, torch.Tensor]:
        model = make(**fields)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        for step in range(2):
            model(tokens(seed=step), return_type="loss").backward()
            optimizer.step()
            optimizer.zero_grad()
        assert paths(model) == {"fast"}
        return model.state_dict()

    first, second = train(), train()
    assert all(torch.equal(first[name], second[name]) for name in first)

"""QA fine-tuning (physlm.training.bio_finetune): answer-only loss mask, LoRA that trains only its adapters and
merges exactly, full fine-tuning of every parameter, determinism."""

from __future__ import annotations

import copy

import pytest
import torch

from physlm.tasks.bio import BioConfig, bio_token_table, build_world
from physlm.tasks.bio.qa import qa_items
from physlm.training.bio_finetune import (
    LowRankUpdate,
    QAFinetuneConfig,
    attach_lora,
    finetune_lr,
    finetune_qa,
    has_lora,
    merge_lora,
    qa_batch,
    qa_training_items,
)
from physlm.training.model import build_model
from physlm.training.model_config import ModelConfig

TABLE = bio_token_table()


@pytest.fixture(scope="module")
def world():
    return build_world(BioConfig(n_people=40, seed=0))


@pytest.fixture(scope="module")
def base():
    """A tiny seeded model over the bio vocabulary (stands in for a pretrained one; never modified)."""
    return build_model(ModelConfig(n_layers=2, d_model=32, n_heads=4, n_ctx=64, d_vocab=TABLE.d_vocab, seed=0))


def _tokens(world, n=6):
    return qa_batch(qa_training_items(world)[:n], TABLE).tokens


def _short(**changes):
    return QAFinetuneConfig(**{"steps": 4, "batch_size": 8, "lr": 1e-2, "log_every": 2, **changes})


def test_config_validates_and_round_trips():
    config = QAFinetuneConfig(mode="full", lr=1e-3)
    assert QAFinetuneConfig.from_dict(config.to_dict()) == config
    for bad in ({"steps": 0}, {"lora_rank": 0, "embedding_rank": 0}, {"min_lr_ratio": 2.0}, {"lr": 0.0}):
        with pytest.raises(ValueError):
            QAFinetuneConfig(**bad)
    with pytest.raises((ValueError, TypeError)):  # the tests' runtime type checks reject it first
        QAFinetuneConfig(mode="adapter")


def test_learning_rate_is_cosine_to_ten_percent():
    config = QAFinetuneConfig(steps=100, lr=1e-3)
    rates = [finetune_lr(s, config) for s in range(101)]
    assert rates[0] == pytest.approx(1e-3) and rates[100] == pytest.approx(1e-4)
    assert rates[50] == pytest.approx(5.5e-4)
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_loss_mask_covers_exactly_the_answer_tokens(world):
    items = qa_items(world.people[0]) + qa_items(world.people[1])
    batch = qa_batch(items, TABLE)
    assert batch.loss_mask.shape == (len(items), batch.tokens.shape[1] - 1)
    for i, item in enumerate(items):
        row, mask, length = batch.tokens[i], batch.loss_mask[i], int(batch.lengths[i])
        assert row[0] == TABLE.bos_id and length == len(item.tokens) + 1
        assert TABLE.decode(row[1:length].tolist()) == list(item.tokens)
        assert (row[length:] == TABLE.pad_id).all()  # right padding
        # The masked targets are the value tokens then the closing period, nothing else.
        assert TABLE.decode(row[1:][mask].tolist()) == [*item.tokens[item.answer_start : item.answer_end], "."]
        assert int(mask.sum()) == len(item.answer)
        assert not mask[length - 1 :].any()  # no target in the padding


def test_lora_starts_as_the_base_model_and_keeps_hook_points(base, world):
    model = copy.deepcopy(base).eval()
    tokens = _tokens(world)
    with torch.no_grad():
        before = model(tokens)
    adapters = attach_lora(model, rank=4, embedding_rank=16, alpha=4.0, seed=0)
    assert len(adapters) == 2 * (2 * base.cfg.n_layers + 1)  # A and B of W_Q, W_V per block, and of W_E
    with torch.no_grad():
        assert torch.equal(model(tokens), before)  # A starts at zero: the update is exactly zero
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_q"))
    assert "blocks.1.attn.hook_q" in cache  # TransformerLens hook points still fire


def test_merged_model_gives_the_adapted_models_logits(base, world):
    model = copy.deepcopy(base).eval()
    attach_lora(model, rank=4, embedding_rank=16, seed=1)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LowRankUpdate):
                module.A.copy_(torch.randn(module.A.shape, generator=gen) * 0.1)
        tokens = _tokens(world)
        adapted = model(tokens)
        assert not torch.allclose(adapted, base.eval()(tokens))  # the update really changes the model
        merged = merge_lora(model)
        assert not has_lora(merged)
        assert list(merged.state_dict()) == list(base.state_dict())  # plain HookedTransformer keys again
        assert type(merged.blocks[0].attn) is type(base.blocks[0].attn)
        torch.testing.assert_close(merged(tokens), adapted, rtol=1e-5, atol=1e-5)


def test_lora_trains_only_the_adapters(base, world):
    snapshot = {k: v.clone() for k, v in base.state_dict().items()}
    result = finetune_qa(base, world, _short(lora_rank=4, embedding_rank=16), merge=False)
    model = result.model
    assert has_lora(model)
    for name, tensor in base.state_dict().items():
        assert torch.equal(tensor, snapshot[name]), f"the input model changed: {name}"
    for name, tensor in model.state_dict().items():
        if ".parametrizations." in name and name.endswith(".original"):
            base_name = name.replace("parametrizations.", "").removesuffix(".original")
            assert torch.equal(tensor, snapshot[base_name]), f"frozen base weight {base_name} changed"
        elif name.endswith((".A", ".B")):
            continue
        else:
            assert torch.equal(tensor, snapshot[name]), f"frozen weight {name} changed"
    trained = [m for m in model.modules() if isinstance(m, LowRankUpdate)]
    assert all(m.A.abs().sum() > 0 for m in trained)  # every adapter moved off zero
    assert result.n_trained_parameters == sum(p.numel() for m in trained for p in m.parameters())


def test_merged_lora_changes_only_query_value_and_embedding(base, world):
    model = finetune_qa(base, world, _short(lora_rank=4, embedding_rank=16)).model
    assert not has_lora(model) and not model.training
    changed = {n for n, t in model.state_dict().items() if not torch.equal(t, base.state_dict()[n])}
    assert changed == {"embed.W_E"} | {f"blocks.{i}.attn.{w}" for i in range(2) for w in ("W_Q", "W_V")}
    assert all(p.requires_grad == q.requires_grad for p, q in zip(model.parameters(), base.parameters()))


def test_full_mode_trains_every_parameter(base, world):
    result = finetune_qa(base, world, _short(mode="full"))
    trainable = [p for p in base.parameters() if p.requires_grad]
    assert result.n_trained_parameters == sum(p.numel() for p in trainable)
    after = result.model.state_dict()
    for name, tensor in base.state_dict().items():
        if name.rsplit(".", 1)[-1].startswith("W_"):
            assert not torch.equal(after[name], tensor), f"{name} did not train"


def test_finetuning_is_deterministic_and_logs_history(base, world):
    config = _short(lora_rank=2, embedding_rank=8, steps=5)
    first, second = finetune_qa(base, world, config), finetune_qa(base, world, config)
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [r.step for r in first.history] == [2, 4, 5]
    assert first.history == second.history
    assert first.n_items == 6 * len(world.train_people)


def test_full_finetuning_lowers_the_answer_loss(base, world):
    config = QAFinetuneConfig(mode="full", steps=40, batch_size=16, lr=3e-3, log_every=10)
    history = finetune_qa(base, world, config, people=world.train_people[:5]).history
    assert history[-1].loss < 0.5 * history[0].loss


def test_rejects_a_model_of_another_vocabulary(world, tiny_model):
    with pytest.raises(ValueError, match="d_vocab"):
        finetune_qa(tiny_model, world, _short())

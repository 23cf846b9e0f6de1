"""The data streams, the optimiser setup, the schedule and the training loop (tiny models, CPU)."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from physlm.tasks.base import TokenTable
from physlm.training import ModelConfig
from physlm.training.data import (
    BatchStream,
    DatasetDocuments,
    PrefetchingStream,
    TaskDocuments,
    fixed_batches,
    lane_share,
)
from physlm.training.train_config import TrainConfig
from physlm.training.trainer import Trainer, lr_at, masked_loss_sum, parameter_groups

TABLE = TokenTable(task="toy", tokens=("<pad>", "<bos>", "<eos>", "<mask>", "a", "b", "c", "d"))
BOS, EOS, PAD = 1, 2, 0


class ToyTask:
    """Documents of 1..max_len tokens; each continues a cycle a->b->c->d from a random start."""

    token_table = TABLE

    def __init__(self, max_len: int = 9):
        self.max_len = max_len

    def sample_document(self, rng: random.Random) -> list[int]:
        start, n = rng.randrange(4), rng.randint(1, self.max_len)
        return [4 + (start + i) % 4 for i in range(n)]


def tiny_config(**changes) -> ModelConfig:
    base = dict(
        n_layers=1, d_model=16, n_heads=2, n_ctx=16, d_vocab=TABLE.d_vocab, positional="rotary", seed=0
    )
    base.update(changes)
    return ModelConfig(**base)


def train_config(**changes) -> TrainConfig:
    base = dict(
        steps=4,
        batch_size=4,
        seq_len=16,
        lr=3e-3,
        eval_every=2,
        eval_batches=1,
        save_every=0,
        log_every=1,
        device="cpu",
        warmup_steps=1,
    )
    base.update(changes)
    return TrainConfig(**base)


def split_documents(row: list[int]) -> list[list[int]]:
    """Cut a packed window at BOS into framed pieces (the first may start mid-document)."""
    pieces, current = [], []
    for tok in row:
        if tok == BOS and current:
            pieces.append(current)
            current = []
        current.append(tok)
    pieces.append(current)
    return pieces


# -- data -----------------------------------------------------------------------------------------------
def test_packed_windows_continue_one_document_stream_per_row():
    source = TaskDocuments(ToyTask(), seed=3)
    stream = BatchStream(source, "train", global_batch=2, seq_len=8)
    rows = [next(stream).tokens[1].tolist() for _ in range(6)]
    flat = [t for row in rows for t in row]
    # lane 1 reads documents 1, 3, 5, ... of the stream, framed as BOS x EOS, back to back
    expected: list[int] = []
    k = 1
    while len(expected) < len(flat):
        expected += [BOS, *source.document("train", k), EOS]
        k += 2
    assert flat == expected[: len(flat)]
    assert next(stream).loss_mask.all()


def test_stream_resumes_exactly_from_its_state():
    source = TaskDocuments(ToyTask(), seed=0)
    for layout in ("packed", "padded"):
        full = BatchStream(source, "train", 3, 10, layout)
        for _ in range(3):
            next(full)
        state = json.loads(json.dumps(full.state_dict()))  # must survive JSON (it goes into checkpoint.json)
        rest = [next(full) for _ in range(3)]
        resumed = BatchStream(source, "train", 3, 10, layout)
        resumed.load_state_dict(state)
        for a, b in zip(rest, (next(resumed) for _ in range(3))):
            assert torch.equal(a.tokens, b.tokens) and torch.equal(a.loss_mask, b.loss_mask)


def test_prefetching_gives_the_same_batches_and_an_exact_state():
    source = TaskDocuments(ToyTask(), seed=2)
    plain = BatchStream(source, "train", 2, 12)
    ahead = PrefetchingStream(BatchStream(source, "train", 2, 12), depth=3)
    for _ in range(2):
        assert torch.equal(next(plain).tokens, next(ahead).tokens)
    assert ahead.state_dict() == plain.state_dict()  # not the read-ahead position
    ahead.close()
    assert ahead.state_dict() == plain.state_dict()
    assert torch.equal(next(plain).tokens, next(ahead).tokens)  # restarts where it was consumed
    ahead.close()


def test_streams_are_seeded_and_eval_is_held_out():
    def first(seed, stream):
        return next(BatchStream(TaskDocuments(ToyTask(), seed), stream, 4, 16)).tokens

    assert torch.equal(first(0, "train"), first(0, "train"))
    assert not torch.equal(first(0, "train"), first(1, "train"))
    assert not torch.equal(first(0, "train"), first(0, "eval"))


def test_lane_shares_rebuild_the_global_batch():
    source = TaskDocuments(ToyTask(), seed=1)
    whole = BatchStream(source, "train", 4, 12)
    parts = [BatchStream(source, "train", 4, 12, lanes=lane_share(4, 2, r)) for r in range(2)]
    for _ in range(3):
        assert torch.equal(next(whole).tokens, torch.cat([next(p).tokens for p in parts]))
    with pytest.raises(ValueError, match="not divisible"):
        lane_share(5, 2, 0)


def test_padded_layout_masks_padding_and_drops_long_documents():
    stream = BatchStream(TaskDocuments(ToyTask(max_len=12), 0), "train", 8, 8, "padded")
    batch = next(stream)
    for row, mask in zip(batch.tokens.tolist(), batch.loss_mask.tolist()):
        length = row.index(EOS) + 1
        assert row[0] == BOS and length <= 8 and all(t == PAD for t in row[length:])
        assert mask == [j + 1 < length for j in range(7)]
    packed = BatchStream(TaskDocuments(ToyTask(max_len=12), 0), "train", 2, 8, drop_long_documents=True)
    for _ in range(5):
        for row in next(packed).tokens.tolist():
            assert all(len(piece) <= 8 for piece in split_documents(row)[1:])


def test_masked_loss_ignores_masked_targets():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 8, generator=gen)
    tokens = torch.randint(0, 8, (2, 5), generator=gen)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    total, count = masked_loss_sum(logits, tokens, mask)
    other = tokens.clone()
    other[0, 3:] = (other[0, 3:] + 1) % 8  # change only masked targets
    assert int(count) == 6
    assert torch.allclose(total, masked_loss_sum(logits, other, mask)[0])
    assert not torch.allclose(total, masked_loss_sum(logits, other, torch.ones_like(mask))[0])


def test_dataset_documents_read_a_saved_dataset(tmp_path):
    import datasets

    rows = [[1, 2, 3], [2, 3], [3, 1, 1, 2], [1], [2, 2], [3, 3, 3]] * 4
    datasets.Dataset.from_dict({"symbols": rows}).save_to_disk(str(tmp_path / "ds"))
    source = DatasetDocuments(tmp_path / "ds", TABLE, seed=0, column="symbols", id_offset=3)
    n_train = len(rows) - max(1, len(rows) // 20)
    seen = sorted(tuple(source.document("train", k)) for k in range(n_train))  # one epoch: a permutation
    assert seen == sorted(tuple(v + 3 for v in r) for r in rows[:n_train])
    assert source.document("eval", 0) == [v + 3 for v in rows[-1]]
    with pytest.raises(ValueError, match="outside"):
        DatasetDocuments(tmp_path / "ds", TABLE, seed=0, column="symbols", id_offset=10).document("train", 0)
    with pytest.raises(ValueError, match="no column"):
        DatasetDocuments(tmp_path / "ds", TABLE, seed=0, column="input_ids")


# -- optimiser and schedule ------------------------------------------------------------------------------
def test_lr_schedules():
    cfg = TrainConfig(steps=10, lr=1.0, warmup_steps=2, schedule="cosine", min_lr_ratio=0.1)
    assert [lr_at(s, cfg) for s in (0, 1)] == [0.5, 1.0]
    assert lr_at(2, cfg) == pytest.approx(1.0)
    assert lr_at(6, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(10, cfg) == pytest.approx(0.1)
    linear = cfg.replace(schedule="linear", min_lr_ratio=0.0, warmup_steps=0)
    assert lr_at(0, linear) == 1.0 and lr_at(5, linear) == pytest.approx(0.5)
    assert lr_at(7, cfg.replace(schedule="constant")) == 1.0


def test_weight_decay_skips_biases_and_norms(tiny_model_factory):
    model = tiny_model_factory(positional="standard")
    names = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = ({names[id(p)] for p in g["params"]} for g in parameter_groups(model, 0.1, True))
    assert {"blocks.0.attn.W_Q", "blocks.0.mlp.W_in", "unembed.W_U", "embed.W_E", "pos_embed.W_pos"} <= decay
    assert {"blocks.0.attn.b_Q", "blocks.0.ln1.w", "blocks.0.ln1.b", "ln_final.w", "unembed.b_U"} <= no_decay
    _, no_decay = ({names[id(p)] for p in g["params"]} for g in parameter_groups(model, 0.1, False))
    assert {"embed.W_E", "pos_embed.W_pos"} <= no_decay


# -- the loop -------------------------------------------------------------------------------------------
def run(tmp_path, name, **changes):
    trainer = Trainer(
        tiny_config(),
        ToyTask(),
        train_config(**changes),
        out_dir=tmp_path / name,
        progress=False,
    )
    summary = trainer.train()
    return trainer, summary


def test_same_seed_gives_bit_identical_weights(tmp_path):
    a, sa = run(tmp_path, "a")
    b, sb = run(tmp_path, "b")
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert sa.train_loss == sb.train_loss and sa.eval_loss == sb.eval_loss
    c, _ = run(tmp_path, "c", seed=1)
    assert not torch.equal(a.model.unembed.W_U, c.model.unembed.W_U)


def test_training_lowers_loss_and_writes_metrics(tmp_path):
    trainer, summary = run(tmp_path, "run", steps=16, eval_every=8, log_every=4)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [x for x in lines if "loss" in x]
    evals = [x for x in lines if "eval_loss" in x]
    assert [x["step"] for x in train] == [4, 8, 12, 16]
    assert [x["step"] for x in evals] == [8, 16]
    assert all(x["tokens_per_s"] > 0 and x["grad_norm"] > 0 for x in train)
    # the toy documents are deterministic cycles after their first token: learnable, below uniform log(8)
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"] < math.log(8)
    assert summary.eval_loss == evals[-1]["eval_loss"] and summary.step == 16
    assert summary.checkpoint is not None and summary.checkpoint.name == "step_00000016"
    assert trainer.train().checkpoint is None  # already finished: nothing to do, nothing rewritten
    # the same held-out batches every evaluation, and in a fresh trainer
    assert trainer.evaluate() == pytest.approx(summary.eval_loss, abs=0)
    eval_set = fixed_batches(TaskDocuments(ToyTask(), 0), 1, 4, 16)
    assert torch.equal(eval_set[0].tokens, trainer.eval_batches()[0].tokens)


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="d_vocab"):
        Trainer(tiny_config(d_vocab=9), TaskDocuments(ToyTask(), 0), train_config(), progress=False)
    with pytest.raises(ValueError, match="n_ctx"):
        Trainer(tiny_config(), TaskDocuments(ToyTask(), 0), train_config(seq_len=32), progress=False)
    with pytest.raises(TypeError, match="physlm.tasks.base.Task"):
        TaskDocuments(object(), 0)
    with pytest.raises(ValueError, match="seed"):
        Trainer(tiny_config(), TaskDocuments(ToyTask(), 5), train_config(), progress=False)

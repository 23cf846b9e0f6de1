"""Checkpoints: exact resume, atomic saves, clear errors on damaged or mismatched checkpoints, load_model."""

from __future__ import annotations

import json
import random

import pytest
import torch

import physlm.training.checkpoint as ckpt_mod
from physlm.tasks.base import TokenTable
from physlm.training import ModelConfig
from physlm.training.checkpoint import CheckpointError, latest_checkpoint, list_checkpoints
from physlm.training.load import load_model
from physlm.training.train_config import TrainConfig
from physlm.training.trainer import Trainer

TABLE = TokenTable(task="toy", tokens=("<pad>", "<bos>", "<eos>", "<mask>", "a", "b", "c", "d"))


class ToyTask:
    """Short documents continuing a cycle a->b->c->d from a random start."""

    token_table = TABLE

    def sample_document(self, rng: random.Random) -> list[int]:
        start, n = rng.randrange(4), rng.randint(1, 9)
        return [4 + (start + i) % 4 for i in range(n)]


MODEL = ModelConfig(n_layers=1, d_model=16, n_heads=2, n_ctx=16, d_vocab=TABLE.d_vocab, seed=0)


def make_trainer(out, **changes) -> Trainer:
    base = dict(steps=6, batch_size=4, seq_len=16, lr=3e-3, warmup_steps=2, schedule="cosine", eval_every=3,
                eval_batches=1, save_every=3, log_every=1, device="cpu")
    base.update(changes)
    return Trainer(MODEL, ToyTask(), TrainConfig(**base), out_dir=out, progress=False)


@pytest.fixture
def trained_run(tmp_path):
    """A finished 3-step run with a checkpoint at step 3."""
    trainer = make_trainer(tmp_path / "run", steps=3)
    trainer.train()
    return tmp_path / "run", trainer


def losses(run_dir):
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(x["step"], x.get("loss"), x.get("eval_loss")) for x in lines]


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    full = make_trainer(tmp_path / "full")
    full.train()

    first = make_trainer(tmp_path / "resumed")
    first.train(until=3)  # stop at step 3 as if interrupted (a checkpoint is written there)
    (tmp_path / "resumed" / "metrics.jsonl").open("a").write('{"step": 4, "loss": 9.0}\n')  # died after it
    second = make_trainer(tmp_path / "resumed")
    second.restore(latest_checkpoint(tmp_path / "resumed" / "checkpoints"))
    assert second.step == 3
    second.train()

    for (name, a), b in zip(full.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume"
    for group_a, group_b in zip(full.optimizer.state_dict()["state"].values(),
                                second.optimizer.state_dict()["state"].values()):
        assert torch.equal(group_a["exp_avg_sq"], group_b["exp_avg_sq"])
    # the metrics line written after the checkpoint was dropped, and the curves agree
    assert losses(tmp_path / "full") == losses(tmp_path / "resumed")


def test_resume_refuses_a_different_setup(trained_run):
    run_dir, _ = trained_run
    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    with pytest.raises(CheckpointError, match=r"lr: 0\.003 \(checkpoint\) vs 0\.001"):
        make_trainer(run_dir, steps=3, lr=1e-3).restore(checkpoint)
    extended = make_trainer(run_dir, steps=5)  # more steps is allowed (with a warning in the log)
    extended.restore(checkpoint)
    assert extended.train().step == 5


def test_load_model_gives_an_eval_model_with_its_vocabulary(trained_run):
    run_dir, trainer = trained_run
    loaded = load_model(run_dir)
    assert loaded.step == 3 and loaded.token_table == TABLE and loaded.model_config == MODEL
    assert loaded.train_config == trainer.config and not loaded.model.training
    assert loaded.meta["versions"]["torch"] != "not installed" and loaded.meta["seed"] == 0
    tokens = torch.tensor([[1, 4, 5, 6, 7, 2]])
    logits, cache = loaded.model.run_with_cache(tokens, names_filter="blocks.0.hook_resid_post")
    assert cache["blocks.0.hook_resid_post"].shape == (1, 6, 16)
    trainer.model.eval()
    assert torch.allclose(logits, trainer.model(tokens))
    # a checkpoint directory and the checkpoints/ directory work too
    assert load_model(loaded.path).step == 3 and load_model(run_dir / "checkpoints").step == 3
    assert load_model(loaded.path / "model.safetensors").path == loaded.path


def test_truncated_or_missing_files_give_clear_errors(trained_run):
    run_dir, _ = trained_run
    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    weights = checkpoint / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors is truncated"):
        load_model(run_dir)
    with pytest.raises(CheckpointError, match="truncated"):
        make_trainer(run_dir, steps=3).restore(checkpoint)
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF
    weights.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_model(run_dir)
    weights.unlink()
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        load_model(run_dir)
    (checkpoint / "checkpoint.json").write_text('{"format": "physlm-checkpoint", "st')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(run_dir)
    (run_dir.parent / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no physlm checkpoint"):
        load_model(run_dir.parent / "empty")


def test_config_not_matching_the_weights_is_reported(trained_run):
    run_dir, _ = trained_run
    meta_path = latest_checkpoint(run_dir / "checkpoints") / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta["model_config"]["d_model"] = 32
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"does not match the saved weights: .*W_E: config gives shape"):
        load_model(run_dir)
    meta["model_config"]["d_model"], meta["model_config"]["n_layers"] = 16, 2
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"missing from the weights: blocks\.1\."):
        load_model(run_dir)
    meta["model_config"]["n_layers"], meta["model_config"]["d_vocab"] = 1, 9
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="d_vocab=9 but the token table has 8"):
        load_model(run_dir)


def test_a_crash_during_save_keeps_the_previous_checkpoint(trained_run, monkeypatch):
    run_dir, trainer = trained_run
    before = latest_checkpoint(run_dir / "checkpoints")
    real_save = torch.save

    def crash_midway(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        with open(path, "r+b") as handle:  # leave a half-written file behind, as a kill would
            handle.truncate(10)
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(ckpt_mod.torch, "save", crash_midway)
    trainer.step = 4
    with pytest.raises(KeyboardInterrupt):
        trainer.save()
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)
    assert latest_checkpoint(run_dir / "checkpoints") == before
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")] == ["step_00000003"]
    assert load_model(run_dir).step == 3
    trainer.save()  # the next save succeeds and moves `latest`
    assert latest_checkpoint(run_dir / "checkpoints").name == "step_00000004"
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]


def test_old_checkpoints_are_pruned(tmp_path):
    trainer = make_trainer(tmp_path / "run", steps=4, save_every=1, keep_checkpoints=2, eval_every=0)
    trainer.train()
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == [
        "step_00000003", "step_00000004"
    ]

"""Data parallelism: 2 CPU processes with gloo train the weights of one process on the same global batch."""

from __future__ import annotations

import json
import os
import random
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

from physlm.tasks.base import TokenTable
from physlm.training import ModelConfig
from physlm.training.checkpoint import latest_checkpoint, load_weights
from physlm.training.data import lane_share
from physlm.training.distributed import DistContext, init_distributed, resolve_device, shutdown_distributed
from physlm.training.train_config import TrainConfig
from physlm.training.trainer import Trainer

TABLE = TokenTable(task="toy", tokens=("<pad>", "<bos>", "<eos>", "<mask>", "a", "b", "c", "d"))
MODEL = ModelConfig(n_layers=1, d_model=16, n_heads=2, n_ctx=16, d_vocab=TABLE.d_vocab, seed=0)
# padded rows hold different numbers of real tokens on each process, which the loss scaling must undo
CONFIG = TrainConfig(steps=3, batch_size=4, seq_len=16, lr=3e-3, warmup_steps=1, eval_every=3, eval_batches=1,
                     save_every=0, log_every=1, device="cpu", layout="padded", grad_clip=0.5)


class ToyTask:
    token_table = TABLE

    def sample_document(self, rng: random.Random) -> list[int]:
        start, n = rng.randrange(4), rng.randint(1, 12)
        return [4 + (start + i) % 4 for i in range(n)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ctx = init_distributed("cpu", timeout_s=120)
    try:
        assert ctx.enabled and ctx.backend == "gloo" and ctx.rank == rank
        Trainer(MODEL, ToyTask(), CONFIG, out_dir=out, dist_ctx=ctx, progress=False).train()
    finally:
        shutdown_distributed()


def _spawn(world_size: int, out: str, timeout_s: float = 240.0) -> None:
    context = mp.spawn(_ddp_worker, args=(world_size, _free_port(), out), nprocs=world_size, join=False)
    deadline = time.monotonic() + timeout_s
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for proc in context.processes:
                proc.terminate()
            pytest.fail(f"DDP workers did not finish within {timeout_s} s")


def test_lane_share_and_single_process_context(monkeypatch):
    assert [list(lane_share(8, 4, r)) for r in range(4)] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    ctx = DistContext()
    assert not ctx.enabled and ctx.is_main and ctx.gather_objects(3) == [3]
    assert float(ctx.all_reduce_sum(torch.ones(1))) == 1.0
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_distributed("cpu") == DistContext()


def test_two_gloo_processes_match_one_process(tmp_path):
    single = Trainer(MODEL, ToyTask(), CONFIG, out_dir=tmp_path / "single", progress=False)
    single.train()
    _spawn(2, str(tmp_path / "ddp"))

    ddp_checkpoint = latest_checkpoint(tmp_path / "ddp" / "checkpoints")
    assert ddp_checkpoint is not None and ddp_checkpoint.name == "step_00000003"
    ddp_weights = load_weights(ddp_checkpoint)
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp_weights[name], value, rtol=1e-5, atol=1e-6, msg=name)
    # rank 0 saved every process's data-stream position, identical to the single process's
    single_checkpoint = latest_checkpoint(tmp_path / "single" / "checkpoints")
    single_meta = json.loads((single_checkpoint / "checkpoint.json").read_text())
    ddp_meta = json.loads((ddp_checkpoint / "checkpoint.json").read_text())
    assert ddp_meta["data_state"] == single_meta["data_state"] and ddp_meta["world_size"] == 2
    # the logged global losses agree too
    def curve(run):
        return [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    for a, b in zip(curve("single"), curve("ddp"), strict=True):
        assert a["step"] == b["step"]
        key = "loss" if "loss" in a else "eval_loss"
        assert a[key] == pytest.approx(b[key], rel=1e-5)

"""The training loop: AdamW, warm-up then decay, clipping, mixed precision, held-out loss, checkpoints.

Weight decay follows Hugging Face's Trainer, which the papers' code used: every weight matrix and the
embeddings decay; biases and normalisation weights never do (``TrainConfig.decay_embeddings=False`` exempts
the embeddings too, as minGPT does). On the CPU training is deterministic: the same configs give bit-identical
weights, and a run resumed from a checkpoint ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from physlm.rundir import write_atomic
from physlm.tasks.base import Task
from physlm.training.checkpoint import (
    CHECKPOINTS_DIR,
    CheckpointError,
    load_trainer_state,
    load_weights,
    read_checkpoint_meta,
    save_checkpoint,
    weights_mismatch,
)
from physlm.training.data import (
    BatchStream,
    DocumentSource,
    PrefetchingStream,
    TaskDocuments,
    fixed_batches,
    lane_share,
    merge_stream_states,
)
from physlm.training.distributed import DistContext, resolve_device, wrap_model
from physlm.training.model import build_model
from physlm.training.model_config import ModelConfig
from physlm.training.train_config import TrainConfig

METRICS_FILE = "metrics.jsonl"

# Fields that may differ between a checkpoint and the run resuming it: none of them changes the trajectory
# except `steps`, which stretches the learning-rate schedule (allowed, to extend a run, with a warning).
RESUMABLE_CHANGES = frozenset(
    {
        "steps",
        "device",
        "eval_every",
        "eval_batches",
        "save_every",
        "keep_checkpoints",
        "log_every",
        "wandb",
        "wandb_project",
        "prefetch",
    }
)


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of update ``step`` (0-based): linear warm-up, then cosine/linear decay or constant."""
    peak = config.lr
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return peak
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = peak * config.min_lr_ratio
    if config.schedule == "cosine":
        return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return floor + (peak - floor) * (1.0 - progress)


def parameter_groups(
    model: torch.nn.Module, weight_decay: float, decay_embeddings: bool = True
) -> list[dict]:
    """AdamW groups: decayed weights; biases, norm weights (and optionally embeddings) without decay."""
    decay, no_decay = [], []
    for module in model.modules():
        kind = type(module).__name__
        is_norm = "Norm" in kind
        is_embedding = kind in ("Embed", "PosEmbed", "Embedding")
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            # TransformerLens names every bias b_* (b_Q, b_in, b_U...); norm weights are w/b in *Norm modules.
            exempt = is_norm or name.startswith("b") or (is_embedding and not decay_embeddings)
            (no_decay if exempt else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with the config's betas and decoupled weight decay (see :func:`parameter_groups`)."""
    groups = parameter_groups(model, config.weight_decay, config.decay_embeddings)
    return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas))


def masked_loss_sum(
    logits: Float[Tensor, "batch pos vocab"],
    tokens: Int[Tensor, "batch pos"],
    loss_mask: Bool[Tensor, "batch _"],
) -> tuple[Float[Tensor, ""], Int[Tensor, ""]]:
    """Summed next-token cross-entropy over the targets ``loss_mask`` keeps, and how many there are."""
    per_token = F.cross_entropy(
        logits[:, :-1].float().flatten(0, 1), tokens[:, 1:].flatten(), reduction="none"
    ).view_as(loss_mask)
    return (per_token * loss_mask).sum(), loss_mask.sum()


@dataclasses.dataclass(frozen=True)
class TrainSummary:
    """Where a call to :meth:`Trainer.train` stopped."""

    step: int
    train_loss: float | None
    eval_loss: float | None
    tokens_per_s: float | None
    checkpoint: Path | None


class Trainer:
    """Trains one HookedTransformer on documents from a task or dataset, optionally data-parallel.

    ``source`` is a task (documents sampled fresh with ``config.seed``) or any :class:`DocumentSource` built
    with the same seed (e.g. :class:`physlm.training.data.DatasetDocuments`). ``out_dir`` receives ``metrics.jsonl``
    and ``checkpoints/`` (rank 0 only); without it nothing is written.
    ``task_info`` (e.g. ``{"name": "cfg", "config": {...}}``) is stored in checkpoints for provenance.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        source: Task | DocumentSource,
        config: TrainConfig,
        *,
        model: torch.nn.Module | None = None,
        out_dir: str | Path | None = None,
        task_info: Mapping[str, Any] | None = None,
        dist_ctx: DistContext | None = None,
        log: Callable[[str], None] | None = None,
        progress: bool = True,
    ):
        self.ctx = dist_ctx or DistContext()
        self.config = config
        self.model_config = model_config
        if not isinstance(source, DocumentSource):
            source = TaskDocuments(source, config.seed)
        if getattr(source, "seed", config.seed) != config.seed:
            raise ValueError(
                f"the document source was built with seed {source.seed} "
                f"but TrainConfig.seed is {config.seed}; "
                "pass the task itself, or build the source with the config's seed"
            )
        self.source = source
        self.token_table = source.token_table
        self.task_info = dict(task_info or {})
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.log = log or (lambda message: None)
        self.progress = progress
        self.device = resolve_device(config.device, self.ctx)
        self._check_shapes()
        if model is None:
            model = build_model(model_config)
        self.model = model.to(self.device)
        self.model.train()
        self.optimizer = build_optimizer(self.model, config)
        self.wrapped = wrap_model(self.model, self.ctx, self.device)
        self.lanes = lane_share(config.batch_size, self.ctx.world_size, self.ctx.rank)
        stream = BatchStream(
            source,
            "train",
            config.batch_size,
            config.seq_len,
            config.layout,
            self.lanes,
            config.drop_long_documents,
        )
        self.stream: BatchStream | PrefetchingStream = (
            PrefetchingStream(stream, config.prefetch, pin_memory=self.device.type == "cuda")
            if config.prefetch
            else stream
        )
        self.step = 0
        self.last_train_loss: float | None = None
        self.last_eval_loss: float | None = None
        self._eval_batches: list | None = None
        self._wandb: Any = None
        use_bf16 = config.precision == "bf16" or (config.precision == "auto" and self.device.type == "cuda")
        self.autocast_dtype = torch.bfloat16 if use_bf16 else None

    # -- checks -----------------------------------------------------------------------------------
    def _check_shapes(self) -> None:
        d_vocab = getattr(self.model_config, "d_vocab", None)
        if d_vocab is not None and d_vocab != self.token_table.d_vocab:
            raise ValueError(
                f"model d_vocab={d_vocab} but the {self.token_table.task!r} token table has "
                f"{self.token_table.d_vocab} tokens; build the model config with d_vocab=token_table.d_vocab"
            )
        n_ctx = getattr(self.model_config, "n_ctx", None)
        if n_ctx is not None and n_ctx < self.config.seq_len:
            raise ValueError(f"seq_len={self.config.seq_len} exceeds the model's n_ctx={n_ctx}")

    # -- one step -----------------------------------------------------------------------------------
    def _autocast(self) -> Any:
        if self.autocast_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _train_step(self) -> tuple[Tensor, Tensor, Tensor | None]:
        batch = next(self.stream).to(self.device)
        lr = lr_at(self.step, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self._autocast():
            logits = self.wrapped(batch.tokens)
        loss_sum, count = masked_loss_sum(logits, batch.tokens, batch.loss_mask)
        if self.config.layout == "packed":
            global_count = torch.tensor(
                self.config.batch_size * (self.config.seq_len - 1), device=self.device
            )
        else:
            global_count = self.ctx.all_reduce_sum(count.detach().clone())
        # DDP averages gradients over processes, so scaling by world_size makes the update that of the global
        # mean over every target of the global batch, whatever each process's share of real tokens.
        loss = loss_sum * self.ctx.world_size / global_count.clamp(min=1)
        loss.backward()
        grad_norm = None
        if self.config.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss_sum.detach(), count.detach(), grad_norm

    # -- evaluation -----------------------------------------------------------------------------------
    def eval_batches(self) -> list:
        """This process's share of the fixed held-out batches (built once)."""
        if self._eval_batches is None:
            self._eval_batches = fixed_batches(
                self.source,
                self.config.eval_batches,
                self.config.batch_size,
                self.config.seq_len,
                self.config.layout,
                self.lanes,
                self.config.drop_long_documents,
            )
        return self._eval_batches

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean next-token loss on the held-out batches (over all processes)."""
        self.model.eval()
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        try:
            for batch in self.eval_batches():
                batch = batch.to(self.device)
                with self._autocast():
                    logits = self.model(batch.tokens)
                loss_sum, count = masked_loss_sum(logits, batch.tokens, batch.loss_mask)
                total += torch.stack([loss_sum.double(), count.double()])
        finally:
            self.model.train()
        self.ctx.all_reduce_sum(total)
        self.last_eval_loss = float(total[0] / total[1].clamp(min=1))
        return self.last_eval_loss

    # -- checkpoints ---------------------------------------------------------------------------------
    def _checkpoint_meta(self, data_state: dict[str, Any]) -> dict[str, Any]:
        to_dict = getattr(self.model_config, "to_dict", None)
        return {
            "model_config": to_dict() if to_dict else dict(vars(self.model_config)),
            "train_config": self.config.to_dict(),
            "task": self.task_info,
            "token_table": self.token_table.to_dict(),
            "seed": self.config.seed,
            "model_seed": getattr(self.model_config, "seed", None),
            "world_size": self.ctx.world_size,
            "data_state": data_state,
            "train_loss": self.last_train_loss,
            "eval_loss": self.last_eval_loss,
        }

    def save(self) -> Path | None:
        """Write a checkpoint of the current step (rank 0 writes; every process must call this)."""
        data_state = merge_stream_states(self.ctx.gather_objects(self.stream.state_dict()))
        path = None
        if self.ctx.is_main and self.out_dir is not None:
            trainer_state = {
                "optimizer": self.optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            }
            path = save_checkpoint(
                self.out_dir / CHECKPOINTS_DIR,
                self.step,
                self.model.state_dict(),
                self._checkpoint_meta(data_state),
                trainer_state,
                keep=self.config.keep_checkpoints,
            )
            self.log(f"saved checkpoint {path}")
        self.ctx.barrier()
        return path

    def restore(self, checkpoint: str | Path) -> None:
        """Continue from a checkpoint: weights, optimizer, RNG and data-stream state, and the step."""
        checkpoint = Path(checkpoint)
        meta = read_checkpoint_meta(checkpoint)
        self._check_resumable(meta, checkpoint)
        weights = load_weights(checkpoint, self.device)
        expected = {k: v.shape for k, v in self.model.state_dict().items()}
        problems = weights_mismatch(expected, {k: v.shape for k, v in weights.items()})
        if problems:
            raise CheckpointError(f"weights in {checkpoint} do not fit this model: " + "; ".join(problems))
        self.model.load_state_dict(weights)
        state = load_trainer_state(checkpoint)
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.stream.load_state_dict(meta["data_state"])
        self.step = int(meta["step"])
        self.last_train_loss, self.last_eval_loss = meta.get("train_loss"), meta.get("eval_loss")
        if self.ctx.is_main and self.out_dir is not None:
            _truncate_metrics(self.out_dir / METRICS_FILE, self.step)
        self.log(f"resumed from {checkpoint} at step {self.step}")

    def _check_resumable(self, meta: dict[str, Any], checkpoint: Path) -> None:
        to_dict = getattr(self.model_config, "to_dict", None)
        mine = to_dict() if to_dict else None
        if mine is not None and meta["model_config"] != mine:
            diff = _dict_diff(meta["model_config"], mine)
            raise CheckpointError(f"model config differs from the one in {checkpoint}: {diff}")
        if meta["token_table"] != self.token_table.to_dict():
            raise CheckpointError(f"token table of {checkpoint} differs from this task's")
        saved = TrainConfig.from_dict(meta["train_config"]).to_dict()
        changed = {k for k, v in self.config.to_dict().items() if saved.get(k) != v}
        forbidden = sorted(changed - RESUMABLE_CHANGES)
        if forbidden:
            diff = _dict_diff(
                {k: saved[k] for k in forbidden}, {k: self.config.to_dict()[k] for k in forbidden}
            )
            raise CheckpointError(
                f"cannot resume {checkpoint} with a different training setup: {diff} "
                f"(only {sorted(RESUMABLE_CHANGES)} may change)"
            )
        if "steps" in changed:
            self.log(
                f"warning: steps changed from {saved['steps']} to {self.config.steps}; "
                "the learning-rate schedule "
                "after the checkpoint differs from the original run's"
            )

    # -- the loop ------------------------------------------------------------------------------------
    def train(self, until: int | None = None) -> TrainSummary:
        """Train to ``config.steps`` (or stop and checkpoint at step ``until``); returns where it stopped."""
        cfg = self.config
        until = cfg.steps if until is None else min(until, cfg.steps)
        if self.step >= until:
            self.log(f"already at step {self.step}; nothing to train")
            return TrainSummary(self.step, self.last_train_loss, self.last_eval_loss, None, None)
        self._start_wandb()
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            unit="step",
            dynamic_ncols=True,
            disable=not (self.progress and self.ctx.is_main),
            desc="train",
        )
        acc = torch.zeros(2, dtype=torch.float64, device=self.device)
        window_start, window_steps, run_start, start_step = (
            time.perf_counter(),
            0,
            time.perf_counter(),
            self.step,
        )
        tokens_per_s = None
        try:
            while self.step < until:
                loss_sum, count, grad_norm = self._train_step()
                acc += torch.stack([loss_sum.double(), count.double()])
                window_steps += 1
                bar.update(1)
                final = self.step == until
                if (cfg.log_every and self.step % cfg.log_every == 0) or final:
                    self.ctx.all_reduce_sum(acc)
                    self.last_train_loss = float(acc[0] / acc[1].clamp(min=1))
                    elapsed = time.perf_counter() - window_start
                    tokens_per_s = window_steps * cfg.tokens_per_step / max(elapsed, 1e-9)
                    record = {
                        "step": self.step,
                        "loss": self.last_train_loss,
                        "lr": lr_at(self.step - 1, cfg),
                        "grad_norm": None if grad_norm is None else float(grad_norm),
                        "tokens": self.step * cfg.tokens_per_step,
                        "tokens_per_s": tokens_per_s,
                    }
                    self._write_metrics(record)
                    bar.set_postfix(loss=f"{self.last_train_loss:.4f}", tok_s=f"{tokens_per_s:,.0f}")
                    acc.zero_()
                    window_start, window_steps = time.perf_counter(), 0
                paused = time.perf_counter()
                if (cfg.eval_every and self.step % cfg.eval_every == 0) or self.step == cfg.steps:
                    eval_loss = self.evaluate()
                    self._write_metrics({"step": self.step, "eval_loss": eval_loss})
                    bar.set_postfix(
                        loss=f"{self.last_train_loss or float('nan'):.4f}", eval=f"{eval_loss:.4f}"
                    )
                if (cfg.save_every and self.step % cfg.save_every == 0) and not final:
                    self.save()
                window_start += time.perf_counter() - paused  # tokens/s counts training time only
        finally:
            bar.close()
            if isinstance(self.stream, PrefetchingStream):
                self.stream.close()  # rewinds past batches read ahead, so a later train() continues exactly
        checkpoint = self.save()
        mean_rate = (
            (self.step - start_step) * cfg.tokens_per_step / max(time.perf_counter() - run_start, 1e-9)
        )
        self.log(
            f"step {self.step}/{cfg.steps}: train loss {self.last_train_loss}, "
            f"eval loss {self.last_eval_loss}, "
            f"{mean_rate:,.0f} tokens/s"
        )
        self._finish_wandb()
        return TrainSummary(self.step, self.last_train_loss, self.last_eval_loss, tokens_per_s, checkpoint)

    # -- logging ------------------------------------------------------------------------------------
    def _write_metrics(self, record: dict[str, Any]) -> None:
        if not self.ctx.is_main:
            return
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with (self.out_dir / METRICS_FILE).open("a") as handle:
                handle.write(json.dumps(record) + "\n")
        if self._wandb is not None:
            self._wandb.log(
                {k: v for k, v in record.items() if k != "step" and v is not None}, step=record["step"]
            )

    def _start_wandb(self) -> None:
        if not (self.config.wandb and self.ctx.is_main) or self._wandb is not None:
            return
        try:
            import wandb
        except ImportError:
            raise RuntimeError(
                "wandb=True but wandb is not installed; pip install wandb or drop --wandb"
            ) from None
        wandb.init(
            project=self.config.wandb_project,
            name=self.out_dir.name if self.out_dir is not None else None,
            config={
                "train": self.config.to_dict(),
                "task": self.task_info,
                "model": getattr(self.model_config, "to_dict", dict)(),
            },
        )
        self._wandb = wandb

    def _finish_wandb(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines past ``step`` (written after the checkpoint a run resumes from)."""
    if not path.is_file():
        return
    kept = [
        line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step
    ]
    write_atomic(path, "".join(line + "\n" for line in kept))


def _dict_diff(saved: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    keys = sorted(set(saved) | set(current))
    parts = [
        f"{k}: {saved.get(k)!r} (checkpoint) vs {current.get(k)!r} (now)"
        for k in keys
        if saved.get(k) != current.get(k)
    ]
    return ", ".join(parts)

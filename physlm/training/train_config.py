"""The training configuration: optimiser, schedule, data layout, evaluation and checkpoint cadence.

Defaults follow Part 1's setup (spec part1_cfg.md §5.2): AdamW with betas (0.9, 0.98), weight decay 0.1,
peak learning rate 3e-4, fresh data every step, packed ``BOS x EOS BOS x' EOS ...`` windows.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from physlm.config import Config


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """How to train one model (everything except the model's shape and the task)."""

    steps: int = 1000
    """optimizer steps in the whole run (the learning-rate schedule ends here)"""
    batch_size: int = 32
    """global batch: sequences per optimizer step, summed over all processes"""
    seq_len: int = 256
    """tokens per training sequence (the model's n_ctx must be at least this)"""
    lr: float = 3e-4
    """peak learning rate"""
    betas: tuple[float, float] = (0.9, 0.98)
    """AdamW betas (the papers' 0.9, 0.98)"""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay; never applied to biases or normalisation weights"""
    decay_embeddings: bool = True
    """also decay token/position embeddings (as Hugging Face's Trainer, which the papers used, does)"""
    warmup_steps: int = 0
    """linear warm-up from 0 to the peak rate over this many steps (Part 1 uses none, Part 2 1000)"""
    schedule: Literal["cosine", "linear", "constant"] = "linear"
    """decay after warm-up: Part 1 decays linearly to 0, Part 2 uses cosine to 0.01x"""
    min_lr_ratio: float = 0.0
    """final learning rate as a fraction of the peak (0.01 for the Part 2 cosine schedule)"""
    grad_clip: float = 1.0
    """clip the global gradient norm to this value (0 disables clipping)"""
    eval_every: int = 200
    """steps between held-out loss evaluations (0 disables them; one always runs at the end)"""
    eval_batches: int = 4
    """batches in the fixed held-out set (drawn with a seed separate from training)"""
    save_every: int = 1000
    """steps between checkpoints (0: only the final one)"""
    keep_checkpoints: int = 3
    """how many recent checkpoints to keep (0 keeps all; the final one is never deleted)"""
    log_every: int = 10
    """steps between lines in metrics.jsonl"""
    seed: int = 0
    """seed of the data: training documents and the separate held-out stream (model init has its own seed)"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: CUDA when available"""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 autocast on CUDA, fp32 on CPU"""
    layout: Literal["packed", "padded"] = "packed"
    """packed: documents back to back, cut into windows; padded: one document per row, pad masked"""
    drop_long_documents: bool = False
    """skip documents longer than seq_len (with BOS/EOS), as Part 2 does; padded layout always skips them"""
    prefetch: int = 2
    """batches built ahead in a background thread while the model trains (0: build each when needed)"""
    dataset: str | None = None
    """read documents from a saved HF datasets directory instead of sampling fresh ones from the task"""
    dataset_column: str = "input_ids"
    """column of ``dataset`` holding each document's ids (without BOS/EOS)"""
    dataset_id_offset: int = 0
    """added to every value of dataset_column (3 turns CFG terminal symbols 1..T into model token ids)"""
    wandb: bool = False
    """also log to Weights & Biases (needs wandb installed)"""
    wandb_project: str = "physlm"
    """W&B project name"""

    def __post_init__(self) -> None:
        problems = []
        for name in ("steps", "batch_size", "seq_len", "eval_batches"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seq_len < 2:
            problems.append(f"seq_len must be >= 2 to have a next-token target, got {self.seq_len}")
        for name in (
            "warmup_steps",
            "eval_every",
            "save_every",
            "keep_checkpoints",
            "log_every",
            "grad_clip",
            "weight_decay",
            "dataset_id_offset",
        ):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            problems.append(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            problems.append(f"betas must be two numbers in [0, 1), got {self.betas}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    @property
    def tokens_per_step(self) -> int:
        """Tokens in one global batch."""
        return self.batch_size * self.seq_len

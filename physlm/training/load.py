"""Read a trained model back: ``load_model(run_dir_or_checkpoint)``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer

from physlm.tasks.base import TokenTable
from physlm.training.checkpoint import (
    WEIGHTS_FILE,
    CheckpointError,
    load_weights,
    read_checkpoint_meta,
    resolve_checkpoint,
    weights_mismatch,
)
from physlm.training.model import build_model
from physlm.training.model_config import ModelConfig
from physlm.training.train_config import TrainConfig


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A trained HookedTransformer (eval mode, ready for ``run_with_cache``) and what it was trained with."""

    model: HookedTransformer
    token_table: TokenTable
    model_config: ModelConfig
    train_config: TrainConfig
    task: dict[str, Any]
    """{"name": ..., "config": {...}} as recorded by the trainer"""
    step: int
    path: Path
    """the checkpoint directory that was read"""
    meta: dict[str, Any]
    """the whole checkpoint.json record (versions, seed, losses...)"""


def load_model(path: str | Path, device: str | torch.device = "cpu", verify: bool = True) -> LoadedModel:
    """Load the latest checkpoint of a run directory, or a given checkpoint directory.

    Raises :class:`physlm.training.checkpoint.CheckpointError` naming the problem when a file is missing, truncated
    or corrupted (``verify`` also compares SHA-256 digests), or when the recorded config does not match the
    weights.
    """
    from safetensors import SafetensorError, safe_open

    checkpoint = resolve_checkpoint(path)
    meta = read_checkpoint_meta(checkpoint, verify=verify)
    try:
        model_config = ModelConfig.from_dict(meta["model_config"])
        token_table = TokenTable.from_dict(meta["token_table"])
        train_config = TrainConfig.from_dict(meta["train_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{checkpoint}: its recorded configs cannot be read: {exc}") from exc
    if model_config.d_vocab != token_table.d_vocab:
        raise CheckpointError(
            f"{checkpoint}: model config has d_vocab={model_config.d_vocab} but the token table has "
            f"{token_table.d_vocab} tokens"
        )
    weights_path = checkpoint / WEIGHTS_FILE
    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            found = {name: torch.Size(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(
            f"cannot read {weights_path} (missing, truncated or corrupted?): {exc}"
        ) from exc
    model = build_model(model_config)
    problems = weights_mismatch({k: v.shape for k, v in model.state_dict().items()}, found)
    if problems:
        raise CheckpointError(
            f"{checkpoint}: the model config in checkpoint.json does not match the saved weights: "
            + "; ".join(problems)
        )
    model.load_state_dict(load_weights(checkpoint))
    model.to(device)
    model.eval()
    return LoadedModel(
        model=model,
        token_table=token_table,
        model_config=model_config,
        train_config=train_config,
        task=dict(meta.get("task") or {}),
        step=int(meta["step"]),
        path=checkpoint,
        meta=meta,
    )

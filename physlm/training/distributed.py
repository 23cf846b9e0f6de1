"""Data-parallel training: the same :class:`physlm.training.trainer.Trainer` under ``torchrun --nproc_per_node=N``.

``torchrun --nproc_per_node=2 -m physlm.experiments.cli train --out runs/x ...`` starts N copies of the command; each
reads RANK / WORLD_SIZE / LOCAL_RANK from the environment (set by torchrun), joins a process group (nccl on
GPU, gloo on CPU) and trains a :class:`~torch.nn.parallel.DistributedDataParallel` replica on its own block of
the global batch's rows (:func:`physlm.training.data.lane_share`). Rank 0 writes the run directory, metrics and
checkpoints.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class DistContext:
    """This process's place in a (possibly single-process) data-parallel job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether a process group with more than one process is running."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0, the process that writes files and shows progress."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over processes in place (no-op alone) and return it."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order (on every process)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def resolve_device(device: str, ctx: DistContext | None = None) -> torch.device:
    """``auto``/``cpu``/``cuda`` to a torch device; under torchrun each process takes cuda:LOCAL_RANK."""
    ctx = ctx or DistContext()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device='cuda' was asked for, but torch sees no CUDA device; use --device cpu")
        return torch.device("cuda", ctx.local_rank if ctx.enabled else torch.cuda.current_device())
    if device != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return torch.device("cpu")


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistContext:
    """Join the process group torchrun describes in the environment, or return a single-process context.

    Uses nccl when training on CUDA and gloo on the CPU. Calling it again returns the existing group's
    context.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, timeout=_dt.timedelta(seconds=timeout_s))
    if dist.get_world_size() != world_size or dist.get_rank() != rank:
        raise RuntimeError(
            f"process group has rank {dist.get_rank()}/{dist.get_world_size()}, "
            f"environment says {rank}/{world_size}"
        )
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, backend=dist.get_backend())


def shutdown_distributed() -> None:
    """Leave the process group, if one is running."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def current_context() -> DistContext:
    """The context of an already initialised process group (single-process when none is)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return DistContext()
    return DistContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", str(dist.get_rank()))),
        backend=dist.get_backend(),
    )


def wrap_model(model: torch.nn.Module, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """The model wrapped in DistributedDataParallel when ``ctx`` has several processes, else itself.

    Parameters that never receive a gradient (e.g. Q/K weights a fixed uniform attention ignores) would make
    DDP wait forever, so they are found with one probe backward pass and DDP is told to expect them.
    """
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    probe = torch.zeros((1, 2), dtype=torch.long, device=device)
    model.zero_grad(set_to_none=True)
    model(probe).float().sum().backward()
    unused = any(p.requires_grad and p.grad is None for p in model.parameters())
    model.zero_grad(set_to_none=True)
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=unused)


# Exception types rebuilt by name on the other ranks by :func:`call_on_main` (their constructors take one message);
# any other type arrives there as a RuntimeError carrying the same text.
_SHARED_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        FileExistsError,
        FileNotFoundError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
        OSError,
        ValueError,
        KeyError,
        RuntimeError,
    )
}


def call_on_main(ctx: DistContext, func: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``func(*args, **kwargs)`` on rank 0 only; its result there, None on the other ranks.

    Every rank must call this. When ``func`` raises on rank 0, every rank raises an error with the same message
    (rank 0 its own exception; the others the same type when it is a plain one, e.g. ``FileExistsError``,
    else a ``RuntimeError``), instead of the other ranks waiting at the next collective. Alone (no process
    group), this is just ``func(*args, **kwargs)``.
    """
    if not ctx.enabled:
        return func(*args, **kwargs)
    result: T | None = None
    error: Exception | None = None
    if ctx.is_main:
        try:
            result = func(*args, **kwargs)
        except Exception as exc:  # shared with the other ranks, then re-raised
            error = exc
    outcome = ctx.broadcast_object(None if error is None else (_error_kind(error), _error_message(error)))
    if error is not None:
        raise error
    if outcome is not None:
        kind, message = outcome
        raise _SHARED_ERRORS.get(kind, RuntimeError)(message)
    return result


def _error_kind(error: Exception) -> str:
    """The name of ``error``'s nearest class in :data:`_SHARED_ERRORS` (subclasses such as
    ``physlm.rundir.RunDirExistsError`` travel as their base), or its own class name."""
    for cls in type(error).__mro__:
        if cls.__name__ in _SHARED_ERRORS and _SHARED_ERRORS[cls.__name__] is cls:
            return cls.__name__
    return type(error).__name__


def _error_message(error: Exception) -> str:
    # str(KeyError("x")) is "'x'": pass the message itself so the rebuilt error reads the same
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return str(error)

"""Streamed activation collection: batches through ``run_with_cache(names_filter=...)``, keeping only the
requested token positions, into memory or into sharded safetensors files on disk.

Never caches a whole data set: at most one batch's activations of the requested hooks are alive at a
time (plus, in memory mode, the kept rows). Rows are the kept (sequence, position) pairs in row-major
order; :attr:`Activations.sequence_index` / :attr:`Activations.position_index` say which is which, and
:mod:`physlm.probing.align` maps positions to sentence tokens and labels.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import torch
from jaxtyping import Bool, Float, Int
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from physlm.probing.align import PackedLayout, SentenceLayout

PositionSpec = Bool[Tensor, "n seq"] | Callable[[Tensor], Tensor] | None
_META = "activations.json"
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def layer_hook(layer: int) -> str:
    """Hook name of a probing layer: -1 = embeddings (token + positional, ``blocks.0.hook_resid_pre``),
    l >= 0 = the output of block l (``blocks.{l}.hook_resid_post``)."""
    if layer < -1:
        raise ValueError(f"layer must be >= -1 (-1 = embeddings), got {layer}")
    return "blocks.0.hook_resid_pre" if layer == -1 else f"blocks.{layer}.hook_resid_post"


class Activations:
    """Kept activations of some hooks, held in memory or as safetensors shards in a directory."""

    def __init__(
        self,
        hooks: Sequence[str],
        sequence_index: Int[Tensor, " rows"],
        position_index: Int[Tensor, " rows"],
        tensors: dict[str, Tensor] | None = None,
        directory: Path | None = None,
        shards: Sequence[str] = (),
    ):
        if (tensors is None) == (directory is None):
            raise ValueError("Activations needs exactly one of in-memory tensors or a shard directory")
        self.hooks = tuple(hooks)
        self.sequence_index = sequence_index
        self.position_index = position_index
        self._tensors = tensors
        self.directory = directory
        self.shards = tuple(shards)

    @property
    def n_rows(self) -> int:
        return int(self.sequence_index.shape[0])

    def _check(self, hook: str) -> None:
        if hook not in self.hooks:
            raise KeyError(f"hook {hook!r} was not collected; collected: {list(self.hooks)}")

    def iter_shards(self, hook: str) -> Iterator[Tensor]:
        """The rows of one hook, shard by shard (one shard in memory at a time)."""
        self._check(hook)
        if self._tensors is not None:
            yield self._tensors[hook]
            return
        assert self.directory is not None
        for name in self.shards:
            with safe_open(str(self.directory / name), framework="pt") as handle:
                yield handle.get_tensor(hook)

    def get(self, hook: str, dtype: torch.dtype = torch.float32) -> Tensor:
        """All rows of one hook, ``[rows, ...]``."""
        self._check(hook)
        if self._tensors is not None:
            return self._tensors[hook].to(dtype)
        return torch.cat([t.to(dtype) for t in self.iter_shards(hook)])

    def stack(self, hooks: Sequence[str] | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """Rows of several hooks side by side, ``[rows, n_hooks, ...]``, filled shard by shard so the
        peak memory is the result plus one shard."""
        hooks = list(self.hooks if hooks is None else hooks)
        if not hooks:
            raise ValueError("stack needs at least one hook")
        out: Tensor | None = None
        for j, hook in enumerate(hooks):
            start = 0
            for part in self.iter_shards(hook):
                if out is None:
                    out = torch.empty((self.n_rows, len(hooks), *part.shape[1:]), dtype=dtype)
                out[start : start + part.shape[0], j] = part.to(dtype)
                start += part.shape[0]
            if start != self.n_rows:
                raise RuntimeError(f"hook {hook!r} has {start} rows, expected {self.n_rows}")
        assert out is not None
        return out

    @classmethod
    def load(cls, directory: str | Path) -> Activations:
        """Open activations written by :func:`collect_activations` with ``out=directory``."""
        directory = Path(directory)
        meta_path = directory / _META
        if not meta_path.is_file():
            raise FileNotFoundError(f"{directory} holds no collected activations (no {_META})")
        meta = json.loads(meta_path.read_text())
        seq, pos = [], []
        for name in meta["shards"]:
            with safe_open(str(directory / name), framework="pt") as handle:
                seq.append(handle.get_tensor("__sequence_index__"))
                pos.append(handle.get_tensor("__position_index__"))
        empty = torch.zeros(0, dtype=torch.long)
        return cls(
            meta["hooks"],
            torch.cat(seq) if seq else empty,
            torch.cat(pos) if pos else empty,
            directory=directory,
            shards=meta["shards"],
        )


def _stop_layer(model: HookedTransformer, hooks: Sequence[str]) -> int | None:
    """Blocks to run: stop right after the deepest requested block (None when a hook needs the full model)."""
    deepest = -1
    for hook in hooks:
        match = _BLOCK.match(hook)
        if match:
            deepest = max(deepest, int(match.group(1)))
        elif hook not in ("hook_embed", "hook_pos_embed"):
            return None
    return min(deepest + 1, model.cfg.n_layers)


def _batches(
    data: Tensor | SentenceLayout | PackedLayout | Iterable[Tensor],
    positions: PositionSpec,
    batch_size: int,
) -> tuple[Iterable[tuple[Tensor, Tensor | None]], int | None]:
    """(tokens, kept-position mask or None) per batch, and the number of batches when known."""
    if isinstance(data, (SentenceLayout, PackedLayout)):
        if positions is None:
            positions = data.terminal_mask
        data = data.tokens
    if isinstance(data, Tensor):
        if data.ndim != 2:
            raise ValueError(f"token tensor must be [n, seq], got shape {tuple(data.shape)}")
        if isinstance(positions, Tensor) and positions.shape != data.shape:
            raise ValueError(f"positions mask {tuple(positions.shape)} != tokens {tuple(data.shape)}")
        n = data.shape[0]
        n_batches = (n + batch_size - 1) // batch_size

        def tensor_batches() -> Iterator[tuple[Tensor, Tensor | None]]:
            for start in range(0, n, batch_size):
                tokens = data[start : start + batch_size]
                mask = positions[start : start + batch_size] if isinstance(positions, Tensor) else None
                yield tokens, mask

        return tensor_batches(), n_batches
    if isinstance(positions, Tensor):
        raise ValueError("a position mask tensor needs token tensor input; pass a callable for batch iterables")
    return ((tokens, None) for tokens in data), None


@torch.inference_mode()
def collect_activations(
    model: HookedTransformer,
    data: Tensor | SentenceLayout | PackedLayout | Iterable[Tensor],
    hooks: Sequence[str],
    positions: PositionSpec = None,
    batch_size: int = 32,
    out: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> Activations:
    """Run ``model`` over ``data`` in batches and keep the ``hooks``' activations at chosen positions.

    Args:
        data: token ids ``[n, seq]``, a layout from :mod:`physlm.probing.align` (then the default positions are
            its terminals), or an iterable of ``[batch, seq]`` token tensors (streamed, any length).
        hooks: hook names whose activation has shape ``[batch, pos, ...]`` (resid_pre/mid/post, attn_out,
            mlp_out, hook_z, ...); see :func:`layer_hook` for the probing layers.
        positions: which positions to keep: a boolean ``[n, seq]`` mask, a callable mapping a token batch to
            its mask, or None for every position (every terminal for a layout).
        out: a directory to stream shards into (one safetensors file per batch); None keeps rows in memory.
        dtype: storage dtype (float16 halves memory and disk).
    """
    hooks = list(dict.fromkeys(hooks))
    if not hooks:
        raise ValueError("collect_activations needs at least one hook name")
    known = set(model.hook_dict)
    missing = [h for h in hooks if h not in known]
    if missing:
        raise ValueError(f"model has no hook(s) {missing}; e.g. {sorted(known)[:6]} ...")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    directory = Path(out) if out is not None else None
    if directory is not None:
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
    stop = _stop_layer(model, hooks)
    wanted = set(hooks)
    batches, total = _batches(data, positions, batch_size)
    device = next(model.parameters()).device

    kept: dict[str, list[Tensor]] = {h: [] for h in hooks}
    seq_parts: list[Tensor] = []
    pos_parts: list[Tensor] = []
    shards: list[str] = []
    first_row = 0
    for b, (tokens, mask) in enumerate(tqdm(batches, total=total, desc="activations", disable=not progress)):
        tokens = tokens.to(device)
        if mask is None:
            mask = positions(tokens) if callable(positions) else torch.ones_like(tokens, dtype=torch.bool)
        mask = mask.to(device).bool()
        _, cache = model.run_with_cache(
            tokens, names_filter=lambda name: name in wanted, stop_at_layer=stop, return_cache_object=False
        )
        rows, cols = mask.nonzero(as_tuple=True)
        seq_index = (rows + first_row).cpu()
        first_row += tokens.shape[0]
        batch: dict[str, Tensor] = {}
        for hook in hooks:
            act = cache[hook]
            if act.shape[:2] != tokens.shape:
                raise ValueError(
                    f"hook {hook!r} has shape {tuple(act.shape)}; only [batch, pos, ...] hooks can be "
                    "kept per position (attention patterns are [batch, head, q, k])"
                )
            batch[hook] = act[rows, cols].to(dtype).cpu().contiguous()
        del cache
        if directory is not None:
            name = f"shard_{b:06d}.safetensors"
            batch["__sequence_index__"] = seq_index.contiguous()
            batch["__position_index__"] = cols.cpu().contiguous()
            save_file(batch, str(directory / name))
            shards.append(name)
        else:
            for hook in hooks:
                kept[hook].append(batch[hook])
            seq_parts.append(seq_index)
            pos_parts.append(cols.cpu())
    if directory is not None:
        (directory / _META).write_text(json.dumps({"hooks": hooks, "shards": shards}, indent=1))
        return Activations.load(directory)
    empty = torch.zeros(0, dtype=torch.long)
    tensors = {h: torch.cat(parts) if parts else torch.zeros(0) for h, parts in kept.items()}
    kept.clear()
    return Activations(
        hooks,
        torch.cat(seq_parts) if seq_parts else empty,
        torch.cat(pos_parts) if pos_parts else empty,
        tensors=tensors,
    )


def rows_to_padded(
    activations: Float[Tensor, "rows *feat"],
    sequence_index: Int[Tensor, " rows"],
    column: Int[Tensor, " rows"],
    n_sequences: int,
    width: int,
) -> Float[Tensor, "n width *feat"]:
    """Scatter kept rows back to a zero-padded ``[n, width, ...]`` grid (column = e.g. a sentence token index)."""
    out = activations.new_zeros((n_sequences, width, *activations.shape[1:]))
    out[sequence_index, column] = activations
    return out

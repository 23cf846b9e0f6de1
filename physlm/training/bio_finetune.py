"""QA instruction fine-tuning of a BIO-pretrained model (Part 3.1 §2.2; spec part3_knowledge.md §2.2, §6.2).

:func:`finetune_qa` trains a copy of a pretrained HookedTransformer on the QA pairs of P_train people, with the
loss on the answer only (the value tokens and the closing ``.``), in one of two modes:

* ``lora`` (the paper's reported protocol): the base weights stay frozen; a rank-r update of every attention
  query and value matrix and a rank-r' update of the token embedding train. At the end the updates are merged
  into the weights, so the result is a plain HookedTransformer with the usual parameters and state_dict keys.
* ``full``: every parameter trains (the paper reports it only as a negative result).

Batches are ``<bos> question Answer : value .`` rows, right-padded with ``<pad>`` (:func:`qa_batch`). Right
padding needs no attention mask: with causal attention a real token only ever attends to earlier positions,
which are never padding, and the loss mask drops every target past the closing ``.``.

How the low-rank updates are attached: as ``torch.nn.utils.parametrize`` reparametrisations,
``W_Q <- W_Q + (alpha / r) * A @ B`` (A: ``d_model x r``, B: ``r x n_heads*d_head``, the product viewed per head),
likewise ``W_V``, and ``W_E <- W_E + (alpha / r') * A_E @ B_E``. Per head this is exactly the LoRA forward
``q_h += x @ A @ B[:, h]`` on the attention input ``x``. Forward hooks on ``hook_q``/``hook_v`` would compute the
same thing but are the worse choice here: TransformerLens' ``ln1.hook_normalized`` is taken *before* the
LayerNorm gain and bias, so a hook would have to redo ln1's affine map to get the real attention input; any
hook switches off the fused training path (:mod:`physlm.training.fast_path`); and a hook-based adapter would
be invisible to code that reads ``W_Q`` directly. A parametrisation keeps every hook point, every fast path and
every ``W_Q`` read seeing the adapted weight, and merging it is exact (the merged weight *is* the tensor the
adapted model computed).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from jaxtyping import Bool, Int
from torch import Tensor, nn
from torch.nn.utils import parametrize
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from physlm.config import Config
from physlm.tasks.base import TokenTable
from physlm.tasks.bio.config import BioWorld
from physlm.tasks.bio.pools import ATTRIBUTES
from physlm.tasks.bio.qa import QAItem, qa_item
from physlm.tasks.bio.tokenizer import bio_token_table
from physlm.training.trainer import masked_loss_sum, parameter_groups

FinetuneMode = Literal["full", "lora"]
LORA_TARGETS = ("W_Q", "W_V")
"""The attention matrices that get a low-rank update (Part 3.1: query and value)."""


@dataclasses.dataclass(frozen=True)
class QAFinetuneConfig(Config):
    """How to fine-tune on QA pairs. The paper's values (spec §6.2) are noted per field; the defaults are the
    paper's except ``steps``, which is CPU-sized (the paper runs 50K steps of batch 48)."""

    mode: FinetuneMode = "lora"
    """``lora``: frozen base plus q/v and embedding updates (the paper's reported protocol); ``full``: every
    parameter trains"""
    steps: int = 1500
    """optimizer steps (paper: 50,000)"""
    batch_size: int = 48
    """QA pairs per step (paper: 48)"""
    lr: float = 3e-4
    """peak learning rate, no warm-up (paper: LoRA 3e-4; full fine-tuning best of 1e-3, 3e-4, 1e-4)"""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay (paper: LoRA 0.01; full fine-tuning 0.01 or 0.001). In full mode biases
    and norm weights never decay (as in pretraining); in lora mode every adapter factor decays"""
    min_lr_ratio: float = 0.1
    """cosine decay from ``lr`` to this fraction of it over ``steps`` (paper: cosine to 10%)"""
    lora_rank: int = 8
    """rank r of the query and value updates (paper: 8 or 16, best reported); 0 leaves q/v untouched"""
    embedding_rank: int = 128
    """rank r' of the token-embedding update (paper: 128; it matters more than r, Figure 11); 0 disables it"""
    lora_alpha: float = 4.0
    """LoRA alpha: an update of rank k is scaled by ``lora_alpha / k`` (paper: 4)"""
    betas: tuple[float, float] = (0.9, 0.98)
    """AdamW betas (not stated for fine-tuning; the repo's and the papers' pretraining betas)"""
    eps: float = 1e-6
    """AdamW epsilon (paper: 1e-6)"""
    grad_clip: float = 1.0
    """clip the gradient norm of the trained parameters to this (0 disables; not stated in the paper, the
    repo's pretraining default)"""
    log_every: int = 50
    """steps between history records (the last step is always recorded)"""
    seed: int = 0
    """seeds the batch order and the adapters' Gaussian factors"""

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in ("full", "lora"):
            problems.append(f"mode must be 'full' or 'lora', got {self.mode!r}")
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lora_rank", "embedding_rank", "log_every"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.mode == "lora" and self.lora_rank == 0 and self.embedding_rank == 0:
            problems.append("lora mode with lora_rank=0 and embedding_rank=0 would train nothing")
        if self.lr <= 0 or self.weight_decay < 0 or self.lora_alpha <= 0 or self.eps <= 0 or self.grad_clip < 0:
            problems.append("lr, lora_alpha and eps must be > 0; weight_decay and grad_clip >= 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            problems.append(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if problems:
            raise ValueError("invalid QAFinetuneConfig: " + "; ".join(problems))


def finetune_lr(step: int, config: QAFinetuneConfig) -> float:
    """Learning rate of update ``step`` (0-based): cosine from ``lr`` down to ``min_lr_ratio * lr``, no warm-up."""
    floor = config.lr * config.min_lr_ratio
    progress = min(1.0, step / max(1, config.steps))
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


# -- batches -------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class QABatch:
    """QA rows as the model reads them: ``<bos> question Answer : value .``, right-padded with ``<pad>``."""

    tokens: Int[Tensor, "batch pos"]
    loss_mask: Bool[Tensor, "batch target"]
    """``loss_mask[i, j]``: whether the target ``tokens[i, j + 1]`` (predicted at position j) is an answer token;
    true exactly at ``j`` in ``[answer_start, len(item.tokens))``, i.e. the value tokens and the final ``.``"""
    lengths: Int[Tensor, " batch"]
    """real tokens per row, ``<bos>`` included (the rest is padding)"""


def qa_batch(items: Sequence[QAItem], table: TokenTable | None = None, device: str | torch.device = "cpu") -> QABatch:
    """The padded batch of ``items`` (see :class:`QABatch`)."""
    if not items:
        raise ValueError("qa_batch needs at least one QA item")
    table = table or bio_token_table()
    rows = [table.frame(table.encode(item.tokens), close=False) for item in items]
    width = max(len(row) for row in rows)
    tokens = torch.full((len(rows), width), table.pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), width - 1, dtype=torch.bool)
    for i, (item, row) in enumerate(zip(items, rows)):
        tokens[i, : len(row)] = torch.tensor(row)
        # Framed position p + 1 holds token p, so the logits at position p predict token p.
        mask[i, item.answer_start : len(item.tokens)] = True
    lengths = torch.tensor([len(row) for row in rows], dtype=torch.long)
    return QABatch(tokens.to(device), mask.to(device), lengths.to(device))


def qa_training_items(
    world: BioWorld, people: Sequence[int] | None = None, attributes: Sequence[str] = ATTRIBUTES
) -> list[QAItem]:
    """The QA pairs fine-tuning trains on: every attribute of every person (default: P_train)."""
    people = world.train_people if people is None else people
    return [qa_item(world.people[p], a) for p in people for a in attributes]


def _item_stream(items: Sequence[QAItem], batch_size: int, rng: random.Random) -> Iterator[list[QAItem]]:
    """Batches drawn from epochs of freshly shuffled items, so every QA pair is seen equally often."""
    order: list[int] = []
    while True:
        batch = []
        while len(batch) < batch_size:
            if not order:
                order = list(range(len(items)))
                rng.shuffle(order)
            batch.append(items[order.pop()])
        yield batch


# -- LoRA ----------------------------------------------------------------------------------------------
class LowRankUpdate(nn.Module):
    """A parametrisation ``W -> W + (alpha / rank) * A @ B`` of one weight.

    A (``n_in x rank``, input side) starts at zero and B (``rank x n_out``) is standard Gaussian, so the update
    starts at exactly zero; this is the paper's "B Gaussian-init, A zero-init" (and peft's embedding LoRA).
    With ``heads`` set, the ``n_in x n_out`` product is a per-head weight ``[heads, n_in, n_out / heads]``, the
    layout of TransformerLens' ``W_Q``/``W_V``.
    """

    def __init__(
        self, n_in: int, n_out: int, rank: int, alpha: float, heads: int | None, generator: torch.Generator
    ) -> None:
        super().__init__()
        if heads is not None and n_out % heads:
            raise ValueError(f"n_out={n_out} is not a multiple of heads={heads}")
        self.A = nn.Parameter(torch.zeros(n_in, rank))
        self.B = nn.Parameter(torch.randn(rank, n_out, generator=generator))
        self.scale = alpha / rank
        self.heads = heads
        self.parameter_order: tuple[str, ...] = ()

    def delta(self) -> Tensor:
        """The update, in the weight's own layout."""
        update = (self.A @ self.B) * self.scale
        if self.heads is None:
            return update
        n_in, n_out = update.shape
        return update.view(n_in, self.heads, n_out // self.heads).permute(1, 0, 2)

    def forward(self, weight: Tensor) -> Tensor:
        return weight + self.delta().to(weight.dtype)


def _attach(module: nn.Module, name: str, update: LowRankUpdate) -> None:
    weight = getattr(module, name)
    update.to(device=weight.device, dtype=weight.dtype)
    # Remembered so merging can put the weight back in its place: parameter order is state_dict order.
    update.parameter_order = tuple(module._parameters)
    parametrize.register_parametrization(module, name, update)


def attach_lora(
    model: HookedTransformer, rank: int = 8, embedding_rank: int = 128, alpha: float = 4.0, seed: int = 0
) -> list[nn.Parameter]:
    """Add low-rank updates to every block's ``W_Q`` and ``W_V`` (rank ``rank``) and to the token embedding
    ``W_E`` (rank ``embedding_rank``); a rank of 0 skips that group. Returns the adapter parameters.

    The base weights are left as they are (freeze them yourself, as :func:`finetune_qa` does);
    :func:`merge_lora` folds the updates back in.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    adapters: list[LowRankUpdate] = []
    if rank:
        for block in model.blocks:
            for name in LORA_TARGETS:
                n_heads, d_model, d_head = getattr(block.attn, name).shape
                adapters.append(LowRankUpdate(d_model, n_heads * d_head, rank, alpha, n_heads, gen))
                _attach(block.attn, name, adapters[-1])
    if embedding_rank:
        d_vocab, d_model = model.embed.W_E.shape
        adapters.append(LowRankUpdate(d_vocab, d_model, embedding_rank, alpha, None, gen))
        _attach(model.embed, "W_E", adapters[-1])
    return [p for adapter in adapters for p in adapter.parameters()]


def has_lora(model: nn.Module) -> bool:
    """Whether any weight of ``model`` is still parametrised by a :class:`LowRankUpdate`."""
    return any(isinstance(m, LowRankUpdate) for m in model.modules())


def merge_lora(model: HookedTransformer) -> HookedTransformer:
    """Fold every low-rank update into its weight and remove the parametrisations (in place; returns ``model``).

    The merged weight is the tensor the adapted model used, so the merged model computes the same logits.
    Each merged parameter keeps the ``requires_grad`` flag of the base weight it replaces.
    """
    for module in list(model.modules()):
        if not parametrize.is_parametrized(module):
            continue
        updates = [u for name in module.parametrizations for u in module.parametrizations[name]]
        updates = [u for u in updates if isinstance(u, LowRankUpdate)]
        if not updates:
            continue
        # The first update attached saw every parameter of the module in its original order.
        order = max((u.parameter_order for u in updates), key=len)
        for name in list(module.parametrizations.keys()):
            if any(isinstance(u, LowRankUpdate) for u in module.parametrizations[name]):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
        rank = {key: i for i, key in enumerate(order)}
        module._parameters = dict(sorted(module._parameters.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    return model


# -- the loop ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FinetuneRecord:
    """One history entry: mean answer-token loss over the steps since the previous record."""

    step: int
    """updates done so far"""
    loss: float
    """token-weighted mean cross-entropy of the answer tokens over the window"""
    lr: float
    """learning rate of the window's last update"""


@dataclasses.dataclass(frozen=True)
class QAFinetuneResult:
    """What :func:`finetune_qa` returns."""

    model: HookedTransformer
    """the fine-tuned copy, in eval mode (LoRA already merged unless ``merge=False``)"""
    history: tuple[FinetuneRecord, ...]
    config: QAFinetuneConfig
    n_items: int
    """QA pairs trained on"""
    n_trained_parameters: int
    """entries of the parameters the optimizer updated (adapters only in lora mode)"""


def finetune_qa(
    model: HookedTransformer,
    world: BioWorld,
    config: QAFinetuneConfig | None = None,
    *,
    people: Sequence[int] | None = None,
    attributes: Sequence[str] = ATTRIBUTES,
    merge: bool = True,
    progress: bool = False,
) -> QAFinetuneResult:
    """Fine-tune a copy of ``model`` on the QA pairs of ``people`` (default: ``world.train_people``).

    ``model`` itself is never modified, so one pretrained model can be fine-tuned under several protocols.
    Training runs on the model's device in fp32 and is deterministic on the CPU (seeded batch order and adapter
    init). With ``merge=False`` (lora mode) the copy is returned with its adapters still attached and its base
    weights frozen (see :func:`merge_lora`).
    """
    config = config or QAFinetuneConfig()
    items = qa_training_items(world, people, attributes)
    if not items:
        raise ValueError("no QA items to fine-tune on (empty people or attributes)")
    table = bio_token_table()
    if model.cfg.d_vocab != table.d_vocab:
        raise ValueError(f"model d_vocab={model.cfg.d_vocab} but the bio token table has {table.d_vocab} tokens")
    longest = max(len(item.tokens) for item in items) + 1
    if longest > model.cfg.n_ctx:
        raise ValueError(f"QA rows of {longest} tokens exceed the model's n_ctx={model.cfg.n_ctx}")
    model = copy.deepcopy(model)  # before any parametrisation: parametrised modules refuse to be copied
    model.train()
    device = next(model.parameters()).device
    flags = {name: p.requires_grad for name, p in model.named_parameters()}

    if config.mode == "lora":
        for p in model.parameters():
            p.requires_grad_(False)
        adapters = attach_lora(model, config.lora_rank, config.embedding_rank, config.lora_alpha, config.seed)
        trained = adapters
        groups = [{"params": adapters, "weight_decay": config.weight_decay}]
    else:
        trained = [p for p in model.parameters() if p.requires_grad]
        groups = parameter_groups(model, config.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps)

    stream = _item_stream(items, config.batch_size, random.Random(f"physlm/bio/finetune/{config.seed}"))
    history: list[FinetuneRecord] = []
    window = torch.zeros(2, dtype=torch.float64)
    bar = tqdm(total=config.steps, unit="step", dynamic_ncols=True, disable=not progress, desc=f"qa-{config.mode}")
    try:
        for step in range(config.steps):
            lr = finetune_lr(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = qa_batch(next(stream), table, device)
            loss_sum, count = masked_loss_sum(model(batch.tokens), batch.tokens, batch.loss_mask)
            (loss_sum / count.clamp(min=1)).backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(trained, config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            window += torch.stack([loss_sum.detach().double().cpu(), count.double().cpu()])
            bar.update(1)
            done = step + 1
            if (config.log_every and done % config.log_every == 0) or done == config.steps:
                history.append(FinetuneRecord(done, float(window[0] / window[1].clamp(min=1)), lr))
                bar.set_postfix(loss=f"{history[-1].loss:.4f}")
                window.zero_()
    finally:
        bar.close()

    if config.mode == "lora" and merge:
        merge_lora(model)
    if not has_lora(model):
        for name, p in model.named_parameters():
            p.requires_grad_(flags.get(name, True))
    model.eval()
    return QAFinetuneResult(
        model=model,
        history=tuple(history),
        config=config,
        n_items=len(items),
        n_trained_parameters=sum(p.numel() for p in trained),
    )


__all__ = [
    "LORA_TARGETS",
    "FinetuneRecord",
    "LowRankUpdate",
    "QABatch",
    "QAFinetuneConfig",
    "QAFinetuneResult",
    "attach_lora",
    "finetune_lr",
    "finetune_qa",
    "has_lora",
    "merge_lora",
    "qa_batch",
    "qa_training_items",
]

"""The tests' one factory of tiny objects: seeded models, grammars, labelled sentences, iGSM problems, run
directories, and planted-signal hooks that write a task's true labels into a model's residual stream.

Import it from any test or conftest (``from factory import tiny_model``): tests/ holds no ``__init__.py``, so
pytest's default import mode puts it on ``sys.path`` for tests/conftest.py. Everything is seeded; nothing
draws from global RNG state. The conftests wrap these builders in fixtures under their historical names.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig

from physlm.rundir import RunDir
from physlm.tasks.cfg import CFGSample, Grammar, cfg_token_table, load_grammar, sample_sentence, symbols_to_ids
from physlm.tasks.igsm import Problem, encode, generate_problem, igsm_token_table, preset, problem_record
from physlm.training.checkpoint import save_checkpoint
from physlm.training.model import build_model
from physlm.training.model_config import ModelConfig
from physlm.training.train_config import TrainConfig

TINY_MODEL = dict(n_layers=2, d_model=32, n_heads=4, d_mlp=64, n_ctx=64, d_vocab=10, positional="rotary", seed=0)
"""The tests' standard tiny model: 2 layers, 32 dims, 4 heads, a 10-token vocabulary, rotary, seed 0."""


# -- models -----------------------------------------------------------------------------------------
def tiny_model_config(**overrides: object) -> ModelConfig:
    """:data:`TINY_MODEL` as a ModelConfig, with any field overridden."""
    return ModelConfig(**{**TINY_MODEL, **overrides})


def tiny_model(**overrides: object) -> HookedTransformer:
    """A tiny seeded HookedTransformer (physlm.training.build_model, train mode) of :func:`tiny_model_config`."""
    return build_model(tiny_model_config(**overrides))


def hooked_transformer(
    seed: int = 0, n_layers: int = 2, d_vocab: int = 10, positional: str = "rotary"
) -> HookedTransformer:
    """A tiny seeded HookedTransformer built straight from TransformerLens (no physlm layers), eval mode."""
    cfg = HookedTransformerConfig(
        n_layers=n_layers, d_model=32, n_heads=4, d_head=8, d_mlp=64, n_ctx=64, d_vocab=d_vocab,
        act_fn="gelu", normalization_type="LN", positional_embedding_type=positional, seed=seed,
    )
    model = HookedTransformer(cfg)
    model.eval()
    return model


def igsm_vocab() -> int:
    """Size of the iGSM vocabulary."""
    return igsm_token_table().d_vocab


def tiny_igsm_model(n_layers: int = 2, n_ctx: int = 384, seed: int = 0) -> HookedTransformer:
    """A tiny seeded rotary model over the iGSM vocabulary (eval mode)."""
    return tiny_model(n_layers=n_layers, n_ctx=n_ctx, d_vocab=igsm_vocab(), seed=seed).eval()


# -- grammars and labelled sentences ----------------------------------------------------------------
def toy_grammar() -> Grammar:
    """4 levels (root, two NT levels, 2 terminals), 1,248 derivations, sentences of 8..27 tokens."""
    return Grammar(
        name="toy",
        sizes=(1, 2, 2, 2),
        rules=(
            (((0, 1), (1, 0, 1)),),
            (((0, 1), (1, 1)), ((1, 0), (0, 0, 1))),
            (((0, 1), (1, 0)), ((0, 0), (1, 1, 0))),
        ),
    )


def labelled_sentences(grammar: Grammar | str, n: int, seed: int | str = 0) -> list[CFGSample]:
    """``n`` sentences of ``grammar`` (a Grammar or a preset name) with the generator's per-token labels."""
    if isinstance(grammar, str):
        grammar = load_grammar(grammar)
    rng = random.Random(f"tests:{seed}")
    return [sample_sentence(grammar, rng) for _ in range(n)]


def _expansions(grammar: Grammar, depth: int, symbol: int) -> list[tuple[tuple[int, ...], float]]:
    """All (terminal string, probability) derivations of one symbol, by brute force."""
    if depth == grammar.num_levels - 1:
        return [((symbol + 1,), 1.0)]
    out = []
    for rule, p in zip(grammar.rules[depth][symbol], grammar.probabilities(depth, symbol)):
        parts = [_expansions(grammar, depth + 1, c) for c in rule]
        for combo in itertools.product(*parts):
            out.append((sum((s for s, _ in combo), ()), p * math.prod(q for _, q in combo)))
    return out


class EnumeratedDP:
    """is_valid / log_prob / next_token_distribution of a small grammar from its full string distribution
    (an exact oracle independent of physlm.tasks.cfg.dp)."""

    def __init__(self, grammar: Grammar):
        self.grammar = grammar
        dist: dict[tuple[int, ...], float] = defaultdict(float)
        for s, p in _expansions(grammar, 0, 0):
            dist[s] += p
        self.dist = dict(dist)
        self.prefix_mass: dict[tuple[int, ...], float] = defaultdict(float)
        for s, p in self.dist.items():
            for i in range(len(s) + 1):
                self.prefix_mass[s[:i]] += p

    def is_valid(self, grammar: Grammar, symbols: Sequence[int]) -> bool:
        return tuple(symbols) in self.dist

    def log_prob(self, grammar: Grammar, symbols: Sequence[int]) -> float:
        p = self.dist.get(tuple(symbols), 0.0)
        return math.log(p) if p > 0 else -math.inf

    def next_token_distribution(self, grammar: Grammar, symbols: Sequence[int]) -> np.ndarray:
        s = tuple(symbols)
        rows = []
        for i in range(len(s) + 1):
            pre = s[:i]
            mass = self.prefix_mass[pre]
            row = [self.dist.get(pre, 0.0) / mass]
            row += [self.prefix_mass.get(pre + (t,), 0.0) / mass for t in range(1, grammar.num_terminals + 1)]
            rows.append(row)
        return np.asarray(rows)

    def entropy_per_token(self) -> float:
        """Exact E[-log p(x)] / E[|x|] (the quantity the Monte-Carlo grammar entropy estimates)."""
        h = -sum(p * math.log(p) for p in self.dist.values())
        return h / sum(p * len(s) for s, p in self.dist.items())


# -- iGSM problems ----------------------------------------------------------------------------------
def igsm_problems(
    n: int = 5, seed: str = "igsm-experiment-tests", preset_name: str = "tiny", split: str = "train"
) -> list[Problem]:
    """``n`` problems of an iGSM preset's ``split``, drawn with a fixed seed."""
    config = preset(preset_name, split=split)
    rng = random.Random(seed)
    return [generate_problem(config, rng) for _ in range(n)]


def igsm_records(problems: Sequence[Problem]) -> list[dict]:
    """The generator's labelled records (physlm.tasks.igsm.problem_record) of ``problems``."""
    return [problem_record(p) for p in problems]


# -- run directories --------------------------------------------------------------------------------
def checkpoint_run(tmp_path: Path, grammar: str = "cfg_tiny", n_layers: int = 2, n_ctx: int = 64) -> Path:
    """A CFG run directory holding one checkpoint (step 0) of an untrained seeded model, as the trainer writes it."""
    table = cfg_token_table(load_grammar(grammar))
    config = ModelConfig(n_layers=n_layers, d_model=32, n_heads=4, n_ctx=n_ctx, d_vocab=table.d_vocab, seed=0)
    run = RunDir.create(tmp_path / "run", {"model": config})
    meta = {
        "model_config": config.to_dict(), "token_table": table.to_dict(), "train_config": TrainConfig().to_dict(),
        "task": {"name": "cfg", "options": {}, "config": {"grammar": grammar}},
    }
    save_checkpoint(run.path / "checkpoints", 0, build_model(config).state_dict(), meta)
    return run.path


# -- planted signals --------------------------------------------------------------------------------
def class_directions(d_model: int, n: int, seed: int = 0) -> Tensor:
    """``n`` orthonormal directions of the residual stream, ``[n, d_model]`` (a fixed random embedding per class)."""
    if n > d_model:
        raise ValueError(f"{n} orthogonal directions do not fit d_model={d_model}")
    gauss = torch.randn(d_model, n, generator=torch.Generator().manual_seed(seed))
    return torch.linalg.qr(gauss)[0].T.contiguous()


class _Planter:
    """Permanent TransformerLens hooks plus a forward pre-hook that records the token ids of each forward pass
    (hooks see activations only; the planted value is a function of the tokens the model reads)."""

    def __init__(self, model: HookedTransformer):
        self.model = model
        self.tokens: Tensor | None = None
        self._handle = model.register_forward_pre_hook(self._capture, with_kwargs=True)

    def _capture(self, module: object, args: tuple, kwargs: dict) -> None:
        self.tokens = args[0] if args else kwargs["input"]

    def add(self, name: str, fn: object) -> None:
        # permanent: run_with_cache and model.hooks(...) reset the non-permanent hooks when they exit
        self.model.add_hook(name, fn, is_permanent=True)

    def remove(self) -> None:
        self._handle.remove()
        self.model.reset_hooks(including_permanent=True)


@contextlib.contextmanager
def planted_cfg_labels(
    model: HookedTransformer, samples: Sequence[CFGSample], layer: int, scale: float = 1.0, seed: int = 0
) -> Iterator[None]:
    """While active, the output of block ``layer`` (``blocks.{layer}.hook_resid_post``) gains, at every
    terminal of a ``BOS x EOS <pad>...`` row, ``scale`` times one fixed direction per (NT level, true ancestor
    s_ℓ(i)) and per NT level where b_ℓ(i) = 1: the generator's labels, placed by the layout's definition
    (x_i at position i + 1, DEVELOPERS.md). Layers after ``layer`` keep the signal through the residual.

    ``samples`` must hold every sentence the model is shown (looked up by their token ids)."""
    lookup = {tuple(symbols_to_ids(s.symbols)): s for s in samples}
    n_levels = samples[0].ancestor.shape[0]
    n_classes = [int(max(s.ancestor[r].max() for s in samples)) + 1 for r in range(n_levels)]
    dirs = class_directions(model.cfg.d_model, sum(n_classes) + n_levels, seed)
    offsets = np.cumsum([0, *n_classes])
    planter = _Planter(model)

    def plant(resid: Tensor, hook: object) -> Tensor:
        assert planter.tokens is not None
        add = torch.zeros_like(resid)
        for b, row in enumerate(planter.tokens.tolist()):
            body = list(itertools.takewhile(lambda t: t > 3, row[1:]))  # terminals are ids >= 4
            sample = lookup.get(tuple(body))
            if sample is None:
                raise AssertionError(f"row {b} is no known sentence: planted_cfg_labels needs every probed sentence")
            for r in range(n_levels):
                anc = torch.as_tensor(sample.ancestor[r][: len(body)], dtype=torch.long)
                end = torch.as_tensor(sample.end[r][: len(body)], dtype=resid.dtype)
                add[b, 1 : 1 + len(body)] += dirs[offsets[r] + anc] + end[:, None] * dirs[offsets[-1] + r]
        return resid + scale * add

    planter.add(f"blocks.{layer}.hook_resid_post", plant)
    try:
        yield
    finally:
        planter.remove()


@contextlib.contextmanager
def planted_igsm_nece(
    model: HookedTransformer, records: Sequence[dict], layer: int, scale: float = 1.0, seed: int = 0
) -> Iterator[None]:
    """While active, the output of block ``layer`` at every ``[END]`` of a V-probe query ``[START] A [END]``
    gains ``scale`` times a fixed direction of nece(A), the generator's label of the queried parameter A in the
    problem whose document precedes the query.

    The problem is identified through the model itself, so the plant also works when the prefix runs in an
    earlier pass (the recipe's KV prefix cache): head 0 of block 0 carries the problem's code (one value
    channel = code, another = 1) at every document position; at ``[END]`` the ratio of the two channels of its
    output is the code of the prefix it attended to. The two channels are zeroed afterwards, so the code never
    reaches the residual stream. ``records`` (:func:`physlm.tasks.igsm.problem_record`) must hold every problem
    the model is shown."""
    table = igsm_token_table()
    bos = table.bos_id
    start, end = table.encode(["[START]", "[END]"])
    docs = [list(r["input_ids"]) for r in records]
    names = []
    for r in records:
        index = {tuple(encode(name)): a for a, name in enumerate(r["param_names"])}
        assert len(index) == len(r["param_names"]), "parameter names of one problem must differ"
        names.append(index)
    dirs = class_directions(model.cfg.d_model, 2, seed)
    unit = 0.01  # code of problem g = unit * (g + 1): small values, exact enough in float32
    planter = _Planter(model)
    problems: dict[tuple[int, int], int] = {}

    def document_span(row: list[int]) -> tuple[int, int] | None:
        if bos not in row:
            return None
        first = row.index(bos)
        last = row.index(start, first) if start in row[first:] else len(row)
        while last > first + 1 and row[last - 1] == table.pad_id:
            last -= 1
        return first, last

    def write_code(v: Tensor, hook: object) -> Tensor:
        assert planter.tokens is not None
        v = v.clone()
        v[:, :, 0, :2] = 0.0
        for b, row in enumerate(planter.tokens.tolist()):
            span = document_span(row)
            if span is None:
                continue
            doc = row[span[0] + 1 : span[1]]
            found = [g for g, d in enumerate(docs) if d[: len(doc)] == doc]
            if len(found) != 1:
                raise AssertionError(f"row {b}'s document prefix matches {len(found)} known problems, not one")
            v[b, span[0] : span[1], 0, 0] = unit * (found[0] + 1)
            v[b, span[0] : span[1], 0, 1] = 1.0
        return v

    def read_code(z: Tensor, hook: object) -> Tensor:
        assert planter.tokens is not None
        problems.clear()
        code = z.detach()[:, :, 0, :2]
        for b, p in (planter.tokens == end).nonzero().tolist():
            mass = float(code[b, p, 1])
            if mass < 1e-6:
                raise AssertionError(f"[END] of row {b} attends to no document position")
            problems[(b, p)] = round(float(code[b, p, 0]) / mass / unit) - 1
        z = z.clone()
        z[:, :, 0, :2] = 0.0
        return z

    def plant(resid: Tensor, hook: object) -> Tensor:
        assert planter.tokens is not None
        add = torch.zeros_like(resid)
        rows = planter.tokens.tolist()
        for (b, p), g in problems.items():
            q = max(i for i in range(p) if rows[b][i] == start)
            a = names[g].get(tuple(rows[b][q + 1 : p]))
            if a is None:
                raise AssertionError(f"row {b} queries a name that problem {g} does not have")
            add[b, p] = dirs[int(records[g]["nece"][a])]
        return resid + scale * add

    planter.add("blocks.0.attn.hook_v", write_code)
    planter.add("blocks.0.attn.hook_z", read_code)
    planter.add(f"blocks.{layer}.hook_resid_post", plant)
    try:
        yield
    finally:
        planter.remove()

"""``physlm.load`` and the model object of the notebook API: a HookedTransformer with its vocabulary and task.

A :class:`Model` holds what a notebook needs next to the transformer: its token table, the task it was trained on
(a CFG grammar or an iGSM preset, as :class:`CFGTaskSpec` / :class:`IGSMTaskSpec`) with ``sample(n, seed)`` giving
fresh data *with their exact labels*, and ``encode(...)`` turning those into model-ready token tensors framed as
``BOS x EOS`` (right padded).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from physlm.probing.activations import layer_hook
from physlm.probing.align import IGNORE_INDEX
from physlm.results import RESULTS_FILE, ProbeResults
from physlm.tasks.base import TokenTable
from physlm.tasks.cfg import CFGSample, Grammar, cfg_token_table, load_grammar, sample_sentence, symbols_to_ids
from physlm.tasks.igsm import IGSMConfig, Problem, ProblemLabels, generate_problem, igsm_token_table, problem_labels
from physlm.tasks.igsm import preset as igsm_preset
from physlm.training.model_config import ModelConfig

CFG_LABELS = ("ancestor", "ancestor_at_end", "ancestor_index", "end", "end_level")
"""Per-token CFG labels :meth:`CFGTaskSpec.labels` lays out (DEVELOPERS.md "Per-token CFG labels")."""


def _pad(rows: Sequence[Sequence[int]], pad_id: int, n_ctx: int | None, what: str) -> Int[Tensor, "batch pos"]:
    """Right-padded ``[len(rows), longest]`` token ids; ``ValueError`` when a row does not fit ``n_ctx``."""
    if not rows:
        raise ValueError(f"no {what} to encode")
    width = max(len(r) for r in rows)
    if n_ctx is not None and width > n_ctx:
        raise ValueError(
            f"the longest {what} takes {width} tokens with BOS/EOS, more than the model's context of {n_ctx}"
        )
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(list(row), dtype=torch.long)
    return out


# -- tasks ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CFGTaskSpec:
    """A CFG task: its grammar and vocabulary, fresh labelled sentences, and their model encoding."""

    grammar: Grammar
    token_table: TokenTable
    kind = "cfg"

    @property
    def name(self) -> str:
        """The grammar's name."""
        return self.grammar.name

    def sample(self, n: int = 1, seed: int = 0) -> list[CFGSample]:
        """``n`` fresh sentences with their exact labels and trees, drawn from ``random.Random(seed)``.

        Each :class:`physlm.tasks.cfg.CFGSample` has ``symbols`` (terminals 1..T) and the per-token labels
        ``ancestor``, ``ancestor_index``, ``end`` (rows = NT levels ℓ = 2..L−1) and ``end_level``.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        rng = random.Random(seed)
        return [sample_sentence(self.grammar, rng) for _ in range(n)]

    def encode(
        self, sentences: CFGSample | Sequence[CFGSample | Sequence[int]], n_ctx: int | None = None
    ) -> Int[Tensor, "batch pos"]:
        """Model token ids ``[batch, pos]``: each sentence as ``BOS x EOS``, right padded with ``<pad>``.

        ``sentences``: one sample, or a list of samples or of terminal-symbol lists. Terminal x_i sits at
        position i + 1, where :meth:`labels` puts its label.
        """
        items = [sentences] if isinstance(sentences, CFGSample) else list(sentences)
        symbols = [s.symbols if isinstance(s, CFGSample) else s for s in items]
        rows = [self.token_table.frame(symbols_to_ids(s)) for s in symbols]
        return _pad(rows, self.token_table.pad_id, n_ctx, "sentence")

    def labels(
        self,
        sentences: CFGSample | Sequence[CFGSample],
        target: Literal["ancestor", "ancestor_at_end", "ancestor_index", "end", "end_level"],
        level: int | None = None,
        n_ctx: int | None = None,
    ) -> Int[Tensor, "batch pos"]:
        """One per-token label aligned with :meth:`encode`: column i + 1 holds x_i's label, and BOS, EOS,
        padding (and, for ``ancestor_at_end``, the tokens that end no level-ℓ NT) hold ``IGNORE_INDEX`` (−100).

        ``target`` (DEVELOPERS.md): ``ancestor`` s_ℓ(i) (0-based symbol), ``ancestor_index`` p_ℓ(i),
        ``end`` b_ℓ(i), ``ancestor_at_end`` s_ℓ(i) where b_ℓ(i) = 1, ``end_level`` b♯(i) (no level).
        ``level`` is the paper level ℓ ∈ 2..L−1.
        """
        samples = [sentences] if isinstance(sentences, CFGSample) else list(sentences)
        if target not in CFG_LABELS:
            raise ValueError(f"unknown label {target!r}; choose one of {CFG_LABELS}")
        if target != "end_level" and level not in self.grammar.nt_levels:
            raise ValueError(f"label {target!r} needs level= one of the NT levels {self.grammar.nt_levels}")
        row = None if level is None else level - 2
        out = torch.full_like(self.encode(samples, n_ctx), IGNORE_INDEX)
        for b, s in enumerate(samples):
            if target == "end_level":
                values = s.end_level
            elif target == "ancestor_at_end":
                values = np.where(s.end[row] == 1, s.ancestor[row], IGNORE_INDEX)
            else:
                values = getattr(s, target)[row]
            out[b, 1 : 1 + len(s)] = torch.as_tensor(np.asarray(values, dtype=np.int64))
        return out


@dataclasses.dataclass(frozen=True)
class IGSMSample:
    """One iGSM problem with the generator's probe labels (``nece``, ``dep``, ``known``, ``value``, ...)."""

    problem: Problem
    labels: ProblemLabels

    @property
    def tokens(self) -> list[str]:
        """The document ``[PROB] problem [SOL] solution [ANS] answer`` as token strings."""
        return self.problem.document_tokens()

    def record(self) -> dict[str, Any]:
        """The problem as a dataset row (:func:`physlm.tasks.igsm.problem_record`: ids, labels, probe positions)."""
        from physlm.tasks.igsm import problem_record

        return problem_record(self.problem)


@dataclasses.dataclass(frozen=True)
class IGSMTaskSpec:
    """An iGSM task: the generator config (and preset name), fresh labelled problems, their model encoding."""

    config: IGSMConfig
    preset: str | None
    """the preset name (tiny, micro, med, ...); the probe and evaluation recipes need it"""
    token_table: TokenTable
    kind = "igsm"

    @property
    def name(self) -> str:
        """The preset's name (``igsm`` when the run recorded none)."""
        return self.preset or "igsm"

    def sample(
        self,
        n: int = 1,
        seed: int = 0,
        split: Literal["train", "test", "all"] = "train",
        max_tokens: int | None = None,
    ) -> list[IGSMSample]:
        """``n`` fresh problems of ``split`` (template-hash buckets) with their labels, from ``random.Random(seed)``;
        with ``max_tokens``, only problems whose document has at most that many tokens."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        config = self.config.replace(split=split)
        rng = random.Random(seed)
        out: list[IGSMSample] = []
        for _ in range(50 * n):  # a bound that fails loudly when problems never fit
            problem = generate_problem(config, rng)
            if max_tokens is None or len(problem.document_tokens()) <= max_tokens:
                out.append(IGSMSample(problem, problem_labels(problem)))
                if len(out) == n:
                    return out
        raise ValueError(f"fewer than {n} {self.name} problems fit {max_tokens} tokens in {50 * n} draws")

    def encode(
        self, problems: IGSMSample | Problem | Sequence[IGSMSample | Problem], n_ctx: int | None = None
    ) -> Int[Tensor, "batch pos"]:
        """Model token ids ``[batch, pos]``: each document as ``<bos> [PROB] ... [ANS] answer <eos>``, right padded."""
        items = [problems] if isinstance(problems, (IGSMSample, Problem)) else list(problems)
        docs = [p.problem if isinstance(p, IGSMSample) else p for p in items]
        rows = [self.token_table.frame(self.token_table.encode(d.document_tokens())) for d in docs]
        return _pad(rows, self.token_table.pad_id, n_ctx, "problem")


TaskSpec = CFGTaskSpec | IGSMTaskSpec


def task_spec(task: Mapping[str, Any], table: TokenTable) -> TaskSpec:
    """The task of a checkpoint from its task record (``{"name", "options", "config"}``) and token table."""
    if task.get("name") == "igsm" or table.task == igsm_token_table().task:
        preset_name = (task.get("options") or {}).get("preset")
        recorded = task.get("config")
        config = IGSMConfig.from_dict(recorded) if recorded else igsm_preset(preset_name or "tiny")
        return IGSMTaskSpec(config, preset_name, table)
    grammar_name = (task.get("config") or {}).get("grammar")
    if grammar_name is None and table.task.startswith("cfg:"):
        grammar_name = table.task.split(":", 1)[1]
    if grammar_name is None:
        raise ValueError(f"cannot tell the task of this model (task record {dict(task)}, vocabulary {table.task!r})")
    grammar = load_grammar(grammar_name)
    if tuple(cfg_token_table(grammar).tokens) != tuple(table.tokens):
        raise ValueError(f"grammar {grammar_name!r} does not match the model's vocabulary {table.task!r}")
    return CFGTaskSpec(grammar, table)


# -- the model ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class Model:
    """A trained (or freshly initialised) physlm model: the HookedTransformer ``.model`` (eval mode) and its task.

    ``model.model`` is a plain TransformerLens HookedTransformer: ``run_with_cache``, hooks and patching work on
    it directly. ``sample`` / ``encode`` / ``labels`` give labelled data laid out for it.
    """

    model: HookedTransformer
    token_table: TokenTable
    task: TaskSpec
    model_config: ModelConfig
    name: str
    path: Path | None = None
    """the zoo entry or run directory it was loaded from (None for a model only in memory)"""
    step: int = 0
    """optimizer steps it was trained for"""
    from_zoo: bool = False
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """the zoo entry's record (zoo.json: headline numbers, reproduction command), {} otherwise"""

    @property
    def kind(self) -> str:
        """``cfg`` or ``igsm``."""
        return self.task.kind

    @property
    def n_ctx(self) -> int:
        """The context length."""
        return int(self.model.cfg.n_ctx)

    @property
    def n_layers(self) -> int:
        """Transformer blocks (probe layers are −1 = embeddings, then 0..n_layers−1)."""
        return int(self.model.cfg.n_layers)

    @property
    def device(self) -> torch.device:
        """Where the weights live."""
        return next(self.model.parameters()).device

    def __repr__(self) -> str:
        cfg = self.model.cfg
        where = f", from {self.path}" if self.path is not None else ""
        return (f"Model({self.name!r}: {self.kind} task {self.task.name}, {cfg.n_layers} layers, d_model "
                f"{cfg.d_model}, {cfg.n_heads} heads, n_ctx {cfg.n_ctx}, step {self.step}{where})")

    def sample(self, n: int = 1, seed: int = 0, **options: Any) -> list[CFGSample] | list[IGSMSample]:
        """``n`` fresh labelled sentences (CFG) or problems (iGSM) from ``seed`` (:meth:`CFGTaskSpec.sample`,
        :meth:`IGSMTaskSpec.sample`; iGSM options: ``split``, ``max_tokens``, default: what fits the context)."""
        if isinstance(self.task, IGSMTaskSpec):
            options.setdefault("max_tokens", self.n_ctx - 2)
        return self.task.sample(n, seed, **options)

    def encode(self, items: Any) -> Int[Tensor, "batch pos"]:
        """Token ids ``[batch, pos]`` of samples (or one sample) framed as ``BOS ... EOS``, right padded, on the
        model's device; ``ValueError`` when one does not fit the context."""
        return self.task.encode(items, n_ctx=self.n_ctx).to(self.device)

    def labels(
        self,
        sentences: CFGSample | Sequence[CFGSample],
        target: Literal["ancestor", "ancestor_at_end", "ancestor_index", "end", "end_level"],
        level: int | None = None,
    ) -> Int[Tensor, "batch pos"]:
        """Per-token CFG labels aligned with :meth:`encode` (``IGNORE_INDEX`` = −100 where unscored); see
        :meth:`CFGTaskSpec.labels`. iGSM labels are per parameter: ``sample()[i].labels``."""
        if not isinstance(self.task, CFGTaskSpec):
            raise TypeError("per-token labels exist for CFG models; iGSM problems carry theirs in .labels")
        return self.task.labels(sentences, target, level, n_ctx=self.n_ctx)

    @torch.no_grad()
    def hidden_states(
        self, tokens: Int[Tensor, "batch pos"], layer: int, batch_size: int = 32
    ) -> Float[Tensor, "batch pos d_model"]:
        """The residual stream of ``layer`` (−1 = embeddings, l = output of block l) at every position, on the CPU;
        streamed ``batch_size`` rows at a time with only that hook cached."""
        if not -1 <= layer < self.n_layers:
            raise ValueError(f"layer must lie in -1..{self.n_layers - 1}, got {layer}")
        hook = layer_hook(layer)
        stop = layer + 1 if 0 < layer + 1 < self.n_layers else (1 if layer == -1 else None)
        parts = []
        for start in range(0, tokens.shape[0], batch_size):
            _, cache = self.model.run_with_cache(
                tokens[start : start + batch_size].to(self.device), names_filter=lambda name: name == hook,
                stop_at_layer=stop, return_cache_object=False,
            )
            parts.append(cache[hook].float().cpu())
        return torch.cat(parts)

    def random_init(self, seed: int | None = None) -> Model:
        """The control: a freshly initialised model of the same shape (weight seed ``seed``, default the trained
        model's seed + 1, as the probe recipes use), with the same task."""
        from physlm.training.model import build_model

        seed = self.model_config.seed + 1 if seed is None else seed
        config = self.model_config.replace(seed=seed)
        return Model(build_model(config, device=self.device).eval(), self.token_table, self.task, config,
                     name=f"{self.name} (random init, seed {seed})")

    def recorded_probe_results(self) -> ProbeResults | None:
        """The ``probe_results.csv`` shipped with the zoo entry or written into the run, if there is one."""
        if self.path is None or not (self.path / RESULTS_FILE).is_file():
            return None
        return ProbeResults.read(self.path / RESULTS_FILE)


def load(name_or_run: str | Path | None = None, device: str = "cpu", zoo_dir: str | Path | None = None) -> Model:
    """A zoo entry by name (``physlm.list_zoo()``), or a run or checkpoint directory, as a :class:`Model`; None
    opens the zoo's default entry (the one trained on the default grammar, what ``physlm run cfg`` trains).

    Weights are checked against their recorded SHA-256; the model is in eval mode on ``device``. A zoo entry is
    only read, never written.
    """
    from physlm.experiments.zoo import ZOO_DIR, default_zoo_entry, list_zoo, read_zoo_record, zoo_path
    from physlm.training.load import load_model

    root = ZOO_DIR if zoo_dir is None else Path(zoo_dir)
    names = list_zoo(root)
    if name_or_run is None:
        name_or_run = default_zoo_entry(root)
        if name_or_run is None:
            raise FileNotFoundError(f"the zoo in {root} is empty: pass a run directory, or train one (physlm.train)")
    if isinstance(name_or_run, str) and name_or_run in names:
        path, from_zoo, info, name = zoo_path(name_or_run, root), True, read_zoo_record(name_or_run, root), name_or_run
    else:
        path, from_zoo, info = Path(name_or_run), False, {}
        if not path.exists():
            raise FileNotFoundError(
                f"{str(name_or_run)!r} is neither a zoo entry ({', '.join(names) or 'the zoo is empty'}) nor a run "
                "or checkpoint directory"
            )
        name = path.name
    loaded = load_model(path, device=device)
    return Model(
        model=loaded.model, token_table=loaded.token_table, task=task_spec(loaded.task or {}, loaded.token_table),
        model_config=loaded.model_config, name=name, path=path, step=loaded.step, from_zoo=from_zoo, info=info,
    )

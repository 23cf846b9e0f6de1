"""QA evaluation of bio models (Part 3.1 §2; spec part3_knowledge.md §2.1, §2.4) and the ``qa_results.csv`` rows.

Metrics, per attribute, each with a 95% interval over people:

* ``exact_greedy``: greedy generation from ``<bos> question Answer :`` reproduces the whole answer, the value
  tokens and the closing ``.``, exactly (no partial credit);
* ``exact_beam{k}``: the same for the best hypothesis of a beam search of width k (the paper's beam 4);
* ``first_token``: the first answer token is the argmax (the paper's diagnostic);
* ``bio_first_token`` (:func:`bio_memorisation`): the argmax at the position before each attribute value
  inside a biography entry is the value's first token (the check that BIO is memorised, >99% in the paper,
  before fine-tuning).

**Teacher forcing gives greedy exact match in one forward pass.** Feed the whole ``question + answer`` row and
take the argmax at every answer position. If all of them equal the answer tokens, greedy decoding from the
prompt produces the first answer token, then (its input now being exactly the teacher-forced prefix) the
second, and so on through the closing ``.``, where it stops (:func:`answer_complete`). If some argmax is wrong,
the first wrong one is exactly the first token where greedy decoding leaves the answer, so the generation is
not the answer. Hence "all answer argmaxes right" ⇔ "greedy generation is exactly the answer", and
:func:`qa_accuracy` scores a whole batch with one forward pass (tests check it against a real decode loop).

**Where an answer stops.** Generation stops at the ``.`` that closes the answer. A few pool values hold a
``.`` themselves (``Washington D.C.``, ``St. Louis, MO``, ``Caterpillar Inc.``), so a ``.`` only stops the
answer when the tokens up to it are not a proper prefix of such a value; no value's text before one of its
inner dots is itself a value, so a right answer never stops early (a test checks every pool value).

**Intervals.** A per-attribute QA row scores one question per person, so its items are independent across
people and the interval is Wilson's. A ``mean`` row (the average over the attributes) and the BIO rows (several
entries per person) are correlated within a person, so they get a percentile bootstrap over people.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import torch
from transformer_lens import HookedTransformer

from physlm.analysis.igsm_eval import wilson_interval
from physlm.rundir import write_atomic
from physlm.tasks.base import TokenTable
from physlm.tasks.bio.config import BioWorld
from physlm.tasks.bio.pools import ATTRIBUTES, load_pools
from physlm.tasks.bio.qa import QAItem, qa_item
from physlm.tasks.bio.tokenizer import bio_token_table, tokenize
from physlm.training.bio_finetune import qa_batch

QA_COLUMNS = ("dataset", "protocol", "group", "attribute", "metric", "value", "ci_low", "ci_high")
"""The columns of ``qa_results.csv``, in file order."""
QA_RESULTS_FILE = "qa_results.csv"
MEAN = "mean"
"""The ``attribute`` of the rows that average the attributes."""
METRICS = ("exact_greedy", "exact_beam4", "first_token", "bio_first_token")
"""Metric names, in the order rows are written (other metrics, such as another beam width, come after)."""
BIO_DERIVED = ("company_city",)
"""Attributes left out of the BIO memorisation mean: the company city follows from the employer, so its first
token inside a biography is predictable from the employer that precedes it, not a separately memorised fact."""


# -- outcomes ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Hits:
    """Right/wrong outcomes of one attribute, with the person each outcome is about."""

    attribute: str
    people: tuple[int, ...]
    correct: tuple[bool, ...]

    def __post_init__(self) -> None:
        if len(self.people) != len(self.correct):
            raise ValueError(f"{len(self.people)} people but {len(self.correct)} outcomes")

    @property
    def n(self) -> int:
        return len(self.correct)

    @property
    def k(self) -> int:
        """How many are right."""
        return sum(self.correct)

    @property
    def accuracy(self) -> float:
        """k / n (nan when there are no outcomes)."""
        return self.k / self.n if self.n else float("nan")


@dataclasses.dataclass(frozen=True)
class QAAccuracy:
    """Exact-match and first-token outcomes of one attribute's questions (one per person)."""

    attribute: str
    exact: Hits
    first_token: Hits

    @property
    def n(self) -> int:
        return self.exact.n

    @property
    def exact_accuracy(self) -> float:
        return self.exact.accuracy

    @property
    def first_token_accuracy(self) -> float:
        return self.first_token.accuracy


def _accuracies(items: Sequence[QAItem], exact: Sequence[bool], first: Sequence[bool]) -> dict[str, QAAccuracy]:
    """Group per-item outcomes by attribute (ATTRIBUTES order)."""
    out: dict[str, QAAccuracy] = {}
    for attribute in ATTRIBUTES:
        picked = [i for i, item in enumerate(items) if item.attribute == attribute]
        if not picked:
            continue
        people = tuple(items[i].person_id for i in picked)
        out[attribute] = QAAccuracy(
            attribute,
            Hits(attribute, people, tuple(bool(exact[i]) for i in picked)),
            Hits(attribute, people, tuple(bool(first[i]) for i in picked)),
        )
    return out


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for the duration, then the model's own mode again."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


# -- greedy exact match (teacher forced) ----------------------------------------------------------------
def qa_items_of(world: BioWorld, people: Sequence[int], attributes: Sequence[str] = ATTRIBUTES) -> list[QAItem]:
    """The QA pairs of ``people`` for ``attributes``."""
    unknown = sorted(set(attributes) - set(ATTRIBUTES))
    if unknown:
        raise ValueError(f"unknown attributes {unknown}; attributes are {', '.join(ATTRIBUTES)}")
    return [qa_item(world.people[p], a) for p in people for a in attributes]


def qa_item_outcomes(
    model: HookedTransformer, items: Sequence[QAItem], batch_size: int = 256
) -> tuple[list[bool], list[bool]]:
    """Per item: (greedy exact match, first-token right), by teacher forcing (see the module docstring)."""
    table = bio_token_table()
    exact: list[bool] = []
    first: list[bool] = []
    with _eval_mode(model):
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            batch = qa_batch(chunk, table, _device(model))
            pred = model(batch.tokens)[:, :-1].argmax(-1)
            hit = pred == batch.tokens[:, 1:]
            exact += (hit | ~batch.loss_mask).all(-1).tolist()
            starts = torch.tensor([item.answer_start for item in chunk], device=hit.device)
            first += hit[torch.arange(len(chunk), device=hit.device), starts].tolist()
    return exact, first


def qa_accuracy(
    model: HookedTransformer,
    world: BioWorld,
    people: Sequence[int],
    attributes: Sequence[str] = ATTRIBUTES,
    batch_size: int = 256,
) -> dict[str, QAAccuracy]:
    """Greedy exact-match and first-token accuracy of every attribute's question for ``people``."""
    items = qa_items_of(world, people, attributes)
    if not items:
        return {}
    exact, first = qa_item_outcomes(model, items, batch_size)
    return _accuracies(items, exact, first)


# -- beam search ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _dotted_prefixes() -> frozenset[tuple[str, ...]]:
    """Token prefixes, ending in a ``.``, of pool values whose text goes on after that ``.``'s position or ends
    with it (``Washington D .``, ``Washington D . C .``, ``Dow Inc .``): a ``.`` there is part of the value."""
    pools = load_pools()
    values = set()
    for pool in (pools.cities, pools.universities, pools.majors, pools.companies, pools.company_cities):
        values.update(tuple(tokenize(v)) for v in pool)
    return frozenset(tokens[: i + 1] for tokens in values for i, t in enumerate(tokens) if t == ".")


def answer_complete(generated: Sequence[str]) -> bool:
    """Whether generated answer tokens end the answer: the last is a ``.`` that is not inside a pool value."""
    return bool(generated) and generated[-1] == "." and tuple(generated) not in _dotted_prefixes()


@dataclasses.dataclass
class _Hypothesis:
    ids: tuple[int, ...]
    score: float
    done: bool


def beam_search(
    model: HookedTransformer,
    prompts: Sequence[Sequence[int]],
    beam: int = 4,
    max_new_tokens: int = 16,
    table: TokenTable | None = None,
    batch_size: int = 64,
) -> list[tuple[int, ...]]:
    """The best continuation of each prompt (token ids, ``<bos>`` included) under a beam search of width ``beam``.

    A hypothesis scores the sum of its tokens' log-probabilities (no length penalty, unlike Hugging Face's
    default) and is finished when :func:`answer_complete`. At every step the ``beam`` best of the finished
    hypotheses and of all one-token extensions of the live ones are kept; the search stops when all kept
    hypotheses are finished (extending one can only lower its score, so none could overtake) or after
    ``max_new_tokens``. Returns the best finished hypothesis, or the best one when none finished. ``beam=1``
    is greedy decoding. The prompts of a chunk run as one right-padded batch per step (no KV cache).
    """
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    table = table or bio_token_table()
    out: list[tuple[int, ...]] = []
    with _eval_mode(model):
        device = _device(model)
        for start in range(0, len(prompts), max(1, batch_size // beam)):
            chunk = [list(p) for p in prompts[start : start + max(1, batch_size // beam)]]
            beams = [[_Hypothesis((), 0.0, False)] for _ in chunk]
            for _ in range(max_new_tokens):
                live = [(i, h) for i, hyps in enumerate(beams) for h in hyps if not h.done]
                if not live:
                    break
                rows = [chunk[i] + list(h.ids) for i, h in live]
                width = max(len(r) for r in rows)
                if width > model.cfg.n_ctx:
                    raise ValueError(f"beam search reached {width} tokens, past the model's n_ctx={model.cfg.n_ctx}")
                tokens = torch.full((len(rows), width), table.pad_id, dtype=torch.long)
                for r, row in enumerate(rows):
                    tokens[r, : len(row)] = torch.tensor(row)
                last = torch.tensor([len(r) - 1 for r in rows])
                logits = model(tokens.to(device))[torch.arange(len(rows)), last.to(device)]
                top = torch.log_softmax(logits.float(), -1).topk(beam, dim=-1)
                values, indices = top.values.double().cpu().tolist(), top.indices.cpu().tolist()
                candidates: list[list[_Hypothesis]] = [[h for h in hyps if h.done] for hyps in beams]
                for (i, h), vals, ids in zip(live, values, indices):
                    for v, t in zip(vals, ids):
                        new_ids = (*h.ids, t)
                        candidates[i].append(_Hypothesis(new_ids, h.score + v, answer_complete(table.decode(new_ids))))
                # sorted() is stable: equal scores keep the order above (finished first, then by parent and rank).
                beams = [sorted(c, key=lambda h: -h.score)[:beam] for c in candidates]
            for hyps in beams:
                finished = [h for h in hyps if h.done]
                out.append(max(finished or hyps, key=lambda h: h.score).ids)
    return out


def qa_accuracy_beam(
    model: HookedTransformer,
    items: Sequence[QAItem],
    beam: int = 4,
    max_new_tokens: int | None = None,
    batch_size: int = 64,
) -> dict[str, QAAccuracy]:
    """Beam-search exact match (the generated answer, closing ``.`` included, equals the answer) and the first
    token of the best hypothesis, per attribute. ``max_new_tokens`` defaults to the longest answer among
    ``items``, which never cuts a right answer short. Slow (one forward per generated token): use a subsample.
    """
    if not items:
        return {}
    table = bio_token_table()
    cap = max(len(item.answer) for item in items) if max_new_tokens is None else max_new_tokens
    prompts = [table.frame(table.encode(item.prompt), close=False) for item in items]
    best = beam_search(model, prompts, beam, cap, table, batch_size)
    answers = [tuple(table.encode(item.answer)) for item in items]
    exact = [ids == answer for ids, answer in zip(best, answers)]
    first = [bool(ids) and ids[0] == answer[0] for ids, answer in zip(best, answers)]
    return _accuracies(items, exact, first)


def subsample_items(items: Sequence[QAItem], n: int, seed: int = 0) -> list[QAItem]:
    """``n`` items drawn without replacement (all when fewer), in their original order, seeded."""
    if n >= len(items):
        return list(items)
    picked = sorted(random.Random(f"physlm/bio/qa-subsample/{seed}").sample(range(len(items)), n))
    return [items[i] for i in picked]


# -- BIO memorisation ----------------------------------------------------------------------------------
def bio_memorisation(
    model: HookedTransformer, world: BioWorld, n_entries: int = 500, seed: int = 0, batch_size: int = 64
) -> dict[str, Hits]:
    """First-token accuracy of every attribute's value inside ``n_entries`` biography entries drawn as in
    pretraining (uniformly over all entries, seeded), per attribute in ATTRIBUTES order. Company city is
    included; :func:`memorisation_rows` keeps it out of the mean (see :data:`BIO_DERIVED`)."""
    table = bio_token_table()
    rng = random.Random(f"physlm/bio/memorisation/{seed}")
    entries = [world.sample_entry(rng) for _ in range(n_entries)]
    people: dict[int, list[int]] = {a: [] for a in range(len(ATTRIBUTES))}
    correct: dict[int, list[bool]] = {a: [] for a in range(len(ATTRIBUTES))}
    with _eval_mode(model):
        for start in range(0, len(entries), batch_size):
            chunk = entries[start : start + batch_size]
            rows = [table.frame(table.encode(e.tokens), close=False) for e in chunk]
            width = max(len(r) for r in rows)
            if width > model.cfg.n_ctx:
                raise ValueError(f"a biography entry of {width} tokens exceeds the model's n_ctx={model.cfg.n_ctx}")
            tokens = torch.full((len(rows), width), table.pad_id, dtype=torch.long)
            for r, row in enumerate(rows):
                tokens[r, : len(row)] = torch.tensor(row)
            pred = model(tokens.to(_device(model))).argmax(-1).cpu()
            for r, entry in enumerate(chunk):
                for a, s in enumerate(entry.value_start):
                    if s < 0:
                        continue
                    # Token s sits at framed position s + 1, so the logits at position s predict it.
                    people[a].append(entry.person_id)
                    correct[a].append(bool(pred[r, s] == tokens[r, s + 1]))
    return {
        ATTRIBUTES[a]: Hits(ATTRIBUTES[a], tuple(people[a]), tuple(correct[a]))
        for a in range(len(ATTRIBUTES))
        if people[a]
    }


# -- intervals -----------------------------------------------------------------------------------------
def people_bootstrap(
    hits: Sequence[Hits], n_boot: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """(value, low, high): the mean over ``hits`` of their accuracies, with a percentile bootstrap interval
    that resamples people (every outcome of a drawn person comes along, in every attribute)."""
    hits = [h for h in hits if h.n]
    if not hits:
        return (float("nan"), float("nan"), float("nan"))
    people = sorted({p for h in hits for p in h.people})
    index = {p: i for i, p in enumerate(people)}
    k = torch.zeros(len(hits), len(people), dtype=torch.float64)
    n = torch.zeros(len(hits), len(people), dtype=torch.float64)
    for a, h in enumerate(hits):
        cols = torch.tensor([index[p] for p in h.people])
        n[a].index_add_(0, cols, torch.ones(len(cols), dtype=torch.float64))
        k[a].index_add_(0, cols, torch.tensor(h.correct, dtype=torch.float64))
    value = float((k.sum(1) / n.sum(1)).mean())
    gen = torch.Generator().manual_seed(seed)
    draws = torch.randint(len(people), (n_boot, len(people)), generator=gen)
    weight = torch.zeros(n_boot, len(people), dtype=torch.float64).scatter_add_(
        1, draws, torch.ones(n_boot, len(people), dtype=torch.float64)
    )
    # [n_boot, attributes]; an attribute with no outcome in a replicate (possible only for tiny groups) is
    # left out of that replicate's mean.
    acc = (weight @ k.T) / (weight @ n.T)
    boot = acc.nanmean(-1)
    boot = boot[~torch.isnan(boot)]
    alpha = (1.0 - confidence) / 2
    low, high = torch.quantile(boot, torch.tensor([alpha, 1 - alpha], dtype=boot.dtype)).tolist()
    # For a handful of people a percentile interval can miss the point estimate by a hair; widen it to
    # include the estimate so every row reads ci_low <= value <= ci_high.
    return value, min(low, value), max(high, value)


def accuracy_interval(hits: Hits, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% interval of one attribute's accuracy: Wilson when every person has one outcome (independent items),
    else the bootstrap over people."""
    if len(set(hits.people)) == hits.n:
        return wilson_interval(hits.k, hits.n)
    _, low, high = people_bootstrap([hits], n_boot, seed)
    return low, high


# -- qa_results.csv ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class QARow:
    """One line of ``qa_results.csv``."""

    dataset: str
    """the biographies' augmentation, e.g. ``single`` or ``multi5+permute``"""
    protocol: str
    """how the model learnt QA: ``pretrain+lora``, ``pretrain+full``, ``mixed`` (``pretrain`` for BIO rows)"""
    group: str
    """whose questions: ``train_people`` (in distribution), ``test_people`` (P_test), ``all_people`` (BIO)"""
    attribute: str
    """one of ATTRIBUTES, or ``mean``"""
    metric: str
    """``exact_greedy``, ``exact_beam4``, ``first_token`` or ``bio_first_token``"""
    value: float
    ci_low: float
    """lower end of the 95% interval over people"""
    ci_high: float

    @classmethod
    def from_mapping(cls, row: Mapping[str, object]) -> QARow:
        """A row from a mapping with the :data:`QA_COLUMNS` (CSV strings are parsed)."""
        missing = [c for c in QA_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"a qa_results row needs the columns {QA_COLUMNS}; {missing} missing in {dict(row)}")
        return cls(
            dataset=str(row["dataset"]),
            protocol=str(row["protocol"]),
            group=str(row["group"]),
            attribute=str(row["attribute"]),
            metric=str(row["metric"]),
            value=float(row["value"]),
            ci_low=float(row["ci_low"]),
            ci_high=float(row["ci_high"]),
        )

    def to_dict(self) -> dict[str, object]:
        return {c: getattr(self, c) for c in QA_COLUMNS}


def _row(
    dataset: str, protocol: str, group: str, attribute: str, metric: str, value: float, interval: tuple[float, float]
) -> QARow:
    return QARow(dataset, protocol, group, attribute, metric, float(value), float(interval[0]), float(interval[1]))


def _metric_rows(
    hits: Sequence[Hits],
    dataset: str,
    protocol: str,
    group: str,
    metric: str,
    n_boot: int,
    seed: int,
    mean_of: Sequence[Hits] | None = None,
) -> list[QARow]:
    rows = [
        _row(dataset, protocol, group, h.attribute, metric, h.accuracy, accuracy_interval(h, n_boot, seed))
        for h in hits
        if h.n
    ]
    pooled = [h for h in (hits if mean_of is None else mean_of) if h.n]
    if pooled:
        value, low, high = people_bootstrap(pooled, n_boot, seed)
        rows.append(_row(dataset, protocol, group, MEAN, metric, value, (low, high)))
    return rows


def qa_rows(
    results: Mapping[str, QAAccuracy],
    dataset: str,
    protocol: str,
    group: str,
    exact_metric: str = "exact_greedy",
    first_token: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[QARow]:
    """``qa_results.csv`` rows of one evaluation: per attribute and a ``mean`` row (the average of the attributes
    evaluated, six in the paper) for the exact-match metric and, with ``first_token``, the first-token one.
    For beam results pass ``exact_metric="exact_beam4"`` and ``first_token=False``."""
    accs = list(results.values())
    rows = _metric_rows([a.exact for a in accs], dataset, protocol, group, exact_metric, n_boot, seed)
    if first_token:
        rows += _metric_rows([a.first_token for a in accs], dataset, protocol, group, "first_token", n_boot, seed)
    return rows


def memorisation_rows(
    hits: Mapping[str, Hits],
    dataset: str,
    protocol: str = "pretrain",
    group: str = "all_people",
    n_boot: int = 1000,
    seed: int = 0,
) -> list[QARow]:
    """``bio_first_token`` rows of :func:`bio_memorisation`: every attribute, and a ``mean`` over all but the
    derived company city (:data:`BIO_DERIVED`), which keeps its own row."""
    kept = [h for a, h in hits.items() if a not in BIO_DERIVED]
    return _metric_rows(list(hits.values()), dataset, protocol, group, "bio_first_token", n_boot, seed, kept)


def _sort_key(row: QARow) -> tuple:
    attribute_order = {a: i for i, a in enumerate((*ATTRIBUTES, MEAN))}
    metric_order = {m: i for i, m in enumerate(METRICS)}
    return (
        row.dataset,
        row.protocol,
        row.group,
        metric_order.get(row.metric, len(METRICS)),
        row.metric,
        attribute_order.get(row.attribute, len(attribute_order)),
        row.attribute,
    )


def _cell(value: object) -> str:
    """Floats with 6 decimals (the repo's results convention), everything else as ``str``."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6f}"
    return str(value)


def write_qa_results(path: str | Path, rows: Iterable[QARow | Mapping[str, object]]) -> Path:
    """Write ``qa_results.csv`` atomically, rows sorted by (dataset, protocol, group, metric, attribute) for
    stable diffs. Returns ``path``."""
    typed = sorted((r if isinstance(r, QARow) else QARow.from_mapping(r) for r in rows), key=_sort_key)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(QA_COLUMNS)
    for r in typed:
        writer.writerow([_cell(getattr(r, c)) for c in QA_COLUMNS])
    path = Path(path)
    write_atomic(path, out.getvalue())
    return path


def read_qa_results(path: str | Path) -> list[QARow]:
    """The rows of a ``qa_results.csv``."""
    with open(path, newline="") as handle:
        return [QARow.from_mapping(r) for r in csv.DictReader(handle)]


__all__ = [
    "BIO_DERIVED",
    "MEAN",
    "METRICS",
    "QA_COLUMNS",
    "QA_RESULTS_FILE",
    "Hits",
    "QAAccuracy",
    "QARow",
    "accuracy_interval",
    "answer_complete",
    "beam_search",
    "bio_memorisation",
    "memorisation_rows",
    "people_bootstrap",
    "qa_accuracy",
    "qa_accuracy_beam",
    "qa_item_outcomes",
    "qa_items_of",
    "qa_rows",
    "read_qa_results",
    "subsample_items",
    "write_qa_results",
]

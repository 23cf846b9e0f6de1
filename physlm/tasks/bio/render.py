"""One biography entry as tokens with exact per-token labels.

An :class:`EntryPlan` fixes a wording: which template each attribute uses, the sentence order, and where the
name goes. :func:`render_entry` writes a person with a plan and returns the tokens together with, for every
token, the attribute whose value it belongs to, whether it is part of the full name, and (per attribute) the
position of the value's first token and of the token just before it (the P-probe position).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from physlm.tasks.bio.augmentation import Augmentation
from physlm.tasks.bio.people import Person
from physlm.tasks.bio.pools import ATTRIBUTES, Pools, load_pools
from physlm.tasks.bio.tokenizer import tokenize

COUPLES = ((0, 1), (2, 3), (4, 5))
"""bioS couple: birth date -> birth city, university -> major, employer -> company city (attribute indices)."""
CANONICAL_ORDER = tuple(range(len(ATTRIBUTES)))
NO_ATTRIBUTE = -1
REVERSE_SUBJECT = "The person"


@dataclass(frozen=True)
class EntryPlan:
    """A wording of one biography: template index per attribute, and the sentence order (attribute indices)."""

    templates: tuple[int, ...]
    order: tuple[int, ...]
    fullname: bool = False
    reverse: int | None = None


@dataclass(frozen=True)
class RenderedEntry:
    """A written biography entry: tokens and labels of equal length, plus the value positions."""

    person_id: int
    text: str
    tokens: tuple[str, ...]
    attribute: tuple[int, ...]
    """per token: index into ATTRIBUTES of the value it belongs to, or -1"""
    in_name: tuple[bool, ...]
    """per token: part of an occurrence of the full name"""
    sentence: tuple[int, ...]
    """per token: which sentence (0-based, in written order) it is in"""
    value_start: tuple[int, ...]
    """per attribute (ATTRIBUTES order): token position of the first token of its value (first occurrence)"""
    value_end: tuple[int, ...]
    """per attribute: one past the last token of that value"""
    name_span: tuple[int, int]
    """token positions ``start, stop`` of the first occurrence of the full name"""

    @property
    def probe_positions(self) -> tuple[int, ...]:
        """Per attribute: the token immediately before its value (Part 3.1's P-probe positions)."""
        return tuple(s - 1 for s in self.value_start)


def sample_plan(rng: random.Random, augmentation: Augmentation, pools: Pools | None = None) -> EntryPlan:
    """A fresh wording under ``augmentation``: random templates, and a random order when it permutes."""
    pools = pools or load_pools()
    templates = tuple(rng.randrange(len(pools.templates[a])) for a in ATTRIBUTES)
    return EntryPlan(templates, _order(rng, augmentation), augmentation.fullname, augmentation.reverse)


def _order(rng: random.Random, augmentation: Augmentation) -> tuple[int, ...]:
    if augmentation.couple:
        pairs = list(COUPLES)
        rng.shuffle(pairs)
        return tuple(a for pair in pairs for a in pair)
    if augmentation.permute:
        order = list(CANONICAL_ORDER)
        rng.shuffle(order)
        return tuple(order)
    return CANONICAL_ORDER


def person_plans(person_rng: random.Random, augmentation: Augmentation) -> list[EntryPlan]:
    """The fixed entries of one person (augmentations with a finite number of entries).

    ``single+permuteP`` keeps one set of templates and shuffles it P times; the others draw new templates
    for every entry.
    """
    if augmentation.entries is None:
        raise ValueError(f"{augmentation.name} writes a fresh entry at every exposure; it has no fixed entries")
    if augmentation.new_wording:
        return [sample_plan(person_rng, augmentation) for _ in range(augmentation.entries)]
    base = sample_plan(person_rng, augmentation)
    return [base] + [
        EntryPlan(base.templates, _order(person_rng, augmentation), base.fullname, base.reverse)
        for _ in range(augmentation.entries - 1)
    ]


def _subject(person: Person, k: int, plan: EntryPlan, pools: Pools) -> tuple[str, bool]:
    """The subject of sentence ``k`` and whether it is the full name."""
    name = person.full_name(pools)
    if plan.reverse in (1, 2):
        name_sentence = plan.reverse  # 0-based: reverse1 -> 2nd sentence, reverse2 -> 3rd
        if k == name_sentence:
            return name, True
        return (REVERSE_SUBJECT if k == 0 else person.pronoun()), False
    if plan.reverse == 6:
        return (REVERSE_SUBJECT if k == 0 else person.pronoun()), False
    if k == 0 or plan.fullname:
        return name, True
    return person.pronoun(), False


def _append(
    out: tuple[list[str], list[int], list[bool], list[int]], piece: str, attr: int, is_name: bool, k: int
) -> None:
    """Tokenize ``piece`` onto ``out = (tokens, attribute, in_name, sentence)``, every token with the same
    labels."""
    tokens, attribute, in_name, sentence = out
    words = tokenize(piece)
    tokens.extend(words)
    attribute.extend([attr] * len(words))
    in_name.extend([is_name] * len(words))
    sentence.extend([k] * len(words))


def render_entry(person: Person, plan: EntryPlan, pools: Pools | None = None) -> RenderedEntry:
    """Write ``person`` with ``plan``: tokens, text and labels (labels are built with the tokens, never
    re-derived from the text)."""
    pools = pools or load_pools()
    tokens: list[str] = []
    attribute: list[int] = []
    in_name: list[bool] = []
    sentence: list[int] = []
    value_start = [-1] * len(ATTRIBUTES)
    value_end = [-1] * len(ATTRIBUTES)
    name_span = (-1, -1)
    texts: list[str] = []

    # one tuple of the four lists, filled by the module-level _append (a closure here would be rebuilt, and
    # re-wrapped by the tests' runtime type checker, at every call)
    out = (tokens, attribute, in_name, sentence)

    sentences = [(a, pools.templates[ATTRIBUTES[a]][plan.templates[a]]) for a in plan.order]
    if plan.reverse == 6:
        sentences.append((NO_ATTRIBUTE, "The person's name is {name}."))
    for k, (a, template) in enumerate(sentences):
        subject, is_full = (person.full_name(pools), True) if a == NO_ATTRIBUTE else _subject(person, k, plan, pools)
        head, _, rest = template.partition("{name}")
        _append(out, head, NO_ATTRIBUTE, False, k)
        if is_full and name_span[0] < 0:
            start = len(tokens)
            _append(out, subject, NO_ATTRIBUTE, True, k)
            name_span = (start, len(tokens))
        else:
            _append(out, subject, NO_ATTRIBUTE, is_full, k)
        if a == NO_ATTRIBUTE:
            _append(out, rest, NO_ATTRIBUTE, False, k)
            texts.append(template.replace("{name}", subject))
            continue
        before, _, after = rest.partition("{value}")
        _append(out, before, NO_ATTRIBUTE, False, k)
        value = person.value(ATTRIBUTES[a], pools)
        value_start[a] = len(tokens)
        _append(out, value, a, False, k)
        value_end[a] = len(tokens)
        _append(out, after, NO_ATTRIBUTE, False, k)
        texts.append(template.replace("{name}", subject).replace("{value}", value))
    return RenderedEntry(
        person_id=person.id,
        text=" ".join(texts),
        tokens=tuple(tokens),
        attribute=tuple(attribute),
        in_name=tuple(in_name),
        sentence=tuple(sentence),
        value_start=tuple(value_start),
        value_end=tuple(value_end),
        name_span=name_span,
    )

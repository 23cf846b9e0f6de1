"""Part 3.2 knowledge manipulation tasks (spec §4) as token sequences with answer (and hint) spans.

Layout of an item (the answer words follow Part 3.1's ``Answer: value.``, spec §2.1)::

    retrieval / inverse search:   question  Answer :  value .
    classification / comparison:  question  [DIRECT]  Answer :  answer .
                        with hint: question  [HINT]  Answer :  hint1 ; hint2 .  answer .

The hint (the paper's CoT, e.g. ``October; September. No.``) lists the attributes the answer is computed
from, in question order. ``[HINT]`` / ``[DIRECT]`` are the special tokens with which the paper asks at test
time for hint-then-answer or a direct answer; they sit right after the question so the prompt states which
one is wanted. Tasks without a hint (retrieval, inverse search) take no marker.

Decisions where the paper is silent or loose:

- Month ranking uses the paper's words "born in a month in a year later than": we read them as the month of
  the year, so the year does not enter (as the O(12^2) sample-complexity argument and the month-only hint
  ``October; September`` imply). Subtractions are likewise month1 - month2 in -11..11.
- Ranking pairs are redrawn (up to ``_TIE_RETRIES`` times) until the two values differ, because "later" or
  "luckier" on a tie is ambiguous; if no different partner turns up, the tie is kept and answered ``No``.
- Birth month mod 12 is month % 12, so December gives 0 (a bijection with the month, i.e. pure
  re-formatting, which is what the paper's p = 12 "month in numerics" tests).
- Major luckiness mod 100 is asked as "What is the luckiness of {name}'s major?" (the same number; the
  vocabulary has no token ``100``).
- A negative number is written as two tokens, ``-`` and its absolute value (``-5`` -> ``- 5``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from physlm.tasks.bio.config import BioWorld
from physlm.tasks.bio.inverse import INVERSE_TASKS, inverse_question
from physlm.tasks.bio.people import Person
from physlm.tasks.bio.pools import MONTHS, Pools, load_pools
from physlm.tasks.bio.qa import ANSWER_PREFIX
from physlm.tasks.bio.tokenizer import tokenize

HINT_MARKER = "[HINT]"
DIRECT_MARKER = "[DIRECT]"
_TIE_RETRIES = 32


@dataclass(frozen=True)
class ManipulationItem:
    """One manipulation question with its answer and, for CoT items, the hint before it."""

    task: str
    person_id: int
    tokens: tuple[str, ...]
    answer_start: int
    """position of the first final-answer token"""
    answer_end: int
    """one past the last final-answer token (the closing ``.`` follows)"""
    hint_span: tuple[int, int] | None = None
    """[start, end) of the hint tokens (without the ``.`` closing the hint), or None without a hint"""
    second_person_id: int | None = None
    """the other person of a comparison"""

    @property
    def generation_start(self) -> int:
        """Where the model's generation starts: the hint if there is one, else the answer."""
        return self.hint_span[0] if self.hint_span else self.answer_start

    @property
    def prompt(self) -> tuple[str, ...]:
        """The tokens given to the model (question, marker, ``Answer :``)."""
        return self.tokens[: self.generation_start]

    @property
    def hint(self) -> tuple[str, ...]:
        """The hint tokens (empty without a hint)."""
        return self.tokens[self.hint_span[0] : self.hint_span[1]] if self.hint_span else ()

    @property
    def final_answer(self) -> tuple[str, ...]:
        """The final answer tokens, without the closing period."""
        return self.tokens[self.answer_start : self.answer_end]


@dataclass(frozen=True)
class ManipulationTask:
    """A named task: how many people a question is about, whether it has a hint, and how to write it."""

    name: str
    arity: int
    """1, or 2 for comparisons"""
    hintable: bool
    question: Callable[..., tuple[list[str], list[list[str]], list[str]]]
    """(persons..., pools) -> (question tokens, hint values as token lists, answer tokens)"""
    rank_key: Callable[[Person], int] | None = None
    """for ranking tasks: the compared value, so pairs can avoid ties"""

    def build(self, *persons: Person, hint: bool = False, pools: Pools | None = None) -> ManipulationItem:
        """The item of this task about ``persons`` (one, or two for comparisons)."""
        if len(persons) != self.arity:
            raise ValueError(f"task {self.name!r} is about {self.arity} person(s), got {len(persons)}")
        if hint and not self.hintable:
            raise ValueError(f"task {self.name!r} has no hint; only classification and comparison tasks do")
        question, hint_values, answer = self.question(*persons, pools or load_pools())
        tokens = list(question)
        if self.hintable:
            tokens.append(HINT_MARKER if hint else DIRECT_MARKER)
        tokens += ANSWER_PREFIX
        hint_span = None
        if hint:
            start = len(tokens)
            for k, value in enumerate(hint_values):
                tokens += ([";"] if k else []) + value
            hint_span = (start, len(tokens))
            tokens.append(".")
        answer_start = len(tokens)
        tokens += [*answer, "."]
        second = persons[1].id if self.arity == 2 else None
        return ManipulationItem(
            self.name, persons[0].id, tuple(tokens), answer_start, answer_start + len(answer), hint_span, second
        )


def number_tokens(n: int) -> list[str]:
    """An integer as bio tokens: ``-5`` -> ``["-", "5"]`` (the vocabulary has ``-`` and ``0``..``99``)."""
    return ["-", str(-n)] if n < 0 else [str(n)]


def _month(person: Person) -> list[str]:
    return [MONTHS[person.birth_month - 1]]


def _major(person: Person, pools: Pools) -> list[str]:
    return tokenize(pools.majors[person.major])


def _name(person: Person, pools: Pools) -> str:
    return person.full_name(pools)


def _yes_no(flag: bool) -> list[str]:
    return ["Yes" if flag else "No"]


_PARTIAL = {
    "day": lambda p: str(p.birth_day),
    "month": lambda p: MONTHS[p.birth_month - 1],
    "year": lambda p: str(p.birth_year),
}


def _partial(part: str) -> ManipulationTask:
    def question(person: Person, pools: Pools):
        return tokenize(f"What is the birth {part} of {_name(person, pools)}?"), [], [_PARTIAL[part](person)]

    return ManipulationTask(f"partial_birth_{part}", 1, False, question)


_PHRASES = {"birth_city": "birth city", "employer": "employer", "university": "university", "major": "major",
            "company_city": "company city"}  # fmt: skip


def _dual(first: str, second: str) -> ManipulationTask:
    def question(person: Person, pools: Pools):
        text = f"What are the {_PHRASES[first]} and {_PHRASES[second]} of {_name(person, pools)}?"
        answer = [*tokenize(person.value(first, pools)), ";", *tokenize(person.value(second, pools))]
        return tokenize(text), [], answer

    return ManipulationTask(f"dual_{first}_{second}", 1, False, question)


def _month_mod(p: int) -> ManipulationTask:
    def question(person: Person, pools: Pools):
        name = _name(person, pools)
        if p == 2:
            return (
                tokenize(f"Was {name} born in an even month?"),
                [_month(person)],
                _yes_no(person.birth_month % 2 == 0),
            )
        text = f"What is the birth month of {name} modulo {p}?"
        return tokenize(text), [_month(person)], number_tokens(person.birth_month % p)

    return ManipulationTask(f"month_mod_{p}", 1, True, question)


def _major_mod(p: int) -> ManipulationTask:
    def question(person: Person, pools: Pools):
        # Luckiness is 0-99, so mod 100 is the luckiness itself; asking it plainly also keeps "100", which
        # the frozen vocabulary (numbers 0-99) lacks, out of the question.
        modulo = "" if p == 100 else f" modulo {p}"
        text = f"What is the luckiness of {_name(person, pools)}'s major{modulo}?"
        return tokenize(text), [_major(person, pools)], number_tokens(person.major % p)

    return ManipulationTask(f"major_mod_{p}", 1, True, question)


def _comparison(name: str, template: str, key: Callable[[Person], int], hint_of, rank: bool) -> ManipulationTask:
    def question(a: Person, b: Person, pools: Pools):
        text = template.format(name1=_name(a, pools), name2=_name(b, pools))
        answer = _yes_no(key(a) > key(b)) if rank else number_tokens(key(a) - key(b))
        return tokenize(text), [hint_of(a, pools), hint_of(b, pools)], answer

    return ManipulationTask(name, 2, True, question, key if rank else None)


def _month_of(p: Person) -> int:
    return p.birth_month


def _day_of(p: Person) -> int:
    return p.birth_day


def _luck_of(p: Person) -> int:
    return p.major


_MONTH_RANK = "Was {name1} born in a month in a year later than {name2}?"
_MONTH_SUB = "How many months later in a year was {name1} born than {name2}?"
_MAJOR_RANK = "Does {name1} have a luckier major than {name2}?"
_MAJOR_SUB = "How much luckier is {name1}'s major than {name2}'s major?"
_DAY_RANK = "Was {name1} born on a later day of the month than {name2}?"
_DAY_SUB = "How many days later in the month was {name1} born than {name2}?"


def _inverse(task: str) -> ManipulationTask:
    def question(person: Person, pools: Pools):
        text, answer = inverse_question(person, task, pools)
        return text, [], answer

    return ManipulationTask(task, 1, False, question)


def _month_hint(p: Person, pools: Pools) -> list[str]:
    return _month(p)


def _day_hint(p: Person, pools: Pools) -> list[str]:
    return [str(p.birth_day)]


_DUAL_PAIRS = (("birth_city", "employer"), ("university", "major"), ("company_city", "employer"))
_TASKS: list[ManipulationTask] = [
    *(_partial(part) for part in ("day", "month", "year")),
    *(_dual(a, b) for x, y in _DUAL_PAIRS for a, b in ((x, y), (y, x))),
    *(_month_mod(p) for p in (2, 6, 12)),
    *(_major_mod(p) for p in (5, 20, 100)),
    _comparison("month_rank", _MONTH_RANK, _month_of, _month_hint, rank=True),
    _comparison("month_sub", _MONTH_SUB, _month_of, _month_hint, rank=False),
    _comparison("major_rank", _MAJOR_RANK, _luck_of, _major, rank=True),
    _comparison("major_sub", _MAJOR_SUB, _luck_of, _major, rank=False),
    # Appendix of Part 3.2: birth-day ranking and subtraction.
    _comparison("day_rank", _DAY_RANK, _day_of, _day_hint, rank=True),
    _comparison("day_sub", _DAY_SUB, _day_of, _day_hint, rank=False),
    *(_inverse(task) for task in INVERSE_TASKS),
]
MANIPULATION_TASKS: dict[str, ManipulationTask] = {task.name: task for task in _TASKS}
"""task name -> its builder (:meth:`ManipulationTask.build`)."""


def get_task(name: str) -> ManipulationTask:
    """The task called ``name``; a one-line ValueError listing the known tasks otherwise."""
    if name not in MANIPULATION_TASKS:
        raise ValueError(f"unknown manipulation task {name!r}; known tasks: {', '.join(MANIPULATION_TASKS)}")
    return MANIPULATION_TASKS[name]


def _partner(task: ManipulationTask, person: Person, people: Sequence[Person], rng: random.Random) -> Person:
    for _ in range(_TIE_RETRIES):
        other = people[rng.randrange(len(people))]
        if other.id == person.id:
            continue
        if task.rank_key is None or task.rank_key(other) != task.rank_key(person):
            return other
    # No different partner found in a few draws (tiny or degenerate group): take any other person.
    others = [p for p in people if p.id != person.id]
    return others[rng.randrange(len(others))]


def manipulation_items(
    world: BioWorld, task: str, people: Sequence[int], rng: random.Random, hint: bool = False
) -> list[ManipulationItem]:
    """One item of ``task`` per person id in ``people``, in order.

    For comparisons each person is the first of a pair whose second person is drawn with ``rng`` from the
    same ids (never the person itself; ranking pairs avoid ties, see the module docstring).
    """
    spec = get_task(task)
    persons = [world.people[i] for i in people]
    if spec.arity == 2 and len({p.id for p in persons}) < 2:
        raise ValueError(f"comparison task {task!r} needs at least 2 distinct people, got {len(persons)}")
    pools = load_pools()
    items = []
    for person in persons:
        group = (person, _partner(spec, person, persons, rng)) if spec.arity == 2 else (person,)
        items.append(spec.build(*group, hint=hint, pools=pools))
    return items

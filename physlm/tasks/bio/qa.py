"""The six QA questions of Part 3.1 and their exact whole-attribute answers, as tokens with an answer span."""

from __future__ import annotations

from dataclasses import dataclass

from physlm.tasks.bio.people import Person
from physlm.tasks.bio.pools import ATTRIBUTES, Pools, load_pools
from physlm.tasks.bio.tokenizer import tokenize

QUESTIONS = {
    "birth_date": "What is the birth date of {name}?",
    "birth_city": "What is the birth city of {name}?",
    "university": "Which university did {name} study?",
    "major": "What major did {name} study?",
    "employer": "Which company did {name} work for?",
    "company_city": "Where did {name} work?",
}
"""Part 3.1 §2.1, word for word; the answer follows as ``Answer: {value}.``"""
ANSWER_PREFIX = ("Answer", ":")


@dataclass(frozen=True)
class QAItem:
    """One question with its answer: ``tokens = question + Answer : value .``"""

    person_id: int
    attribute: str
    tokens: tuple[str, ...]
    answer_start: int
    """position of the first answer-value token; the prompt is ``tokens[:answer_start]``"""
    answer_end: int
    """one past the last value token (the final ``.`` follows)"""

    @property
    def prompt(self) -> tuple[str, ...]:
        return self.tokens[: self.answer_start]

    @property
    def answer(self) -> tuple[str, ...]:
        """The value tokens that must be generated exactly, then the closing period."""
        return self.tokens[self.answer_start :]


def qa_item(person: Person, attribute: str, pools: Pools | None = None) -> QAItem:
    """The QA pair of one person and attribute."""
    pools = pools or load_pools()
    if attribute not in QUESTIONS:
        raise ValueError(f"unknown attribute {attribute!r}; attributes are {', '.join(ATTRIBUTES)}")
    question = tokenize(QUESTIONS[attribute].format(name=person.full_name(pools)))
    value = tokenize(person.value(attribute, pools))
    tokens = (*question, *ANSWER_PREFIX, *value, ".")
    start = len(question) + len(ANSWER_PREFIX)
    return QAItem(person.id, attribute, tokens, start, start + len(value))


def qa_items(person: Person, pools: Pools | None = None) -> list[QAItem]:
    """The six QA pairs of one person, in ATTRIBUTES order."""
    return [qa_item(person, a, pools) for a in ATTRIBUTES]

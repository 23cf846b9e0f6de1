"""Part 3.2 inverse search (Results 7-9, spec §4.4): recover a person's first or full name from attributes.

Ten tasks: {first, full} name from the birth date (``bdate``), the birth date + birth city (``birth``), the
major + university + employer (``three``), those three + birth city (``four``) and all six attributes
(``all``). The templates are plain ones of our own (the paper gives only the task list): one sentence that
names the given attributes in the usual bioS wording, so that a failure is the inverse-search failure itself
and not an odd question.

Attribute sets need not identify one person (67,200 birth dates among 100K people collide); like the paper
we score exact match against the person the question was built from and do not check uniqueness.
"""

from __future__ import annotations

from physlm.tasks.bio.people import Person
from physlm.tasks.bio.pools import Pools, load_pools
from physlm.tasks.bio.tokenizer import tokenize

_SOURCES = {
    "bdate": ("birth_date",),
    "birth": ("birth_date", "birth_city"),
    "three": ("major", "university", "employer"),
    "four": ("birth_city", "major", "university", "employer"),
    "all": ("birth_date", "birth_city", "major", "university", "employer", "company_city"),
}
_TEMPLATES = {
    "bdate": "Give the {target} name of the person born on {birth_date}.",
    "birth": "Give the {target} name of the person born on {birth_date} in {birth_city}.",
    "three": "Give the {target} name of the person who studied {major} at {university} and worked for {employer}.",
    "four": (
        "Give the {target} name of the person born in {birth_city} who studied {major} at {university} "
        "and worked for {employer}."
    ),
    "all": (
        "Give the {target} name of the person born on {birth_date} in {birth_city} who studied {major} at "
        "{university} and worked for {employer} in {company_city}."
    ),
}

INVERSE_TASKS: dict[str, tuple[tuple[str, ...], str]] = {
    f"{source}_to_{target}": (_SOURCES[source], target) for source in _SOURCES for target in ("first", "full")
}
"""task name -> (attributes given in the question, ``first`` or ``full``): the paper's ten task names."""


def inverse_question(person: Person, task: str, pools: Pools | None = None) -> tuple[list[str], list[str]]:
    """The question tokens and the answer-name tokens of one inverse-search task for ``person``."""
    if task not in INVERSE_TASKS:
        raise ValueError(f"unknown inverse-search task {task!r}; known: {', '.join(INVERSE_TASKS)}")
    pools = pools or load_pools()
    sources, target = INVERSE_TASKS[task]
    source = task.split("_to_")[0]
    values = {attribute: person.value(attribute, pools) for attribute in sources}
    question = tokenize(_TEMPLATES[source].format(target=target, **values))
    name = person.first_name(pools) if target == "first" else person.full_name(pools)
    return question, tokenize(name)

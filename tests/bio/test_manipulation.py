"""Part 3.2 manipulation tasks: vocabulary coverage, answers against the facts, hints, determinism."""

from __future__ import annotations

import functools
import random

import pytest

from physlm.tasks.bio.config import BioConfig, BioWorld, build_world
from physlm.tasks.bio.inverse import INVERSE_TASKS
from physlm.tasks.bio.manipulation import (
    DIRECT_MARKER,
    HINT_MARKER,
    MANIPULATION_TASKS,
    ManipulationItem,
    manipulation_items,
    number_tokens,
)
from physlm.tasks.bio.people import Person
from physlm.tasks.bio.pools import MONTHS, load_pools
from physlm.tasks.bio.tokenizer import bio_token_table, tokenize

N = 200


@functools.lru_cache(maxsize=1)
def _world() -> BioWorld:
    return build_world(BioConfig(n_people=N, seed=3))


def _items(task: str, hint: bool = False, seed: int = 0) -> list[ManipulationItem]:
    return manipulation_items(_world(), task, range(N), random.Random(seed), hint=hint)


def _hint_options(task: str) -> list[bool]:
    return [False, True] if MANIPULATION_TASKS[task].hintable else [False]


def _number(tokens: tuple[str, ...]) -> int:
    """Parse an answer number back: ``("-", "5")`` -> -5."""
    return -int(tokens[1]) if tokens[0] == "-" else int(tokens[0])


def _person(item: ManipulationItem, second: bool = False) -> Person:
    return _world().people[item.second_person_id if second else item.person_id]


def test_task_list_has_the_papers_tasks():
    expected = {
        "partial_birth_day", "partial_birth_month", "partial_birth_year",
        "month_mod_2", "month_mod_6", "month_mod_12", "major_mod_5", "major_mod_20", "major_mod_100",
        "month_rank", "month_sub", "major_rank", "major_sub", "day_rank", "day_sub",
    }  # fmt: skip
    assert expected <= set(MANIPULATION_TASKS)
    assert sum(name.startswith("dual_") for name in MANIPULATION_TASKS) == 6
    assert len(INVERSE_TASKS) == 10 and set(INVERSE_TASKS) <= set(MANIPULATION_TASKS)
    assert {"bdate_to_first", "birth_to_full", "three_to_first", "four_to_full", "all_to_full"} <= set(INVERSE_TASKS)


@pytest.mark.parametrize("task", list(MANIPULATION_TASKS))
def test_every_token_is_in_the_vocabulary(task):
    table = bio_token_table()
    for hint in _hint_options(task):
        for item in _items(task, hint):
            table.encode(item.tokens)  # raises on an unknown token


@pytest.mark.parametrize("task", list(MANIPULATION_TASKS))
def test_layout_and_spans(task):
    spec = MANIPULATION_TASKS[task]
    for hint in _hint_options(task):
        for item in _items(task, hint)[:20]:
            assert item.task == task
            assert item.tokens[item.answer_end] == "." and item.answer_end == len(item.tokens) - 1
            assert item.answer_end > item.answer_start
            if spec.hintable:
                assert item.prompt[-3:] == (HINT_MARKER if hint else DIRECT_MARKER, "Answer", ":")
                assert item.prompt[:-3].count(HINT_MARKER) + item.prompt[:-3].count(DIRECT_MARKER) == 0
            else:
                assert item.prompt[-2:] == ("Answer", ":")
            if hint:
                start, end = item.hint_span
                assert start == len(item.prompt) and item.tokens[end] == "." and end + 1 == item.answer_start
            else:
                assert item.hint_span is None and item.hint == () and len(item.prompt) == item.answer_start
            assert (item.second_person_id is not None) == (spec.arity == 2)
            if spec.arity == 2:
                assert item.second_person_id != item.person_id


def test_partial_and_dual_retrieval_answers():
    pools = load_pools()
    for item in _items("partial_birth_day"):
        assert int(item.final_answer[0]) == _person(item).birth_day
    for item in _items("partial_birth_year"):
        assert item.final_answer == (str(_person(item).birth_year),)
    for item in _items("partial_birth_month"):
        assert item.final_answer == (MONTHS[_person(item).birth_month - 1],)
    for task in (name for name in MANIPULATION_TASKS if name.startswith("dual_")):
        first, second = _dual_attributes(task)
        for item in _items(task):
            person = _person(item)
            answer = list(item.final_answer)
            cut = answer.index(";")
            assert answer[:cut] == tokenize(person.value(first, pools))
            assert answer[cut + 1 :] == tokenize(person.value(second, pools))
            assert f"of {person.full_name(pools)}" in " ".join(item.prompt)


def _dual_attributes(task: str) -> tuple[str, str]:
    rest = task.removeprefix("dual_")
    for first in ("birth_city", "company_city", "university", "major", "employer"):
        if rest.startswith(first + "_"):
            return first, rest[len(first) + 1 :]
    raise AssertionError(task)


@pytest.mark.parametrize("hint", [False, True])
def test_classification_answers(hint):
    pools = load_pools()
    for item in _items("month_mod_2", hint):
        assert item.final_answer == (("Yes",) if _person(item).birth_month % 2 == 0 else ("No",))
    for p in (6, 12):
        for item in _items(f"month_mod_{p}", hint):
            assert _number(item.final_answer) == _person(item).birth_month % p
            assert item.hint == ((MONTHS[_person(item).birth_month - 1],) if hint else ())
    for p in (5, 20, 100):
        for item in _items(f"major_mod_{p}", hint):
            assert _number(item.final_answer) == _person(item).major % p
            assert item.hint == (tuple(tokenize(pools.majors[_person(item).major])) if hint else ())


def test_luckiness_is_the_major_index():
    pools = load_pools()
    cs = next(i for i, m in enumerate(pools.majors) if m == "Computer Science")
    assert cs == 0


@pytest.mark.parametrize("hint", [False, True])
def test_comparison_answers_and_hints(hint):
    pools = load_pools()
    keys = {
        "month": lambda p: p.birth_month,
        "major": lambda p: p.major,
        "day": lambda p: p.birth_day,
    }
    hints = {
        "month": lambda p: [MONTHS[p.birth_month - 1]],
        "major": lambda p: tokenize(pools.majors[p.major]),
        "day": lambda p: [str(p.birth_day)],
    }
    for what, key in keys.items():
        for item in _items(f"{what}_rank", hint):
            a, b = _person(item), _person(item, second=True)
            assert key(a) != key(b)  # 200 people always offer a partner without a tie
            assert item.final_answer == (("Yes",) if key(a) > key(b) else ("No",))
        subs = _items(f"{what}_sub", hint)
        for item in subs:
            a, b = _person(item), _person(item, second=True)
            assert _number(item.final_answer) == key(a) - key(b)
            if hint:
                assert list(item.hint) == [*hints[what](a), ";", *hints[what](b)]
        assert any(_number(item.final_answer) < 0 for item in subs)


def test_month_rank_ignores_the_year_and_uses_the_paper_wording():
    item = _items("month_rank")[0]
    a, b = _person(item), _person(item, second=True)
    text = " ".join(item.prompt)
    assert "born in a month in a year later than" in text
    assert str(a.birth_year) not in item.tokens and str(b.birth_year) not in item.tokens


def test_subtraction_ranges():
    for task, bound in (("month_sub", 11), ("major_sub", 99), ("day_sub", 27)):
        values = [_number(item.final_answer) for item in _items(task)]
        assert all(-bound <= v <= bound for v in values)


def test_number_tokens():
    assert number_tokens(-5) == ["-", "5"] and number_tokens(0) == ["0"] and number_tokens(99) == ["99"]


@pytest.mark.parametrize("task", list(INVERSE_TASKS))
def test_inverse_search_answers_and_questions(task):
    pools = load_pools()
    sources, target = INVERSE_TASKS[task]
    for item in _items(task)[:50]:
        person = _person(item)
        expected = person.first_name(pools) if target == "first" else person.full_name(pools)
        assert list(item.final_answer) == tokenize(expected)
        prompt = " ".join(item.prompt)
        for attribute in sources:
            assert " ".join(tokenize(person.value(attribute, pools))) in prompt
        assert person.full_name(pools) not in " ".join(item.prompt)
        assert prompt.startswith(f"Give the {target} name of the person")


def test_deterministic_with_a_seed():
    for task in ("month_rank", "major_sub", "month_mod_2", "all_to_full"):
        assert _items(task, seed=5) == _items(task, seed=5)
    assert _items("major_sub", seed=5) != _items("major_sub", seed=6)


def test_hint_on_a_task_without_hint_is_refused():
    with pytest.raises(ValueError, match="has no hint"):
        _items("partial_birth_year", hint=True)


def test_comparison_needs_two_people():
    with pytest.raises(ValueError, match="at least 2"):
        manipulation_items(_world(), "month_rank", [4], random.Random(0))


def test_unknown_task_is_one_clear_line():
    with pytest.raises(ValueError) as info:
        manipulation_items(_world(), "month_mod_3", range(5), random.Random(0))
    message = str(info.value)
    assert "\n" not in message and "'month_mod_3'" in message
    assert all(name in message for name in MANIPULATION_TASKS)


def test_classification_wording():
    item = _items("month_mod_2")[0]
    name = _person(item).full_name(load_pools())
    assert " ".join(item.prompt) == " ".join(
        tokenize(f"Was {name} born in an even month?") + [DIRECT_MARKER, "Answer", ":"]
    )
    for item in _items("major_mod_100")[:5]:
        assert "modulo" not in item.prompt and "100" not in item.tokens  # mod 100 = the luckiness itself

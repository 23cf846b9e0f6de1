"""QA items, the vocabulary, the P_train/P_test split and BioTask's documents."""

import collections
import random

import pytest

from physlm.tasks.bio import (
    ATTRIBUTES,
    BioConfig,
    BioTask,
    bio_token_table,
    build_world,
    encode_text,
    load_pools,
    qa_item,
    qa_items,
    tokenize,
)
from physlm.tasks.bio.augmentation import OTHER_AUGMENTATIONS, PAPER_AUGMENTATIONS
from physlm.tasks.bio.pools import DAYS, MONTHS, PRONOUNS, YEARS
from physlm.tasks.bio.qa import ANSWER_PREFIX, QUESTIONS
from physlm.tasks.bio.tokenizer import SPECIAL_TOKENS, TokenizeError, detokenize


def test_qa_items_prompt_and_answer_span():
    world = build_world(BioConfig(n_people=30, seed=4))
    for person in world.people:
        items = qa_items(person)
        assert [i.attribute for i in items] == list(ATTRIBUTES)
        for item in items:
            value = tokenize(person.value(item.attribute))
            question = tokenize(QUESTIONS[item.attribute].format(name=person.full_name()))
            assert item.person_id == person.id
            assert list(item.prompt) == question + list(ANSWER_PREFIX)
            assert list(item.tokens[item.answer_start : item.answer_end]) == value
            assert list(item.answer) == value + ["."] and item.answer_end == len(item.tokens) - 1
            assert tokenize(detokenize(item.tokens)) == list(item.tokens)
    p = world.people[0]
    item = qa_item(p, "birth_city")
    assert detokenize(item.tokens) == f"What is the birth city of {p.full_name()}? Answer: {p.value('birth_city')}."


def test_every_pool_value_template_and_document_is_in_the_vocabulary():
    table = bio_token_table()
    index = table._index()
    pools = load_pools()
    strings = [
        *pools.first_names, *pools.middle_names, *pools.last_names, *pools.cities, *pools.universities,
        *pools.majors, *pools.companies, *pools.company_cities, *MONTHS, *map(str, DAYS), *map(str, YEARS),
        *PRONOUNS, "The person's name is.", *(q.format(name=" ") for q in QUESTIONS.values()), "Answer:",
    ]
    strings += [t.replace("{name}", " ").replace("{value}", " ") for ts in pools.templates.values() for t in ts]
    missing = sorted({t for s in strings for t in tokenize(s)} - set(index))
    assert missing == []
    # and the rendered documents themselves, under every augmentation
    rng = random.Random(0)
    for augmentation in PAPER_AUGMENTATIONS + OTHER_AUGMENTATIONS:
        world = build_world(BioConfig(n_people=10, augmentation=augmentation, seed=1))
        for _ in range(10):
            assert all(t in index for t in world.sample_entry(rng).tokens), augmentation
    assert all(t in index for p in world.people for i in qa_items(p) for t in i.tokens)
    assert table.tokens[: len(SPECIAL_TOKENS)] == SPECIAL_TOKENS and table.d_vocab < 4000
    with pytest.raises(TokenizeError, match="'Zyzzyva' is not in the bio vocabulary"):
        encode_text("Zyzzyva was born on May 1, 1990.")


def test_split_is_by_person_and_disjoint():
    config = BioConfig(n_people=101, train_fraction=0.3, seed=2)
    world = build_world(config)
    train, test = set(world.train_people), set(world.test_people)
    assert not train & test and train | test == set(range(101))
    assert len(train) == 30 and list(world.train_people) == sorted(train)
    assert build_world(config.replace(seed=3)).train_people != world.train_people  # seeded split
    # celebrities: QA is trained on the celebrities only and tested on the whole main group (Result 6)
    celeb = build_world(BioConfig(n_people=20, n_celebrities=5, seed=2))
    assert celeb.train_people == tuple(range(20, 25)) and celeb.test_people == tuple(range(20))


def _contains(tokens, part):
    return any(tuple(tokens[i : i + len(part)]) == part for i in range(len(tokens)))


@pytest.mark.parametrize("n_celebrities", [0, 8])
def test_task_documents_and_qa_mixing(n_celebrities):
    task = BioTask(BioConfig(n_people=40, n_celebrities=n_celebrities, seed=1), qa_ratio=0.3)
    table = task.token_table
    names = {tuple(tokenize(p.full_name())): p.id for p in task.world.people}
    rng = random.Random(0)
    kinds = collections.Counter()
    specials = {table.id(t) for t in SPECIAL_TOKENS}
    for _ in range(600):
        ids = task.sample_document(rng)
        assert ids and all(0 <= i < table.d_vocab for i in ids) and not specials & set(ids)
        tokens = table.decode(ids)
        if "Answer" in tokens:
            kinds["qa"] += 1
            asked = [pid for name, pid in names.items() if _contains(tokens, name)]
            assert len(asked) == 1 and asked[0] in task.world.train_people  # never a P_test person's answer
        else:
            kinds["bio"] += 1
            assert tokens[-1] == "."
    assert abs(kinds["qa"] / 600 - 0.3) < 0.06
    # without qa_ratio every document is a biography, and the stream is reproducible
    plain = BioTask(task.config)
    assert all("Answer" not in plain.token_table.decode(plain.sample_document(rng)) for _ in range(100))
    assert plain.sample_document(random.Random(5)) == plain.sample_document(random.Random(5))

import random

import pytest

from physlm.tasks.base import Task
from physlm.tasks.igsm import IGSMTask, decode, encode, generate_problem, igsm_token_table, preset, tokenize
from physlm.tasks.igsm.catalog import load_catalog
from physlm.tasks.igsm.tokenizer import TokenizeError


def test_token_table_layout():
    table = igsm_token_table()
    assert table.tokens[:4] == ("<pad>", "<bos>", "<eos>", "<mask>")
    for tok in ["[BACK]", "[START]", "[MID]", "[END]", "[PROB]", "[SOL]", "[ANS]", "'s", "+", "-", "*", "="]:
        table.id(tok)
    assert all(str(i) in table.tokens for i in range(23)) and "23" not in table.tokens
    letters = [t for t in table.tokens if len(t) == 1 and t.isalpha()]
    assert len(letters) == 52
    catalog = load_catalog()
    assert set(catalog.item_names) <= set(table.tokens)
    assert table.d_vocab < 1700


def test_item_names_are_single_tokens():
    text = "The number of each Trader Joe's's Milk equals each Sam's Club's Milk."
    toks = tokenize(text)
    assert "Trader Joe's" in toks and "Sam's Club" in toks and toks.count("'s") == 2


@pytest.mark.parametrize("name", ["tiny", "med"])
def test_round_trip_of_generated_text(name):
    p = generate_problem(preset(name, split="all"), random.Random(1))
    for text in (p.problem_text, p.solution_text):
        assert decode(encode(text)) == text.strip()
    assert tokenize(p.problem_text) == p.problem_tokens()
    assert tokenize(p.solution_text) == p.solution_tokens


def test_back_is_the_retry_token():
    assert tokenize("Define Penguin Beach's Animal as BACK.")[-2] == "[BACK]"
    assert (
        decode(encode("Define Penguin Beach's Animal as BACK.")) == "Define Penguin Beach's Animal as BACK."
    )


def test_unknown_text_raises_a_clear_error():
    with pytest.raises(TokenizeError, match="position"):
        tokenize("The number of each Foo equals 99 %")


def test_task_streams_documents():
    task = IGSMTask(preset("tiny"), max_tokens=400)
    assert isinstance(task, Task)
    rng = random.Random(0)
    docs = [task.sample_document(rng) for _ in range(3)]
    table = task.token_table
    for doc in docs:
        toks = table.decode(doc)
        assert toks[0] == "[PROB]" and "[SOL]" in toks and toks[-2] == "[ANS]" and len(doc) <= 400
    assert docs == [task.sample_document(r) for r in [random.Random(0)] for _ in range(3)]

"""Bio QA evaluation (physlm.analysis.bio_eval): teacher-forced exact match against a real greedy decode loop,
beam search, BIO memorisation with planted oracles, intervals, a tiny end-to-end fine-tuning check, and the
qa_results.csv round trip."""

from __future__ import annotations

import math

import pytest
import torch

from physlm.analysis.bio_eval import (
    MEAN,
    QA_COLUMNS,
    Hits,
    QARow,
    accuracy_interval,
    answer_complete,
    beam_search,
    bio_memorisation,
    memorisation_rows,
    people_bootstrap,
    qa_accuracy,
    qa_accuracy_beam,
    qa_item_outcomes,
    qa_items_of,
    qa_rows,
    read_qa_results,
    subsample_items,
    write_qa_results,
)
from physlm.tasks.bio import ATTRIBUTES, BioConfig, bio_token_table, build_world, load_pools, tokenize
from physlm.training.bio_finetune import QAFinetuneConfig, finetune_qa
from physlm.training.model import build_model
from physlm.training.model_config import ModelConfig

TABLE = bio_token_table()


@pytest.fixture(scope="module")
def world():
    """Ten people: five in P_train, five in P_test."""
    return build_world(BioConfig(n_people=10, seed=0))


@pytest.fixture(scope="module")
def random_model():
    return build_model(ModelConfig(n_layers=2, d_model=64, n_heads=4, n_ctx=128, d_vocab=TABLE.d_vocab, seed=0)).eval()


def _finetuned(model, world, steps):
    config = QAFinetuneConfig(mode="full", steps=steps, batch_size=16, lr=3e-3, weight_decay=0.0)
    return finetune_qa(model, world, config).model


@pytest.fixture(scope="module")
def partly_trained(random_model, world):
    """Full fine-tuning stopped early: some P_train answers right, some only partly, P_test wrong."""
    return _finetuned(random_model, world, steps=30)


@pytest.fixture(scope="module")
def memorised(random_model, world):
    """Full fine-tuning long enough to memorise the 30 P_train QA pairs."""
    return _finetuned(random_model, world, steps=100)


def greedy_decode(model, prompt: list[int], max_new_tokens: int) -> list[int]:
    """The reference: one unbatched forward pass per generated token, argmax, stop at the closing period."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(max_new_tokens):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
            if answer_complete(TABLE.decode(ids[len(prompt) :])):
                break
    return ids[len(prompt) :]


def _greedy_outcomes(model, items):
    exact, first = [], []
    for item in items:
        generated = greedy_decode(model, TABLE.frame(TABLE.encode(item.prompt), close=False), len(item.answer) + 3)
        answer = TABLE.encode(item.answer)
        exact.append(generated == answer)
        first.append(generated[:1] == answer[:1])
    return exact, first


# -- stop rule and the teacher-forcing equivalence ------------------------------------------------------------
def test_every_pool_value_stops_exactly_at_its_closing_period():
    pools = load_pools()
    values = ["October 2, 1996", *pools.cities, *pools.universities, *pools.majors, *pools.companies]
    values += pools.company_cities
    dotted = 0
    for value in values:
        answer = [*tokenize(value), "."]
        assert answer_complete(answer), value
        assert not any(answer_complete(answer[:i]) for i in range(len(answer))), value
        dotted += "." in value
    assert dotted >= 5  # the rule is exercised: Washington D.C., St. Louis, Caterpillar Inc., ...


@pytest.mark.parametrize("which", ["random_model", "partly_trained"])
def test_teacher_forced_exact_match_equals_greedy_generation(which, request, world):
    model = request.getfixturevalue(which)
    items = qa_items_of(world, range(10))
    exact, first = qa_item_outcomes(model, items, batch_size=16)
    assert (exact, first) == _greedy_outcomes(model, items)
    if which == "partly_trained":
        assert 0 < sum(exact) < len(items)  # a real mix of right and wrong answers
        assert sum(first) > sum(exact)  # some answers start right and then go wrong


@pytest.mark.parametrize("which", ["random_model", "partly_trained"])
def test_beam_of_one_is_greedy_decoding(which, request, world):
    model = request.getfixturevalue(which)
    items = qa_items_of(world, range(10))
    prompts = [TABLE.frame(TABLE.encode(item.prompt), close=False) for item in items]
    greedy = [tuple(greedy_decode(model, p, 12)) for p in prompts]
    assert beam_search(model, prompts, beam=1, max_new_tokens=12, batch_size=7) == greedy
    by_beam = qa_accuracy_beam(model, items, beam=1)
    by_teacher = qa_accuracy(model, world, range(10))
    for attribute in ATTRIBUTES:
        assert by_beam[attribute].exact == by_teacher[attribute].exact
        assert by_beam[attribute].first_token == by_teacher[attribute].first_token


def test_beam_four_finds_memorised_answers(memorised, world):
    items = qa_items_of(world, world.train_people)
    result = qa_accuracy_beam(memorised, items, beam=4)
    assert all(r.exact_accuracy == 1.0 for r in result.values())
    prompts = [TABLE.frame(TABLE.encode(item.prompt), close=False) for item in items[:4]]
    for ids in beam_search(memorised, prompts, beam=4, max_new_tokens=12):
        assert answer_complete(TABLE.decode(list(ids)))  # every best hypothesis ends its answer


def test_full_finetuning_drives_train_accuracy_up(random_model, memorised, world):
    before = qa_accuracy(random_model, world, world.train_people)
    after = qa_accuracy(memorised, world, world.train_people)
    assert list(after) == list(ATTRIBUTES)
    assert all(r.exact_accuracy == 0.0 for r in before.values())
    for attribute, r in after.items():
        assert r.n == len(world.train_people) and r.exact.people == tuple(world.train_people)
        assert r.exact_accuracy == 1.0 and r.first_token_accuracy == 1.0, attribute
    held_out = qa_accuracy(memorised, world, world.test_people)
    assert sum(r.exact_accuracy for r in held_out.values()) < 6 * 0.5  # P_test's QA was never trained


# -- planted oracles -----------------------------------------------------------------------------------------
def _oracle(model, shift: int):
    """A copy of ``model`` whose logits at position p put all mass on the input token at p + shift: shift 1 is
    the perfect next-token predictor, shift 0 the classic off-by-one bug (it predicts the current token)."""

    def forward(tokens, *args, **kwargs):
        target = torch.roll(tokens, -shift, dims=1)
        return torch.nn.functional.one_hot(target, TABLE.d_vocab).float()

    model.forward = forward
    return model


def test_bio_memorisation_reads_the_first_value_token(world):
    def fresh():
        return build_model(ModelConfig(n_layers=1, d_model=32, n_heads=4, n_ctx=128, d_vocab=TABLE.d_vocab))

    perfect = bio_memorisation(_oracle(fresh(), 1), world, n_entries=20, seed=3)
    assert list(perfect) == list(ATTRIBUTES)
    assert all(h.n == 20 and h.accuracy == 1.0 for h in perfect.values())
    assert all(h.accuracy == 0.0 for h in bio_memorisation(_oracle(fresh(), 0), world, 20, seed=3).values())
    rows = memorisation_rows(perfect, "single", n_boot=50)
    assert {r.metric for r in rows} == {"bio_first_token"} and rows[-1].attribute == MEAN
    assert len(rows) == len(ATTRIBUTES) + 1


def test_qa_accuracy_with_a_perfect_oracle_is_one(world):
    oracle = _oracle(build_model(ModelConfig(n_layers=1, d_model=32, n_heads=4, d_vocab=TABLE.d_vocab)), 1)
    result = qa_accuracy(oracle, world, world.test_people, attributes=("major", "employer"))
    assert list(result) == ["major", "employer"]
    assert all(r.exact_accuracy == 1.0 and r.first_token_accuracy == 1.0 for r in result.values())


# -- intervals and rows ------------------------------------------------------------------------------------
def test_intervals_contain_their_values():
    one_each = Hits("major", tuple(range(20)), tuple(i % 3 == 0 for i in range(20)))
    low, high = accuracy_interval(one_each)
    assert low < one_each.accuracy < high  # Wilson: one outcome per person
    repeated = Hits("major", tuple(i // 4 for i in range(40)), tuple(i % 5 < 2 for i in range(40)))
    value, low, high = people_bootstrap([repeated], n_boot=200, seed=1)
    assert value == repeated.accuracy and low <= value <= high and low < high
    assert people_bootstrap([repeated], n_boot=200, seed=1) == (value, low, high)  # seeded
    other = Hits("employer", tuple(range(20)), tuple(i % 2 == 0 for i in range(20)))
    mean, low, high = people_bootstrap([one_each, other], n_boot=200)
    assert mean == pytest.approx((one_each.accuracy + other.accuracy) / 2) and low <= mean <= high


def test_qa_rows_have_every_attribute_and_a_mean(partly_trained, world):
    result = qa_accuracy(partly_trained, world, world.train_people)
    rows = qa_rows(result, "single", "pretrain+full", "train_people", n_boot=100)
    assert {r.metric for r in rows} == {"exact_greedy", "first_token"}
    assert [r.attribute for r in rows if r.metric == "exact_greedy"] == [*ATTRIBUTES, MEAN]
    mean = next(r for r in rows if r.attribute == MEAN and r.metric == "exact_greedy")
    assert mean.value == pytest.approx(sum(r.exact_accuracy for r in result.values()) / 6)
    assert all(r.ci_low <= r.value <= r.ci_high for r in rows)
    beam_rows = qa_rows(result, "single", "pretrain+full", "train_people", "exact_beam4", first_token=False)
    assert {r.metric for r in beam_rows} == {"exact_beam4"}


def test_qa_results_round_trip(tmp_path):
    rows = [
        QARow("multi5+permute", "mixed", "test_people", MEAN, "exact_greedy", 0.8666666, 0.8, 0.9),
        QARow("multi5+permute", "mixed", "test_people", "birth_date", "exact_greedy", 1 / 3, 0.1, 0.6),
        QARow("single", "pretrain+lora", "train_people", "major", "first_token", 1.0, 0.95, 1.0),
    ]
    path = write_qa_results(tmp_path / "qa_results.csv", rows)
    header, first = path.read_text().splitlines()[:2]
    assert header == ",".join(QA_COLUMNS)
    assert first.endswith("0.333333,0.100000,0.600000")  # attribute order puts birth_date before mean
    back = read_qa_results(path)
    assert [r.attribute for r in back] == ["birth_date", MEAN, "major"]
    for a, b in zip(back, sorted(rows, key=lambda r: (r.dataset, r.attribute != "birth_date"))):
        assert a.to_dict().keys() == b.to_dict().keys()
        for column in QA_COLUMNS:
            x, y = getattr(a, column), getattr(b, column)
            assert x == pytest.approx(y, abs=1e-6) if isinstance(y, float) else x == y
    assert read_qa_results(write_qa_results(tmp_path / "again.csv", back)) == back


def test_subsample_is_seeded_and_ordered(world):
    items = qa_items_of(world, range(10))
    picked = subsample_items(items, 7, seed=2)
    assert picked == subsample_items(items, 7, seed=2) and len(picked) == 7
    assert [items.index(i) for i in picked] == sorted(items.index(i) for i in picked)
    assert subsample_items(items, 100) == items
    assert not math.isnan(Hits("major", (0,), (True,)).accuracy)

"""Exact CFG dynamic programs: spec test vectors, brute-force agreement on tiny grammars, properties.

Grammars are read from the official JSONs shipped as package data (byte-identical copies of the published
files) by a local converter, and sentences drawn by a local sampler, so these tests depend only on the
Grammar type and the DP modules under test.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from physlm.tasks.cfg.dp import count_parses, is_valid, log_prob, next_token_distribution, parse_tree
from physlm.tasks.cfg.grammar import Grammar
from physlm.tasks.cfg.sample import ParseNode

OFFICIAL = Path(__file__).resolve().parents[2] / "physlm" / "tasks" / "cfg" / "grammars"
CFG3F_START = (3, 3, 3, 3, 1, 1, 2, 1, 3, 1, 2, 3, 2, 2, 1, 2, 3, 3, 1, 2)


def _official(name: str) -> Grammar:
    """Grammar from an official JSON: ``all[d][k]["children"]`` are rules of indices into level d + 1."""
    path = OFFICIAL / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"official grammar file {path} not available")
    data = json.loads(path.read_text())
    rules = tuple(
        tuple(tuple(tuple(rule) for rule in node["children"]) for node in level) for level in data["all"][:-1]
    )
    return Grammar(name=name, sizes=tuple(data["sizes"]), rules=rules)


def _sample(grammar: Grammar, rng: random.Random, d: int = 0, a: int = 0, start: int = 0) -> ParseNode:
    """Depth-first, left to right, one ``randrange(k)`` per nonterminal: the official sampler's stream."""
    if d == grammar.num_levels - 1:
        return ParseNode(d, a, start, start + 1, None, ())
    rules = grammar.rules[d][a]
    if grammar.rule_probs is None:
        r = rng.randrange(len(rules))
    else:
        r = rng.choices(range(len(rules)), weights=grammar.rule_probs[d][a])[0]
    children, pos = [], start
    for c in rules[r]:
        child = _sample(grammar, rng, d + 1, c, pos)
        children.append(child)
        pos = child.end
    return ParseNode(d, a, start, pos, r, tuple(children))


def _leaves(node: ParseNode) -> list[int]:
    if not node.children:
        return [node.symbol + 1]
    return [t for child in node.children for t in _leaves(child)]


def _check_tree(grammar: Grammar, node: ParseNode, symbols: list[int]) -> None:
    """A tree is a derivation of ``symbols``: rules of the grammar, children tiling their parent's span."""
    assert _leaves(node) == list(symbols[node.start : node.end])
    if node.children:
        assert tuple(c.symbol for c in node.children) == grammar.rules[node.depth][node.symbol][node.rule]
        assert node.children[0].start == node.start and node.children[-1].end == node.end
        for left, right in zip(node.children, node.children[1:]):
            assert left.end == right.start
        for child in node.children:
            assert child.depth == node.depth + 1
            _check_tree(grammar, child, symbols)
    else:
        assert node.depth == grammar.num_levels - 1 and node.end == node.start + 1


def _language(grammar: Grammar, max_len: int) -> dict[tuple[int, ...], tuple[int, float]]:
    """Every sentence of at most ``max_len`` terminals with its number of derivations and probability."""
    leaf = grammar.num_levels - 1
    memo: dict[tuple[int, int], dict[tuple[int, ...], tuple[int, float]]] = {}

    def lang(d: int, a: int) -> dict[tuple[int, ...], tuple[int, float]]:
        if d == leaf:
            return {(a + 1,): (1, 1.0)}
        if (d, a) not in memo:
            out: dict[tuple[int, ...], tuple[int, float]] = {}
            for rule, p in zip(grammar.rules[d][a], grammar.probabilities(d, a)):
                partial = {(): (1, p)}
                for c in rule:
                    nxt: dict[tuple[int, ...], tuple[int, float]] = {}
                    for s, (cnt, pr) in partial.items():
                        for s2, (cnt2, pr2) in lang(d + 1, c).items():
                            if len(s) + len(s2) <= max_len:
                                old = nxt.get(s + s2, (0, 0.0))
                                nxt[s + s2] = (old[0] + cnt * cnt2, old[1] + pr * pr2)
                    partial = nxt
                for s, (cnt, pr) in partial.items():
                    old = out.get(s, (0, 0.0))
                    out[s] = (old[0] + cnt, old[1] + pr)
            memo[(d, a)] = out
        return memo[(d, a)]

    return lang(0, 0)


@st.composite
def layered_grammars(draw, max_levels: int = 4, max_symbols: int = 3, max_rule_len: int = 3) -> Grammar:
    """Small random layered grammars: any sizes, 1-3 rules per symbol, shared right-hand sides allowed
    across symbols (so sentences can be ambiguous), uniform or random rule probabilities."""
    n_levels = draw(st.integers(2, max_levels))
    sizes = (1, *(draw(st.integers(1, max_symbols)) for _ in range(n_levels - 1)))
    rule = lambda below: st.lists(st.integers(0, below - 1), min_size=2, max_size=max_rule_len).map(tuple)
    rules = tuple(
        tuple(
            tuple(draw(st.lists(rule(sizes[d + 1]), min_size=1, max_size=3, unique=True)))
            for _ in range(sizes[d])
        )
        for d in range(n_levels - 1)
    )
    probs = None
    if draw(st.booleans()):
        probs = []
        for level in rules:
            level_probs = []
            for sym_rules in level:
                w = [draw(st.integers(1, 5)) for _ in sym_rules]
                level_probs.append(tuple(x / sum(w) for x in w))
            probs.append(tuple(level_probs))
        probs = tuple(probs)
    return Grammar(name="random", sizes=sizes, rules=rules, rule_probs=probs)


def _sentence_log_prob_from_rows(rows: np.ndarray, symbols: list[int]) -> float:
    return sum(math.log(rows[i, t]) for i, t in enumerate(symbols)) + math.log(rows[len(symbols), 0])


# -- spec test vectors --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cfg3f_sentence():
    g = _official("cfg3f")
    x = _leaves(_sample(g, random.Random(7711)))
    assert len(x) == 305 and tuple(x[:20]) == CFG3F_START and x[-7:] == [3, 1, 1, 1, 1, 1, 1]
    return g, x


def test_cfg3f_seed_7711_log_prob_and_rows_match_the_spec(cfg3f_sentence):
    g, x = cfg3f_sentence
    assert log_prob(g, x) == pytest.approx(-222.4929583, abs=5e-8)
    rows = next_token_distribution(g, x)
    assert rows.shape == (306, 4)
    np.testing.assert_allclose(rows[0], [0, 0.367863, 0.070385, 0.561753], atol=5e-7)
    np.testing.assert_allclose(rows[1], [0, 0.323089, 0.250590, 0.426321], atol=5e-7)
    np.testing.assert_allclose(rows[4], [0, 1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(rows[-1], [1, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-12)
    assert _sentence_log_prob_from_rows(rows, x) == pytest.approx(-222.4929583, abs=5e-8)
    safe = np.where(rows > 0, rows, 1.0)
    assert float(-(rows * np.log(safe)).sum(axis=1).mean()) == pytest.approx(0.724, abs=5e-4)


def test_cfg3f_sentence_membership_parse_and_first_token_change(cfg3f_sentence):
    g, x = cfg3f_sentence
    assert is_valid(g, x)
    assert count_parses(g, x) == 1  # the official DP reports a unique parse
    tree = parse_tree(g, x)
    _check_tree(g, tree, x)
    assert tree == _sample(g, random.Random(7711))  # unique parse = the generating tree
    changed = [x[0] % 3 + 1, *x[1:]]
    assert not is_valid(g, changed) and log_prob(g, changed) == -math.inf and count_parses(g, changed) == 0


def _longest_rules(grammar: Grammar, d: int = 0, a: int = 0, rng: random.Random | None = None) -> list[int]:
    """A sentence that always expands a longest rule (random among ties): a valid, very long, unlikely one."""
    if d == grammar.num_levels - 1:
        return [a + 1]
    rng = rng or random.Random(0)
    rules = grammar.rules[d][a]
    longest = max(len(r) for r in rules)
    rule = rng.choice([r for r in rules if len(r) == longest])
    return [t for c in rule for t in _longest_rules(grammar, d + 1, c, rng)]


@pytest.mark.parametrize("name", ["cfg3k", "cfg3j"])
def test_long_sentences_are_exact_without_underflow(name):
    g = _official(name)
    demo = _leaves(_sample(g, random.Random(7711)))
    longest = _longest_rules(g)
    if name == "cfg3k":
        assert len(demo) == 625  # the official demo sentence
    assert len(longest) > 1300
    for x in (demo, longest):
        lp = log_prob(g, x)
        assert -5000 < lp < -len(x) * 0.3  # p ~ 1e-190 and far smaller: outside float64's range
        rows = next_token_distribution(g, x)
        np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-9)
        assert rows[-1, 0] > 0  # the sentence may end here (and may go on: cfg3j/k are not prefix-free)
        assert _sentence_log_prob_from_rows(rows, x) == pytest.approx(lp, rel=1e-10)
        assert count_parses(g, x) >= 1


@pytest.mark.parametrize("name", ["cfg3b", "cfg3i", "cfg3h", "cfg3g", "cfg3e2"])
def test_official_grammars_accept_their_samples_with_consistent_rows(name):
    g = _official(name)
    rng = random.Random(1)
    root = _sample(g, rng)
    x = _leaves(root)
    assert is_valid(g, x) and count_parses(g, x) >= 1
    rows = next_token_distribution(g, x)
    assert _sentence_log_prob_from_rows(rows, x) == pytest.approx(log_prob(g, x), rel=1e-10)
    if count_parses(g, x) == 1:
        assert parse_tree(g, x) == root


# -- agreement with brute force on tiny grammars ------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammar=layered_grammars(max_levels=4, max_symbols=2), data=st.data())
def test_membership_counts_and_probabilities_match_enumeration(grammar, data):
    max_len = 7
    language = _language(grammar, max_len)
    t = grammar.num_terminals
    members = sorted(language)[:12]
    others = data.draw(
        st.lists(st.lists(st.integers(1, t), min_size=1, max_size=max_len).map(tuple), max_size=8)
    )
    for s in members + others:
        count, prob = language.get(s, (0, 0.0))
        assert is_valid(grammar, s) == (count > 0)
        assert count_parses(grammar, s) == count
        if count:
            assert log_prob(grammar, s) == pytest.approx(math.log(prob), rel=1e-10, abs=1e-12)
            _check_tree(grammar, parse_tree(grammar, s), list(s))
        else:
            assert log_prob(grammar, s) == -math.inf


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammar=layered_grammars(max_levels=3, max_symbols=3), seed=st.integers(0, 2**16))
def test_next_token_rows_match_enumerated_prefix_probabilities(grammar, seed):
    _, longest = grammar.length_range
    language = _language(grammar, longest)  # the whole language: every sentence fits
    x = _leaves(_sample(grammar, random.Random(seed)))
    rows = next_token_distribution(grammar, x)
    t = grammar.num_terminals
    for i in range(len(x) + 1):
        prefix = tuple(x[:i])
        expect = np.zeros(t + 1)
        for s, (_, p) in language.items():
            if s[:i] == prefix:
                expect[0 if len(s) == i else s[i]] += p
        np.testing.assert_allclose(rows[i], expect / expect.sum(), rtol=1e-9, atol=1e-12)


# -- properties on random grammars --------------------------------------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammar=layered_grammars(max_levels=5, max_symbols=3), seed=st.integers(0, 2**16))
def test_sampled_sentences_are_accepted_and_rows_multiply_to_the_probability(grammar, seed):
    root = _sample(grammar, random.Random(seed))
    x = _leaves(root)
    assume(len(x) <= 120)
    assert is_valid(grammar, x)
    lp = log_prob(grammar, x)
    assert lp <= 0.0
    rows = next_token_distribution(grammar, x)
    assert rows.shape == (len(x) + 1, grammar.num_terminals + 1)
    assert np.all(rows >= 0)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-12)
    assert rows[0, 0] == 0.0  # no empty sentence
    assert _sentence_log_prob_from_rows(rows, x) == pytest.approx(lp, rel=1e-10, abs=1e-12)
    n_parses = count_parses(grammar, x)
    assert n_parses >= 1
    tree = parse_tree(grammar, x)
    _check_tree(grammar, tree, x)
    if n_parses == 1:
        assert tree == root


def test_ambiguous_sentence_counts_every_parse():
    # root -> A A | B B, A -> C C, B -> C C, C -> 1 1: "1" * 8 has exactly two parses, probability 1.
    rules = ((((0, 0), (1, 1)),), (((0, 0),), ((0, 0),)), (((0, 0),),))
    g = Grammar(name="amb", sizes=(1, 2, 1, 1), rules=rules)
    x = [1] * 8
    assert count_parses(g, x) == 2
    assert log_prob(g, x) == pytest.approx(0.0, abs=1e-12)
    _check_tree(g, parse_tree(g, x), x)


def test_huge_parse_counts_are_exact_integers():
    # Every rule is "N N" over one symbol per level and both root rules derive the same strings, so the
    # count doubles per ambiguous node: exact beyond float precision.
    levels = 7
    sizes = (1, *([2] * (levels - 2)), 1)
    rules = tuple(
        tuple(((0, 1), (1, 0), (0, 0), (1, 1)) if d < levels - 2 else ((0, 0),) for _ in range(sizes[d]))
        for d in range(levels - 1)
    )
    g = Grammar(name="dense", sizes=sizes, rules=rules)
    x = [1] * 2 ** (levels - 1)
    # n(d) = 4 · n(d+1)^2 at the 5 NT levels with two symbols per level, 1 at the last.
    expect = 1
    for _ in range(levels - 2):
        expect = 4 * expect**2
    assert count_parses(g, x) == expect and expect > 2**53
    assert log_prob(g, x) == pytest.approx(0.0, abs=1e-9)


# -- invalid prefixes and bad inputs ------------------------------------------------------------------------


def test_rows_after_an_impossible_prefix_raise_or_are_nan(cfg3f_sentence):
    g, x = cfg3f_sentence
    rows = next_token_distribution(g, x)
    impossible = next(t for t in (1, 2, 3) if rows[10, t] == 0.0)
    bad = [*x[:10], impossible, *x[11:]]
    with pytest.raises(ValueError, match=r"first 11 symbols .* position 10"):
        next_token_distribution(g, bad)
    nan_rows = next_token_distribution(g, bad, on_invalid="nan")
    np.testing.assert_array_equal(nan_rows[:11], rows[:11])
    assert np.isnan(nan_rows[11:]).all()
    # A proper prefix of a sentence is fine: every row is defined, and EOS is impossible at its end.
    prefix_rows = next_token_distribution(g, x[:100])
    np.testing.assert_allclose(prefix_rows, rows[:101], rtol=1e-10, atol=1e-15)
    # The runtime type checker of the test suite catches the bad literal first; without it, a ValueError.
    with pytest.raises((ValueError, TypeError), match="on_invalid"):
        next_token_distribution(g, x, on_invalid="zero")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("symbols", "message"),
    [
        ([], "empty"),
        ([1, 2, 4], r"symbols\[2\] = 4 is outside the terminals 1..3"),
        ([0, 1], r"symbols\[0\] = 0 is outside"),
        ([1, -3], "outside"),
        ([1, 2.0], r"symbols\[1\] = 2.0"),
        ([1, True], r"symbols\[1\] = True"),
        ("123", "string"),
        (np.array([[1, 2]]), "flat"),
        (np.array([1.0, 2.0]), "integers"),
        ([1, None], "not an integer"),
        ([[1, 2]], "not an integer"),
    ],
)
def test_bad_inputs_raise_clear_errors(cfg3f_sentence, symbols, message):
    g, _ = cfg3f_sentence
    for fn in (is_valid, log_prob, count_parses, parse_tree, next_token_distribution):
        with pytest.raises(ValueError, match=message):
            fn(g, symbols)


def test_invalid_sentence_has_no_parse_tree_and_short_inputs_work(cfg3f_sentence):
    g, x = cfg3f_sentence
    with pytest.raises(ValueError, match="not in the language"):
        parse_tree(g, x[:-1])
    assert not is_valid(g, [1]) and count_parses(g, [1]) == 0  # shorter than any cfg3f sentence
    rows = next_token_distribution(g, [3])
    np.testing.assert_allclose(rows[0], next_token_distribution(g, x)[0])
    assert is_valid(g, np.array(x, dtype=np.int32)) and is_valid(g, [np.int64(s) for s in x])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "unique_fraction", "string_entropy_bits"),
    [("cfg3f", 0.62, 269.3), ("cfg3g", 0.17, 268.8), ("cfg3i", 0.18, 185.5), ("cfg3h", 0.86, 205.6)],
)
def test_ambiguity_and_string_entropy_match_the_spec_table(name, unique_fraction, string_entropy_bits):
    """Spec §1.4/§1.6 [computed] on 2,000 samples: unique-parse fraction and E[−log2 p(x)] per sentence."""
    g = _official(name)
    rng = random.Random(2024)
    sentences = [_leaves(_sample(g, rng)) for _ in range(400)]
    unique = np.mean([count_parses(g, x) == 1 for x in sentences])
    bits = np.array([-log_prob(g, x) / math.log(2) for x in sentences])
    assert abs(unique - unique_fraction) < 0.08  # binomial se ≈ 0.025 at 400 samples
    assert abs(bits.mean() - string_entropy_bits) < 4 * bits.std() / math.sqrt(len(bits)) + 2

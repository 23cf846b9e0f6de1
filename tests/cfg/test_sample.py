"""Sampler: official test vectors, labels consistent with the generating tree, determinism, tokens, task."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from physlm.tasks.base import Task
from physlm.tasks.cfg import (
    CFGTask,
    CFGTaskConfig,
    cfg_token_table,
    corrupt_symbols,
    ids_to_symbols,
    load_grammar,
    maybe_corrupt,
    official_label_rows,
    random_grammar,
    sample_sentence,
    sample_symbols,
    symbols_to_ids,
)
from physlm.tasks.cfg.sample import ParseNode

CFG3F_START = (3, 3, 3, 3, 1, 1, 2, 1, 3, 1, 2, 3, 2, 2, 1, 2, 3, 3, 1, 2)
CFG3K_START = (1, 3, 1, 1, 3, 1, 2, 1, 3, 1, 1, 1, 2, 2, 1, 1, 1, 2, 1, 1)


def test_cfg3f_seed_7711_reproduces_the_official_sentence_and_label_rows():
    g = load_grammar("cfg3f")
    s = sample_sentence(g, random.Random(7711))
    assert len(s) == 305
    assert s.symbols[:20] == CFG3F_START
    assert s.symbols[-7:] == (3, 1, 1, 1, 1, 1, 1)
    rows = official_label_rows(g, s)
    assert rows[0] == [3, -2, 9, -2, 12, -2, 14, -2, 16, -2, 21, -2, 22, -2]
    assert rows[1][:4] == [3, -3, 9, -2] and rows[1][4:] == rows[0][4:]
    assert rows[2][:6] == [3, -4, 8, -3, 12, -2]
    assert rows[3][:6] == [3, -5, 8, -3, 12, -2]
    # token 2 (index 1) ends the NT6 subtree of symbol 9, and only at level 6
    assert s.end[:, 1].tolist() == [0, 0, 0, 0, 1] and s.end_level[1] == 6
    assert sample_symbols(g, random.Random(7711)) == list(s.symbols)


def test_cfg3k_seed_7711_reproduces_the_official_sentence():
    g = load_grammar("cfg3k")
    s = sample_sentence(g, random.Random(7711))
    assert len(s) == 625 and s.symbols[:20] == CFG3K_START
    # demo1: token 1 has ancestors (7, 11, 15, 18, 20, 24, 25) from level 7 up to the root
    assert official_label_rows(g, s)[0][2::2] == [7, 11, 15, 18, 20, 24, 25]


def _check_labels_against_tree(grammar, sample) -> None:
    """Walk the generating tree and check every label array against it."""
    n = len(sample)
    n_nt = grammar.num_levels - 2
    assert sample.ancestor.shape == sample.ancestor_index.shape == sample.end.shape == (n_nt, n)
    assert sample.end_level.shape == (n,)
    counters = [0] * grammar.num_levels

    def walk(node: ParseNode, chain: list[ParseNode]) -> None:
        counters[node.depth] += 1
        if not node.children:
            assert node.depth == grammar.num_levels - 1 and node.end == node.start + 1
            assert sample.symbols[node.start] == node.symbol + 1
            for r in range(n_nt):
                anc = chain[r + 1]  # depth r + 1 = level r + 2
                i = node.start
                assert sample.ancestor[r, i] == anc.symbol
                assert sample.end[r, i] == int(i == anc.end - 1)
            return
        # the parent chain: children come from the chosen rule, on the next depth, tiling the parent's span
        rule = grammar.rules[node.depth][node.symbol][node.rule]
        assert tuple(c.symbol for c in node.children) == rule
        assert all(c.depth == node.depth + 1 for c in node.children)
        assert node.children[0].start == node.start and node.children[-1].end == node.end
        assert all(a.end == b.start for a, b in zip(node.children, node.children[1:]))
        for child in node.children:
            walk(child, chain + [child])
        if 1 <= node.depth <= n_nt:
            # p_ℓ counts level-ℓ subtrees from the left, 1-based
            assert set(sample.ancestor_index[node.depth - 1, node.start : node.end]) == {counters[node.depth]}

    root = sample.tree
    assert (root.depth, root.symbol, root.start, root.end) == (0, 0, 0, n)
    walk(root, [root])
    # NT-ends nest: an end at level ℓ is an end at every deeper level; b♯ is the highest such level
    assert np.all(sample.end[:-1] <= sample.end[1:])
    assert np.all(sample.end[:, -1] == 1)
    for i in range(n):
        levels = [r + 2 for r in range(n_nt) if sample.end[r, i]]
        assert sample.end_level[i] == (min(levels) if levels else 0)
    # p_ℓ(i) changes exactly after an NT-end
    assert np.array_equal(np.diff(sample.ancestor_index, axis=1), sample.end[:, :-1])


@settings(max_examples=40, deadline=None)
@given(
    grammar_seed=st.integers(0, 10**6),
    sample_seed=st.integers(0, 10**6),
    levels=st.integers(3, 5),
    width=st.integers(1, 3),
    terminals=st.integers(2, 4),
)
def test_labels_follow_the_generating_tree_on_random_grammars(
    grammar_seed, sample_seed, levels, width, terminals
):
    sizes = (1,) + (width,) * (levels - 2) + (terminals,)
    g = random_grammar(
        grammar_seed,
        sizes=sizes,
        rules_per_nt=(1, 2),
        distinct_rules_per_level=False,
        require_reachable=False,
    )
    s = sample_sentence(g, random.Random(sample_seed))
    lo, hi = g.length_range
    assert lo <= len(s) <= hi
    _check_labels_against_tree(g, s)
    again = sample_sentence(g, random.Random(sample_seed))
    assert again.symbols == s.symbols and np.array_equal(again.ancestor, s.ancestor)


@pytest.mark.parametrize("name", ["cfg3f", "cfg3b", "cfg_small", "cfg_tiny"])
def test_labels_follow_the_tree_on_presets(name):
    g = load_grammar(name)
    rng = random.Random(3)
    for _ in range(3):
        _check_labels_against_tree(g, sample_sentence(g, rng))


def test_rule_probabilities_are_respected():
    from physlm.tasks.cfg import parse_grammar_text

    g = parse_grammar_text("S -> A A @0.9 | A A A @0.1\nA -> 1 2 | 2 1\n", name="p")
    rng = random.Random(0)
    lengths = [len(sample_symbols(g, rng)) for _ in range(4000)]
    frac_long = np.mean([n == 6 for n in lengths])
    assert abs(frac_long - 0.1) < 0.02
    assert set(lengths) == {4, 6}


def test_token_table_layout():
    g = load_grammar("cfg3f")
    table = cfg_token_table(g)
    assert table.tokens == ("<pad>", "<bos>", "<eos>", "<mask>", "1", "2", "3")
    assert (table.pad_id, table.bos_id, table.eos_id, table.mask_id) == (0, 1, 2, 3)
    assert symbols_to_ids([1, 2, 3]) == [4, 5, 6]
    assert ids_to_symbols([4, 5, 6], 3) == [1, 2, 3]
    with pytest.raises(ValueError, match="token id 2 at position 1 is not a terminal"):
        ids_to_symbols([4, 2], 3)


def test_task_protocol_and_determinism():
    task = CFGTask(CFGTaskConfig(grammar="cfg_tiny"))
    assert isinstance(task, Task)
    a = [task.sample_document(random.Random(5)) for _ in range(2)]
    assert a[0] == a[1]
    ids = task.sample_document(random.Random(6))
    assert all(4 <= i < task.token_table.d_vocab for i in ids)
    assert ids == symbols_to_ids(sample_symbols(task.grammar, random.Random(6)))
    assert (
        CFGTaskConfig.from_json(CFGTaskConfig(grammar="cfg3f", corrupt_rate=0.1).to_json()).corrupt_rate
        == 0.1
    )
    with pytest.raises(ValueError, match="corrupt_rate must be in"):
        CFGTaskConfig(corrupt_rate=1.5)


def test_corrupted_task_stream_flips_some_documents():
    task = CFGTask(CFGTaskConfig(grammar="cfg_small", corrupt_rate=1.0, flip_fraction=0.2))
    clean = CFGTask(CFGTaskConfig(grammar="cfg_small"))
    doc = task.sample_document(random.Random(1))
    ref = clean.sample_document(random.Random(1))
    assert len(doc) == len(ref)
    assert sum(a != b for a, b in zip(doc, ref)) == round(0.2 * len(ref))


@settings(max_examples=50, deadline=None)
@given(
    symbols=st.lists(st.integers(1, 4), min_size=1, max_size=60),
    fraction=st.floats(0.0, 1.0),
    seed=st.integers(0, 10**6),
)
def test_corrupt_symbols_flips_exactly_the_requested_count(symbols, fraction, seed):
    out = corrupt_symbols(symbols, fraction, 4, random.Random(seed))
    flips = sum(a != b for a, b in zip(out, symbols))
    expected = 0 if fraction == 0 else min(len(symbols), max(1, round(fraction * len(symbols))))
    assert flips == expected and all(1 <= t <= 4 for t in out)
    assert out == corrupt_symbols(symbols, fraction, 4, random.Random(seed))


def test_corruption_bad_inputs():
    with pytest.raises(ValueError, match="need at least 2"):
        corrupt_symbols([1, 1], 0.5, 1, random.Random(0))
    with pytest.raises(ValueError, match="symbol 5 at position 1 is not a terminal 1..3"):
        corrupt_symbols([1, 5], 0.5, 3, random.Random(0))
    with pytest.raises(ValueError, match=r"corrupt_rate must be a fraction in \[0, 1\]"):
        maybe_corrupt([1, 2], 2.0, 0.1, 3, random.Random(0))

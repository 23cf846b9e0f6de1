"""Grammar type, official/text file formats, presets, random builder, error messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from physlm.tasks.cfg import (
    DEFAULT_GRAMMAR,
    Grammar,
    GrammarError,
    grammar_to_text,
    list_presets,
    load_grammar,
    parse_grammar_text,
    random_grammar,
    save_grammar,
)
from physlm.tasks.cfg.grammar_io import official_ids, spreadsheet_name

OFFICIAL = ["cfg3b", "cfg3i", "cfg3h", "cfg3g", "cfg3f", "cfg3e1", "cfg3e2", "cfg3j", "cfg3k"]
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "cfg3"

# spec §1.4: exact length ranges and rule counts of the official grammars
EXPECTED = {
    "cfg3b": (32, (138, 432)),
    "cfg3i": (32, (114, 564)),
    "cfg3h": (39, (97, 459)),
    "cfg3g": (48, (80, 729)),
    "cfg3f": (54, (64, 729)),
    "cfg3e1": (444, (66, 557)),
    "cfg3e2": (228, (82, 645)),
    "cfg3j": (57, (128, 2052)),
    "cfg3k": (68, (132, 1458)),
}

CFG3F_TEXT = """\
22 -> 20 21 | 20 19 21 | 21 19 19 | 20 20
19 -> 18 16 18 | 17 18 | 18 18
20 -> 16 16 | 16 17 | 17 16 18
21 -> 18 17 | 17 16 | 16 17 18 | 16 18
16 -> 15 15 | 13 15 13 | 14 13 | 14 14
17 -> 15 14 13 | 14 15 | 15 14
18 -> 14 15 13 | 15 13 13 | 13 15
13 -> 11 12 | 12 11 12 | 10 12 11
14 -> 10 12 | 12 10 12 | 12 11 | 10 12 12
15 -> 10 11 11 | 11 11 10 | 10 10 | 12 12 11
10 -> 8 9 9 | 9 7 9 | 7 9 9
11 -> 8 8 | 9 7 | 9 7 7
12 -> 7 9 7 | 9 8 | 8 8 9
7 -> 2 2 1 | 3 2 2 | 3 1 2 | 3 2
8 -> 3 1 1 | 1 2 | 3 3 1
9 -> 1 2 1 | 3 3 | 1 1
"""


def test_presets_listed_official_first_and_default_exists():
    names = list_presets()
    assert names[: len(OFFICIAL)] == OFFICIAL
    assert DEFAULT_GRAMMAR in names
    assert len(names) > len(OFFICIAL)


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_presets_load_with_the_spec_shape(name):
    g = load_grammar(name)
    n_rules, length_range = EXPECTED[name]
    assert g.num_rules == n_rules
    assert g.length_range == length_range
    assert g.sizes[0] == 1 and g.num_levels == (8 if name in ("cfg3j", "cfg3k") else 7)


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_json_round_trip(name, tmp_path):
    g = load_grammar(name)
    out = save_grammar(g, tmp_path / f"{name}.json")
    assert load_grammar(out, allow_unreachable=True) == g
    written = json.loads(out.read_text())
    original = json.loads(
        (Path(__file__).resolve().parents[2] / "physlm/tasks/cfg/grammars" / f"{name}.json").read_text()
    )
    for key in (
        "depth",
        "sizes",
        "idx",
        "all",
        "count",
        "deg_min",
        "deg_max",
        "len_min",
        "len_max",
        "num_sym_mode",
        "disallow_duplicate_sym",
        "disallow_duplicate_seq",
        "eos_token",
        "mask_token",
    ):
        assert written[key] == original[key], key


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared reference data not present")
@pytest.mark.parametrize("name", OFFICIAL)
def test_shipped_presets_are_copies_of_the_official_files(name):
    shipped = Path(__file__).resolve().parents[2] / "physlm/tasks/cfg/grammars" / f"{name}.json"
    assert shipped.read_bytes() == (SHARED / f"{name}.json").read_bytes()


def test_text_form_of_cfg3f_matches_the_spec_listing():
    text = grammar_to_text(load_grammar("cfg3f"))
    body = [ln for ln in text.splitlines() if not ln.startswith(("#", "terminals:"))]
    assert "\n".join(body) + "\n" == CFG3F_TEXT
    assert parse_grammar_text(CFG3F_TEXT, name="cfg3f") == load_grammar("cfg3f")


@pytest.mark.parametrize("name", OFFICIAL + ["cfg_tiny", "cfg_small", "cfg_demo", "cfg_medium"])
def test_text_round_trip(name, tmp_path):
    g = load_grammar(name)
    path = save_grammar(g, tmp_path / "g.txt")
    assert load_grammar(path, allow_unreachable=True) == g.replace(name="g")


def test_official_ids_and_names():
    ids = official_ids(load_grammar("cfg3f"))
    assert ids == ((22,), (19, 20, 21), (16, 17, 18), (13, 14, 15), (10, 11, 12), (7, 8, 9), (1, 2, 3))
    assert official_ids(load_grammar("cfg3e1"))[0] == (160,)
    assert spreadsheet_name(1 + 25) == "AA" and spreadsheet_name(22 + 25) == "AV"
    assert spreadsheet_name(160 + 25) == "GD"


def test_rule_probabilities_round_trip_in_both_formats(tmp_path):
    text = "S -> A B @0.25 | B A @0.75\nA -> 1 2 | 2 1\nB -> 2 2 @0.5 | 1 1 @0.5\n"
    g = parse_grammar_text(text, name="p")
    assert g.rule_probs == (((0.25, 0.75),), ((0.5, 0.5), (0.5, 0.5)))
    assert g.symbol_names == (("S",), ("A", "B"))
    for suffix in (".json", ".txt"):
        assert load_grammar(save_grammar(g, tmp_path / f"p{suffix}")) == g


def test_exact_expectations_on_a_hand_grammar():
    g = parse_grammar_text("S -> A A | A A A\nA -> 1 2 | 2 1 1\n", name="h")
    assert g.length_range == (4, 9)
    assert g.expected_length == pytest.approx(2.5 * 2.5)
    # log 2 for S plus, on average, 2.5 A's with log 2 each
    assert g.derivation_entropy == pytest.approx(3.5 * 0.6931471805599453)


# -- errors ------------------------------------------------------------------------------------------
BAD_TEXTS = {
    "unknown symbol": ("S -> A B\nA -> 1 2\nB -> 2 x\n", r"g\.txt:3: unknown symbol 'x'"),
    "leading zero": ("S -> A A\nA -> 1 02\n", r"g\.txt:2: unknown symbol '02'"),
    "unknown declared": ("terminals: 1 2\nS -> A A\nA -> 1 3\n", r"g\.txt:3: unknown symbol '3'"),
    "without rules": (
        "S -> A 3\nA -> 1 2\n",
        r"g\.txt:1: symbol '3'.*has no rules, but the terminals are on level 3",
    ),
    "unreachable": ("S -> A A\nA -> 1 2\nB -> 2 1\n", r"g\.txt:3: unreachable symbol 'B'"),
    "empty rule": ("S -> A A | \nA -> 1 2\n", r"g\.txt:1: rule 2 of 'S' is empty"),
    "empty lhs": ("S -> A A\nA ->\n", r"g\.txt:2: rule 1 of 'A' is empty"),
    "next level": ("S -> A B\nA -> B B\nB -> 1 2\n", r"child 'B' of 'A' \(level 2\) must be on level 3"),
    "cycle": ("S -> A A\nA -> B B\nB -> A 1\n", r"cycle A -> B -> A \(rules on lines 2, 3\)"),
    "malformed": ("S = A B\n", r"g\.txt:1: expected 'LHS -> rhs"),
    "two lhs": ("S T -> A B\n", r"left-hand side must be one symbol"),
    "no rules": ("# nothing\n\n", r"no rules found"),
    "unary": ("S -> A A\nA -> 1\n", r"single child"),
    "duplicate rule": ("S -> A A | A A\nA -> 1 2\n", r"lists rule \[0, 0\] twice"),
    "bad prob": ("S -> A A @x | A B\nA -> 1 2\nB -> 2 1\n", r"bad probability '@x'"),
    "partial probs": ("S -> A A @1 | A B\nA -> 1 2\nB -> 2 1\n", r"every rule of 'S' has a probability"),
    "probs sum": ("S -> A A @0.5 | A B @0.2\nA -> 1 2\nB -> 2 1\n", r"must be positive and sum to 1"),
    "terminal gap": ("S -> A A\nA -> 1 3\n", r"\[2\] never appear"),
}


@pytest.mark.parametrize("case", sorted(BAD_TEXTS))
def test_bad_text_files_name_problem_and_location(case, tmp_path):
    text, pattern = BAD_TEXTS[case]
    path = tmp_path / "g.txt"
    path.write_text(text)
    with pytest.raises(GrammarError, match=pattern):
        load_grammar(path)


def _official(tmp_path: Path, mutate) -> Path:
    data = json.loads((Path(__file__).resolve().parents[2] / "physlm/tasks/cfg/grammars/cfg3b.json").read_text())
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


BAD_JSON = {
    "unknown child": (
        lambda d: d["all"][1][2]["children"].__setitem__(0, [0, 7]),
        r"all\[1\]\[2\].*unknown symbol 7",
    ),
    "no rules": (
        lambda d: d["all"][2][0].__setitem__("children", []),
        r"all\[2\]\[0\] \(16\).*without rules",
    ),
    "empty rule": (lambda d: d["all"][0][0]["children"].append([]), r"all\[0\]\[0\] \(22\) rule 3 is empty"),
    "wrong depth": (lambda d: d["all"][3][1].__setitem__("depth", 2), r"all\[3\]\[1\] \(14\) says depth 2"),
    "missing all": (lambda d: d.pop("all"), r"missing key 'all'"),
    "depth": (lambda d: d.__setitem__("depth", 5), r"'depth' is 5 but 'all' has 7 levels"),
    "unreachable": (
        lambda d: [n.__setitem__("children", [[0, 1], [1, 0]]) for n in d["all"][0]],
        r"unreachable symbol '21' \(level 2\)",
    ),
    "terminal rules": (
        lambda d: d["all"][6][0].__setitem__("children", [[0, 1]]),
        r"terminal depth 6 but has rules",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_bad_official_json_names_problem_and_location(case, tmp_path):
    mutate, pattern = BAD_JSON[case]
    with pytest.raises(GrammarError, match=pattern):
        load_grammar(_official(tmp_path, mutate))


def test_malformed_json_and_missing_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"all": [1, 2,,]}')
    with pytest.raises(GrammarError, match=r"bad\.json:1:\d+: malformed JSON"):
        load_grammar(bad)
    with pytest.raises(GrammarError, match=r"neither a preset grammar nor an existing file; presets: cfg3b"):
        load_grammar("cfg3z")


def test_grammar_constructor_checks_structure():
    with pytest.raises(GrammarError, match="root level must hold exactly 1 symbol"):
        Grammar(name="x", sizes=(2, 2), rules=((((0, 1),), ((1, 0),)),))
    with pytest.raises(GrammarError, match="names unknown child 5"):
        Grammar(name="x", sizes=(1, 2), rules=((((0, 5),),),))
    with pytest.raises(GrammarError, match="has no rules"):
        Grammar(name="x", sizes=(1, 2, 2), rules=((((0, 1),),), (((0, 1),), ())))
    # nested lists (as from JSON) become tuples
    from physlm.tasks.cfg.grammar import grammar_from_rules

    g = grammar_from_rules("x", [1, 2], [[[[0, 1], [1, 0]]]])
    assert g.rules == ((((0, 1), (1, 0)),),) and Grammar.from_json(g.to_json()) == g


# -- random builder ----------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    levels=st.integers(3, 5),
    width=st.integers(3, 4),
    deg=st.tuples(st.integers(2, 3), st.integers(0, 1)),
    distinct_sym=st.booleans(),
)
def test_random_grammar_respects_its_knobs(seed, levels, width, deg, distinct_sym):
    rules_per_nt = (deg[0], deg[0] + deg[1])
    sizes = (1,) + (width,) * (levels - 1)
    g = random_grammar(seed, sizes=sizes, rules_per_nt=rules_per_nt, distinct_symbols_in_rule=distinct_sym)
    assert g == random_grammar(
        seed, sizes=sizes, rules_per_nt=rules_per_nt, distinct_symbols_in_rule=distinct_sym
    )
    assert g.sizes == sizes and not g.unreachable_symbols()
    for level in g.rules:
        rhs = [r for sym in level for r in sym]
        assert len(set(rhs)) == len(rhs)  # no duplicate right-hand sides within a level
        for sym in level:
            assert rules_per_nt[0] <= len(sym) <= rules_per_nt[1]
            for r in sym:
                assert 2 <= len(r) <= 3
                assert not distinct_sym or len(set(r)) == len(r)


def test_random_grammar_rejects_impossible_knobs():
    with pytest.raises(ValueError, match="too few for rules of 3 distinct children"):
        random_grammar(0, sizes=(1, 2, 2), rule_len=(3, 3), distinct_symbols_in_rule=True)
    with pytest.raises(ValueError, match="cannot reach them all"):
        random_grammar(0, sizes=(1, 4), rules_per_nt=(1, 1), rule_len=(2, 3))
    with pytest.raises(ValueError, match="right-hand sides exist"):
        random_grammar(0, sizes=(1, 2, 2), rules_per_nt=(3, 3), rule_len=(2, 2))


def test_small_presets_are_reproducible_from_the_builder():
    from physlm.tasks.cfg.presets import SMALL_PRESET_RECIPES

    for name, recipe in SMALL_PRESET_RECIPES.items():
        assert random_grammar(**recipe, name=name) == load_grammar(name).replace(symbol_names=None)


def test_presets_dir_is_package_data(tmp_path):
    # a copied preset file loads by path too, under its file name
    src = Path(__file__).resolve().parents[2] / "physlm/tasks/cfg/grammars/cfg_small.json"
    shutil.copy(src, tmp_path / "mine.json")
    assert load_grammar(tmp_path / "mine.json").replace(name="cfg_small") == load_grammar("cfg_small")


# -- measured statistics -----------------------------------------------------------------------------
def test_grammar_stats_on_the_default_preset():
    import importlib.util

    from physlm.tasks.cfg.stats import grammar_stats

    g = load_grammar(DEFAULT_GRAMMAR)
    stats = grammar_stats(g, n_samples=400, n_dp_samples=60, seed=1)
    assert stats.length_bounds == g.length_range
    assert g.length_range[0] <= stats.length_min <= stats.length_mean <= stats.length_max <= g.length_range[1]
    assert abs(stats.length_mean - g.expected_length) < 4 * stats.length_std / 400**0.5 + 1e-9
    # more context can only help an in-sample majority vote
    for r in range(g.num_levels - 2):
        accs = [stats.majority_ancestor_at_end[r]] + [stats.context_ancestor_at_end[k][r] for k in (1, 2, 3)]
        assert accs == sorted(accs)
        assert stats.majority_ancestor_at_end[r] <= stats.position_ancestor_at_end[r] <= 1.0
    # the preset's design goal: neither the last 2 tokens nor the position give the NT ancestor away
    assert max(stats.context_ancestor_at_end[2]) < 0.8
    assert max(stats.position_ancestor_at_end) < 0.8
    if importlib.util.find_spec("physlm.tasks.cfg.dp") is not None:
        # unique parses, so the string entropy equals the exact derivation entropy
        assert stats.ambiguous_fraction == 0.0 and stats.max_parses == 1
        gap = abs(stats.entropy_floor_per_token - stats.derivation_entropy_per_token)
        assert gap < 4 * stats.entropy_floor_se + 1e-9

"""Seeded random layered grammars with the knobs of the official ``build_graph`` (spec §1.3).

Levels are built from the terminals up to the root. Each nonterminal draws its number of rules uniformly
from ``rules_per_nt``; each rule draws its length uniformly from ``rule_len`` and each child uniformly from
the next level. ``distinct_symbols_in_rule`` redraws a child until it differs from the rule's earlier
children (cfg3b); ``distinct_rules_per_level`` redraws a rule whose right-hand side another rule of the same
level already uses (all official grammars). Unlike the official builder this one is seeded, and by default
it redraws the whole grammar until every symbol is reachable from the root.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from physlm.tasks.cfg.grammar import Grammar, GrammarError


def _check_range(name: str, lo_hi: tuple[int, int], minimum: int) -> None:
    lo, hi = lo_hi
    if not minimum <= lo <= hi:
        raise ValueError(f"{name} must be (min, max) with {minimum} <= min <= max, got {lo_hi}")


def _num_sequences(n_symbols: int, rule_len: tuple[int, int], distinct: bool) -> int:
    """How many different right-hand sides a level can hold (so we never redraw forever)."""
    total = 0
    for length in range(rule_len[0], rule_len[1] + 1):
        total += math.perm(n_symbols, length) if distinct else n_symbols**length
    return total


def random_grammar(
    seed: int,
    sizes: Sequence[int] = (1, 3, 3, 3, 3, 3, 3),
    rules_per_nt: tuple[int, int] = (3, 4),
    rule_len: tuple[int, int] = (2, 3),
    distinct_symbols_in_rule: bool = False,
    distinct_rules_per_level: bool = True,
    require_reachable: bool = True,
    name: str | None = None,
    max_attempts: int = 1000,
) -> Grammar:
    """A random layered grammar; the same arguments always give the same grammar.

    ``sizes`` lists the symbols per level, root (1) first, terminals last (cfg3f: 1,3,3,3,3,3,3).
    The defaults are cfg3f's knobs.
    """
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < 2 or sizes[0] != 1 or any(s < 1 for s in sizes):
        raise ValueError(
            f"sizes must start with 1 (the root) and list >= 2 levels of >= 1 symbol, got {sizes}"
        )
    _check_range("rules_per_nt", rules_per_nt, 1)
    _check_range("rule_len", rule_len, 2)
    for d in range(len(sizes) - 1):
        below = sizes[d + 1]
        if distinct_symbols_in_rule and rule_len[0] > below:
            raise ValueError(
                f"level {d + 2} has {below} symbols, too few for rules of {rule_len[0]} distinct children; "
                "lower rule_len or set distinct_symbols_in_rule=False"
            )
        usable = (rule_len[0], min(rule_len[1], below) if distinct_symbols_in_rule else rule_len[1])
        capacity = _num_sequences(below, usable, distinct_symbols_in_rule)
        need = sizes[d] * rules_per_nt[1] if distinct_rules_per_level else rules_per_nt[1]
        if need > capacity:
            raise ValueError(
                f"level {d + 1} may need {need} distinct rules but only {capacity} right-hand sides exist "
                "over "
                f"level {d + 2}'s {below} symbols; lower rules_per_nt or raise rule_len / sizes"
            )
        if require_reachable and sizes[d] * rules_per_nt[1] * rule_len[1] < below:
            raise ValueError(
                f"level {d + 2} has {below} symbols but level {d + 1}'s {sizes[d]} symbol(s) with at most "
                f"{rules_per_nt[1]} rules of {rule_len[1]} children cannot reach them all; raise "
                "rules_per_nt "
                "or rule_len, or pass require_reachable=False"
            )
    rng = random.Random(seed)
    name = name or f"random-s{seed}"
    for _ in range(max_attempts):
        rules = _draw_rules(
            rng, sizes, rules_per_nt, rule_len, distinct_symbols_in_rule, distinct_rules_per_level
        )
        grammar = Grammar(name=name, sizes=sizes, rules=rules)
        if not require_reachable or not grammar.unreachable_symbols():
            return grammar
    raise GrammarError(
        f"no grammar with every symbol reachable in {max_attempts} draws for sizes {sizes}, "
        f"rules_per_nt {rules_per_nt}; allow more rules per nonterminal or pass require_reachable=False"
    )


def _draw_rules(
    rng: random.Random,
    sizes: tuple[int, ...],
    rules_per_nt: tuple[int, int],
    rule_len: tuple[int, int],
    distinct_symbols: bool,
    distinct_rules: bool,
) -> tuple[tuple[tuple[tuple[int, ...], ...], ...], ...]:
    levels: list[tuple[tuple[tuple[int, ...], ...], ...]] = []
    for d in range(len(sizes) - 2, -1, -1):
        below = sizes[d + 1]
        used_in_level: set[tuple[int, ...]] = set()
        level = []
        for _ in range(sizes[d]):
            sym_rules: list[tuple[int, ...]] = []
            for _ in range(rng.randint(*rules_per_nt)):
                while True:
                    length = rng.randint(
                        rule_len[0], min(rule_len[1], below) if distinct_symbols else rule_len[1]
                    )
                    children: list[int] = []
                    for _ in range(length):
                        child = rng.randrange(below)
                        while distinct_symbols and child in children:
                            child = rng.randrange(below)
                        children.append(child)
                    rule = tuple(children)
                    taken = used_in_level if distinct_rules else set(sym_rules)
                    if rule not in taken:
                        break
                sym_rules.append(rule)
                used_in_level.add(rule)
            level.append(tuple(sym_rules))
        levels.append(tuple(level))
    return tuple(reversed(levels))

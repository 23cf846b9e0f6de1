"""Reading and writing grammars: the official cfg3 JSON format and a readable text format.

Official JSON (``facebookresearch/PhysicsLM4`` ``configs/cfg3*.json``): ``all[d][k]`` is the k-th symbol at
depth d with ``children`` = its rules, each a list of indices into depth d + 1. Ids follow the official
layout: terminals 1..T, three reserved ids (EOS, MASK, SEP), then nonterminals numbered from the deepest
level up to the root, which gets the largest id.

Text format, one nonterminal per line, root first::

    # comments run to the end of a line
    terminals: 1 2 3            (optional; declares the terminals, which are always the numbers 1..T)
    S -> A B | B A              (the first left-hand side is the root)
    A -> 1 2 @0.25 | 2 1 @0.75  (optional rule probabilities; default uniform)

Nonterminal names are any tokens without spaces, ``|``, ``@``, ``#`` or ``->``; a symbol is a nonterminal
exactly when it has a rule line. Levels are inferred from the root, so every child must sit on the level just
below its parent. Loading checks everything and names the file, line and symbol of each problem.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

from physlm.rundir import write_atomic
from physlm.tasks.cfg.grammar import Grammar, GrammarError

TEXT_SUFFIXES = (".txt", ".cfg", ".grammar")


# -- official ids -----------------------------------------------------------------------------------
def official_ids(grammar: Grammar) -> tuple[tuple[int, ...], ...]:
    """Official symbol ids per depth (root first): terminals 1..T, T+1..T+3 reserved, then NTs bottom-up."""
    t = grammar.num_terminals
    ids: list[tuple[int, ...]] = [tuple(range(1, t + 1))]
    next_id = t + 4
    for d in range(grammar.num_levels - 2, -1, -1):
        ids.append(tuple(range(next_id, next_id + grammar.sizes[d])))
        next_id += grammar.sizes[d]
    return tuple(reversed(ids))


def spreadsheet_name(number: int) -> str:
    """0-based spreadsheet column name (0 -> A, 26 -> AA); official symbol names are this of id + 25."""
    n = number + 1
    out = ""
    while n > 0:
        n, r = divmod(n - 1, 26)
        out = chr(65 + r) + out
    return out


# -- official JSON ----------------------------------------------------------------------------------
def _require(cond: bool, source: str, message: str) -> None:
    if not cond:
        raise GrammarError(f"{source}: {message}")


def grammar_from_official_dict(data: Any, name: str, source: str = "<dict>") -> Grammar:
    """Build a Grammar from a parsed official cfg3 JSON object; problems are named with their location."""
    _require(
        isinstance(data, dict), source, "expected a JSON object with an 'all' list (official cfg3 format)"
    )
    _require("all" in data, source, "missing key 'all' (the per-depth list of symbols and their rules)")
    levels = data["all"]
    _require(
        isinstance(levels, list) and len(levels) >= 2,
        source,
        "'all' must be a list of at least 2 depths (root .. terminals)",
    )
    if "depth" in data:
        _require(
            data["depth"] == len(levels) - 1,
            source,
            f"'depth' is {data['depth']} but 'all' has {len(levels)} levels (depth must be levels - 1)",
        )
    if "sizes" in data:
        _require(
            list(data["sizes"]) == [len(lv) if isinstance(lv, list) else None for lv in levels],
            source,
            f"'sizes' {data['sizes']} disagrees with the number of symbols listed per depth in 'all'",
        )
    sizes: list[int] = []
    rules: list[tuple[tuple[tuple[int, ...], ...], ...]] = []
    probs: list[tuple[tuple[float, ...], ...]] = []
    names: list[tuple[str, ...]] = []
    has_probs = False
    last = len(levels) - 1
    for d, level in enumerate(levels):
        _require(
            isinstance(level, list) and len(level) > 0,
            source,
            f"all[{d}] must be a non-empty list of symbols",
        )
        sizes.append(len(level))
        level_rules, level_probs, level_names = [], [], []
        for k, node in enumerate(level):
            where = f"all[{d}][{k}]"
            _require(isinstance(node, dict), source, f"{where} must be an object with 'children'")
            label = node.get("display_name", str(node.get("id", node.get("name", f"N{d + 1}_{k}"))))
            if "depth" in node:
                _require(
                    node["depth"] == d,
                    source,
                    f"{where} ({label}) says depth {node['depth']} but is listed at depth {d}; "
                    "every symbol's rules must use children on the next level only",
                )
            children = node.get("children")
            if d == last:
                _require(
                    not children,
                    source,
                    f"{where} ({label}) is on the terminal depth {d} but has rules; terminals have none",
                )
                continue
            _require(
                isinstance(children, list) and len(children) > 0,
                source,
                f"{where} ({label}) is a nonterminal without rules ('children' is {children!r})",
            )
            node_rules = []
            for j, rule in enumerate(children):
                _require(
                    isinstance(rule, list) and len(rule) > 0,
                    source,
                    f"{where} ({label}) rule {j + 1} is empty ({rule!r})",
                )
                for c in rule:
                    _require(
                        isinstance(c, int) and not isinstance(c, bool) and 0 <= c < len(levels[d + 1]),
                        source,
                        f"{where} ({label}) rule {j + 1} names unknown symbol {c!r}: children are indices "
                        f"0..{len(levels[d + 1]) - 1} into depth {d + 1}",
                    )
                node_rules.append(tuple(rule))
            level_rules.append(tuple(node_rules))
            node_probs = node.get("probs")
            if node_probs is not None:
                has_probs = True
                _require(
                    isinstance(node_probs, list) and len(node_probs) == len(node_rules),
                    source,
                    f"{where} ({label}) has {len(node_rules)} rules but 'probs' {node_probs!r}",
                )
                level_probs.append(tuple(float(p) for p in node_probs))
            else:
                level_probs.append(tuple(1.0 / len(node_rules) for _ in node_rules))
            level_names.append(label)
        if d < last:
            rules.append(tuple(level_rules))
            probs.append(tuple(level_probs))
            names.append(tuple(level_names))
    try:
        return Grammar(
            name=name,
            sizes=tuple(sizes),
            rules=tuple(rules),
            rule_probs=tuple(probs) if has_probs else None,
            symbol_names=tuple(names),
        )
    except GrammarError as exc:
        raise GrammarError(f"{source}: {exc}") from None


def grammar_to_official_dict(grammar: Grammar) -> dict[str, Any]:
    """The official cfg3 JSON object of a grammar (newer key set; ``probs``/``display_name`` when needed)."""
    ids = official_ids(grammar)
    t = grammar.num_terminals
    rule_lens = [len(r) for level in grammar.rules for sym in level for r in sym]
    degrees = [len(sym) for level in grammar.rules for sym in level]
    uniform_sizes = all(s == t for s in grammar.sizes[1:])
    all_levels: list[list[dict[str, Any]]] = []
    for d, level_ids in enumerate(ids):
        nodes = []
        for k, sym_id in enumerate(level_ids):
            node: dict[str, Any] = {"depth": d, "id": sym_id, "name": spreadsheet_name(sym_id + 25)}
            if d < grammar.num_levels - 1:
                node["children"] = [list(r) for r in grammar.rules[d][k]]
                if grammar.rule_probs is not None:
                    node["probs"] = list(grammar.rule_probs[d][k])
                if grammar.symbol_names is not None and grammar.symbol_names[d][k] != str(sym_id):
                    node["display_name"] = grammar.symbol_names[d][k]
            else:
                node["children"] = None
            nodes.append(node)
        all_levels.append(nodes)
    per_level_seqs = [[r for sym in level for r in sym] for level in grammar.rules]
    return {
        "depth": grammar.num_levels - 1,
        "num_sym": t,
        "vocab_size": t,
        "deg_min": min(degrees),
        "deg_max": max(degrees),
        "len_min": min(rule_lens),
        "len_max": max(rule_lens),
        "num_sym_mode": 2 if uniform_sizes else list(grammar.sizes),
        "disallow_duplicate_sym": all(
            len(set(r)) == len(r) for r in (x for lv in per_level_seqs for x in lv)
        ),
        "disallow_duplicate_seq": all(len(set(lv)) == len(lv) for lv in per_level_seqs),
        "eos_token": t + 1,
        "mask_token": t + 2,
        "sep_token": t + 3,
        "sizes": list(grammar.sizes),
        "idx": [list(level) for level in ids],
        "all": all_levels,
        "count": ids[0][0],
    }


# -- text format ------------------------------------------------------------------------------------
def _is_terminal_token(token: str) -> bool:
    """Terminals are written as their numbers 1..T, without leading zeros."""
    return token.isdigit() and token == str(int(token)) and int(token) >= 1


def parse_grammar_text(
    text: str, name: str, source: str = "<text>", allow_unreachable: bool = False
) -> Grammar:
    """Parse the readable ``A -> B C | C B`` format (see the module docstring) into a checked Grammar."""
    declared: list[str] | None = None
    lhs_order: list[str] = []
    alts: dict[str, list[tuple[list[str], float | None]]] = {}
    line_of: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        at = f"{source}:{lineno}"
        if line.lower().startswith("terminals:"):
            declared = line.split(":", 1)[1].split()
            bad = [tok for tok in declared if not _is_terminal_token(tok)]
            _require(not bad, at, f"terminals must be the numbers 1..T, got {bad}")
            continue
        _require(line.count("->") == 1, at, f"expected 'LHS -> rhs | rhs ...', got {raw.strip()!r}")
        lhs, rhs = (part.strip() for part in line.split("->"))
        _require(len(lhs.split()) == 1, at, f"the left-hand side must be one symbol, got {lhs!r}")
        if lhs not in alts:
            lhs_order.append(lhs)
            alts[lhs] = []
            line_of[lhs] = lineno
        for j, alt in enumerate(rhs.split("|"), start=1):
            tokens = alt.split()
            prob: float | None = None
            if tokens and tokens[-1].startswith("@"):
                try:
                    prob = float(tokens[-1][1:])
                except ValueError:
                    raise GrammarError(
                        f"{at}: bad probability {tokens[-1]!r} in rule {j} of {lhs!r}"
                    ) from None
                tokens = tokens[:-1]
            _require(bool(tokens), at, f"rule {j} of {lhs!r} is empty")
            _require(
                not any(tok.startswith("@") for tok in tokens),
                at,
                f"a probability '@p' may only end a rule (rule {j} of {lhs!r})",
            )
            alts[lhs].append((tokens, prob))
    _require(bool(lhs_order), source, "no rules found: expected lines like 'S -> A B | B A'")
    root = lhs_order[0]
    rule_line = {sym: line_of[sym] for sym in lhs_order}

    # Cycles first: with one, levels are meaningless and the level errors below would only confuse.
    _check_cycles(alts, lhs_order, rule_line, source)

    # Every symbol used without a rule line must be a terminal (a number 1..T, declared if declared).
    for sym in lhs_order:
        for tokens, _ in alts[sym]:
            for tok in tokens:
                if tok in alts:
                    continue
                at = f"{source}:{rule_line[sym]}"
                if declared is not None:
                    _require(
                        tok in declared,
                        at,
                        f"unknown symbol {tok!r} in a rule of {sym!r}: it has no rule line and is not "
                        "among the "
                        f"declared terminals {declared}",
                    )
                else:
                    _require(
                        _is_terminal_token(tok),
                        at,
                        f"unknown symbol {tok!r} in a rule of {sym!r}: nonterminals need their own rule line "
                        "and terminals are written as numbers 1..T",
                    )

    level = _assign_levels(root, alts, lhs_order, rule_line, source, allow_unreachable)
    n_levels = max(level.values())
    for sym in lhs_order:
        for tokens, _ in alts[sym]:
            for tok in tokens:
                if tok not in alts and level.get(tok, n_levels) != n_levels:
                    raise GrammarError(
                        f"{source}:{rule_line[sym]}: symbol {tok!r} (a child of {sym!r}, level {level[sym]}) "
                        f"has no rules, but the terminals are on level {n_levels}; give it a rule line"
                    )
    terminal_ids = sorted(
        {int(tok) for sym in lhs_order for tokens, _ in alts[sym] for tok in tokens if tok not in alts}
        | {int(t) for t in (declared or [])}
    )
    n_terminals = max(terminal_ids)
    missing = sorted(set(range(1, n_terminals + 1)) - set(terminal_ids))
    _require(not missing, source, f"terminals must be numbered 1..T without gaps; {missing} never appear")
    if not allow_unreachable:
        used = {tok for sym in lhs_order for tokens, _ in alts[sym] for tok in tokens}
        unused_terminals = sorted(set(range(1, n_terminals + 1)) - {int(t) for t in used if t not in alts})
        _require(
            not unused_terminals,
            source,
            f"unreachable terminal(s) {unused_terminals}: declared but no rule produces them",
        )

    by_level: list[list[str]] = [[] for _ in range(n_levels - 1)]
    for sym in lhs_order:
        by_level[level[sym] - 1].append(sym)
    index = {sym: k for syms in by_level for k, sym in enumerate(syms)}
    index.update({str(t): t - 1 for t in range(1, n_terminals + 1)})
    rules, probs = [], []
    has_probs = any(p is not None for sym in lhs_order for _, p in alts[sym])
    for syms in by_level:
        rules.append(tuple(tuple(tuple(index[tok] for tok in tokens) for tokens, _ in alts[s]) for s in syms))
        level_probs = []
        for s in syms:
            given = [p for _, p in alts[s]]
            if all(p is None for p in given):
                level_probs.append(tuple(1.0 / len(given) for _ in given))
            else:
                _require(
                    all(p is not None for p in given),
                    f"{source}:{rule_line[s]}",
                    f"either every rule of {s!r} has a probability '@p' or none does",
                )
                level_probs.append(tuple(float(p) for p in given if p is not None))
        probs.append(tuple(level_probs))
    sizes = tuple([len(s) for s in by_level] + [n_terminals])
    try:
        return Grammar(
            name=name,
            sizes=sizes,
            rules=tuple(rules),
            rule_probs=tuple(probs) if has_probs else None,
            symbol_names=tuple(tuple(s) for s in by_level),
        )
    except GrammarError as exc:
        raise GrammarError(f"{source}: {exc}") from None


def _check_cycles(
    alts: dict[str, list[tuple[list[str], float | None]]],
    order: list[str],
    rule_line: dict[str, int],
    source: str,
) -> None:
    """Raise on the first cycle among nonterminals, printing it with the lines of its rules."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(sym: str, path: list[str]) -> None:
        state[sym] = 1
        path.append(sym)
        for tokens, _ in alts[sym]:
            for tok in tokens:
                if tok not in alts:
                    continue
                if state.get(tok) == 1:
                    cycle = path[path.index(tok) :] + [tok]
                    lines = ", ".join(str(rule_line[s]) for s in cycle[:-1])
                    raise GrammarError(
                        f"{source}:{rule_line[sym]}: cycle {' -> '.join(cycle)} (rules on lines {lines}); "
                        "layered grammars cannot be recursive"
                    )
                if tok not in state:
                    visit(tok, path)
        path.pop()
        state[sym] = 2

    for sym in order:
        if sym not in state:
            visit(sym, [])


def _assign_levels(
    root: str,
    alts: dict[str, list[tuple[list[str], float | None]]],
    order: list[str],
    rule_line: dict[str, int],
    source: str,
    allow_unreachable: bool,
) -> dict[str, int]:
    """Level of every symbol (root = 1) by breadth-first search; children must be exactly one level down."""
    level = {root: 1}
    placed_by = {root: rule_line[root]}
    queue = deque([root])

    def place(parent: str, child: str) -> bool:
        want = level[parent] + 1
        if child not in level:
            level[child] = want
            placed_by[child] = rule_line[parent]
            return True
        if level[child] != want:
            raise GrammarError(
                f"{source}:{rule_line[parent]}: child {child!r} of {parent!r} (level {level[parent]}) "
                f"must be on level {want}, but line {placed_by[child]} already puts it on level "
                f"{level[child]}; every rule's "
                "children must be on the next level"
            )
        return False

    while queue:
        sym = queue.popleft()
        for tokens, _ in alts[sym]:
            for tok in tokens:
                if place(sym, tok) and tok in alts:
                    queue.append(tok)
    unreachable = [s for s in order if s not in level]
    if unreachable and not allow_unreachable:
        s = unreachable[0]
        raise GrammarError(
            f"{source}:{rule_line[s]}: unreachable symbol {s!r}: no derivation from the root {root!r} "
            "uses it "
            f"({len(unreachable)} unreachable in all: {unreachable[:8]}); remove it or use it in a rule"
        )
    # Unreachable symbols (allowed, e.g. for the official cfg3e1) take their level from their children.
    changed = True
    while changed and any(s not in level for s in unreachable):
        changed = False
        for sym in unreachable:
            if sym in level:
                continue
            child_levels = {level[t] for tokens, _ in alts[sym] for t in tokens if t in level}
            if child_levels:
                _require(
                    len(child_levels) == 1,
                    f"{source}:{rule_line[sym]}",
                    f"children of {sym!r} are on different levels {sorted(child_levels)}",
                )
                level[sym] = child_levels.pop() - 1
                placed_by[sym] = rule_line[sym]
                changed = True
                for tokens, _ in alts[sym]:
                    for tok in tokens:
                        place(sym, tok)
    for sym in unreachable:
        _require(
            sym in level, f"{source}:{rule_line[sym]}", f"cannot place unreachable symbol {sym!r} on a level"
        )
    return level


def grammar_to_text(grammar: Grammar) -> str:
    """The readable text form: a header comment, the terminals, then one line per nonterminal, root first."""
    lines = [
        f"# grammar {grammar.name}: {grammar.num_levels} levels, sizes {' '.join(map(str, grammar.sizes))}",
        "terminals: " + " ".join(str(t) for t in range(1, grammar.num_terminals + 1)),
    ]
    for d, level in enumerate(grammar.rules):
        for k, sym_rules in enumerate(level):
            alts = []
            for j, rule in enumerate(sym_rules):
                alt = " ".join(grammar.name_of(d + 1, c) for c in rule)
                if grammar.rule_probs is not None:
                    alt += f" @{grammar.rule_probs[d][k][j]!r}"
                alts.append(alt)
            lines.append(f"{grammar.name_of(d, k)} -> {' | '.join(alts)}")
    return "\n".join(lines) + "\n"


# -- files ------------------------------------------------------------------------------------------
def check_reachable(grammar: Grammar, source: str) -> None:
    """Raise naming the first unreachable symbol (official files all pass, except cfg3e1 which has 13)."""
    missing = grammar.unreachable_symbols()
    if missing:
        d, k = missing[0]
        raise GrammarError(
            f"{source}: unreachable symbol {grammar.name_of(d, k)!r} (level {d + 1}): no derivation "
            "from the root "
            f"uses it ({len(missing)} unreachable in all); remove it, or pass allow_unreachable=True"
        )


def read_grammar_file(path: str | Path, allow_unreachable: bool = False, name: str | None = None) -> Grammar:
    """Read a grammar file: official JSON, physlm JSON (``Grammar.to_json``) or the text format."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise GrammarError(f"{source}: cannot read grammar file ({exc.strerror})") from None
    name = name or path.stem
    if path.suffix.lower() in TEXT_SUFFIXES or not text.lstrip().startswith("{"):
        return parse_grammar_text(text, name=name, source=source, allow_unreachable=allow_unreachable)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GrammarError(f"{source}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}") from None
    if isinstance(data, dict) and "rules" in data and "all" not in data:
        try:
            grammar = Grammar.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise GrammarError(f"{source}: not a valid physlm grammar JSON: {exc}") from None
    else:
        grammar = grammar_from_official_dict(data, name=name, source=source)
    if not allow_unreachable:
        check_reachable(grammar, source)
    return grammar


def write_grammar_file(grammar: Grammar, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``grammar`` as official JSON (``.json``) or text (``.txt``, ``.cfg``, ``.grammar``)."""
    path = Path(path)
    fmt = fmt or ("text" if path.suffix.lower() in TEXT_SUFFIXES else "json")
    if fmt == "json":
        data = json.dumps(grammar_to_official_dict(grammar))
    elif fmt == "text":
        data = grammar_to_text(grammar)
    else:
        raise ValueError(f"unknown grammar format {fmt!r}; use 'json' or 'text'")
    write_atomic(path, data)
    return path

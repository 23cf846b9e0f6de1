"""Read an iGSM problem back from its text alone (papers' format, spec §1.5).

The text gives everything: each sentence "The number of each A's B equals <RHS>." is a structure edge A -> B
with its dependencies; abstract parameters "A's <Category>" follow from the hierarchy; the question names the
query. Layers are inferred from the item catalogue and the edges (B is one layer below A).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from physlm.tasks.igsm.catalog import load_catalog
from physlm.tasks.igsm.config import MOD

Key = tuple[str, str]
"""A parameter by name: (item, item) is an instance parameter, (item, category) an abstract one."""


class ParseError(ValueError):
    """Text that is not an iGSM problem or solution in the papers' format."""


@dataclass(frozen=True)
class Statement:
    """One problem sentence: ``key`` = [const more than | const times as much as] <refs combined by inner>."""

    key: Key
    refs: tuple[Key, ...]
    const: int | None
    outer: str | None
    inner: str | None


@dataclass
class ParsedProblem:
    """A problem reconstructed from text, with true values mod 23."""

    statements: dict[Key, Statement]
    query: Key
    hierarchy: tuple[str, ...]
    layer: dict[str, int]
    children: dict[str, list[str]]
    max_layer: int
    _values: dict[Key, int] = field(default_factory=dict)

    def is_abstract(self, key: Key) -> bool:
        return key[1] in self.hierarchy

    def is_param(self, key: Key) -> bool:
        """Whether ``key`` names a parameter of this problem (instance: a stated edge; abstract: a known
        item and a deeper category inside the problem's layer window)."""
        if key in self.statements:
            return True
        if not self.is_abstract(key) or key[0] not in self.layer:
            return False
        depth = self.hierarchy.index(key[1])
        return self.layer[key[0]] < depth <= self.max_layer

    def preds(self, key: Key) -> list[Key]:
        """Direct dependencies (RNG excluded)."""
        if key in self.statements:
            return list(self.statements[key].refs)
        item, category = key
        kids = self.children.get(item, [])
        out: list[Key] = [(item, x) for x in kids]
        if self.hierarchy.index(category) > self.layer[item] + 1:
            out += [(x, category) for x in kids]
        return out

    def uses_constant(self, key: Key) -> bool:
        return key in self.statements and self.statements[key].const is not None

    def ops(self, key: Key) -> int:
        """Operations of one parameter: ``max(1, in_degree - 1)`` with RNG counted."""
        return max(1, len(self.preds(key)) + int(self.uses_constant(key)) - 1)

    def value(self, key: Key, _stack: tuple[Key, ...] = ()) -> int:
        """True value mod 23 (ParseError on a cyclic problem)."""
        if key in self._values:
            return self._values[key]
        if key in _stack:
            raise ParseError(f"the problem's dependencies are cyclic at {key[0]}'s {key[1]}")
        stack = _stack + (key,)
        if key in self.statements:
            s = self.statements[key]
            vals = [self.value(r, stack) for r in s.refs]
            inner = (vals[0] - vals[1]) if s.inner == "diff" else sum(vals)
            if s.outer == "add":
                val = s.const + inner
            elif s.outer == "mul":
                val = s.const * inner
            else:
                val = s.const if not s.refs else inner
        else:
            item, category = key
            kids = self.children.get(item, [])
            if self.hierarchy.index(category) == self.layer[item] + 1:
                val = sum(self.value((item, x), stack) for x in kids)
            else:
                val = sum(self.value((item, x), stack) * self.value((x, category), stack) for x in kids)
        self._values[key] = val % MOD
        return val % MOD

    def ancestors(self, key: Key) -> set[Key]:
        out: set[Key] = set()
        todo = [key]
        while todo:
            for q in self.preds(todo.pop()):
                if q not in out:
                    out.add(q)
                    todo.append(q)
        return out


_SENTENCE = re.compile(r"[^.?]+[.?]")
_STATEMENT = re.compile(r"The number of each (?P<param>.+?) equals (?P<rhs>.+)\.")
_QUESTION = re.compile(r"How many (?P<what>.+) does (?P<item>.+) have\?")
_REF_SPLIT = re.compile(r", (?=each )| and (?=each )")


def split_name(text: str, items: frozenset[str], seconds: frozenset[str]) -> Key:
    """ "A's B" -> (A, B) for known names (names may contain "'s" themselves, e.g. "Trader Joe's's Milk")."""
    text = text.strip()
    for m in re.finditer(r"'s ", text):
        first, second = text[: m.start()], text[m.end() :]
        if first in items and second in seconds:
            return first, second
    raise ParseError(f"{text!r} is not '<item>'s <item or category>'")


def _parse_rhs(key: Key, rhs: str, items: frozenset[str], seconds: frozenset[str]) -> Statement:
    if re.fullmatch(r"\d+", rhs):
        return Statement(key=key, refs=(), const=int(rhs) % MOD, outer=None, inner=None)
    const, outer = None, None
    m = re.fullmatch(r"(\d+) more than (.+)", rhs)
    if m:
        const, outer, rhs = int(m.group(1)) % MOD, "add", m.group(2)
    else:
        m = re.fullmatch(r"(\d+) times as much as (.+)", rhs)
        if m:
            const, outer, rhs = int(m.group(1)) % MOD, "mul", m.group(2)
    inner = None
    if rhs.startswith("the sum of "):
        inner, rhs = "sum", rhs[len("the sum of ") :]
    elif rhs.startswith("the difference of "):
        inner, rhs = "diff", rhs[len("the difference of ") :]
    parts = _REF_SPLIT.split(rhs)
    refs: list[Key] = []
    for part in parts:
        if not part.startswith("each "):
            raise ParseError(f"expected 'each <item>'s <item>' in {rhs!r}")
        refs.append(split_name(part[len("each ") :], items, seconds))
    if (inner is None) != (len(refs) == 1) or (inner == "diff" and len(refs) != 2):
        raise ParseError(f"malformed right-hand side {rhs!r}")
    return Statement(key=key, refs=tuple(refs), const=const, outer=outer, inner=inner)


def _infer_layers(
    names: set[str], edges: list[Key], categories: set[str]
) -> tuple[tuple[str, ...], dict[str, int]]:
    catalog = load_catalog()
    for hierarchy in catalog.hierarchies:
        if not categories <= set(hierarchy):
            continue
        cand: dict[str, set[int]] = {}
        for name in names:
            cand[name] = {hierarchy.index(c) for c in catalog.categories_of.get(name, ()) if c in hierarchy}
        if any(not c for c in cand.values()):
            continue
        changed = True
        while changed:
            changed = False
            for a, b in edges:
                new_b = cand[b] & {x + 1 for x in cand[a]}
                new_a = cand[a] & {x - 1 for x in cand[b]}
                if new_a != cand[a] or new_b != cand[b]:
                    cand[a], cand[b], changed = new_a, new_b, True
        if all(cand.values()):
            return hierarchy, {name: min(c) for name, c in cand.items()}
    raise ParseError("the item names do not fit any one hierarchy of the iGSM catalogue")


def parse_problem(text: str) -> ParsedProblem:
    """Parse a problem (statement and question, either order, as the papers print them)."""
    catalog = load_catalog()
    items = frozenset(catalog.item_names)
    seconds = items | frozenset(catalog.categories)
    statements: dict[Key, Statement] = {}
    query: Key | None = None
    for raw in _SENTENCE.findall(text):
        sentence = raw.strip()
        q = _QUESTION.fullmatch(sentence)
        if q:
            if query is not None:
                raise ParseError("the problem has more than one question")
            if q.group("item") not in items or q.group("what") not in seconds:
                raise ParseError(f"unknown names in the question {sentence!r}")
            query = (q.group("item"), q.group("what"))
            continue
        m = _STATEMENT.fullmatch(sentence)
        if not m:
            raise ParseError(f"not an iGSM problem sentence: {sentence!r}")
        key = split_name(m.group("param"), items, items)
        if key in statements:
            raise ParseError(f"{key[0]}'s {key[1]} is described twice")
        statements[key] = _parse_rhs(key, m.group("rhs"), items, seconds)
    if query is None:
        raise ParseError("the problem has no question 'How many ... does ... have?'")
    if not text.strip() or not statements:
        raise ParseError("the problem has no sentences")
    names = {n for k in statements for n in k} | {query[0]}
    categories: set[str] = set()
    for s in statements.values():
        for a, b in s.refs:
            names.add(a)
            (categories if b in catalog.categories else names).add(b)
    if query[1] in catalog.categories:
        categories.add(query[1])
    else:
        names.add(query[1])
    hierarchy, layer = _infer_layers(names, list(statements), categories)
    children: dict[str, list[str]] = {}
    for a, b in statements:
        children.setdefault(a, []).append(b)
    for kids in children.values():
        kids.sort()
    problem = ParsedProblem(
        statements=statements,
        query=query,
        hierarchy=hierarchy,
        layer=layer,
        children=children,
        max_layer=max(layer.values()),
    )
    for a, b in statements:
        if layer[b] != layer[a] + 1:
            raise ParseError(f"{a}'s {b}: {b} is not one layer below {a}")
    for key in [*(r for s in statements.values() for r in s.refs), query]:
        if not problem.is_param(key):
            raise ParseError(f"{key[0]}'s {key[1]} is not a parameter of this problem")
    return problem

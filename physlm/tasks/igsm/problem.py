"""One generated iGSM problem, its values mod 23, and its text in the papers' format (spec §1.5).

Text and tokens are produced together (the text is the detokenised token list), so they always agree.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from physlm.tasks.igsm.config import MOD
from physlm.tasks.igsm.dependency import Template
from physlm.tasks.igsm.structure import RNG, Param, Structure, between
from physlm.tasks.igsm.tokenizer import SYMBOLS, detokenize


@dataclass(frozen=True)
class Rhs:
    """Right-hand side of an instance parameter's sentence: ``[const more than | const times as much as]`` a
    reference, the sum or difference of two, or the sum of three or more; or the constant alone."""

    refs: tuple[Param, ...]
    const: int | None
    outer: str | None
    """'add' ("N more than"), 'mul' ("N times as much as"), or None."""
    inner: str | None
    """'sum' or 'diff' for two or more references, else None."""

    def value(self, values: dict[Param, int]) -> int:
        vals = [values[r] for r in self.refs]
        if self.inner == "diff":
            inner = (vals[0] - vals[1]) % MOD
        else:
            inner = sum(vals) % MOD
        if self.outer == "add":
            return (self.const + inner) % MOD
        if self.outer == "mul":
            return (self.const * inner) % MOD
        return self.const % MOD if not self.refs else inner


def draw_rhs(preds: list[Param], rng: random.Random) -> Rhs:
    """The official ``Problem.parse`` draws for one instance parameter with direct dependencies ``preds``."""
    refs = tuple(p for p in preds if p != RNG)
    const, outer, inner = None, None, None
    if RNG in preds:
        if not refs:
            return Rhs(refs=(), const=between(rng, 0, MOD - 1), outer=None, inner=None)
        if rng.random() < 0.5:
            outer, const = "add", between(rng, 0, MOD - 1)
        else:
            outer, const = "mul", between(rng, 1, MOD - 1)
    if len(refs) == 2:
        inner = "sum" if rng.random() < 0.5 else "diff"
    elif len(refs) > 2:
        inner = "sum"
    return Rhs(refs=refs, const=const, outer=outer, inner=inner)


@dataclass
class Problem:
    """A problem with its graphs, values and text. Treat as read-only once generated."""

    structure: Structure
    layer_names: tuple[str, ...]
    item_names: tuple[tuple[str, ...], ...]
    template: Template
    """G_d with RNG: every parameter the problem describes or implies, and its direct dependencies."""
    topo: list[Param]
    """The necessary parameters in solution order; the last one is the query."""
    problem_order: list[Param]
    """The instance parameters in the order the problem states them."""
    rhs: dict[Param, Rhs]
    values: dict[Param, int]
    op: int
    p_format: str
    perm_level: int
    solution_tokens: list[str] = field(default_factory=list)
    sketch_tokens: list[str] = field(default_factory=list)
    symbols: dict[Param, str] = field(default_factory=dict)

    # -- names ---------------------------------------------------------------------------------
    @property
    def query(self) -> Param:
        return self.topo[-1]

    @property
    def answer(self) -> int:
        return self.values[self.query]

    def name_tokens(self, p: Param) -> list[str]:
        """Canonical name tokens, e.g. ["Penguin Beach", "'s", "Giraffe"] or [..., "'s", "Animal"]."""
        kind, i, j, k = p
        second = self.item_names[i + 1][k] if kind == 0 else self.layer_names[k]
        return [self.item_names[i][j], "'s", second]

    def name(self, p: Param) -> str:
        """Canonical name "A's B" (solutions, probes)."""
        return detokenize(self.name_tokens(p))

    # -- problem text --------------------------------------------------------------------------
    def sentence_tokens(self, p: Param) -> list[str]:
        """ "The number of each A's B equals <RHS>" (no final period)."""
        r = self.rhs[p]
        out = ["The", "number", "of", "each", *self.name_tokens(p), "equals"]
        if r.outer == "add":
            out += [str(r.const), "more", "than"]
        elif r.outer == "mul":
            out += [str(r.const), "times", "as", "much", "as"]
        elif not r.refs:
            return out + [str(r.const)]
        refs = [["each", *self.name_tokens(q)] for q in r.refs]
        if len(refs) == 1:
            out += refs[0]
        elif len(refs) == 2:
            out += ["the", "sum" if r.inner == "sum" else "difference", "of", *refs[0], "and", *refs[1]]
        else:
            out += ["the", "sum", "of"]
            for idx, ref in enumerate(refs):
                if idx == len(refs) - 1:
                    out += ["and", *ref]
                elif idx == len(refs) - 2:
                    out += ref
                else:
                    out += [*ref, ","]
        return out

    def body_tokens(self) -> list[str]:
        """The problem statement without the question, sentence after sentence."""
        out: list[str] = []
        for p in self.problem_order:
            out += self.sentence_tokens(p) + ["."]
        return out

    def question_tokens(self) -> list[str]:
        kind, i, j, k = self.query
        what = self.item_names[i + 1][k] if kind == 0 else self.layer_names[k]
        return ["How", "many", what, "does", self.item_names[i][j], "have", "?"]

    def problem_tokens(self) -> list[str]:
        """Statement and question in ``p_format`` order."""
        body, ques = self.body_tokens(), self.question_tokens()
        return body + ques if self.p_format == "pq" else ques + body

    def document_tokens(self) -> list[str]:
        """``[PROB] problem [SOL] solution [ANS] answer``, one training document."""
        return ["[PROB]", *self.problem_tokens(), "[SOL]", *self.solution_tokens, "[ANS]", str(self.answer)]

    # -- official strings ----------------------------------------------------------------------
    @property
    def problem_text(self) -> str:
        """The official ``prob`` string (leading space; statement and question in p_format order)."""
        return " " + detokenize(self.problem_tokens())

    @property
    def question_text(self) -> str:
        return " " + detokenize(self.question_tokens())

    @property
    def solution_text(self) -> str:
        """The official ``sol`` string: " Define ... as X; ...; so X = .... Define ...."."""
        return " " + detokenize(self.solution_tokens)

    @property
    def answer_text(self) -> str:
        return f" {self.answer}"

    @property
    def hash_bucket(self) -> int:
        """The solution-template hash mod 23 (official ``to_hash``): names -> Inst/Inter, numbers -> 0, ';'
        -> '.', symbols renamed in order of first appearance, sha256 mod 23."""
        renamed: dict[str, str] = {}
        parts: list[str] = []
        for tok in self.sketch_tokens:
            if len(tok) == 1 and tok.isalpha():
                tok = renamed.setdefault(tok, SYMBOLS[len(renamed)])
            parts.append(tok)
        sketch = " " + detokenize(parts)
        return int(hashlib.sha256(sketch.encode()).hexdigest(), 16) % MOD


# -- solution rendering (official ``decode`` / ``to_sol`` with simplify + binarify) --------------------------


def _nest(items: list[tuple]) -> tuple:
    """Left-nested binary sums: [a, b, c] -> ((a + b) + c)."""
    node = items[0]
    for item in items[1:]:
        node = ("op", "+", node, item)
    return node


def expression(problem: Problem, p: Param) -> tuple:
    """The binarised expression tree of one parameter: ('ref', q) | ('num', v) | ('op', sign, left, right) |
    ('zero',) for an abstract parameter of a childless item."""
    if p[0] == 0:
        r = problem.rhs[p]
        if not r.refs:
            return ("num", r.const)
        refs = [("ref", q) for q in r.refs]
        inner = ("op", "-", refs[0], refs[1]) if r.inner == "diff" else _nest(refs)
        if r.outer is None:
            return inner
        return ("op", "+" if r.outer == "add" else "*", ("num", r.const), inner)
    _, i, j, k = p
    kids = problem.structure.children[i][j]
    if not kids:
        return ("zero",)
    if k == i + 1:
        return _nest([("ref", (0, i, j, x)) for x in kids])
    return _nest([("op", "*", ("ref", (0, i, j, x)), ("ref", (1, i + 1, x, k))) for x in kids])


def _apply(sign: str, a: int, b: int) -> int:
    if sign == "+":
        return (a + b) % MOD
    if sign == "-":
        return (a - b) % MOD
    return (a * b) % MOD


def render_solution(problem: Problem, order: list[Param], rng: random.Random) -> None:
    """Write the solution of ``order`` (solution tokens, template-sketch tokens, symbols) into ``problem``.
    One sentence per parameter: ``Define <A's B> as X; [T = .. = .. = ..;] so X = <hint> = <calc> =
    <result>.``"""
    needed = sum(max(1, len(problem.template.preds[p]) - 1) for p in order)
    if needed > len(SYMBOLS):
        raise ValueError(f"a solution with {needed} operations needs more than the {len(SYMBOLS)} symbols")
    pool = list(SYMBOLS)
    rng.shuffle(pool)  # popping a shuffled list = drawing uniformly without replacement, as the official code
    symbols: dict[Param, str] = {}
    tokens: list[str] = []
    sketch: list[str] = []

    def operand(node: tuple, clauses: list[tuple[list[str], list[str]]]) -> tuple[str, int]:
        """Name and value of one operand; an inner operation becomes an intermediate clause first."""
        if node[0] == "ref":
            return symbols[node[1]], problem.values[node[1]]
        if node[0] == "num":
            return str(node[1]), node[1]
        _, sign, left, right = node
        lname, lval = operand(left, clauses)
        rname, rval = operand(right, clauses)
        val = _apply(sign, lval, rval)
        sym = pool.pop()
        toks = [sym, "=", lname, sign, rname, "=", str(lval), sign, str(rval), "=", str(val)]
        clauses.append((toks, [_sketch_tok(t) for t in toks]))
        return sym, val

    for p in order:
        clauses: list[tuple[list[str], list[str]]] = []
        node = expression(problem, p)
        if node[0] == "op":
            # children first, then the parameter's own symbol (the official draw order)
            _, sign, left, right = node
            lname, lval = operand(left, clauses)
            rname, rval = operand(right, clauses)
            sym = pool.pop()
            val = _apply(sign, lval, rval)
            final = ["so", sym, "=", lname, sign, rname, "=", str(lval), sign, str(rval), "=", str(val)]
        else:
            sym = pool.pop()
            if node[0] == "ref":
                val = problem.values[node[1]]
                final = ["so", sym, "=", symbols[node[1]], "=", str(val)]
            else:
                val = node[1] if node[0] == "num" else 0
                final = ["so", sym, "=", str(val)]
        if val != problem.values[p]:
            raise AssertionError(
                f"solution step for {p} computes {val}, the problem says {problem.values[p]}"
            )
        symbols[p] = sym
        name = problem.name_tokens(p)
        tokens += ["Define", *name, "as", sym, ";"]
        sketch += ["Define", "Inst" if p[0] == 0 else "Inter", "as", sym, "."]
        for toks, sk in clauses:
            tokens += toks + [";"]
            sketch += sk + ["."]
        tokens += final + ["."]
        sketch += [_sketch_tok(t) for t in final] + ["."]
    problem.solution_tokens = tokens
    problem.sketch_tokens = sketch
    problem.symbols = symbols


def _sketch_tok(tok: str) -> str:
    return "0" if tok.isdigit() else tok

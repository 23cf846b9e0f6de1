"""Judge an iGSM solution from text alone (the official ``true_correct`` semantics, spec §2 and §8.3 pitfall
4).

Every step is checked: symbols are single letters defined once and used only after their definition; every
"hint = calculation = result" is consistent (the calculation substitutes the hint's values, the result is the
calculation mod 23); each defined parameter exists in the problem and references exactly its dependencies
(followed through intermediate symbols, RNG excluded); the last sentence defines the query with the true
answer. Steps with "BACK" (retry data, Part 2.2) are skipped and counted. Redundant but correct steps are not
errors; they are counted in ``unnecessary`` (level-0 versus level-1 reasoning).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from physlm.tasks.igsm.catalog import load_catalog
from physlm.tasks.igsm.config import MOD
from physlm.tasks.igsm.problem_parser import Key, ParsedProblem, ParseError, parse_problem, split_name


@dataclass(frozen=True)
class Verdict:
    """The judgement of one solution."""

    correct: bool
    answer: int | None
    """The value the solution arrives at (its last sentence), or None if it has none."""
    expected: int | None
    """The true answer computed from the problem text (None when the problem itself cannot be read)."""
    first_error: str | None
    """Why the solution is wrong, naming the first wrong step (None when correct)."""
    error_step: int | None
    """0-based index of the first wrong solution sentence (BACK steps included), if any."""
    unnecessary: int
    """Parameters defined that the query does not need."""
    unnecessary_ops: int | None
    """Operations beyond the shortest solution's (None unless correct)."""
    steps: int
    """Solution sentences read, BACK steps excluded."""
    retries: int
    """BACK steps skipped."""
    ops: int
    """Operations (clauses) in the solution read so far."""


class _StepError(Exception):
    pass


_NUMBER = re.compile(r"\d+")
_SYMBOL = re.compile(r"[A-Za-z]")
_SIGNS = (" + ", " - ", " * ")


def _split_expr(text: str) -> tuple[list[str], str | None]:
    for sign in _SIGNS:
        if sign in text:
            parts = text.split(sign)
            if len(parts) != 2:
                raise _StepError(f"{text!r} is not a single binary operation")
            return parts, sign.strip()
    return [text], None


def _apply(sign: str | None, vals: list[int]) -> int:
    if sign is None:
        return vals[0] % MOD
    a, b = vals
    return (a + b) % MOD if sign == "+" else (a - b) % MOD if sign == "-" else (a * b) % MOD


def _number(text: str) -> int:
    if not _NUMBER.fullmatch(text) or int(text) >= MOD:
        raise _StepError(f"{text!r} is not a number 0..{MOD - 1}")
    return int(text)


class _Solver:
    """State while reading a solution: symbol values and the parameters each symbol stands for."""

    def __init__(self, problem: ParsedProblem) -> None:
        self.problem = problem
        self.values: dict[str, int] = {}
        self.refs: dict[str, frozenset[Key]] = {}
        self.defined: dict[Key, str] = {}
        catalog = load_catalog()
        self.items = frozenset(catalog.item_names)
        self.seconds = self.items | frozenset(catalog.categories)

    def clause(self, text: str, expect_lhs: str | None = None) -> tuple[str, int, frozenset[Key]]:
        """Check ``X = hint = calc = result`` (or ``X = hint = result``, ``X = number``)."""
        parts = text.split(" = ")
        lhs = parts[0]
        if not _SYMBOL.fullmatch(lhs):
            raise _StepError(f"{lhs!r} is not a one-letter symbol")
        if expect_lhs is not None and lhs != expect_lhs:
            raise _StepError(f"concludes 'so {lhs}' but defined the parameter as {expect_lhs!r}")
        if expect_lhs is None and lhs in self.values:
            raise _StepError(f"symbol {lhs!r} is defined twice")
        rest = parts[1:]
        if not rest or len(rest) > 3:
            raise _StepError(f"{text!r} is not 'X = hint = calculation = result'")
        result = _number(rest[-1])
        if len(rest) == 1:
            return lhs, result, frozenset()
        operands, sign = _split_expr(rest[0])
        vals: list[int] = []
        refs: set[Key] = set()
        for op in operands:
            if _SYMBOL.fullmatch(op):
                if op not in self.values:
                    raise _StepError(f"uses symbol {op!r} before it is defined")
                vals.append(self.values[op])
                refs |= self.refs[op]
            else:
                vals.append(_number(op))
        if len(rest) == 3:
            calc, calc_sign = _split_expr(rest[1])
            if calc_sign != sign or len(calc) != len(operands):
                raise _StepError(f"calculation {rest[1]!r} does not match {rest[0]!r}")
            for shown, true in zip(calc, vals):
                if _number(shown) != true:
                    raise _StepError(f"{rest[0]!r} is substituted as {rest[1]!r} but its values are {vals}")
        elif sign is not None:
            raise _StepError(f"{text!r} lacks its calculation part")
        if _apply(sign, vals) != result:
            raise _StepError(
                f"arithmetic: {' = '.join(rest[:-1])} is {_apply(sign, vals)}, not {result} (mod 23)"
            )
        return lhs, result, frozenset(refs)

    def sentence(self, text: str) -> tuple[Key, int, int]:
        """Read one solution sentence; returns (parameter, value, operations)."""
        parts = text.split("; ")
        head = re.fullmatch(r"Define (?P<name>.+) as (?P<sym>\S+)", parts[0])
        if head is None:
            raise _StepError(f"does not start with 'Define <name> as <symbol>': {parts[0]!r}")
        if len(parts) < 2 or not parts[-1].startswith("so "):
            raise _StepError("has no final 'so X = ...' part (truncated?)")
        try:
            key = split_name(head.group("name"), self.items, self.seconds)
        except ParseError:
            raise _StepError(f"{head.group('name')!r} is not a parameter name") from None
        if not self.problem.is_param(key):
            raise _StepError(f"{key[0]}'s {key[1]} is not a parameter of the problem")
        if key in self.defined:
            raise _StepError(f"{key[0]}'s {key[1]} is defined twice")
        sym = head.group("sym")
        if not _SYMBOL.fullmatch(sym):
            raise _StepError(f"{sym!r} is not a one-letter symbol")
        if sym in self.values:
            raise _StepError(f"symbol {sym!r} is defined twice")
        for middle in parts[1:-1]:
            lhs, val, refs = self.clause(middle)
            self.values[lhs], self.refs[lhs] = val, refs
        _, value, refs = self.clause(parts[-1][len("so ") :], expect_lhs=sym)
        need = set(self.problem.preds(key))
        if refs != need:
            missing = sorted(f"{a}'s {b}" for a, b in need - refs)
            extra = sorted(f"{a}'s {b}" for a, b in refs - need)
            raise _StepError(
                f"{key[0]}'s {key[1]} must use exactly its dependencies; missing {missing}, extra {extra}"
            )
        self.values[sym], self.refs[sym] = value, frozenset({key})
        self.defined[key] = sym
        return key, value, len(parts) - 1


def evaluate_text(problem_text: str, solution_text: str, answer_text: str | None = None) -> Verdict:
    """Judge ``solution_text`` (sentences "Define ... as X; ...; so X = ... ." in the papers' format) for the
    problem ``problem_text`` (statement and question). ``answer_text``, when given, must equal the true answer
    too. Never raises on malformed input: the verdict says what is wrong."""
    try:
        problem = parse_problem(problem_text)
        expected = problem.value(problem.query)
    except ParseError as exc:
        return Verdict(False, None, None, f"problem: {exc}", None, 0, None, 0, 0, 0)
    except Exception as exc:  # never let odd input escape as an exception
        return Verdict(
            False, None, None, f"problem: unreadable ({type(exc).__name__}: {exc})", None, 0, None, 0, 0, 0
        )
    solver = _Solver(problem)
    answer: int | None = None
    last: Key | None = None
    steps = retries = ops = 0
    text = solution_text.strip()
    sentences = [s for s in (text[:-1] if text.endswith(".") else text).split(". ")] if text else []
    necessary = problem.ancestors(problem.query) | {problem.query}

    def verdict(correct: bool, error: str | None, step: int | None) -> Verdict:
        unnecessary = sum(1 for k in solver.defined if k not in necessary)
        extra_ops = ops - sum(problem.ops(k) for k in necessary) if correct else None
        return Verdict(correct, answer, expected, error, step, unnecessary, extra_ops, steps, retries, ops)

    for idx, sentence in enumerate(sentences):
        if re.search(r"\bBACK\b", sentence):
            retries += 1
            continue
        try:
            last, answer, n_ops = solver.sentence(sentence.strip())
        except _StepError as exc:
            return verdict(False, f"step {idx + 1}: {exc}", idx)
        except Exception as exc:
            return verdict(False, f"step {idx + 1}: unreadable ({type(exc).__name__}: {exc})", idx)
        steps += 1
        ops += n_ops
    if last is None:
        return verdict(False, "no solution sentence", None)
    if last != problem.query:
        q = problem.query
        return verdict(
            False, f"the last step defines {last[0]}'s {last[1]}, not the query {q[0]}'s {q[1]}", None
        )
    if answer != expected:
        return verdict(False, f"wrong answer {answer}; the problem gives {expected}", None)
    if answer_text is not None and answer_text.strip() != str(expected):
        return verdict(False, f"stated answer {answer_text.strip()!r} differs from {expected}", None)
    return verdict(True, None, None)

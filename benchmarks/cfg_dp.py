"""Speed of the exact CFG DPs (physlm.tasks.cfg.dp) on cfg3f sentences, against a pure-Python CYK reference.

Prints sentences/s for each public DP function and the ratio against one pass of a plain pure-Python
CYK inside algorithm written here: a dict chart of the (start, end) spans each level derives, rules
extended child by child, the per-level maximum span as the only pruning. It computes what ``log_prob``
computes (and checks it); the other functions do more work than one such pass. Note that a dict chart is
already sparse, which on cfg3 sentences (a few hundred derivable spans per level) makes it far faster
than a dense CYK table such as the official pure-Python DP.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cfg_dp.py [--grammar cfg3f] [--n 40]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from physlm.tasks.cfg import load_grammar, sample_symbols  # noqa: E402
from physlm.tasks.cfg.dp import count_parses, is_valid, log_prob, next_token_distribution, parse_tree  # noqa: E402
from physlm.tasks.cfg.grammar import Grammar  # noqa: E402


def cyk_log_prob(grammar: Grammar, symbols: Sequence[int]) -> float:
    """Plain pure-Python inside algorithm: natural log of P(sentence), summing over parses."""
    n = len(symbols)
    # chart: (start, end) -> {symbol: inside probability}, for the current level only (levels are layered)
    chart: dict[tuple[int, int], dict[int, float]] = {(i, i + 1): {t - 1: 1.0} for i, t in enumerate(symbols)}
    for d in range(grammar.num_levels - 2, -1, -1):
        hi = grammar.span_bounds[d][1]
        by_start: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
        for (i, j), syms in chart.items():
            for s, p in syms.items():
                by_start[i].append((j, s, p))
        nxt: dict[tuple[int, int], dict[int, float]] = defaultdict(dict)
        for a, rules in enumerate(grammar.rules[d]):
            for rule, rule_p in zip(rules, grammar.probabilities(d, a)):
                partial = {(i, j): syms[rule[0]] for (i, j), syms in chart.items() if rule[0] in syms}
                for c in rule[1:]:
                    grown: dict[tuple[int, int], float] = defaultdict(float)
                    for (i, k), p in partial.items():
                        for j, s, q in by_start.get(k, ()):
                            if s == c and j - i <= hi:
                                grown[(i, j)] += p * q
                    partial = grown
                for span, p in partial.items():
                    nxt[span][a] = nxt[span].get(a, 0.0) + rule_p * p
        chart = nxt
    p = chart.get((0, n), {}).get(0, 0.0)
    return math.log(p) if p > 0 else -math.inf


def _time(fn: Callable[[Grammar, list[int]], object], grammar: Grammar, sentences: list[list[int]],
          rounds: int = 3) -> float:
    """Seconds per sentence: the fastest of ``rounds`` passes over all sentences (the machine is shared,
    so the minimum is the least disturbed measurement), after one warm-up call."""
    fn(grammar, sentences[0])
    best = math.inf
    for _ in range(rounds):
        t0 = time.perf_counter()
        for x in sentences:
            fn(grammar, x)
        best = min(best, time.perf_counter() - t0)
    return best / len(sentences)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grammar", default="cfg3f")
    parser.add_argument("--n", type=int, default=40, help="sentences timed per DP function")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    grammar = load_grammar(args.grammar)
    rng = random.Random(args.seed)
    sentences = [sample_symbols(grammar, rng) for _ in range(args.n)]
    lengths = [len(x) for x in sentences]
    print(f"{args.grammar}: {args.n} sentences, length mean {statistics.mean(lengths):.0f} "
          f"(min {min(lengths)}, max {max(lengths)}); load average {os.getloadavg()[0]:.1f}")

    ref_sentences = sentences
    for x in ref_sentences:
        ref, fast = cyk_log_prob(grammar, x), log_prob(grammar, x)
        if not math.isclose(ref, fast, rel_tol=1e-9):
            raise SystemExit(f"log-probabilities disagree: CYK reference {ref!r}, physlm.tasks.cfg.dp {fast!r}")
    ref_s = _time(cyk_log_prob, grammar, ref_sentences)
    print(f"pure-Python CYK reference: {ref_s * 1e3:.1f} ms/sentence ({1 / ref_s:.1f} sentences/s); "
          "its log-probabilities agree with log_prob on every sentence")

    rows = [
        ("is_valid", is_valid),
        ("log_prob", log_prob),
        ("next_token_distribution", next_token_distribution),
        ("count_parses", count_parses),
        ("parse_tree", parse_tree),
    ]
    print(f"{'function':<26}{'ms/sentence':>12}{'sentences/s':>13}{'speed-up vs CYK pass':>22}")
    for name, fn in rows:
        s = _time(fn, grammar, sentences)
        print(f"{name:<26}{s * 1e3:>12.1f}{1 / s:>13.1f}{ref_s / s:>22.1f}")
    n300 = min(sentences, key=lambda x: abs(len(x) - 300))
    for name, fn in rows[:3]:
        s = _time(fn, grammar, [n300], rounds=10)
        print(f"{name} on a {len(n300)}-token sentence: {s * 1e3:.1f} ms (target < 100 ms)")


if __name__ == "__main__":
    main()

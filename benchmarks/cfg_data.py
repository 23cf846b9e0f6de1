"""CFG data generation speed: the sampler against a plain recursive reference, and the full dataset export.

    .venv/bin/python benchmarks/cfg_data.py --grammar cfg3f --n 100000 --num-proc 2

Prints sentences/s of (a) a recursive reference sampler written like the official ``CFG_Node.generate``
(tokens only), (b) :func:`physlm.tasks.cfg.sample_symbols`, (c) :func:`physlm.tasks.cfg.sample_sentence` (with labels),
and (d) the wall time of ``export_cfg_dataset`` for ``--n`` sentences with ``--num-proc`` workers.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from physlm.tasks.cfg import CFGDataConfig, export_cfg_dataset, load_grammar, sample_sentence, sample_symbols
from physlm.tasks.cfg.grammar import Grammar


def reference_sample(grammar: Grammar, rng: random.Random, depth: int = 0, symbol: int = 0) -> list[int]:
    """Recursive sampler in the style of the official code (one randint per NT, pre-order)."""
    if depth == grammar.num_levels - 1:
        return [symbol + 1]
    rules = grammar.rules[depth][symbol]
    rule = rules[rng.randint(0, len(rules) - 1)]
    out: list[int] = []
    for child in rule:
        out.extend(reference_sample(grammar, rng, depth + 1, child))
    return out


def rate(fn, grammar: Grammar, seconds: float) -> float:
    rng = random.Random(0)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn(grammar, rng)
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--grammar", default="cfg3f")
    parser.add_argument("--n", type=int, default=100_000, help="sentences for the export timing (0 to skip)")
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per sampler measurement")
    args = parser.parse_args()
    g = load_grammar(args.grammar)
    assert reference_sample(g, random.Random(7711)) == sample_symbols(g, random.Random(7711))
    ref = rate(reference_sample, g, args.seconds)
    sym = rate(sample_symbols, g, args.seconds)
    full = rate(sample_sentence, g, args.seconds)
    print(f"grammar {g.name}, E[n] = {g.expected_length:.1f} tokens")
    print(f"reference recursive sampler : {ref:9.0f} sentences/s")
    print(f"sample_symbols              : {sym:9.0f} sentences/s  ({sym / ref:.2f}x reference)")
    print(f"sample_sentence (+ labels)  : {full:9.0f} sentences/s  ({full / ref:.2f}x reference)")
    if args.n > 0:
        with tempfile.TemporaryDirectory() as tmp:
            config = CFGDataConfig(grammar=args.grammar, n=args.n)
            start = time.perf_counter()
            path = export_cfg_dataset(g, config, Path(tmp) / "ds", num_proc=args.num_proc)
            wall = time.perf_counter() - start
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        print(
            f"export {args.n} sentences, num_proc={args.num_proc}: {wall:.1f} s "
            f"({args.n / wall:.0f} sentences/s, {size / 2**20:.0f} MiB on disk)"
        )


if __name__ == "__main__":
    main()

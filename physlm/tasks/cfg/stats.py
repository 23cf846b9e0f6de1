"""Measured statistics of a grammar: sentence lengths, entropy floor, ambiguity, and how much of the NT
structure the last few tokens already give away (what a probe on an untrained model could exploit).

Exact quantities (length bounds, expected length, derivation entropy) come from recursions over the rules;
the rest are Monte Carlo over seeded samples. The entropy floor and the ambiguity come from the exact DP
parsers of :mod:`physlm.tasks.cfg.dp` (``log_prob``, ``count_parses``) on ``n_dp_samples`` sentences (``None``
when there are none).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter, defaultdict

import numpy as np

from physlm.tasks.cfg import dp
from physlm.tasks.cfg.grammar import Grammar
from physlm.tasks.cfg.grammar_io import grammar_to_text
from physlm.tasks.cfg.sample import labels_from_levels, sample_tree


@dataclasses.dataclass(frozen=True)
class GrammarStats:
    """Statistics of one grammar (see :func:`grammar_stats`)."""

    name: str
    sizes: tuple[int, ...]
    num_rules: int
    length_bounds: tuple[int, int]
    """exact shortest and longest sentence"""
    expected_length: float
    """exact E[n]"""
    n_samples: int
    length_mean: float
    length_std: float
    length_min: int
    length_max: int
    derivation_entropy_per_token: float
    """exact derivation entropy / E[n], nats: an upper bound on the entropy floor"""
    end_fraction: tuple[float, ...]
    """per NT level ℓ = 2..L−1, the fraction of positions that end a level-ℓ subtree"""
    majority_ancestor_at_end: tuple[float, ...]
    """per NT level, accuracy of always guessing the most frequent ancestor at NT-ends"""
    context_ancestor_at_end: dict[int, tuple[float, ...]]
    """{k: per NT level, accuracy of predicting the ancestor at NT-ends from the last k tokens (majority)}"""
    position_ancestor_at_end: tuple[float, ...]
    """per NT level, accuracy of predicting the ancestor at NT-ends from the position alone (majority per
    position): what a random-init model's causal-attention features give away on grammars of steady length"""
    n_dp_samples: int
    entropy_floor_per_token: float | None
    """Monte Carlo E[−log p(x)] / E[n] in nats (exact DP log-probabilities; None without DP samples)"""
    entropy_floor_se: float | None
    ambiguous_fraction: float | None
    """fraction of sampled sentences with more than one parse (None without DP samples)"""
    max_parses: int | None


def grammar_stats(
    grammar: Grammar,
    n_samples: int = 2000,
    n_dp_samples: int = 200,
    seed: int = 0,
    context_sizes: tuple[int, ...] = (1, 2, 3),
    progress: bool = False,
) -> GrammarStats:
    """Measure a grammar on ``n_samples`` seeded sentences (``n_dp_samples`` of them through the DPs)."""
    from tqdm.auto import tqdm

    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    rng = random.Random(seed)
    n_nt = grammar.num_levels - 2
    lengths: list[int] = []
    ends = np.zeros(n_nt)
    # (level, k) -> context tuple -> Counter of ancestors at NT-ends
    tables: dict[tuple[int, int], dict[tuple[int, ...], Counter[int]]] = defaultdict(
        lambda: defaultdict(Counter)
    )
    overall: list[Counter[int]] = [Counter() for _ in range(n_nt)]
    by_position: list[dict[int, Counter[int]]] = [defaultdict(Counter) for _ in range(n_nt)]
    sentences: list[list[int]] = []
    for _ in tqdm(range(n_samples), desc=f"sampling {grammar.name}", disable=not progress):
        symbols, levels = sample_tree(grammar, rng)
        anc, _, end, _ = labels_from_levels(levels, len(symbols))
        lengths.append(len(symbols))
        ends += end.sum(axis=1)
        if len(sentences) < n_dp_samples:
            sentences.append(symbols)
        padded = [0] * max(context_sizes, default=0) + symbols
        off = max(context_sizes, default=0)
        for r in range(n_nt):
            for i in np.flatnonzero(end[r]):
                a = int(anc[r, i])
                overall[r][a] += 1
                by_position[r][int(i)][a] += 1
                for k in context_sizes:
                    tables[(r, k)][tuple(padded[off + i - k + 1 : off + i + 1])][a] += 1
    n_end = [sum(c.values()) for c in overall]
    majority = tuple(max(c.values()) / t if t else 0.0 for c, t in zip(overall, n_end))
    context_acc = {
        k: tuple(
            sum(max(cnt.values()) for cnt in tables[(r, k)].values()) / n_end[r] if n_end[r] else 0.0
            for r in range(n_nt)
        )
        for k in context_sizes
    }
    position_acc = tuple(
        sum(max(cnt.values()) for cnt in by_position[r].values()) / n_end[r] if n_end[r] else 0.0
        for r in range(n_nt)
    )
    arr = np.asarray(lengths, dtype=np.float64)
    floor = floor_se = ambiguous = None
    max_parses = None
    if sentences:
        nll = np.array(
            [-dp.log_prob(grammar, s) for s in tqdm(sentences, desc="log p", disable=not progress)]
        )
        n_tok = np.array([len(s) for s in sentences], dtype=np.float64)
        floor = float(nll.sum() / n_tok.sum())
        floor_se = float(nll.std(ddof=1) / math.sqrt(len(nll)) / n_tok.mean()) if len(nll) > 1 else 0.0
        parses = [
            int(dp.count_parses(grammar, s)) for s in tqdm(sentences, desc="parses", disable=not progress)
        ]
        ambiguous = float(np.mean([p > 1 for p in parses]))
        max_parses = max(parses)
    return GrammarStats(
        name=grammar.name,
        sizes=grammar.sizes,
        num_rules=grammar.num_rules,
        length_bounds=grammar.length_range,
        expected_length=grammar.expected_length,
        n_samples=n_samples,
        length_mean=float(arr.mean()),
        length_std=float(arr.std()),
        length_min=int(arr.min()),
        length_max=int(arr.max()),
        derivation_entropy_per_token=grammar.derivation_entropy / grammar.expected_length,
        end_fraction=tuple(float(e / arr.sum()) for e in ends),
        majority_ancestor_at_end=majority,
        context_ancestor_at_end=context_acc,
        position_ancestor_at_end=position_acc,
        n_dp_samples=len(sentences),
        entropy_floor_per_token=floor,
        entropy_floor_se=floor_se,
        ambiguous_fraction=ambiguous,
        max_parses=max_parses,
    )


def format_grammar_info(grammar: Grammar, stats: GrammarStats | None = None) -> str:
    """A readable report: levels, symbols, rules (text format) and, when given, the measured statistics."""
    lines = [
        f"grammar {grammar.name}: L = {grammar.num_levels} levels (root = level 1, terminals = level "
        f"{grammar.num_levels}), {grammar.num_terminals} terminals, {grammar.num_rules} rules",
        "symbols per level: " + ", ".join(f"l{d + 1}={s}" for d, s in enumerate(grammar.sizes)),
    ]
    unreachable = grammar.unreachable_symbols()
    if unreachable:
        lines.append(f"unreachable symbols: {len(unreachable)} (as in the source file)")
    lines += ["", "rules:", grammar_to_text(grammar).rstrip(), ""]
    if stats is None:
        return "\n".join(lines) + "\n"
    levels = grammar.nt_levels
    lines += [
        f"sentence length: exact range {stats.length_bounds[0]}..{stats.length_bounds[1]}, "
        f"E[n] = {stats.expected_length:.1f}; sampled ({stats.n_samples}) mean {stats.length_mean:.1f} "
        f"(sd {stats.length_std:.1f}), min {stats.length_min}, max {stats.length_max}",
        f"derivation entropy: {stats.derivation_entropy_per_token:.4f} nats/token (upper bound on the floor)",
    ]
    if stats.entropy_floor_per_token is not None:
        lines.append(
            f"entropy floor: {stats.entropy_floor_per_token:.4f} ± {stats.entropy_floor_se:.4f} nats/token "
            f"(exact log p of {stats.n_dp_samples} sentences)"
        )
        lines.append(
            f"ambiguous sentences: {100 * stats.ambiguous_fraction:.1f}% have > 1 parse "
            f"(max {stats.max_parses} parses, {stats.n_dp_samples} sentences)"
        )
    else:
        lines.append("entropy floor / ambiguity: need physlm.tasks.cfg.dp (exact parsers), not installed")
    header = "NT level            " + "".join(f"{'l' + str(lv):>8}" for lv in levels)
    lines += ["", header, "NT-end fraction     " + "".join(f"{x:8.3f}" for x in stats.end_fraction)]
    lines.append("ancestor@end: major " + "".join(f"{x:8.3f}" for x in stats.majority_ancestor_at_end))
    for k, accs in stats.context_ancestor_at_end.items():
        lines.append(f"  from last {k} tok   " + "".join(f"{x:8.3f}" for x in accs))
    lines.append("  from position     " + "".join(f"{x:8.3f}" for x in stats.position_ancestor_at_end))
    return "\n".join(lines) + "\n"

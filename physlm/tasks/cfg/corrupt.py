"""Corrupted sentences for the robustness experiments (spec §4.4, §5.4): flip a fraction of the tokens.

A flip replaces a terminal by a different terminal chosen uniformly. Corrupted training sentences keep the
clean sentence's labels (the generating tree), so probes and evaluations can compare against the truth.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a fraction in [0, 1], got {value}")


def num_flips(length: int, flip_fraction: float) -> int:
    """How many tokens a sentence of ``length`` gets flipped: round(fraction × length), at least 1 if > 0."""
    _check_fraction("flip_fraction", flip_fraction)
    if flip_fraction == 0.0 or length == 0:
        return 0
    return min(length, max(1, round(flip_fraction * length)))


def corrupt_symbols(
    symbols: Sequence[int], flip_fraction: float, num_terminals: int, rng: random.Random
) -> list[int]:
    """Flip ``num_flips(len, flip_fraction)`` distinct positions, each to another terminal in 1..T."""
    if num_terminals < 2:
        raise ValueError(f"cannot flip tokens of a grammar with {num_terminals} terminal(s); need at least 2")
    out = list(symbols)
    for i, t in enumerate(out):
        if not 1 <= t <= num_terminals:
            raise ValueError(f"symbol {t} at position {i} is not a terminal 1..{num_terminals}")
    for pos in sorted(rng.sample(range(len(out)), num_flips(len(out), flip_fraction))):
        shift = rng.randrange(1, num_terminals)  # 1..T-1 away, so the new terminal always differs
        out[pos] = (out[pos] - 1 + shift) % num_terminals + 1
    return out


def maybe_corrupt(
    symbols: Sequence[int],
    corrupt_rate: float,
    flip_fraction: float,
    num_terminals: int,
    rng: random.Random,
) -> tuple[list[int], bool]:
    """With probability ``corrupt_rate`` return a corrupted copy (and True), else the sentence (and False).

    Always draws one ``rng.random()`` first, so the decision stream does not depend on sentence lengths.
    """
    _check_fraction("corrupt_rate", corrupt_rate)
    if rng.random() < corrupt_rate:
        return corrupt_symbols(symbols, flip_fraction, num_terminals, rng), True
    return list(symbols), False

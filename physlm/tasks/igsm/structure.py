"""The structure graph of one iGSM problem (spec §1.2) and its parameter names.

A parameter is a 4-tuple ``(kind, i, j, k)``:

* instance ``(0, i, j, k)``: "the number of each item (i+1, k) in each item (i, j)"; it exists iff the
  structure edge (i, j) -> (i+1, k) exists;
* abstract ``(1, i, j, k)`` with k > i: "the total number of category-k items in item (i, j)";
* ``RNG = (-1, 0, 0, 0)`` stands for a random constant.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

Param = tuple[int, int, int, int]
RNG: Param = (-1, 0, 0, 0)

T = TypeVar("T")


# The draws below replace random.randrange/choice/randint in the hot loops: one call to rng.random() is about
# three times cheaper than randrange's bit-twiddling, and the bias of int(u * n) (< n * 2**-53) is immaterial.
def below(rng: random.Random, n: int) -> int:
    """Uniform integer in 0..n-1."""
    return int(rng.random() * n)


def pick(rng: random.Random, seq: Sequence[T]) -> T:
    """Uniform element of a non-empty sequence."""
    return seq[int(rng.random() * len(seq))]


def between(rng: random.Random, a: int, b: int) -> int:
    """Uniform integer in a..b (both included)."""
    return a + int(rng.random() * (b - a + 1))


@dataclass
class Structure:
    """Layers ``0..d-1`` of ``widths[i]`` items; ``children[i][j]`` are the indices k of the items (i+1, k)
    below item (i, j), in increasing order."""

    widths: list[int]
    children: list[list[list[int]]]
    edges: list[tuple[int, int, int]]
    """Structure edges (i, j, k) in the order they were drawn (parent edges first, then the extra ones)."""

    @property
    def depth(self) -> int:
        return len(self.widths)

    def total_ops(self) -> int:
        """Op count if every parameter were used (the official ``Graph.total``, caps ``n``)."""
        total = len(self.edges)
        for i in range(self.depth - 1):
            for kids in self.children[i]:
                count = len(kids)
                count_multi = max(2 * count - 1, 0)
                if count > 1:
                    count -= 1
                total += count_multi * (self.depth - i - 2) + count
        return total

    def all_params(self) -> list[Param]:
        """The official ``all_param``: every instance slot of adjacent layers (edge or not), then every
        abstract parameter."""
        d, w = self.depth, self.widths
        out: list[Param] = [(0, i, j, k) for i in range(d - 1) for j in range(w[i]) for k in range(w[i + 1])]
        out += [(1, i, j, k) for i in range(d - 1) for j in range(w[i]) for k in range(i + 1, d)]
        return out

    def abstract_preds(self, param: Param) -> list[Param]:
        """Implicit dependencies of an abstract parameter: its instance parameters, then (k > i+1) the
        children's abstract parameters."""
        _, i, j, k = param
        kids = self.children[i][j]
        preds: list[Param] = [(0, i, j, x) for x in kids]
        if k > i + 1:
            preds += [(1, i + 1, x, k) for x in kids]
        return preds


def sample_structure(d: int, w0: int, w1: int, e: int, p: float, rng: random.Random) -> Structure:
    """The official ``Graph.init``: grow layers from width w0 (up to w1) until ``e`` edges fit, give every
    lower item one random parent, then add the remaining edges uniformly among unused adjacent pairs."""
    e = min(max(e, (d - 1) * w0), (d - 1) * w1 * w1)
    widths = [w0] * d

    def add_vertex() -> bool:
        pool = [i for i, x in enumerate(widths) if x < w1]
        if not pool:
            return True
        widths[pick(rng, pool)] += 1
        return False

    while True:
        max_v = sum(widths[i] * widths[i + 1] for i in range(d - 1))
        min_v = sum(widths[1:])
        if max_v < e:
            add_vertex()
        elif min_v == e:
            break
        elif rng.random() < p:
            if add_vertex():
                break
        else:
            break

    adjacency = [[[False] * widths[i + 1] for _ in range(widths[i])] for i in range(d - 1)]
    edges: list[tuple[int, int, int]] = []
    for i in range(d - 1):
        for k in range(widths[i + 1]):
            j = below(rng, widths[i])
            adjacency[i][j][k] = True
            edges.append((i, j, k))
    unused = [
        (i, j, k)
        for i in range(d - 1)
        for j in range(widths[i])
        for k in range(widths[i + 1])
        if not adjacency[i][j][k]
    ]
    for i, j, k in rng.sample(unused, e - len(edges)):
        adjacency[i][j][k] = True
        edges.append((i, j, k))
    children = [
        [[k for k in range(widths[i + 1]) if adjacency[i][j][k]] for j in range(widths[i])]
        for i in range(d - 1)
    ]
    return Structure(widths=widths, children=children, edges=edges)

"""World knowledge of iGSM: the 4 categorisations (4 layers each) and their item names.

``data/items.json`` holds the official generator's item lists (facebookresearch/iGSM, MIT licence, copied
with ``data/LICENSE-iGSM-MIT.txt``): 16 categories, 5 sub-categories each, 1,553 names (1,516 distinct).
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass
from pathlib import Path

DATA_FILE = Path(__file__).parent / "data" / "items.json"


@dataclass(frozen=True)
class Catalog:
    """The item catalogue: ``hierarchies[h]`` lists 4 category names top-down; ``items[category]`` its
    sub-categories, each a tuple of item names."""

    hierarchies: tuple[tuple[str, ...], ...]
    items: dict[str, tuple[tuple[str, ...], ...]]

    @functools.cached_property
    def categories(self) -> tuple[str, ...]:
        """Every category name, hierarchy by hierarchy, top-down."""
        return tuple(c for h in self.hierarchies for c in h)

    @functools.cached_property
    def item_names(self) -> tuple[str, ...]:
        """Every distinct item name, sorted."""
        return tuple(sorted({n for subs in self.items.values() for sub in subs for n in sub}))

    @functools.cached_property
    def categories_of(self) -> dict[str, frozenset[str]]:
        """The categories an item name occurs in (a few names, e.g. 'Milk', occur in several)."""
        out: dict[str, set[str]] = {}
        for category, subs in self.items.items():
            for sub in subs:
                for name in sub:
                    out.setdefault(name, set()).add(category)
        return {k: frozenset(v) for k, v in out.items()}

    def sample_names(
        self, depth: int, widths: list[int], rng: random.Random
    ) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
        """Pick one categorisation, a window of ``depth`` adjacent layers, and per layer ``widths[i]``
        distinct items from one random sub-category. Names are distinct across layers too (resampled on a
        clash; a deviation from the official code so that every "A's B" names one parameter)."""
        hierarchy = rng.choice(self.hierarchies)
        start = rng.randint(0, len(hierarchy) - depth)
        layer_names = tuple(hierarchy[start : start + depth])
        used: set[str] = set()
        names: list[tuple[str, ...]] = []
        for category, width in zip(layer_names, widths):
            while True:
                picked = rng.sample(rng.choice(self.items[category]), width)
                if used.isdisjoint(picked):
                    break
            used.update(picked)
            names.append(tuple(picked))
        return layer_names, tuple(names)


@functools.lru_cache(maxsize=8)
def load_catalog(items_per_category: int | None = None) -> Catalog:
    """The shipped catalogue (read once per process); with ``items_per_category`` k, the compact world of a
    CPU preset: the first k items of each category's first sub-category."""
    if items_per_category is not None:
        full = load_catalog()
        compact = {cat: (subs[0][:items_per_category],) for cat, subs in full.items.items()}
        for cat, (names,) in compact.items():
            if len(names) < items_per_category:
                raise ValueError(f"category {cat!r} has only {len(names)} items in its first sub-category")
        return Catalog(hierarchies=full.hierarchies, items=compact)
    raw = json.loads(DATA_FILE.read_text())
    hierarchies = tuple(tuple(h) for h in raw["hierarchies"])
    items = {cat: tuple(tuple(sub) for sub in subs.values()) for cat, subs in raw["items"].items()}
    for h in hierarchies:
        for cat in h:
            if cat not in items:
                raise ValueError(f"{DATA_FILE}: category {cat!r} has no items")
    return Catalog(hierarchies=hierarchies, items=items)

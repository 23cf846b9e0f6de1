"""Individuals: unique full names and six attributes drawn once per person from a seeded RNG.

Facts are fixed per person (pitfall 2 of spec §8.4: a reproduction that re-samples attributes at every
exposure teaches nothing); only the wording varies between a person's biography entries.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable
from dataclasses import dataclass

from physlm.tasks.bio.pools import ATTRIBUTES, DAYS, MONTHS, PRONOUNS, YEARS, Pools, load_pools


@dataclass(frozen=True)
class Person:
    """One individual. Values are pool indices; :meth:`value` renders them as text."""

    id: int
    first: int
    middle: int
    last: int
    gender: int
    """0 = He, 1 = She"""
    birth_month: int
    """1-12"""
    birth_day: int
    """1-28"""
    birth_year: int
    """1900-2099"""
    birth_city: int
    university: int
    major: int
    """index in the majors pool = Part 3.2's "luckiness" (0-99)"""
    employer: int
    """company index; the company city follows from it"""

    def full_name(self, pools: Pools | None = None) -> str:
        pools = pools or load_pools()
        return f"{pools.first_names[self.first]} {pools.middle_names[self.middle]} {pools.last_names[self.last]}"

    def first_name(self, pools: Pools | None = None) -> str:
        return (pools or load_pools()).first_names[self.first]

    def pronoun(self) -> str:
        return PRONOUNS[self.gender]

    def value(self, attribute: str, pools: Pools | None = None) -> str:
        """The exact text of one attribute (``birth_date`` as ``October 2, 1996``)."""
        pools = pools or load_pools()
        if attribute == "birth_date":
            return f"{MONTHS[self.birth_month - 1]} {self.birth_day}, {self.birth_year}"
        if attribute == "birth_city":
            return pools.cities[self.birth_city]
        if attribute == "university":
            return pools.universities[self.university]
        if attribute == "major":
            return pools.majors[self.major]
        if attribute == "employer":
            return pools.companies[self.employer]
        if attribute == "company_city":
            return pools.company_cities[self.employer]
        raise ValueError(f"unknown attribute {attribute!r}; attributes are {', '.join(ATTRIBUTES)}")

    def class_index(self, attribute: str) -> int:
        """The attribute as a class id for probes: birth_date -> month (0-11), company_city -> its city index
        among the distinct headquarters, the rest -> their pool index."""
        if attribute == "birth_date":
            return self.birth_month - 1
        if attribute == "company_city":
            return company_city_classes()[self.employer]
        return {
            "birth_city": self.birth_city,
            "university": self.university,
            "major": self.major,
            "employer": self.employer,
        }[attribute]


def company_city_classes() -> tuple[int, ...]:
    """employer index -> index of its headquarters among the distinct company cities (133 classes)."""
    return _city_classes(load_pools().company_cities)


@functools.lru_cache(maxsize=4)
def _city_classes(cities: tuple[str, ...]) -> tuple[int, ...]:
    # class_index runs once per probed person, and rebuilding this table (a sort and 263 list searches) each
    # time dominated it; caching on the pool tuple itself stays right if the pools are ever reloaded.
    distinct = {c: i for i, c in enumerate(sorted(set(cities)))}
    return tuple(distinct[c] for c in cities)


def n_classes(attribute: str) -> int:
    """Number of classes of :meth:`Person.class_index` for one attribute."""
    pools = load_pools()
    return {
        "birth_date": 12,
        "birth_city": len(pools.cities),
        "university": len(pools.universities),
        "major": len(pools.majors),
        "employer": len(pools.companies),
        "company_city": len(set(pools.company_cities)),
    }[attribute]


def sample_people(
    n: int, rng: random.Random, first_id: int = 0, taken: Iterable[tuple[int, int, int]] = ()
) -> list[Person]:
    """``n`` people with full names unique among themselves and not in ``taken`` (rejection sampling).

    Raises ``ValueError`` when the name space cannot hold them.
    """
    pools = load_pools()
    used = set(taken)
    if n < 0:
        raise ValueError(f"number of people must be >= 0, got {n}")
    if n + len(used) > pools.name_space:
        raise ValueError(
            f"{n} people (+{len(used)} already named) do not fit in the name space of {pools.name_space:,} "
            f"distinct full names ({len(pools.first_names)} first x {len(pools.middle_names)} middle x "
            f"{len(pools.last_names)} last)"
        )
    if n + len(used) > pools.name_space // 2:
        # Rejection sampling slows to a crawl near a full name space; beyond half of it enumerate instead.
        free = [
            (f, m, la)
            for f in range(len(pools.first_names))
            for m in range(len(pools.middle_names))
            for la in range(len(pools.last_names))
            if (f, m, la) not in used
        ]
        names = rng.sample(free, n)
    else:
        names = []
        while len(names) < n:
            name = (
                rng.randrange(len(pools.first_names)),
                rng.randrange(len(pools.middle_names)),
                rng.randrange(len(pools.last_names)),
            )
            if name not in used:
                used.add(name)
                names.append(name)
    people = []
    for k, (f, m, la) in enumerate(names):
        people.append(
            Person(
                id=first_id + k,
                first=f,
                middle=m,
                last=la,
                gender=rng.randrange(len(PRONOUNS)),
                birth_month=rng.randrange(1, len(MONTHS) + 1),
                birth_day=rng.choice(DAYS),
                birth_year=rng.choice(YEARS),
                birth_city=rng.randrange(len(pools.cities)),
                university=rng.randrange(len(pools.universities)),
                major=rng.randrange(len(pools.majors)),
                employer=rng.randrange(len(pools.companies)),
            )
        )
    return people

"""The bioS value pools and sentence templates, shipped as package data.

``data/*.txt`` and ``data/templates.json`` are the official pools and the templates of ``get_text_simple3``
(facebookresearch/PhysicsLM4, Apache-2.0; see NOTICE). ``company.txt`` lines are ``Company; City, ST``: a
company's city is its headquarters, so company city is a function of the employer.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"

ATTRIBUTES = ("birth_date", "birth_city", "university", "major", "employer", "company_city")
"""The six attributes in the canonical sentence order of bioS single (employer before company city)."""

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
YEARS = tuple(range(1900, 2100))
DAYS = tuple(range(1, 29))
PRONOUNS = ("He", "She")
"""Part 3.3 counts two genders (the released code uses He/She); the templates' possessives stay 'their'."""


@dataclass(frozen=True)
class Pools:
    """Every value a biography can hold, and the per-attribute sentence templates."""

    first_names: tuple[str, ...]
    middle_names: tuple[str, ...]
    last_names: tuple[str, ...]
    cities: tuple[str, ...]
    universities: tuple[str, ...]
    majors: tuple[str, ...]
    """in file order: a major's index is its "luckiness" in Part 3.2 (Computer Science = 0)"""
    companies: tuple[str, ...]
    company_cities: tuple[str, ...]
    """headquarters of ``companies[i]``"""
    templates: dict[str, tuple[str, ...]]
    """attribute -> templates with ``{name}`` and ``{value}`` placeholders"""

    @property
    def name_space(self) -> int:
        """How many distinct full names exist (400 x 400 x 1000 = 1.6e8 for the official pools)."""
        return len(self.first_names) * len(self.middle_names) * len(self.last_names)


def _lines(name: str) -> tuple[str, ...]:
    path = DATA_DIR / name
    lines = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if not lines:
        raise ValueError(f"value pool {path} is empty")
    return lines


@functools.lru_cache(maxsize=1)
def load_pools() -> Pools:
    """The official pools and templates (placeholders renamed to ``{name}`` / ``{value}``)."""
    raw = json.loads((DATA_DIR / "templates.json").read_text(encoding="utf-8"))
    templates = {}
    for attribute in ATTRIBUTES:
        slot = "{" + raw["placeholders"][attribute] + "}"
        rows = tuple(t.replace(slot, "{value}") for t in raw["templates"][attribute])
        bad = [t for t in rows if t.count("{value}") != 1 or t.count("{name}") != 1]
        if bad or not rows:
            raise ValueError(f"templates for {attribute} must each hold one {{name}} and one value: {bad[:1]}")
        templates[attribute] = rows
    companies, company_cities = [], []
    for line in _lines("company.txt"):
        company, _, city = line.partition(";")
        if not city.strip():
            raise ValueError(f"company.txt line {line!r} is not 'Company; City, ST'")
        companies.append(company.strip())
        company_cities.append(city.strip())
    return Pools(
        first_names=_lines("first_name.txt"),
        middle_names=_lines("middle_name.txt"),
        last_names=_lines("last_name.txt"),
        cities=_lines("city.txt"),
        universities=_lines("university.txt"),
        majors=_lines("field.txt"),
        companies=tuple(companies),
        company_cities=tuple(company_cities),
        templates=templates,
    )

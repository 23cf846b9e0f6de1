"""The bio task's configuration and the world it builds: people, their fixed entries, the QA split.

A :class:`BioConfig` is all a world depends on: the same config gives the same people, the same wordings and
the same split, byte for byte.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from dataclasses import dataclass

from physlm.config import Config
from physlm.tasks.bio.augmentation import Augmentation, parse_augmentation
from physlm.tasks.bio.people import Person, sample_people
from physlm.tasks.bio.render import EntryPlan, RenderedEntry, person_plans, render_entry, sample_plan


@dataclasses.dataclass(frozen=True)
class BioConfig(Config):
    """Which people exist and how their biographies are written.

    Defaults are the CPU setting of ``physlm run bio``; the paper uses ``n_people=100_000``.
    """

    n_people: int = 2000
    """individuals of the main group (the paper's N; "minority" in the celebrity setting)"""
    augmentation: str = "single"
    """how their biographies are written: a Part 3.1 name such as ``single`` or ``multi5+permute``"""
    n_celebrities: int = 0
    """extra individuals ("celebrities", Result 6) with disjoint names, written with celebrity_augmentation"""
    celebrity_augmentation: str = "multi5+permute"
    """augmentation of the celebrity group"""
    train_fraction: float = 0.5
    """share of the main group whose QA is trained on (P_train); the rest is P_test"""
    seed: int = 0
    """seeds the people, their fixed wordings and the split"""

    def __post_init__(self) -> None:
        problems = []
        if self.n_people < 2:
            problems.append(f"n_people must be >= 2 (P_train and P_test both need people), got {self.n_people}")
        if self.n_celebrities < 0:
            problems.append(f"n_celebrities must be >= 0, got {self.n_celebrities}")
        if not 0.0 < self.train_fraction < 1.0:
            problems.append(f"train_fraction must be in (0, 1), got {self.train_fraction}")
        if problems:
            raise ValueError("invalid BioConfig: " + "; ".join(problems))
        parse_augmentation(self.augmentation)
        if self.n_celebrities:
            parse_augmentation(self.celebrity_augmentation)


@dataclass(frozen=True)
class BioWorld:
    """The people of a :class:`BioConfig` and how each is written."""

    config: BioConfig
    people: tuple[Person, ...]
    """main group first (ids 0..n_people-1), then celebrities"""
    augmentations: tuple[Augmentation, ...]
    """per group: main, then celebrities (if any)"""
    plans: tuple[tuple[EntryPlan, ...] | None, ...]
    """per person: the fixed entries, or None when every exposure is written afresh (multi∞)"""
    train_people: tuple[int, ...]
    """ids whose QA is trained on (P_train): ``train_fraction`` of the main group, or, with celebrities, the
    celebrities only (Result 6)"""
    test_people: tuple[int, ...]
    """ids whose QA is held out (P_test): the rest of the main group, or all of it with celebrities"""

    @property
    def n_main(self) -> int:
        return self.config.n_people

    def group(self, person_id: int) -> str:
        """``main`` or ``celebrity``."""
        return "main" if person_id < self.n_main else "celebrity"

    def augmentation_of(self, person_id: int) -> Augmentation:
        return self.augmentations[0 if person_id < self.n_main else 1]

    def n_entries(self, person_id: int) -> int | None:
        plans = self.plans[person_id]
        return None if plans is None else len(plans)

    def entry(self, person_id: int, k: int, rng: random.Random | None = None) -> RenderedEntry:
        """Entry ``k`` of a person; for multi∞ people a fresh wording drawn from ``rng``."""
        person = self.people[person_id]
        plans = self.plans[person_id]
        if plans is None:
            if rng is None:
                raise ValueError("a multi∞ person has no fixed entries: pass rng for a fresh wording")
            return render_entry(person, sample_plan(rng, self.augmentation_of(person_id)))
        return render_entry(person, plans[k])

    def sample_entry(self, rng: random.Random) -> RenderedEntry:
        """A random biography over all entries of all people (each entry equally likely; multi∞ people
        count as one entry each), so a person's paraphrases are spread across windows, never packed
        together (the pitfall that gave one reproduction 7% instead of 97%)."""
        person_id, k = self._entry_index(rng.randrange(self._n_slots()))
        return self.entry(person_id, k, rng)

    @functools.cached_property
    def _slot_starts(self) -> list[int]:
        starts, total = [], 0
        for plans in self.plans:
            starts.append(total)
            total += 1 if plans is None else len(plans)
        starts.append(total)
        return starts

    def _n_slots(self) -> int:
        return self._slot_starts[-1]

    def _entry_index(self, slot: int) -> tuple[int, int]:
        import bisect

        person_id = bisect.bisect_right(self._slot_starts, slot) - 1
        return person_id, slot - self._slot_starts[person_id]


def build_world(config: BioConfig) -> BioWorld:
    """People, wordings and split of ``config`` (pure function of the config)."""
    rng = random.Random(f"physlm/bio/{config.seed}/people")
    main = sample_people(config.n_people, rng)
    celebrities = sample_people(
        config.n_celebrities, rng, first_id=config.n_people, taken=((p.first, p.middle, p.last) for p in main)
    )
    people = tuple(main + celebrities)
    augmentations = [parse_augmentation(config.augmentation)]
    if config.n_celebrities:
        augmentations.append(parse_augmentation(config.celebrity_augmentation))
    plans: list[tuple[EntryPlan, ...] | None] = []
    for person in people:
        augmentation = augmentations[0 if person.id < config.n_people else 1]
        if augmentation.entries is None:
            plans.append(None)
        else:
            person_rng = random.Random(f"physlm/bio/{config.seed}/wording/{person.id}")
            plans.append(tuple(person_plans(person_rng, augmentation)))
    split_rng = random.Random(f"physlm/bio/{config.seed}/split")
    ids = list(range(config.n_people))
    split_rng.shuffle(ids)
    n_train = max(1, min(config.n_people - 1, round(config.n_people * config.train_fraction)))
    if config.n_celebrities:
        # Result 6: QA is fine-tuned on the celebrities only and tested on the whole minority.
        train, test = list(range(config.n_people, len(people))), list(range(config.n_people))
    else:
        train, test = sorted(ids[:n_train]), sorted(ids[n_train:])
    return BioWorld(config, people, tuple(augmentations), tuple(plans), tuple(train), tuple(test))

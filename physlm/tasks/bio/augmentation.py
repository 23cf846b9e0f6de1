"""Augmentation names of Parts 3.1-3.3 (``single``, ``multi5+permute``, ``couple2``, ...) and what they mean.

One :class:`Augmentation` says how a person's biography entries are written: how many entries
(``multiplicity``; ``None`` = a fresh writing at every exposure, "multi∞"), whether each entry's six
sentences are shuffled (``permute``), whether every sentence carries the full name (``fullname``), the
``couple`` pair order, and where the name goes for Part 3.2's ``reverse`` sets.

``single+permuteP`` is special: P shuffled copies of *one* fixed wording (no new templates), whereas
``multiM+permute`` shuffles each of M independently worded entries (Part 3.1 §3).
"""

from __future__ import annotations

import dataclasses
import re

from physlm.config import Config

REVERSE_MODES = (1, 2, 6)
"""reverse1: name in the 2nd sentence; reverse2: in the 3rd; reverse6: an extra last sentence gives the name."""

PAPER_AUGMENTATIONS = (
    "single",
    "single+fullname",
    "single+permute1",
    "single+permute2",
    "single+permute5",
    "single+permute1+fullname",
    "single+permute2+fullname",
    "single+permute5+fullname",
    "multi2",
    "multi5",
    "multi2+permute",
    "multi5+permute",
    "multi2+fullname",
    "multi5+fullname",
    "multi2+permute+fullname",
    "multi5+permute+fullname",
)
"""The 16 bioS datasets of Part 3.1 (single and its 15 augmentations)."""

OTHER_AUGMENTATIONS = (
    "couple1",
    "couple2",
    "couple5",
    "multi5+reverse1",
    "multi5+reverse2",
    "multi5+reverse6",
    "multi5+permute+reverse6",
    "multiinf+permute",
)
"""Part 3.1's couple sets (probing), Part 3.2's reverse sets, Part 3.3's bioS(N) (= multi∞+permute)."""

_PART = re.compile(r"^(single|multi(\d+|inf|∞)|couple(\d+)|permute(\d*)|fullname|reverse(\d+))$")


@dataclasses.dataclass(frozen=True)
class Augmentation(Config):
    """How one person's biography entries are written (parsed from a name by :func:`parse_augmentation`)."""

    name: str
    """the paper's name, e.g. ``multi5+permute``"""
    entries: int | None
    """distinct entries per person; None = a fresh entry at every exposure (multi∞)"""
    new_wording: bool
    """entries re-draw their templates (multiM, couple, multi∞); False = copies of one wording (single+permuteP)"""
    permute: bool
    """shuffle the six sentences of each entry"""
    fullname: bool
    """the full name in every sentence instead of the pronoun"""
    couple: bool
    """sentences in three ordered pairs whose order is shuffled (Part 3.1's bioS coupleM)"""
    reverse: int | None
    """Part 3.2's reverse sets: 1 or 2 (name moved to sentence 2 or 3), 6 (extra final name sentence)"""


def parse_augmentation(name: str) -> Augmentation:
    """The :class:`Augmentation` of a paper name such as ``single+permute5+fullname`` or ``multi5+reverse6``.

    Raises ``ValueError`` naming the bad part and the accepted names.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"augmentation must be a non-empty name such as 'multi5+permute', got {name!r}")
    parts = name.split("+")
    known = ", ".join(PAPER_AUGMENTATIONS + OTHER_AUGMENTATIONS)

    def bad(why: str) -> ValueError:
        return ValueError(f"unknown augmentation {name!r}: {why}; known names: {known}")

    base = parts[0]
    m = _PART.match(base)
    if m is None or not (base == "single" or base.startswith("multi") or base.startswith("couple")):
        raise bad(f"it must start with single, multiM, multiinf or coupleM, not {base!r}")
    permute_copies: int | None = None
    fullname = False
    reverse: int | None = None
    plain_permute = False
    for part in parts[1:]:
        pm = _PART.match(part)
        if pm is None or part in ("single",) or part.startswith(("multi", "couple")):
            raise bad(f"{part!r} is not permute, permuteP, fullname or reverseK")
        if part.startswith("permute"):
            if permute_copies is not None or plain_permute:
                raise bad("permute given twice")
            if pm.group(4):
                permute_copies = int(pm.group(4))
            else:
                plain_permute = True
        elif part == "fullname":
            if fullname:
                raise bad("fullname given twice")
            fullname = True
        else:
            if reverse is not None:
                raise bad("reverse given twice")
            reverse = int(pm.group(5))
            if reverse not in REVERSE_MODES:
                raise bad(f"reverse{reverse} is not one of reverse1, reverse2, reverse6")
    if base == "single":
        if plain_permute:
            raise bad("single takes permuteP (P copies of one shuffled wording), e.g. single+permute5")
        if reverse is not None:
            raise bad("the reverse sets are built on multiM")
        if permute_copies is not None and permute_copies < 1:
            raise bad("permuteP needs P >= 1")
        entries = permute_copies or 1
        return Augmentation(name, entries, False, permute_copies is not None, fullname, False, None)
    if base.startswith("couple"):
        if len(parts) > 1:
            raise bad("coupleM takes no further parts")
        m_entries = int(m.group(3))
        if m_entries < 1:
            raise bad("coupleM needs M >= 1")
        return Augmentation(name, m_entries, True, False, False, True, None)
    if permute_copies is not None:
        raise bad("multiM takes plain permute (each entry shuffled), not permuteP")
    count = m.group(2)
    entries = None if count in ("inf", "∞") else int(count)
    if entries is not None and entries < 1:
        raise bad("multiM needs M >= 1")
    if reverse in (1, 2) and plain_permute:
        raise bad("reverse1/reverse2 fix the name's sentence, so they cannot be permuted")
    if reverse is not None and fullname:
        # The reverse sets exist to keep the name out of the other sentences; render would ignore fullname.
        raise bad("the reverse sets name the person once, so they cannot take fullname")
    return Augmentation(name, entries, True, plain_permute, fullname, False, reverse)

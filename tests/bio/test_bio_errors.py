"""Bad input gives one clear ValueError (and never a slow or memory-hungry failure)."""

import dataclasses
import random
import shutil
import tracemalloc

import pytest

from physlm.tasks.bio import BioConfig, BioTask, build_world, load_pools, parse_augmentation, qa_item, sample_people
from physlm.tasks.bio import pools as pools_module


@pytest.mark.parametrize(
    "name,why",
    [
        ("", "non-empty name"),
        ("double", "it must start with single, multiM, multiinf or coupleM, not 'double'"),
        ("multi5+shuffle", "'shuffle' is not permute, permuteP, fullname or reverseK"),
        ("multi5+multi2", "'multi2' is not permute"),
        ("single+permute", "single takes permuteP"),
        ("single+reverse6", "the reverse sets are built on multiM"),
        ("single+permute0", "permuteP needs P >= 1"),
        ("single+permute2+permute5", "permute given twice"),
        ("multi5+fullname+fullname", "fullname given twice"),
        ("multi5+reverse6+reverse1", "reverse given twice"),
        ("multi5+permute5", "multiM takes plain permute"),
        ("multi0", "multiM needs M >= 1"),
        ("multi5+reverse3", "reverse3 is not one of reverse1, reverse2, reverse6"),
        ("multi5+permute+reverse1", "cannot be permuted"),
        ("multi5+reverse6+fullname", "cannot take fullname"),
        ("couple2+permute", "coupleM takes no further parts"),
        ("couple0", "coupleM needs M >= 1"),
    ],
)
def test_unknown_augmentations_name_the_problem(name, why):
    with pytest.raises(ValueError) as info:
        parse_augmentation(name)
    message = str(info.value)
    assert why in message and "\n" not in message
    if name:
        assert message.startswith(f"unknown augmentation {name!r}: ") and "known names: single, " in message


def test_known_augmentations_parse():
    a = parse_augmentation("single+permute5+fullname")
    assert (a.entries, a.new_wording, a.permute, a.fullname) == (5, False, True, True)
    assert parse_augmentation("multiinf+permute").entries is None
    assert parse_augmentation("multi∞+permute").entries is None
    c = parse_augmentation("couple2")
    assert c.couple and c.entries == 2 and not c.permute
    r = parse_augmentation("multi5+permute+reverse6")
    assert r.reverse == 6 and r.permute and r.entries == 5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_people": 1}, "n_people must be >= 2"),
        ({"n_celebrities": -1}, "n_celebrities must be >= 0"),
        ({"train_fraction": 1.0}, r"train_fraction must be in \(0, 1\)"),
        ({"augmentation": "multi5+shuffle"}, "unknown augmentation 'multi5\\+shuffle'"),
        ({"n_celebrities": 3, "celebrity_augmentation": "bogus"}, "unknown augmentation 'bogus'"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BioConfig(**kwargs)


def test_too_many_people_fails_fast_without_allocating():
    space = load_pools().name_space
    assert space == 400 * 400 * 1000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"do not fit in the name space of 160,000,000 distinct full names "
                           r"\(400 first x 400 middle x 1000 last\)"):
            sample_people(space + 1, random.Random(0))
        with pytest.raises(ValueError, match=r"\+1 already named"):
            sample_people(space, random.Random(0), taken=[(0, 0, 0)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # a name list would take gigabytes
    with pytest.raises(ValueError, match="number of people must be >= 0"):
        sample_people(-1, random.Random(0))


def test_small_name_space_is_named_in_the_error(monkeypatch):
    from physlm.tasks.bio import people

    pools = load_pools()
    small = dataclasses.replace(pools, first_names=pools.first_names[:2], last_names=("Smith",))
    monkeypatch.setattr(people, "load_pools", lambda: small)
    with pytest.raises(ValueError, match=r"name space of 800 distinct full names \(2 first x 400 middle x 1 last\)"):
        people.sample_people(801, random.Random(0))


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    """A writable copy of the package data that load_pools reads instead (its cache cleared around)."""
    folder = tmp_path / "data"
    shutil.copytree(pools_module.DATA_DIR, folder)
    monkeypatch.setattr(pools_module, "DATA_DIR", folder)
    load_pools.cache_clear()
    yield folder
    load_pools.cache_clear()


def test_empty_pool(data_copy):
    (data_copy / "city.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match=r"value pool .*city\.txt is empty"):
        load_pools()


def test_malformed_company_line(data_copy):
    (data_copy / "company.txt").write_text("Acme Corporation\n")
    with pytest.raises(ValueError, match="company.txt line 'Acme Corporation' is not 'Company; City, ST'"):
        load_pools()


def test_template_without_a_value_slot(data_copy):
    import json

    raw = json.loads((data_copy / "templates.json").read_text())
    raw["templates"]["major"][0] = "{name} studied hard."
    (data_copy / "templates.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="templates for major must each hold one {name} and one value"):
        load_pools()


def test_other_bad_arguments():
    world = build_world(BioConfig(n_people=4, augmentation="multiinf+permute"))
    person = world.people[0]
    with pytest.raises(ValueError, match="unknown attribute 'age'; attributes are birth_date, "):
        person.value("age")
    with pytest.raises(ValueError, match="unknown attribute 'age'"):
        qa_item(person, "age")
    with pytest.raises(ValueError, match="pass rng for a fresh wording"):
        world.entry(0, 0)
    with pytest.raises(ValueError, match=r"qa_ratio must be in \[0, 1\)"):
        BioTask(BioConfig(n_people=4), qa_ratio=1.0)

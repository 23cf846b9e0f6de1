"""The compact-world knobs of the CPU presets (max_depth, max_width, catalog_items) and the ``micro`` preset."""

import hashlib
import random

import pytest

from physlm.tasks.igsm import IGSMConfig, generate_problem, preset
from physlm.tasks.igsm.catalog import load_catalog


def _digest(config: IGSMConfig, n: int = 40) -> str:
    rng, h = random.Random(123), hashlib.sha256()
    for _ in range(n):
        h.update(" ".join(generate_problem(config, rng).document_tokens()).encode())
    return h.hexdigest()[:16]


@pytest.mark.parametrize(("name", "digest"), [("tiny", "9b4651e5ef9bc430"), ("med", "bd7eff50745bb77b")])
def test_official_presets_draw_the_same_bytes_as_before_the_knobs(name, digest):
    # digests computed with the generator before max_depth/max_width/catalog_items existed
    assert _digest(preset(name)) == digest


def test_micro_problems_stay_inside_the_compact_world():
    config = preset("micro")
    compact = load_catalog(config.catalog_items)
    allowed = {cat: set(subs[0]) for cat, subs in compact.items.items()}
    rng = random.Random(0)
    depths, widths = set(), set()
    for _ in range(200):
        p = generate_problem(config, rng)
        depths.add(p.structure.depth)
        widths.update(p.structure.widths)
        assert len(p.structure.edges) <= config.max_edge
        assert 1 <= p.op <= config.max_op
        for category, names in zip(p.layer_names, p.item_names):
            assert set(names) <= allowed[category]
    assert depths == {2, 3} and max(widths) == 3


def test_compact_catalog_keeps_the_first_items_of_the_first_subcategory():
    full, compact = load_catalog(), load_catalog(8)
    for category, subs in compact.items.items():
        assert len(subs) == 1 and subs[0] == full.items[category][0][:8]


@pytest.mark.parametrize("op", [6, 7, 8])
def test_micro_reaches_its_ood_ops(op):
    p = generate_problem(preset("micro", op=op, split="test"), random.Random(op))
    assert p.op == op and p.solution_text.count(";") == op


def test_knob_validation_names_the_problem():
    with pytest.raises(ValueError, match="max_edge must be >= 6"):
        IGSMConfig(max_op=4, max_edge=5, max_depth=3, max_width=3)
    with pytest.raises(ValueError, match="max_depth and max_width"):
        IGSMConfig(max_depth=5)
    with pytest.raises(ValueError, match="catalog_items"):
        IGSMConfig(max_width=3, max_edge=12, catalog_items=4)

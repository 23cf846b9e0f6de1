"""HF dataset export: explicit Features, labels equal to the sampler's, determinism across num_proc."""

from __future__ import annotations

import random

import numpy as np
import pytest

from physlm.tasks.cfg import (
    CFGDataConfig,
    cfg_features,
    corrupt_dataset,
    export_cfg_dataset,
    generate_cfg_dataset,
    load_cfg_dataset,
    load_grammar,
    sample_sentence,
)
from physlm.tasks.cfg.dataset import shard_rngs


@pytest.fixture(scope="module")
def small():
    return load_grammar("cfg_small")


def test_features_are_explicit_and_sized_to_the_grammar(small):
    feats = cfg_features(small)
    assert set(feats) == {
        "id",
        "length",
        "symbols",
        "clean_symbols",
        "ancestor",
        "ancestor_index",
        "end",
        "end_level",
        "corrupted",
    }
    assert feats["ancestor"].length == small.num_levels - 2
    assert feats["symbols"].feature.dtype == "int8"
    assert cfg_features(load_grammar("cfg3k"))["ancestor_index"].feature.feature.dtype == "int16"


def test_rows_hold_the_sampler_labels(small, tmp_path):
    cfg = CFGDataConfig(grammar="cfg_small", n=7, seed=3, shard_size=3)
    ds = generate_cfg_dataset(small, cfg, workdir=tmp_path, progress=False)
    assert len(ds) == 7 and ds["id"] == list(range(7))
    # shard k's sentences come from shard_rngs(seed, k)[0], in order
    rng = shard_rngs(3, 1)[0]
    for j in range(3):
        s = sample_sentence(small, rng)
        row = ds.with_format("numpy")[3 + j]
        assert row["length"] == len(s) and tuple(row["symbols"]) == s.symbols
        for key in ("ancestor", "ancestor_index", "end"):
            assert np.array_equal(np.stack(row[key]), getattr(s, key)), key
        assert np.array_equal(row["end_level"], s.end_level)
        assert not row["corrupted"]


def test_same_seed_same_bytes_for_any_num_proc(small, tmp_path):
    cfg = CFGDataConfig(grammar="cfg_small", n=60, seed=11, shard_size=16, corrupt_rate=0.3)
    one = generate_cfg_dataset(small, cfg, num_proc=1, workdir=tmp_path / "a", progress=False)
    two = generate_cfg_dataset(small, cfg, num_proc=2, workdir=tmp_path / "b", progress=False)
    assert one.data.equals(two.data)
    other = generate_cfg_dataset(small, cfg.replace(seed=12), workdir=tmp_path / "c", progress=False)
    assert one["symbols"] != other["symbols"]


def test_corruption_keeps_clean_sentences_and_labels(small, tmp_path):
    clean_cfg = CFGDataConfig(grammar="cfg_small", n=200, seed=5, shard_size=100)
    clean = generate_cfg_dataset(small, clean_cfg, workdir=tmp_path / "a", progress=False)
    mixed = generate_cfg_dataset(
        small, clean_cfg.replace(corrupt_rate=0.25, flip_fraction=0.2), workdir=tmp_path / "b", progress=False
    )
    assert mixed["clean_symbols"] == clean["symbols"]
    for key in ("ancestor", "ancestor_index", "end", "end_level"):
        assert mixed[key] == clean[key]
    flags = np.array(mixed["corrupted"])
    assert 0.15 < flags.mean() < 0.35
    for row in mixed.select(np.flatnonzero(flags)[:10].tolist()):
        flips = sum(a != b for a, b in zip(row["symbols"], row["clean_symbols"]))
        assert flips == max(1, round(0.2 * row["length"]))
    assert all(r["symbols"] == r["clean_symbols"] for r in mixed.select(np.flatnonzero(~flags).tolist()))


def test_corrupt_dataset_is_seeded_per_row(small, tmp_path):
    ds = generate_cfg_dataset(
        small, CFGDataConfig(n=40, seed=1, shard_size=40), workdir=tmp_path, progress=False
    )
    a = corrupt_dataset(ds, small.num_terminals, corrupt_rate=0.5, seed=9)
    b = corrupt_dataset(ds.select(range(20, 40)), small.num_terminals, corrupt_rate=0.5, seed=9)
    assert a.select(range(20, 40))["symbols"] == b["symbols"]
    assert 0 < sum(a["corrupted"]) < 40
    assert a["clean_symbols"] == ds["clean_symbols"] and a["ancestor"] == ds["ancestor"]


def test_export_and_load_round_trip(small, tmp_path):
    cfg = CFGDataConfig(grammar="cfg_small", n=25, seed=2, shard_size=10)
    path = export_cfg_dataset(small, cfg, tmp_path / "ds", progress=False)
    ds = load_cfg_dataset(path)
    assert len(ds) == 25 and ds.features == cfg_features(small)
    again = generate_cfg_dataset(small, cfg, workdir=tmp_path / "w", progress=False)
    assert ds["symbols"] == again["symbols"]
    with pytest.raises(FileExistsError, match="already exists"):
        export_cfg_dataset(small, cfg, path, progress=False)
    with pytest.raises(FileNotFoundError, match="physlm data cfg"):
        load_cfg_dataset(tmp_path / "nothing")


def test_bad_configs_fail_clearly():
    with pytest.raises(ValueError, match="n must be >= 1"):
        CFGDataConfig(n=0)
    with pytest.raises(ValueError, match="corrupt_rate must be in"):
        CFGDataConfig(corrupt_rate=-0.1)
    assert CFGDataConfig.from_json(CFGDataConfig(n=5).to_json()) == CFGDataConfig(n=5)


def test_shard_rngs_are_independent_streams():
    a, b = shard_rngs(0, 0)
    c, _ = shard_rngs(0, 1)
    draws = [[r.random() for _ in range(3)] for r in (a, b, c)]
    assert draws[0] != draws[1] and draws[0] != draws[2]
    assert [random.Random(0).random()] != draws[0][:1]

"""physlm.results: the one probe_results.csv format (typed rows, extra columns), generation records."""

from __future__ import annotations

import json

import pytest

from physlm.experiments.zoo import ZOO_DIR, list_zoo, read_zoo_record
from physlm.results import (
    CSV_COLUMNS,
    GenerationResults,
    IGSMEvalResults,
    ProbeResults,
    ProbeRow,
    read_results,
    write_results,
)
from physlm.tasks.cfg import load_grammar

ZOO_CSVS = [ZOO_DIR / name / "probe_results.csv" for name in list_zoo()]


@pytest.mark.parametrize("path", ZOO_CSVS, ids=[p.parent.name for p in ZOO_CSVS])
def test_shipped_results_read_and_write_back_byte_for_byte(path, tmp_path):
    rows = read_results(path)
    assert rows and all(isinstance(r, ProbeRow) and not r.extra for r in rows)
    assert {r.features for r in rows} >= {"trained", "random_init", "majority"}
    out = write_results(tmp_path / "probe_results.csv", rows)
    assert out.read_bytes() == path.read_bytes()


def row(**changes):
    base = dict(target="nece", level=0, layer=1, features="trained", metric="accuracy", value=0.75, ci_low=0.5,
                ci_high=0.875)
    return {**base, **changes}


def test_rows_are_typed_mappings_and_extra_columns_round_trip(tmp_path):
    rows = [
        row(features="majority", value=0.5, ci_low=0.5, ci_high=0.5, cell="op<=4", population="G_d", n_examples=30),
        row(layer=0, cell="op<=4", population="all_param", n_examples=12),
        row(target="dep", metric="balanced_accuracy", value=2 / 3),  # a row without the extra columns
    ]
    path = write_results(tmp_path / "probe_results.csv", rows)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join((*CSV_COLUMNS, "cell", "population", "n_examples"))
    # sorted by target, level, layer, then trained before the controls
    assert lines[1] == "dep,0,1,trained,balanced_accuracy,0.666667,0.500000,0.875000,,,"
    assert lines[2].startswith("nece,0,0,trained,") and lines[3].startswith("nece,0,1,majority,")
    back = read_results(path)
    assert back[0].extra == () and back[1].extras == {"cell": "op<=4", "population": "all_param", "n_examples": 12}
    r = back[2]
    assert r["value"] == 0.5 and r["n_examples"] == 30 and r.get("missing", "x") == "x"
    assert dict(r) == {**row(features="majority", value=0.5, ci_low=0.5, ci_high=0.5), "cell": "op<=4",
                       "population": "G_d", "n_examples": 30}
    with pytest.raises(KeyError):
        r["missing"]  # noqa: B018
    with pytest.raises(AttributeError):
        r.value = 1.0  # frozen
    with pytest.raises(ValueError, match="missing"):
        ProbeRow.from_mapping({"target": "nece", "value": 1.0})
    with pytest.raises(ValueError, match="extra columns"):
        ProbeRow("nece", 0, 0, "trained", "accuracy", 1.0, 1.0, 1.0, extra=(("value", 1),))


def test_probe_results_select_summary_and_figures():
    if not ZOO_CSVS:
        pytest.skip("the zoo is empty")
    results = ProbeResults.read(ZOO_CSVS[0])
    assert results.task == "cfg" and len(results) == len(read_results(ZOO_CSVS[0]))
    grammar = load_grammar(read_zoo_record(ZOO_CSVS[0].parent.name)["grammar"])
    last = max(r.layer for r in results)
    chosen = results.select(target="ancestor_at_end", features="trained", metric="accuracy", layer=last)
    assert {r.level for r in chosen} == set(grammar.nt_levels) and all(r.layer == last for r in chosen)
    summary = results.summary()
    at_end = summary[summary["target"] == "ancestor_at_end"].set_index("level")
    for r in chosen:
        assert at_end.loc[r.level, "trained"] == r.value and at_end.loc[r.level, "ci_low"] == r.ci_low
    assert set(summary.columns) >= {"trained", "random_init", "majority", "position", "position_token"}
    fig = results.figure("end")
    assert fig.layout.yaxis.title.text == "balanced accuracy" and len(fig.data) > 0
    igsm = ProbeResults.from_rows([row(metric="balanced_accuracy"), row(features="random_init", value=0.5)])
    assert igsm.task == "igsm" and igsm.figure("nece").data[0].y == (0.75,)


def test_generation_and_igsm_records_are_wrapped(tmp_path):
    if not ZOO_CSVS:
        pytest.skip("the zoo is empty")
    record = json.loads((ZOO_CSVS[0].parent / "generation.json").read_text())
    gen = GenerationResults.read(ZOO_CSVS[0].parent / "generation.json")
    assert gen.accuracy_cut0 == record["accuracy_cut0"] and gen.n_samples == record["n_samples"]
    assert json.loads(gen.to_json(tmp_path / "g.json").read_text()) == record
    cell = {"cell": "op<=4", "ood": False, "reask": False, "op": None, "n": 4, "correct": 1, "accuracy": 0.25,
            "ci_low": 0.05, "ci_high": 0.7, "answer_accuracy": 0.5, "errors": {"arithmetic": 3}}
    evaluation = IGSMEvalResults.from_record({"preset": "tiny", "n_ctx": 384, "cells": [cell]})
    assert evaluation.cell("op<=4").accuracy == 0.25 and evaluation.cell("op<=4").errors == {"arithmetic": 3}
    assert len(evaluation.table()) == 1
    with pytest.raises(KeyError, match="no cell"):
        evaluation.cell("op=9")

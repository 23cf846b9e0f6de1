import json
import random

import pytest

from physlm.tasks.igsm import evaluate_text, export_dataset, export_text, features, preset, reask
from physlm.tasks.igsm.cli import data_igsm, igsm_show
from physlm.tasks.igsm.dependency import op_count
from physlm.tasks.igsm.export import draw, problem_record
from physlm.tasks.igsm.generator import generate_problem
from physlm.tasks.igsm.reask import generate_reask
from physlm.tasks.igsm.tokenizer import igsm_token_table


def test_record_positions_and_shapes():
    p = draw(preset("small", split="all"), seed=0, index=0)
    row = problem_record(p)
    toks = igsm_token_table().decode(row["input_ids"])
    P, T = len(row["params"]), len(p.topo)
    assert len(row["dep"]) == P and all(len(r) == P for r in row["dep"])
    assert len(row["known"]) == T + 1 and all(len(r) == P for r in row["value"])
    assert toks[row["pos_steps"][0]] == "[SOL]" and all(toks[i] == "." for i in row["pos_steps"][1:])
    assert toks[row["pos_question_end"]] == "?" and toks[row["pos_body_end"]] == "."
    assert toks[row["pos_problem_end"] + 1] == "[SOL]"
    assert row["param_names"][row["query_index"]] == p.name(p.query)


def test_export_dataset_rows_are_the_seeded_problems(tmp_path):
    cfg = preset("tiny")
    ds = export_dataset(cfg, n=6, seed=3, out=tmp_path / "ds")
    assert ds.features == features() and len(ds) == 6
    for i in (0, 5):
        assert ds[i]["problem"] == draw(cfg, 3, i).problem_text
    path = export_text(cfg, n=2, seed=3, path=tmp_path / "p.jsonl", progress=False)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[1]["problem"] == ds[1]["problem"] and rows[1]["solution"] == ds[1]["solution"]
    assert evaluate_text(rows[0]["problem"], rows[0]["solution"], str(rows[0]["answer"])).correct


@pytest.mark.slow
def test_export_is_independent_of_num_proc(tmp_path):
    cfg = preset("tiny")
    one = export_dataset(cfg, n=20, seed=1, out=tmp_path / "a", num_proc=1)
    two = export_dataset(cfg, n=20, seed=1, out=tmp_path / "b", num_proc=2)
    assert one["problem"] == two["problem"] and one["dep"] == two["dep"]


def test_reask_keeps_the_statement_and_recomputes_op():
    cfg = preset("small", split="test")
    rng = random.Random(5)
    base = generate_problem(cfg.replace(split="all", op=8), rng)
    new = reask(base, cfg, rng)
    assert new is not None and new.query != base.query
    assert new.body_tokens() == base.body_tokens()
    assert new.op == op_count(new.template, new.topo) == new.solution_text.count(";")
    assert new.hash_bucket >= 17
    v = evaluate_text(new.problem_text, new.solution_text, new.answer_text)
    assert v.correct and v.unnecessary == 0
    # the original solution answers another question: wrong for the re-asked one
    assert not evaluate_text(new.problem_text, base.solution_text).correct


def test_generate_reask_for_ood_test_sets():
    p = generate_reask(preset("tiny", split="test", op=6), random.Random(0))
    assert p.hash_bucket >= 17 and evaluate_text(p.problem_text, p.solution_text).correct


def test_cli_data_writes_a_run_directory(tmp_path):
    out = tmp_path / "run"
    data_igsm(out=out, preset="tiny", n=4, seed=0)
    assert (out / "COMPLETE.data").exists() and (out / "dataset").is_dir()
    assert (out / "problems.jsonl").exists()
    record = json.loads((out / "config.json").read_text())
    assert record["configs"]["igsm"]["max_op"] == 4


def test_cli_show_prints_problem_solution_graph_and_labels(capsys):
    igsm_show(preset="small", seed=0)
    out = capsys.readouterr().out
    for part in ("PROBLEM:", "SOLUTION:", "STRUCTURE GRAPH", "DEPENDENCY GRAPH", "LABELS", "nece_next"):
        assert part in out

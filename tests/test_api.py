"""The notebook API (``import physlm``): load, sample/encode/labels, probe, evaluate_generation, attention_stats,
train, fit_vprobes, on tiny models trained here and on the zoo's default entry."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import plotly.graph_objects as go
import pytest
import torch

import physlm
from physlm.experiments.zoo import default_zoo_entry, read_zoo_record
from physlm.probing.fit import FitConfig
from physlm.probing.igsm_vprobe import IGSMProbeConfig
from physlm.results import ProbeResults, read_results

TINY_MODEL = dict(model="gpt_rot-tiny", model_options={"n_layers": 1, "d_model": 16, "n_heads": 2})
QUICK_FIT = FitConfig(lr=3e-3, weight_decay=0.01, batch_size=32, max_epochs=1, patience=1)


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    """A 1-layer model trained for 3 steps on cfg_tiny by ``physlm.train`` into a run directory."""
    out = tmp_path_factory.mktemp("api") / "cfg-run"
    return physlm.train("cfg", grammar="cfg_tiny", steps=3, batch_size=2, seq_len=32, out=out, **TINY_MODEL)


@pytest.fixture(scope="module")
def tiny_igsm(tmp_path_factory):
    """A 1-layer model trained for 2 steps on micro iGSM problems (context 320, as the notebook's smoke model)."""
    out = tmp_path_factory.mktemp("api") / "igsm-run"
    return physlm.train("igsm", igsm_preset="micro", steps=2, batch_size=2, n_ctx=320, out=out, model="gpt_rot-tiny",
                        model_options={"n_layers": 1, "d_model": 32})


@pytest.fixture(scope="module")
def zoo_model():
    name = default_zoo_entry()
    if name is None:
        pytest.skip("the zoo is empty")
    return physlm.load(name)


def test_import_physlm_is_light_and_resolves_the_verbs_lazily():
    code = (
        "import sys, physlm\n"
        "assert 'torch' not in sys.modules and 'physlm.api' not in sys.modules, sorted(sys.modules)\n"
        "assert {'load', 'probe', 'evaluate_generation', 'attention_stats', 'train'} <= set(dir(physlm))\n"
        "import physlm.api\n"
        "assert physlm.probe is physlm.api.probe and physlm.ProbeRow is physlm.results.ProbeRow\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        physlm.nonexistent  # noqa: B018


def test_load_a_zoo_entry_by_name(zoo_model):
    record = read_zoo_record(zoo_model.name)
    assert zoo_model.from_zoo and zoo_model.kind == "cfg" and zoo_model.info == record
    assert zoo_model.task.grammar.name == record["grammar"] and zoo_model.step == record["step"]
    assert not zoo_model.model.training
    recorded = zoo_model.recorded_probe_results()
    assert recorded is not None and list(recorded) == read_results(zoo_model.path / "probe_results.csv")
    assert physlm.load().name == zoo_model.name  # no argument: the default entry


def test_sample_encode_and_labels_line_up(zoo_model):
    sentences = zoo_model.sample(6, seed=3)
    grammar, table = zoo_model.task.grammar, zoo_model.token_table
    # the same stream as sample_sentence with random.Random(seed): the README's first sentence is seed 0's
    from physlm.tasks.cfg import sample_sentence

    rng = random.Random(3)
    assert [s.symbols for s in sentences] == [sample_sentence(grammar, rng).symbols for _ in range(6)]
    assert [s.symbols for s in zoo_model.sample(6, seed=4)] != [s.symbols for s in sentences]
    tokens = zoo_model.encode(sentences)
    level = grammar.nt_levels[-1]
    ancestor = zoo_model.labels(sentences, "ancestor", level)
    at_end = zoo_model.labels(sentences, "ancestor_at_end", level)
    end_level = zoo_model.labels(sentences, "end_level")
    assert tokens.shape == ancestor.shape == at_end.shape == (6, max(len(s) for s in sentences) + 2)
    for b, s in enumerate(sentences):
        n = len(s)
        assert tokens[b, 0] == table.bos_id and tokens[b, n + 1] == table.eos_id
        assert (tokens[b, n + 2 :] == table.pad_id).all()
        assert [table.tokens[int(t)] for t in tokens[b, 1 : n + 1]] == [str(x) for x in s.symbols]
        assert ancestor[b, 1 : n + 1].tolist() == s.ancestor[level - 2].tolist()
        assert end_level[b, 1 : n + 1].tolist() == s.end_level.tolist()
        ends = s.end[level - 2] == 1
        assert at_end[b, 1 : n + 1][torch.as_tensor(ends)].tolist() == s.ancestor[level - 2][ends].tolist()
        assert (at_end[b, 1 : n + 1][~torch.as_tensor(ends)] == -100).all()
        assert (ancestor[b, 0] == -100) and (ancestor[b, n + 1 :] == -100).all()
    # model-ready: the trained model predicts its grammar's sentences far better than chance on these tokens
    with torch.no_grad():
        logits = zoo_model.model(tokens)
    targets = tokens[:, 1:]
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), reduction="none")
    real = (targets != table.pad_id).flatten()
    assert loss[real].mean() < 0.5 * math.log(grammar.num_terminals + 1)
    states = zoo_model.hidden_states(tokens, zoo_model.n_layers - 1, batch_size=4)
    _, cache = zoo_model.model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_resid_post"))
    assert torch.allclose(states, cache[f"blocks.{zoo_model.n_layers - 1}.hook_resid_post"], atol=1e-5)
    with pytest.raises(ValueError, match="NT levels"):
        zoo_model.labels(sentences, "ancestor")


def test_train_returns_a_model_and_its_run_directory_loads(tiny_cfg):
    assert tiny_cfg.kind == "cfg" and tiny_cfg.task.grammar.name == "cfg_tiny" and tiny_cfg.step == 3
    assert (tiny_cfg.path / "COMPLETE.train").is_file() and not tiny_cfg.from_zoo
    again = physlm.load(tiny_cfg.path)
    ids = tiny_cfg.encode(tiny_cfg.sample(2, seed=0))
    assert torch.equal(again.model(ids), tiny_cfg.model(ids))
    assert again.n_layers == 1 and again.model.cfg.d_model == 16
    with pytest.raises(FileNotFoundError, match="neither a zoo entry"):
        physlm.load(tiny_cfg.path.parent / "missing")


def test_probe_a_cfg_model_with_its_default_controls(tiny_cfg, tmp_path):
    results = physlm.probe(tiny_cfg, n_train=20, n_test=10, n_boot=20)
    assert isinstance(results, ProbeResults) and results.task == "cfg"
    assert results.targets == {"ancestor_at_end", "end"}
    assert results.features == {"trained", "random_init", "majority", "position", "position_token"}
    assert {r.layer for r in results} == {-1, 0}
    for r in results:
        assert 0.0 <= r.ci_low <= r.value + 1e-9 and r.value <= r.ci_high + 1e-9 <= 1.0 + 1e-9, r
    # the layer-independent baselines repeat on every layer
    majority = results.select(target="end", features="majority", metric="balanced_accuracy")
    assert {r.value for r in majority} == {0.5} and len(majority) == 2 * 2  # a constant guess, 2 levels x 2 layers
    path = results.to_csv(tmp_path / "probe_results.csv")
    back = ProbeResults.read(path)  # the file keeps 6 decimals
    key = lambda r: (r.target, r.level, r.layer, r.features, r.metric)  # noqa: E731
    assert [key(r) for r in back] == [key(r) for r in results]
    assert all(abs(a.value - b.value) <= 5e-7 and abs(a.ci_high - b.ci_high) <= 5e-7 for a, b in zip(back, results))
    fig = results.figure("ancestor_at_end")
    assert isinstance(fig, go.Figure) and {t.name.split(" ")[1] for t in fig.data} >= {"(trained)", "(random_init)"}
    table = results.table()
    assert list(table.columns)[:8] == ["target", "level", "layer", "features", "metric", "value", "ci_low", "ci_high"]
    assert len(table) == len(results)
    with pytest.raises(ValueError, match="unknown controls"):
        physlm.probe(tiny_cfg, controls=["nothing"])
    with pytest.raises(ValueError, match="no results for target"):
        results.figure("ancestor")


def test_evaluate_generation_and_attention_on_a_cfg_model(tiny_cfg, zoo_model):
    gen = physlm.evaluate_generation(zoo_model, 30)
    assert gen.n_samples == 30 and gen.accuracy_cut0 >= 0.8  # the zoo entry generates valid sentences
    assert gen.record["config"]["n_samples"] == 30 and gen.kl is not None and gen.kl >= 0
    tiny = physlm.evaluate_generation(tiny_cfg, 8)
    assert 0.0 <= tiny.accuracy_cut0 <= 1.0 and 0.0 <= tiny.accuracy_cut50 <= 1.0
    attention = physlm.attention_stats(tiny_cfg, 4, batch_size=2)
    assert attention.stats.n_windows == 4
    heads = attention.head_summary()
    assert [h["rank"] for h in heads] == [1, 2] and {(h["layer"], h["head"]) for h in heads} == {(0, 0), (0, 1)}
    assert isinstance(attention.figure("near_end"), go.Figure) and len(attention.table("end_pair")) > 0


def test_the_igsm_verbs(tiny_igsm):
    assert tiny_igsm.kind == "igsm" and tiny_igsm.task.preset == "micro"
    problems = tiny_igsm.sample(3, seed=1, split="test")
    tokens = tiny_igsm.encode(problems)
    table = tiny_igsm.token_table
    for b, p in enumerate(problems):
        doc = table.encode(p.tokens)
        assert tokens[b, : len(doc) + 2].tolist() == [table.bos_id, *doc, table.eos_id]
        assert p.labels.nece[p.labels.params.index(p.problem.query)] == 1
    results = physlm.probe(tiny_igsm, n_train=6, n_test=3, n_boot=20, draws_per_problem=2, fit=QUICK_FIT)
    assert results.task == "igsm" and results.targets == {"nece", "dep"}
    assert results.features == {"trained", "random_init", "majority"}
    assert all(0.0 <= r.value <= 1.0 for r in results if r.metric.endswith("accuracy"))
    assert isinstance(results.figure("dep"), go.Figure)
    evaluation = physlm.evaluate_generation(tiny_igsm, 2)
    assert evaluation.preset == "micro" and all(c.n == 2 and 0 <= c.correct <= 2 for c in evaluation.cells)
    assert evaluation.cell("op<=4").accuracy in (0.0, 0.5, 1.0)
    probes = physlm.fit_vprobes(tiny_igsm, 4, draws_per_problem=2, config=IGSMProbeConfig(fit=QUICK_FIT))
    beliefs = probes.beliefs(problems[0])
    from physlm.analysis.igsm_graph import graph_params

    shown = graph_params(problems[0].problem)
    assert set(beliefs["nece"]) == set(shown) and set(beliefs["nece"].values()) <= {0, 1}
    assert set(beliefs["dep"]) == {(a, b) for a in shown for b in shown if a != b}

"""Bio P- and Q-probes (Part 3.1 §5): inputs and labels, the embedding-update hook, the frozen model, the split by
person, the result rows and their controls, and a planted signal the probes must read where it sits.

Every model is a tiny random one (2 layers, d_model 32) over the bio vocabulary; every fit runs a few dozen steps.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from factory import class_directions, tiny_model
from torch import Tensor

from physlm.probing.bio_probe import (
    BioFitConfig,
    BioProbeConfig,
    EmbeddingUpdateProbe,
    _model_config_of,
    fit_embedding_probe,
    p_probe_matrix,
    predict,
    run_bio_probes,
)
from physlm.probing.bio_probe_data import BIO_TARGETS, bio_targets, p_probe_data, parse_target, q_probe_data
from physlm.results import ProbeRow, read_results, write_results
from physlm.tasks.bio import ATTRIBUTES, BioConfig, bio_token_table, build_world, tokenize
from physlm.training.model import build_model

TABLE = bio_token_table()


def _model(seed: int = 0, **overrides: object):
    return tiny_model(d_vocab=TABLE.d_vocab, n_ctx=128, seed=seed, **overrides)


@pytest.fixture(scope="module")
def world():
    return build_world(BioConfig(n_people=60, seed=3))


def test_targets_are_the_papers_eleven_with_one_class_per_person(world):
    assert len(BIO_TARGETS) == 11 and BIO_TARGETS[0] == "birth_date:first_token"
    targets = bio_targets(world)
    assert [t.name for t in targets] == list(BIO_TARGETS)
    by_name = {t.name: t for t in targets}
    months = torch.tensor([p.birth_month - 1 for p in world.people])
    assert torch.equal(by_name["birth_date:first_token"].labels, months)
    for t in targets:
        assert t.labels.shape == (len(world.people),) and int(t.labels.max()) < t.n_classes
    employer = by_name["employer:first_token"]
    assert employer.classes == tuple(sorted(set(employer.classes)))  # compact, sorted first tokens
    for p in world.people[:10]:
        assert employer.classes[int(employer.labels[p.id])] == tokenize(p.value("employer"))[0]
        assert int(by_name["employer:whole"].labels[p.id]) == p.class_index("employer")
    with pytest.raises(ValueError, match="first token"):
        parse_target("birth_date:whole")
    with pytest.raises(ValueError, match="attribute:level"):
        parse_target("employer")


def test_p_rows_read_the_token_before_each_value_and_q_rows_the_end_token(world):
    people = world.test_people[:5]
    data = p_probe_data(world, people)
    assert data.positions == ATTRIBUTES and data.read_pos.shape == (5, 6)
    assert (data.tokens[:, 0] == TABLE.bos_id).all()
    for i, pid in enumerate(people):
        entry = world.entry(pid, 0)
        assert int(data.person[i]) == pid
        for a, start in enumerate(entry.value_start):
            # entry token p sits at model position p + 1: the read is the token right before the value
            assert int(data.tokens[i, data.read_pos[i, a]]) == TABLE.id(entry.tokens[start - 1])
    q = q_probe_data(world, people)
    assert q.positions == ("name_end",)
    for i, pid in enumerate(people):
        name = tokenize(world.people[pid].full_name())
        row = q.tokens[i, : int(q.read_pos[i, 0]) + 1].tolist()
        assert row == [TABLE.bos_id, *TABLE.encode(name), TABLE.eos_id]


def test_split_is_by_person(world):
    train, test = p_probe_data(world, world.train_people), p_probe_data(world, world.test_people)
    assert set(train.person.tolist()) == set(world.train_people)
    assert set(test.person.tolist()) == set(world.test_people)
    assert not set(world.train_people) & set(world.test_people)
    multi = build_world(BioConfig(n_people=20, augmentation="multi5+permute", seed=1))
    rows = p_probe_data(multi, multi.train_people)
    assert len(rows) == 5 * len(multi.train_people)  # every entry of a person stays on the person's side
    assert set(rows.person.tolist()) == set(multi.train_people)


def test_embedding_update_changes_the_forward_only_through_a_times_b(world):
    model = _model().eval()
    data = p_probe_data(world, world.test_people[:3])
    probe = EmbeddingUpdateProbe(model, n_classes=5, rank=2, norm="layer", seed=0)
    with torch.no_grad():
        plain = model(data.tokens, stop_at_layer=model.cfg.n_layers)
        read = data.read_pos[..., None].expand(-1, -1, model.cfg.d_model)
        assert torch.allclose(probe.hidden(data.tokens, data.read_pos), plain.gather(1, read))  # A = 0 at init
        probe.A.normal_(generator=torch.Generator().manual_seed(1))
        edited = copy.deepcopy(model)
        edited.embed.W_E += probe.embedding_update()
        expected = edited(data.tokens, stop_at_layer=model.cfg.n_layers).gather(1, read)
        got = probe.hidden(data.tokens, data.read_pos)
    assert not torch.allclose(got, plain.gather(1, read))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert {n for n, _ in probe.named_parameters()} == {"A", "B", "norm.weight", "norm.bias", "head", "head_bias"}


def test_fitting_freezes_the_model_and_leaves_it_unchanged(world):
    model = _model().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = p_probe_data(world, world.train_people[:8])
    target = bio_targets(world, ["birth_date:first_token"])[0]
    seen = []

    def check() -> None:
        seen.append((model.training, any(p.requires_grad for p in model.parameters())))

    fit = BioFitConfig(rank=2, batch_size=4, steps=3)
    probe = fit_embedding_probe(model, data, data.labels(target), 12, fit, "layer", seed=0, on_step=check)
    assert seen == [(True, False)] * 3  # train mode (the paper's "dropout on"), nothing of the model trains
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters()) and not model.training  # flags and mode restored
    assert probe.A.abs().sum() > 0  # gradients reached the update through the frozen blocks
    again = fit_embedding_probe(model, data, data.labels(target), 12, fit, "layer", seed=0)
    assert all(torch.equal(a, b) for a, b in zip(probe.state_dict().values(), again.state_dict().values()))


class _Plant:
    """A permanent hook that adds ``scale`` times one direction per class to ``blocks.{L-1}.hook_resid_post`` at
    one read position of every probe row (rows are recognised by their tokens)."""

    def __init__(self, model, datasets, labels: Tensor, where, n_classes: int, scale: float):
        # where(person) -> model position, computed from the entry itself, not from the probe's read positions
        self.rows = {}
        for data in datasets:
            for i in range(len(data)):
                key = tuple(t for t in data.tokens[i].tolist() if t != TABLE.pad_id)
                self.rows[key] = (int(data.person[i]), where(int(data.person[i])))
        self.dirs = class_directions(model.cfg.d_model, n_classes, seed=0)
        self.labels, self.scale, self.tokens = labels, scale, None
        self.model = model
        self.handle = model.register_forward_pre_hook(self._capture, with_kwargs=True)
        model.add_hook(f"blocks.{model.cfg.n_layers - 1}.hook_resid_post", self._plant, is_permanent=True)

    def _capture(self, module: object, args: tuple, kwargs: dict) -> None:
        self.tokens = args[0] if args else kwargs["input"]

    def _plant(self, resid: Tensor, hook: object) -> Tensor:
        add = torch.zeros_like(resid)
        for b, row in enumerate(self.tokens.tolist()):
            person, pos = self.rows[tuple(t for t in row if t != TABLE.pad_id)]
            add[b, pos] = self.dirs[self.labels[person]]
        return resid + self.scale * add

    def remove(self) -> None:
        self.handle.remove()
        self.model.reset_hooks(including_permanent=True)


@pytest.mark.parametrize("kind", ["P", "Q"])
def test_probe_reads_a_planted_label_where_it_sits_and_not_shuffled_labels(kind):
    """A random 3-class label per person, planted at the `major` position (P) or the name end (Q): the probe must
    read it there from test people's rows, not at the other positions, and not when trained on shuffled labels."""
    world = build_world(BioConfig(n_people=80, seed=5))
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (len(world.people),), generator=gen)
    shuffled = labels[torch.randperm(len(labels), generator=gen)]
    make = (lambda ppl: p_probe_data(world, ppl)) if kind == "P" else (lambda ppl: q_probe_data(world, ppl))
    train, test = make(world.train_people), make(world.test_people)
    planted = ATTRIBUTES.index("major") if kind == "P" else 0
    if kind == "P":  # <bos> + entry: the token before the value (value_start - 1) is model position value_start
        where = lambda pid: world.entry(pid, 0).value_start[planted]  # noqa: E731
    else:  # <bos> + name + <eos>: the end token
        where = lambda pid: len(tokenize(world.people[pid].full_name())) + 1  # noqa: E731
    model = _model().eval()
    plant = _Plant(model, (train, test), labels, where, 3, scale=10.0)
    fit = BioFitConfig(rank=2 if kind == "P" else 16, batch_size=50 if kind == "P" else 200, steps=30)
    norm = "layer" if kind == "P" else "batch"
    try:
        probe = fit_embedding_probe(model, train, labels[train.person], 3, fit, norm, seed=0)
        acc = (predict(probe, test) == labels[test.person][:, None]).float().mean(0)
        control = fit_embedding_probe(model, train, shuffled[train.person], 3, fit, norm, seed=0)
        acc_shuffled = (predict(control, test) == shuffled[test.person][:, None]).float().mean(0)
    finally:
        plant.remove()
    assert acc[planted] > 0.9, acc
    others = [float(a) for j, a in enumerate(acc) if j != planted]
    assert all(a < 0.65 for a in others), acc  # chance is about 1/3
    assert acc_shuffled[planted] < 0.65, acc_shuffled


@pytest.fixture(scope="module")
def rows(world):
    config = BioProbeConfig(
        targets=("birth_date:first_token", "employer:whole"), n_boot=100,
        p=BioFitConfig(rank=2, batch_size=50, steps=4), q=BioFitConfig(rank=16, batch_size=200, steps=4),
    )
    return run_bio_probes(_model(), world, config, progress=False)


def test_rows_have_controls_by_default_and_intervals_around_the_value(rows, world):
    assert all(isinstance(r, ProbeRow) for r in rows)
    assert {r.features for r in rows} == {"trained", "random_init", "majority"}
    assert {r.metric for r in rows} == {"accuracy"} and {r.layer for r in rows} == {1}
    expected = {(f, probe, t, lv, pos) for f in ("trained", "random_init", "majority")
                for t, lv in (("birth_date", 0), ("employer", 1))
                for probe, pos in [("P", a) for a in ATTRIBUTES] + [("Q", "name_end")]}
    got = {(r.features, r["probe"], r.target, r.level, r["position"]) for r in rows}
    assert got == expected and len(rows) == len(expected)
    for r in rows:
        assert 0.0 <= r.ci_low <= r.value <= r.ci_high <= 1.0, dict(r)
        assert r["level_name"] == ("first_token" if r.level == 0 else "whole")
        assert r["n_people"] == len(world.test_people)
    majority = [r for r in rows if r.features == "majority" and r.target == "birth_date" and r["probe"] == "P"]
    months = [world.people[p].birth_month - 1 for p in world.train_people]
    top = max(range(12), key=lambda m: (months.count(m), -m))
    share = sum(world.people[p].birth_month - 1 == top for p in world.test_people) / len(world.test_people)
    assert all(math.isclose(r.value, share) for r in majority)


def test_rows_round_trip_through_the_results_file(rows, tmp_path):
    back = read_results(write_results(tmp_path / "probe_results.csv", rows))
    key = lambda r: (r.features, r["probe"], r.target, r.level, r["position"])  # noqa: E731
    original = {key(r): r for r in rows}
    assert len(back) == len(rows)
    for r in back:
        o = original[key(r)]
        assert r.extras == o.extras
        assert (r.target, r.level, r.layer, r.features, r.metric) == (o.target, o.level, o.layer, o.features, o.metric)
        assert r.value == pytest.approx(o.value, abs=1e-6) and r.ci_high == pytest.approx(o.ci_high, abs=1e-6)


def test_p_probe_matrix_is_a_position_by_attribute_grid(rows):
    grid = p_probe_matrix(rows, level="first_token")
    assert grid.values.shape == (6, 6) and grid.positions == ATTRIBUTES and grid.attributes == ATTRIBUTES
    cell = next(r for r in rows if r.features == "trained" and r["probe"] == "P" and r.target == "birth_date"
                and r["position"] == "major")
    assert grid.values[ATTRIBUTES.index("major"), 0] == cell.value
    assert np.isnan(grid.values[:, 1:]).all()  # only birth_date was probed at level first_token
    whole = p_probe_matrix(rows, level="whole", features="random_init")
    assert whole.attributes == ATTRIBUTES[1:] and not np.isnan(whole.values[:, ATTRIBUTES.index("employer") - 1]).any()
    assert np.all(np.isnan(whole.values) | ((whole.ci_low <= whole.values) & (whole.values <= whole.ci_high)))


def test_random_init_config_is_rebuilt_from_the_model_shape():
    model = _model(seed=4)
    config = _model_config_of(model)
    rebuilt = build_model(config.replace(seed=4))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values()))


def test_config_round_trips_and_rejects_bad_settings():
    config = BioProbeConfig(targets=("major:whole",), p=BioFitConfig(steps=7))
    assert BioProbeConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="attribute:level"):
        BioProbeConfig(targets=("major:all",))
    with pytest.raises(ValueError, match="steps"):
        BioFitConfig(steps=0)
    with pytest.raises(KeyError):
        BioProbeConfig(q_end_token="<nope>")

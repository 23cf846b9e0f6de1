"""Metrics with bootstrap intervals, table baselines and the control task."""

from __future__ import annotations

import pytest
import torch

from physlm.probing.baselines import TableClassifier, control_task, position_token_key
from physlm.probing.metrics import classification_metrics, paired_difference


def _by_name(metrics):
    return {m.name: m for m in metrics}


def test_metrics_values_and_intervals():
    target = torch.tensor([0, 0, 0, 1, 1, 0, 0, 0, 0, 1])
    pred = torch.tensor([0, 0, 0, 1, 0, 0, 0, 0, 1, 1])
    groups = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    m = _by_name(classification_metrics(pred, target, groups, 2, n_boot=200, seed=0))
    assert m["accuracy"].value == pytest.approx(0.8)
    assert m["class_0_accuracy"].value == pytest.approx(6 / 7)
    assert m["class_1_accuracy"].value == pytest.approx(2 / 3)
    assert m["balanced_accuracy"].value == pytest.approx((6 / 7 + 2 / 3) / 2)
    for metric in m.values():
        assert 0.0 <= metric.ci_low <= metric.value <= metric.ci_high <= 1.0
    again = _by_name(classification_metrics(pred, target, groups, 2, n_boot=200, seed=0))
    assert again["accuracy"].ci_low == m["accuracy"].ci_low


def test_bootstrap_interval_shrinks_with_more_sentences_and_covers_truth():
    g = torch.Generator().manual_seed(0)

    def width(n_sent):
        target = torch.randint(2, (n_sent * 20,), generator=g)
        correct = torch.rand(n_sent * 20, generator=g) < 0.7
        pred = torch.where(correct, target, 1 - target)
        groups = torch.arange(n_sent).repeat_interleave(20)
        acc = _by_name(classification_metrics(pred, target, groups, 2, n_boot=300))["accuracy"]
        assert acc.ci_low < 0.7 + 0.05 and acc.ci_high > 0.7 - 0.05
        return acc.ci_high - acc.ci_low

    assert width(400) < 0.5 * width(25)


def test_absent_classes_are_skipped_and_bad_targets_rejected():
    m = _by_name(classification_metrics(torch.tensor([0, 2]), torch.tensor([0, 0]), torch.tensor([0, 1]), 3))
    assert "class_1_accuracy" not in m and m["balanced_accuracy"].value == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        classification_metrics(torch.tensor([0]), torch.tensor([2]), torch.tensor([0]), 2)


def test_paired_difference():
    target = torch.tensor([0, 1, 0, 1])
    sel = paired_difference(target, target, 1 - target, target, torch.tensor([0, 0, 1, 1]), n_boot=50)
    assert sel.value == pytest.approx(1.0) and sel.ci_low == pytest.approx(1.0)


def test_table_classifier_position_baseline_and_balanced_rule():
    pos = torch.tensor([0, 0, 0, 1, 1, 1, 2])
    y = torch.tensor([1, 1, 0, 0, 0, 2, 2])
    table = TableClassifier(3).fit(pos, y)
    assert table.predict(torch.tensor([0, 1, 2, 9])).tolist() == [1, 0, 2, 0]  # unseen key -> global majority
    # Rare positives: plain majority never says 1, the balanced rule does where 1 is over-represented.
    keys = torch.tensor([0] * 10 + [1] * 10)
    rare = torch.tensor([0] * 10 + [1] * 3 + [0] * 7)
    assert TableClassifier(2).fit(keys, rare).predict(torch.tensor([0, 1])).tolist() == [0, 0]
    assert TableClassifier(2, balanced=True).fit(keys, rare).predict(torch.tensor([0, 1])).tolist() == [0, 1]
    with pytest.raises(RuntimeError, match="before fit"):
        TableClassifier(2).predict(keys)


def test_control_task_is_a_seeded_function_of_the_type():
    pos = torch.arange(50).repeat(4)
    tok = torch.randint(3, (200,), generator=torch.Generator().manual_seed(1))
    key = position_token_key(pos, tok, 3)
    y = torch.randint(3, (200,), generator=torch.Generator().manual_seed(2))
    ctrl = control_task(key, y, 3, seed=5)
    assert torch.equal(ctrl, control_task(key, y, 3, seed=5))
    for k in key.unique():
        assert ctrl[key == k].unique().numel() == 1
    assert not torch.equal(ctrl, control_task(key, y, 3, seed=6))

"""Linear and multi-head probes on planted synthetic data."""

from __future__ import annotations

import pytest
import torch

from physlm.probing.align import IGNORE_INDEX
from physlm.probing.fit import FitConfig
from physlm.probing.linear import LinearProbe
from physlm.probing.multihead import LocalProbe, MultiHeadLinearProbe


def _planted_linear(n=3000, d=16, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(classes, (n,), generator=g)
    means = 3.0 * torch.randn(classes, d, generator=g)
    signal = means[y] + torch.randn(n, d, generator=g)
    noise = 5.0 * torch.randn(n, d, generator=g) + 7.0  # an uninformative, badly scaled layer
    return torch.stack([signal, noise], 1), y


@pytest.mark.parametrize("optimizer", ["adamw", "lbfgs"])
def test_linear_probe_fits_all_layers_at_once(optimizer):
    x, y = _planted_linear()
    probe = LinearProbe(16, 3, n_layers=2)
    config = FitConfig(optimizer=optimizer, lr=1e-2, batch_size=256, max_epochs=15, lbfgs_iters=10)
    probe.fit(x[:2000], y[:2000], config=config)
    acc = (probe.predict(x[2000:]) == y[2000:, None]).float().mean(0)
    assert acc[0] > 0.95, acc
    assert acc[1] < 0.45, acc  # chance is ~1/3


def test_linear_probe_is_deterministic_and_balanced_weighting_helps_rare_class():
    g = torch.Generator().manual_seed(3)
    n = 4000
    y = (torch.rand(n, generator=g) < 0.05).long()
    x = (0.8 * y[:, None].float() + torch.randn(n, 8, generator=g))[:, None, :]
    fits = []
    for _ in range(2):
        probe = LinearProbe(8, 2)
        probe.fit(x, y, class_weight="balanced", config=FitConfig(lr=1e-2, batch_size=512, max_epochs=5, seed=7))
        fits.append(probe.weight.detach().clone())
    assert torch.equal(fits[0], fits[1])
    pred = probe.predict(x)[:, 0]
    recall_pos = (pred[y == 1] == 1).float().mean()
    assert recall_pos > 0.5  # an unweighted fit on 5% positives predicts almost only zeros


def test_linear_probe_rejects_bad_shapes_and_labels():
    probe = LinearProbe(4, 3, n_layers=2)
    with pytest.raises(ValueError, match="2 layers"):
        probe(torch.zeros(5, 3, 4))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        probe.fit(torch.zeros(5, 2, 4), torch.tensor([0, 1, 2, 3, 0]))


def _sentence_task(n=240, length=10, d=8, seed=0):
    """Every token of a sentence carries the sentence's class, which only position 0's state reveals."""
    g = torch.Generator().manual_seed(seed)
    cls = torch.randint(3, (n,), generator=g)
    means = 4.0 * torch.randn(3, d, generator=g)
    h = torch.randn(n, length, 1, d, generator=g)
    h[:, 0, 0] += means[cls]
    lengths = torch.randint(length // 2, length + 1, (n,), generator=g)
    mask = torch.arange(length)[None] < lengths[:, None]
    labels = torch.where(mask, cls[:, None].expand(n, length), torch.full((n, length), IGNORE_INDEX))
    return h * mask[..., None, None], labels, mask


def _accuracy(probe, h, labels, mask, positions=slice(None)):
    pred = probe.predict(h, mask)[:, positions, 0]
    lab = labels[:, positions]
    keep = lab != IGNORE_INDEX
    return (pred[keep] == lab[keep]).float().mean().item()


CONFIG = FitConfig(lr=3e-2, batch_size=16, max_epochs=25, patience=4)


def test_full_multihead_probe_reads_other_positions_but_the_diagonal_probe_cannot():
    h, labels, mask = _sentence_task()
    full = MultiHeadLinearProbe(8, 3, n_positions=10, n_heads=2, d_pos=8, seed=0)
    full.fit(h[:180], labels[:180], mask[:180], config=CONFIG)
    diag = LocalProbe(8, 3, n_positions=10, delta=0, n_heads=2, d_pos=8, seed=0)
    diag.fit(h[:180], labels[:180], mask[:180], config=CONFIG)
    late = slice(2, None)
    assert _accuracy(full, h[180:], labels[180:], mask[180:], late) > 0.9
    assert _accuracy(diag, h[180:], labels[180:], mask[180:], late) < 0.5


def test_local_probe_with_delta_one_sees_its_neighbours():
    h, labels, mask = _sentence_task()
    only_pos1 = labels.clone()
    only_pos1[:, [0, *range(2, 10)]] = IGNORE_INDEX  # score position 1 only: its left neighbour is position 0
    probes = {d: LocalProbe(8, 3, n_positions=10, delta=d, n_heads=2, d_pos=8) for d in (0, 1)}
    for probe in probes.values():
        probe.fit(h[:180], only_pos1[:180], mask[:180], config=CONFIG)
    acc = {d: _accuracy(p, h[180:], only_pos1[180:], mask[180:]) for d, p in probes.items()}
    assert acc[1] > 0.9 and acc[0] < 0.5, acc


@pytest.mark.parametrize("window", [None, 1])
def test_padding_does_not_change_predictions(window):
    h, _, mask = _sentence_task(n=4, length=10)
    probe = MultiHeadLinearProbe(8, 3, n_positions=12, n_heads=3, d_pos=4, window=window, seed=1)
    with torch.no_grad():
        probe.unembed.normal_(generator=torch.Generator().manual_seed(0))
        both = probe(h, mask)
        n0 = int(mask[0].sum())
        alone = probe(h[:1, :n0], mask[:1, :n0])
    torch.testing.assert_close(both[0, :n0], alone[0], rtol=1e-4, atol=1e-5)


def test_multihead_probe_reports_bad_input():
    probe = MultiHeadLinearProbe(8, 3, n_positions=5)
    with pytest.raises(ValueError, match="exceed the probe's 5 positions"):
        probe(torch.zeros(2, 6, 1, 8), torch.ones(2, 6, dtype=torch.bool))
    labels = torch.zeros(2, 4, dtype=torch.long)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    with pytest.raises(ValueError, match="outside the mask"):
        probe.fit(torch.zeros(2, 4, 1, 8), labels, mask)


def test_whitening_and_standardisation_use_the_training_rows():
    x, _ = _planted_linear(n=500)
    x = torch.cat([x, x[:, :1] * 2.0 + x[:, 1:]], 1)  # a third, correlated layer
    rows = torch.arange(0, 500, 3)
    probe = LinearProbe(16, 3, n_layers=3)
    probe._set_standardisation(x, rows, chunk=37)
    torch.testing.assert_close(probe.mean, x[rows].mean(0), rtol=1e-4, atol=1e-4)
    z = torch.einsum("nld,lde->nle", x[rows] - probe.mean, probe.transform)
    for layer in range(3):
        torch.testing.assert_close(torch.cov(z[:, layer].T), torch.eye(16), rtol=1e-3, atol=1e-3)
    plain = LinearProbe(16, 3, n_layers=3, whiten=False)
    plain._set_standardisation(x, rows)
    torch.testing.assert_close(torch.diagonal(plain.transform, dim1=1, dim2=2), 1 / x[rows].std(0))


def test_package_exports_and_config_round_trip():
    from physlm import probing
    from physlm.probing.cfg_recipe import ProbeConfig

    for name in ("collect_activations", "LinearProbe", "MultiHeadLinearProbe", "LocalProbe",
                 "LowRankEmbeddingProbe", "run_cfg_probes"):
        assert callable(getattr(probing, name)), name
    config = ProbeConfig(levels=(2, 3), multihead_fit=FitConfig(lr=0.1, betas=(0.8, 0.9)))
    assert ProbeConfig.from_json(config.to_json()) == config

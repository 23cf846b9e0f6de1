"""The V-probe: frozen model, low-rank embedding update through hook_embed, linear head."""

from __future__ import annotations

import pytest
import torch

from physlm.probing.fit import FitConfig
from physlm.probing.vprobe import LowRankEmbeddingProbe


def _planted(n=600, seq=8, seed=0):
    """Label = whether the token at the marked position (read at the end) is even."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 10, (n, seq), generator=g)
    marked = torch.randint(0, seq, (n,), generator=g)
    update = torch.zeros(n, seq, dtype=torch.bool)
    update[torch.arange(n), marked] = True
    labels = (tokens[torch.arange(n), marked] % 2 == 0).long()
    read = torch.full((n,), seq - 1)
    return tokens, update, read, labels


def test_gradients_reach_only_the_probe_and_the_model_is_unchanged(hooked_tiny):
    before = {k: v.clone() for k, v in hooked_tiny.state_dict().items()}
    probe = LowRankEmbeddingProbe(hooked_tiny, n_classes=2, rank=4, seed=0)
    assert {name for name, _ in probe.named_parameters()} == {"down", "up", "head", "head_bias"}
    tokens, update, read, labels = _planted(n=32)
    with probe._frozen_model():
        loss = torch.nn.functional.cross_entropy(probe(tokens, update, read), labels)
        loss.backward()
    assert all(p.grad is None for p in hooked_tiny.parameters())
    assert probe.down.grad is not None and probe.up.grad is not None and probe.head.grad is not None
    assert probe.up.grad.abs().sum() > 0  # the update's gradient flows back through the frozen model
    probe.fit(tokens, update, read, labels, config=FitConfig(lr=1e-2, batch_size=16, max_epochs=2))
    after = hooked_tiny.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in hooked_tiny.parameters())  # flags restored after fit


def test_the_update_changes_activations_only_at_the_chosen_positions(hooked_tiny):
    probe = LowRankEmbeddingProbe(hooked_tiny, n_classes=2, rank=2)
    with torch.no_grad():
        probe.up.normal_(generator=torch.Generator().manual_seed(0))
    tokens = torch.randint(0, 10, (1, 6), generator=torch.Generator().manual_seed(1))
    update = torch.zeros(1, 6, dtype=torch.bool)
    update[0, 4] = True
    seen = {}

    def grab(act, hook):
        seen["embed"] = act.detach().clone()

    with hooked_tiny.hooks(fwd_hooks=[("hook_embed", grab)]):
        hooked_tiny(tokens)
    plain = seen["embed"]
    with hooked_tiny.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", grab)]):
        probe(tokens, update, torch.tensor([5]))
    changed = (seen["embed"] - plain).abs().sum(-1)[0] > 1e-6
    assert changed.tolist() == [False, False, False, False, True, False]


def test_learns_a_planted_task(hooked_tiny):
    tokens, update, read, labels = _planted()
    probe = LowRankEmbeddingProbe(hooked_tiny, n_classes=2, rank=4, seed=0)
    probe.fit(tokens[:500], update[:500], read[:500], labels[:500],
              config=FitConfig(lr=1e-2, batch_size=32, max_epochs=15, patience=3))
    acc = (probe.predict(tokens[500:], update[500:], read[500:]) == labels[500:]).float().mean()
    assert acc > 0.85, acc


def test_rejects_bad_arguments(hooked_tiny):
    with pytest.raises(ValueError, match="layer must be in"):
        LowRankEmbeddingProbe(hooked_tiny, 2, layer=5)
    probe = LowRankEmbeddingProbe(hooked_tiny, 2)
    with pytest.raises(ValueError, match="read_pos"):
        probe(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.bool), torch.tensor([4]))


def test_class_weight_keeps_a_rare_class_from_being_ignored(hooked_tiny):
    from physlm.probing.fit import balanced_class_weight

    tokens, update, read, _ = _planted(n=800, seed=3)
    marked = tokens[update]
    # a rare positive class (token 0 at the marked position, ~10%) drowned in label noise
    noise = torch.rand(800, generator=torch.Generator().manual_seed(4))
    labels = ((marked == 0) & (noise < 0.6) | (noise > 0.95)).long()
    fit = FitConfig(lr=1e-2, batch_size=32, max_epochs=6, patience=2)
    test = slice(600, None)

    def positive_rate(weight):
        probe = LowRankEmbeddingProbe(hooked_tiny, n_classes=2, rank=4, seed=0)
        probe.fit(tokens[:600], update[:600], read[:600], labels[:600], config=fit, class_weight=weight)
        pred = probe.predict(tokens[test], update[test], read[test])
        return float(pred[labels[test] == 1].float().mean())

    plain = positive_rate(None)
    balanced = positive_rate(balanced_class_weight(labels[:600], 2))
    assert balanced > plain + 0.2, (plain, balanced)

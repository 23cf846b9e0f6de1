"""Fitting linear probes on every layer at once vs a scikit-learn LogisticRegression loop over layers.

Features: the embeddings and the 6 block outputs of a 6-layer, 128-dim HookedTransformer (seeded random
init: fitting speed does not depend on what the weights learned) on fresh cfg3b sentences, about 200k
tokens. Target: the NT ancestor at the level above the terminals (3 classes). Train/test split by sentence.
Both sides run single-threaded on the same standardised float features; scikit-learn uses its default lbfgs
solver with max_iter=1000 (it may still not converge on these badly conditioned features; the script says so),
physlm whitens each layer internally and runs AdamW with early stopping on 10% held-out sentences.
Target: >= 10x faster at equal test accuracy (physlm at most 0.5 points below scikit-learn on any layer).

    python benchmarks/probe_fit.py [--tokens 200000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def features(n_tokens: int, seed: int = 0):
    """(X [tokens, 7, 128], y [tokens], sentence id [tokens]) from a seeded 6-layer model on cfg3b."""

    from physlm.probing.activations import collect_activations, layer_hook
    from physlm.probing.align import SentenceLayout, gather_labels
    from physlm.tasks.cfg import cfg_token_table, load_grammar, sample_sentence, symbols_to_ids
    from physlm.training.model import build_model
    from physlm.training.model_config import ModelConfig

    grammar = load_grammar("cfg3b")
    table = cfg_token_table(grammar)
    rng = random.Random(seed)
    samples, total = [], 0
    while total < n_tokens:
        s = sample_sentence(grammar, rng)
        samples.append(s)
        total += len(s.symbols)
    layout = SentenceLayout.from_sentences(
        [symbols_to_ids(s.symbols) for s in samples], table, max_len=512
    )
    model = build_model(ModelConfig(n_layers=6, d_model=128, n_heads=4, n_ctx=512, d_vocab=table.d_vocab, seed=seed))
    layers = list(range(-1, 6))
    acts = collect_activations(model.eval(), layout, [layer_hook(layer) for layer in layers], batch_size=16)
    x = acts.stack([layer_hook(layer) for layer in layers])
    labels = gather_labels(layout, [s.ancestor[-1] for s in samples])
    y = labels[acts.sequence_index, acts.position_index]
    return x, y, acts.sequence_index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="reuse/save the features at this .pt path")
    args = parser.parse_args()

    import numpy as np
    import torch
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from physlm.probing.fit import FitConfig
    from physlm.probing.linear import LinearProbe

    torch.set_num_threads(1)
    if args.cache is not None and args.cache.is_file():
        x, y, sent = torch.load(args.cache)
    else:
        x, y, sent = features(args.tokens, args.seed)
        if args.cache is not None:
            torch.save((x, y, sent), args.cache)
    n_sent = int(sent.max()) + 1
    train = sent < int(0.8 * n_sent)
    x_tr, y_tr, g_tr, x_te, y_te = x[train], y[train], sent[train], x[~train], y[~train]
    n_layers = x.shape[1]
    print(f"{x.shape[0]} tokens ({int(train.sum())} train / {int((~train).sum())} test), {n_layers} layers, "
          f"d_model {x.shape[2]}, 3 classes")

    # Both fits see the same standardised features (statistics from the training rows).
    mean, std = x_tr.mean(0), x_tr.std(0).clamp(min=1e-6)
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std

    config = FitConfig(lr=1e-2, batch_size=4096, weight_decay=1e-4, max_epochs=30, patience=3, seed=args.seed)
    start = time.perf_counter()
    probe = LinearProbe(x.shape[2], 3, n_layers=n_layers)
    probe.fit(x_tr, y_tr, groups=g_tr, config=config)
    ours_s = time.perf_counter() - start
    ours_acc = (probe.predict(x_te) == y_te[:, None]).double().mean(0).numpy()

    sk_acc = np.zeros(n_layers)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        for layer in range(n_layers):
            clf = LogisticRegression(max_iter=1000)
            clf.fit(x_tr[:, layer].numpy(), y_tr.numpy())
            sk_acc[layer] = (clf.predict(x_te[:, layer].numpy()) == y_te.numpy()).mean()
    sk_s = time.perf_counter() - start
    unconverged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    if unconverged:
        print(f"note: scikit-learn did not converge on {unconverged} layer(s) within max_iter=1000")

    print(f"{'layer':>5} {'physlm acc':>10} {'sklearn acc':>11} {'diff (points)':>13}")
    for layer in range(n_layers):
        print(f"{layer - 1:>5} {ours_acc[layer]:>10.4f} {sk_acc[layer]:>11.4f} "
              f"{100 * (ours_acc[layer] - sk_acc[layer]):>+13.2f}")
    # "Equal accuracy": physlm may not fall more than 0.5 points below scikit-learn on any layer.
    worst = float((sk_acc - ours_acc).max() * 100)
    ratio = sk_s / ours_s
    print(f"physlm LinearProbe (all layers at once): {ours_s:.2f} s; sklearn loop over layers: {sk_s:.2f} s")
    print(f"speed-up {ratio:.1f}x (target >= 10x: {'PASS' if ratio >= 10 else 'FAIL'}); physlm at most "
          f"{max(worst, 0.0):.2f} points below sklearn (target <= 0.5: {'PASS' if worst <= 0.5 else 'FAIL'}); "
          f"largest |gap| {float(np.abs(ours_acc - sk_acc).max() * 100):.2f} points")
    if ratio < 10 or worst > 0.5:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""One epoch of an iGSM V-probe fit, side by side: the three ways physlm runs it.

* ``all, per row``: the paper's update of the whole embedding matrix, every draw its own padded sequence
  (the model's forward on the fused fast path);
* ``all, packed``: the same function, the draws of one problem packed into one sequence (the default);
* ``suffix, cached``: the suffix-only deviation against the per-document prefix cache.

Model: gpt_rot-small (4 layers, 128 dims; seeded random init, speed does not depend on the weights) over the iGSM
vocabulary; data: ``--problems`` train-split problems of ``--preset`` with 10 draws each (the paper's count),
target can_next (a draw at a solution-sentence boundary), batches of 32, one thread. Prints seconds per epoch and
the ratios to ``all, per row``. Target: packed >= 3x faster than per row, and the cache >= 2x faster than packed.

    python benchmarks/igsm_vprobe.py [--preset tiny] [--problems 120]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--problems", type=int, default=120)
    args = parser.parse_args()

    import torch

    from physlm.probing.igsm_cache import CachedVProbe, PrefixCache
    from physlm.probing.igsm_examples import build_examples, probe_records, record_document
    from physlm.probing.igsm_fit import FittedVProbe, FullVProbe
    from physlm.tasks.igsm import igsm_token_table
    from physlm.training import build_model, model_preset

    torch.set_num_threads(1)
    model = build_model(model_preset("gpt_rot-small", d_vocab=igsm_token_table().d_vocab, n_ctx=384)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    records = probe_records(args.preset, "train", args.problems, 0, 384 - 10)

    def epoch(fitted: FittedVProbe, examples: object, cache: object) -> float:
        opt = torch.optim.AdamW(fitted.probe.parameters(), lr=1e-3)
        order = torch.argsort(examples.doc_id * len(examples) + torch.randperm(len(examples)))  # problems together
        start = time.perf_counter()
        for s in range(0, len(order), 32):
            idx = order[s : s + 32]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(fitted.logits(examples, idx, cache), examples.labels[idx])
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    full = build_examples(records, "can_next", 10, 0, "all", 384)
    suffix = build_examples(records, "can_next", 10, 0, "suffix", 384)
    per_row = FullVProbe(model, 2, rank=8)
    per_row.reference = True
    start = time.perf_counter()
    cache = PrefixCache.build(model, [record_document(r) for r in records])
    cache_seconds = time.perf_counter() - start
    times = {
        "all, per row": epoch(FittedVProbe(per_row, "all"), full, None),
        "all, packed": epoch(FittedVProbe(FullVProbe(model, 2, rank=8), "all"), full, None),
        "suffix, cached": epoch(FittedVProbe(CachedVProbe(model, 2, rank=8), "suffix"), suffix, cache),
    }
    print(f"{args.problems} {args.preset} problems, {len(full)} can_next draws, batches of 32, one thread")
    base = times["all, per row"]
    for name, seconds in times.items():
        print(f"  {name:<16} {seconds:7.2f} s/epoch   {base / seconds:5.1f}x")
    print(f"  (the prefix cache took {cache_seconds:.2f} s once, for every epoch, layer and target)")


if __name__ == "__main__":
    main()

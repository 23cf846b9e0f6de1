"""Peak memory of streamed activation collection does not grow with the data set.

Each case runs in a fresh subprocess (peak RSS is per process): collect the residual stream of every layer
at every position of N and 10·N sequences, streamed to sharded safetensors on disk, and compare the peak RSS.
A third case keeps 10·N in memory, to show that the measurement does see activation memory when it grows.
Target: peak(10·N, disk) ≤ 1.2 × peak(N, disk).

    python benchmarks/activation_memory.py [--base 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
SEQ, D_MODEL, N_LAYERS, BATCH = 128, 128, 2, 16


def _peak_rss_mb() -> float:
    import resource

    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(n: int, mode: str) -> dict:
    """Collect ``n`` sequences in this process and report RSS figures (MiB)."""
    sys.path.insert(0, str(ROOT))
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from physlm.probing.activations import collect_activations, layer_hook

    torch.set_num_threads(1)
    cfg = HookedTransformerConfig(
        n_layers=N_LAYERS, d_model=D_MODEL, n_heads=4, d_head=D_MODEL // 4, d_mlp=4 * D_MODEL, n_ctx=SEQ,
        d_vocab=16, act_fn="gelu", positional_embedding_type="rotary", seed=0,
    )
    model = HookedTransformer(cfg).eval()

    def batches():
        # Token batches are produced lazily: the input never holds the whole data set either.
        gen = torch.Generator().manual_seed(0)
        for start in range(0, n, BATCH):
            yield torch.randint(4, 16, (min(BATCH, n - start), SEQ), generator=gen)

    hooks = [layer_hook(layer) for layer in range(-1, N_LAYERS)]
    before = _peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "acts" if mode == "disk" else None
        acts = collect_activations(model, batches(), hooks, batch_size=BATCH, out=out, progress=False)
        rows = acts.n_rows
        stored = sum(f.stat().st_size for f in out.iterdir()) if out is not None else 0
    return {"n": n, "mode": mode, "rows": rows, "rss_before_mb": before, "peak_rss_mb": _peak_rss_mb(),
            "disk_mb": stored / 2**20}


def run_case(n: int, mode: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(n), "--mode", mode],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=int, default=100, help="sequences in the base case")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["disk", "memory"], default="disk", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.mode)))
        return
    cases = [(args.base, "disk"), (10 * args.base, "disk"), (10 * args.base, "memory")]
    results = [run_case(n, mode) for n, mode in cases]
    print(f"{'sequences':>9} {'mode':>6} {'rows':>8} {'RSS before':>11} {'peak RSS':>9} {'on disk':>8}")
    for r in results:
        print(f"{r['n']:>9} {r['mode']:>6} {r['rows']:>8} {r['rss_before_mb']:>9.0f}MB {r['peak_rss_mb']:>7.0f}MB "
              f"{r['disk_mb']:>6.0f}MB")
    base, big, mem = results
    ratio = big["peak_rss_mb"] / base["peak_rss_mb"]
    print(f"peak RSS ratio 10x/1x streamed to disk: {ratio:.3f} (target <= 1.2: {'PASS' if ratio <= 1.2 else 'FAIL'})")
    print(f"peak RSS ratio 10x in memory / 1x on disk: {mem['peak_rss_mb'] / base['peak_rss_mb']:.3f} "
          "(for contrast: what keeping activations in memory costs)")
    if ratio > 1.2:
        sys.exit(1)


if __name__ == "__main__":
    main()

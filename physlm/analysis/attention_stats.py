"""Attention against the true parse (spec part 1, §3), accumulated over streamed batches.

Definitions (A = post-softmax attention from query j to key i ≤ j):

* Ā(l, h, p): mean of A over all pairs with j - i = p in training-layout windows (BOS/EOS and
  sentence boundaries included, as the model saw them).
* B = A - Ā(l, h, j - i): attention beyond what the distance alone predicts.
* Parse statistics average B over pairs inside one sentence (both terminals, key before query):
  ``near_end`` (key i with b♯(i + δ) = ℓ), ``end_pair`` (b♯(j) = ℓ', b♯(i) = ℓ, 0 = not an NT-end) and
  ``adjacent`` (both NT-ends, ancestor-index distance r measured at level ℓ - offset).

Because B is linear in A, the mean of B over a set of pairs is (ΣA - Σ_p n(p) Ā(p)) / Σ_p n(p). So one pass
keeps, per pair category, the sum of A for every head and a histogram of distances, and subtracts the
position baseline at the end: exact, with no second pass and no stored patterns.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from physlm.analysis.layout import PackedWindows

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer
    from transformer_lens.hook_points import HookPoint

PATTERN_SUFFIX = "attn.hook_pattern"


@dataclasses.dataclass
class _Family:
    """Per-category sums of attention (per layer and head) and distance histograms."""

    n_categories: int
    sums: np.ndarray  # [layer, head, category], float64
    dist_counts: np.ndarray  # [category, distance], int64

    @classmethod
    def empty(cls, n_layers: int, n_heads: int, n_categories: int, n_ctx: int) -> _Family:
        return cls(
            n_categories,
            np.zeros((n_layers, n_heads, n_categories)),
            np.zeros((n_categories, n_ctx), dtype=np.int64),
        )


@dataclasses.dataclass(frozen=True)
class PairIndex:
    """Which flattened (window, query, key) pairs of a batch fall in which category, per family."""

    flat: dict[str, list[tuple[Tensor, Tensor]]]
    """family -> list of (flattened pair positions, category ids); a family may list several partitions"""


class AttentionStats:
    """Running sums for Ā and the parse statistics; feed it batches with :meth:`add_pattern`."""

    def __init__(
        self,
        n_layers: int,
        n_heads: int,
        n_ctx: int,
        n_nt_levels: int,
        max_delta: int = 2,
        max_r: int = 8,
        r_level_offsets: tuple[int, ...] = (0, 1),
        include_self: bool = False,
    ):
        self.n_layers, self.n_heads, self.n_ctx = n_layers, n_heads, n_ctx
        self.n_nt_levels = n_nt_levels
        self.levels = tuple(range(2, 2 + n_nt_levels))
        self.max_delta, self.max_r = max_delta, max_r
        self.r_level_offsets = tuple(r_level_offsets)
        self.include_self = include_self
        self.pos_sum = np.zeros((n_layers, n_heads, n_ctx))
        self.pos_count = np.zeros(n_ctx, dtype=np.int64)
        self.n_windows = 0
        self.layers_seen: set[int] = set()
        n_deltas = 2 * max_delta + 1
        nl = n_nt_levels
        self.families: dict[str, _Family] = {
            "near_end": _Family.empty(n_layers, n_heads, n_deltas * nl, n_ctx),
            "end_pair": _Family.empty(n_layers, n_heads, (nl + 1) ** 2, n_ctx),
        }
        for off in self.r_level_offsets:
            self.families[f"adjacent_{off}"] = _Family.empty(n_layers, n_heads, nl * nl * (max_r + 1), n_ctx)
        q = torch.arange(n_ctx)
        causal = q[:, None] >= q[None, :]
        self._causal_flat = torch.nonzero(causal.reshape(-1)).squeeze(1)
        self._causal_dist = (q[:, None] - q[None, :]).reshape(-1)[self._causal_flat]

    # -- per batch ----------------------------------------------------------------------------
    def pair_index(self, batch: PackedWindows) -> PairIndex:
        """Category ids of every within-sentence pair of a batch (layer-independent, computed once)."""
        w, n = batch.tokens.shape
        if n != self.n_ctx:
            raise ValueError(f"windows have {n} positions but the statistics were set up for n_ctx={self.n_ctx}")
        if batch.n_levels != self.n_nt_levels:
            raise ValueError(f"labels have {batch.n_levels} NT levels, expected {self.n_nt_levels}")
        sid, term, end, anc = batch.sentence_id, batch.is_terminal, batch.end_level, batch.ancestor_index
        pos = torch.arange(n)
        order = pos[:, None] > pos[None, :] if not self.include_self else pos[:, None] >= pos[None, :]
        valid = (sid[:, :, None] == sid[:, None, :]) & term[:, :, None] & term[:, None, :] & order
        dist = (pos[:, None] - pos[None, :]).expand(w, n, n)
        nl = self.n_nt_levels
        flat: dict[str, list[tuple[Tensor, Tensor]]] = {}

        def add(family: str, mask: Tensor, cat: Tensor) -> None:
            where = torch.nonzero(mask.reshape(-1)).squeeze(1)
            flat.setdefault(family, []).append((where, cat.reshape(-1)[where]))
            fam = self.families[family]
            codes = cat.reshape(-1)[where] * n + dist.reshape(-1)[where]
            fam.dist_counts += (
                torch.bincount(codes, minlength=fam.n_categories * n).reshape(fam.n_categories, n).numpy()
            )

        # near_end: the level of the NT-end at key + δ (same sentence, a terminal, inside the window)
        for d_idx, delta in enumerate(range(-self.max_delta, self.max_delta + 1)):
            shifted = torch.full_like(end, 0)
            src = pos + delta
            ok = (src >= 0) & (src < n)
            shifted[:, ok] = end[:, src[ok]]
            same = torch.zeros_like(term)
            same[:, ok] = (sid[:, src[ok]] == sid[:, ok]) & term[:, src[ok]]
            key_level = torch.where(same, shifted, torch.zeros_like(shifted))  # [w, key]
            mask = valid & (key_level > 0)[:, None, :]
            cat = (d_idx * nl + key_level - 2).clamp(min=0)[:, None, :].expand(w, n, n)
            add("near_end", mask, cat)

        qcat, kcat = end[:, :, None], end[:, None, :]
        q_idx = torch.where(qcat > 0, qcat - 1, 0)
        k_idx = torch.where(kcat > 0, kcat - 1, 0)
        add("end_pair", valid, (q_idx * (nl + 1) + k_idx).expand(w, n, n))

        both = valid & (qcat > 0) & (kcat > 0)
        for off in self.r_level_offsets:
            ref = kcat - off  # reference level per pair, [w, 1, key]
            ref_row = (ref - 2).clamp(min=0).expand(w, 1, n)  # ancestor row of each key's reference level
            p_key = torch.gather(anc, 1, ref_row).squeeze(1)  # [w, key]
            # the query's ancestor index at the key's reference level: gather row per (query, key)
            rows = (ref - 2).clamp(min=0).expand(w, n, n)
            p_query = torch.gather(anc.transpose(1, 2), 2, rows)  # [w, query, key]
            r = torch.where(ref >= 2, p_query - p_key[:, None, :], torch.zeros_like(p_query))
            mask = both & (r >= 0) & (r <= self.max_r)
            cat = ((qcat - 2).clamp(min=0) * nl + (kcat - 2).clamp(min=0)) * (self.max_r + 1) + r.clamp(0, self.max_r)
            add(f"adjacent_{off}", mask, cat.expand(w, n, n))
        self.n_windows += w
        self.pos_count += w * np.bincount(self._causal_dist.numpy(), minlength=n)
        return PairIndex(flat)

    def add_pattern(self, layer: int, pattern: Float[Tensor, "window head query key"], index: PairIndex) -> None:
        """Add one layer's attention pattern of the batch that ``index`` was computed for."""
        w, h, n, _ = pattern.shape
        if n != self.n_ctx or h != self.n_heads or not 0 <= layer < self.n_layers:
            raise ValueError(
                f"pattern of layer {layer} with {h} heads and {n} positions does not fit statistics of "
                f"{self.n_layers} layers x {self.n_heads} heads x n_ctx {self.n_ctx}"
            )
        self.layers_seen.add(layer)
        # index the pattern in place (no float64 copy of the whole [window, head, q, k] tensor)
        flat = pattern.detach().reshape(w, h, n * n)
        by_query_key = flat.sum(0, dtype=torch.float64)[:, self._causal_flat]
        self.pos_sum[layer] += (
            torch.zeros(h, n, dtype=torch.float64).index_add_(1, self._causal_dist, by_query_key).numpy()
        )
        for family, parts in index.flat.items():
            fam = self.families[family]
            for where, cat in parts:
                pair_values = flat[where // (n * n), :, where % (n * n)].to(torch.float64).T  # [head, pairs]
                fam.sums[layer] += (
                    torch.zeros(h, fam.n_categories, dtype=torch.float64).index_add_(1, cat, pair_values).numpy()
                )

    # -- results ------------------------------------------------------------------------------
    def position_attention(self) -> np.ndarray:
        """Ā[layer, head, distance] (NaN where no pair had that distance)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.pos_sum / np.where(self.pos_count > 0, self.pos_count, np.nan)

    def family_b(self, family: str) -> tuple[np.ndarray, np.ndarray]:
        """(mean B per [layer, head, category], number of pairs per category)."""
        fam = self.families[family]
        return self.mean_b(fam.sums, fam.dist_counts)

    def mean_b(self, sums: np.ndarray, dist_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean B from per-category attention sums [layer, head, c] and distance histograms [c, distance]."""
        abar = np.nan_to_num(self.position_attention())
        expected = np.einsum("lhp,cp->lhc", abar, dist_counts.astype(np.float64))
        n = dist_counts.sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            b = (sums - expected) / np.where(n > 0, n, np.nan)
        return b, n

    def pooled_b(self, family: str, categories: Iterable[int]) -> tuple[np.ndarray, int]:
        """Mean B over the union of some categories of one family ([layer, head], pair count)."""
        cats = list(categories)
        fam = self.families[family]
        b, n = self.mean_b(fam.sums[:, :, cats].sum(-1, keepdims=True), fam.dist_counts[cats].sum(0, keepdims=True))
        return b[:, :, 0], int(n[0])


def pattern_layer(hook_name: str) -> int:
    """Layer number of a ``blocks.{l}.attn.hook_pattern`` hook."""
    parts = hook_name.split(".")
    if len(parts) < 2 or parts[0] != "blocks" or not hook_name.endswith(PATTERN_SUFFIX):
        raise ValueError(f"{hook_name!r} is not an attention-pattern hook")
    return int(parts[1])


def accumulate_attention(
    model: HookedTransformer, batches: Iterable[PackedWindows], stats: AttentionStats, total: int | None = None
) -> AttentionStats:
    """Stream batches through a HookedTransformer, reducing each layer's pattern inside its hook.

    Only ``hook_pattern`` is hooked and each pattern is reduced as soon as it is produced, so memory holds one
    layer's pattern of one batch at a time. Hooks registered earlier on the model (e.g. interventions)
    run first and their output is what gets measured.
    """
    device = next(model.parameters()).device
    for batch in tqdm(batches, total=total, desc="attention statistics", unit="batch", leave=False):
        index = stats.pair_index(batch)

        def hook(pattern: Tensor, hook: HookPoint, index: PairIndex = index) -> None:
            stats.add_pattern(pattern_layer(hook.name), pattern.cpu(), index)

        with torch.no_grad():
            model.run_with_hooks(
                batch.tokens.to(device),
                fwd_hooks=[(lambda name: name.endswith(PATTERN_SUFFIX), hook)],
                return_type=None,
            )
    missing = sorted(set(range(stats.n_layers)) - stats.layers_seen)
    if missing:
        raise ValueError(f"no attention pattern was produced for layer(s) {missing}: is hook_pattern bypassed?")
    return stats


# -- tables (lists of dicts, CSV-ready) ---------------------------------------------------------
def _num(x: float) -> float | None:
    return None if (x is None or math.isnan(x)) else float(x)


def position_table(stats: AttentionStats) -> list[dict[str, Any]]:
    """Rows ``layer, head, distance, mean_attention, n_pairs`` of Ā."""
    abar = stats.position_attention()
    return [
        {
            "layer": ly,
            "head": h,
            "distance": p,
            "mean_attention": _num(abar[ly, h, p]),
            "n_pairs": int(stats.pos_count[p]),
        }
        for ly in range(stats.n_layers)
        for h in range(stats.n_heads)
        for p in range(stats.n_ctx)
        if stats.pos_count[p] > 0
    ]


def near_end_table(stats: AttentionStats) -> list[dict[str, Any]]:
    """Rows ``layer, head, level, delta, B, n_pairs``: mean B to keys δ before an NT-end of level ℓ."""
    b, n = stats.family_b("near_end")
    nl = stats.n_nt_levels
    rows = []
    for d_idx, delta in enumerate(range(-stats.max_delta, stats.max_delta + 1)):
        for li, level in enumerate(stats.levels):
            c = d_idx * nl + li
            rows += [
                {
                    "layer": ly,
                    "head": h,
                    "level": level,
                    "delta": delta,
                    "B": _num(b[ly, h, c]),
                    "n_pairs": int(n[c]),
                }
                for ly in range(stats.n_layers)
                for h in range(stats.n_heads)
            ]
    return rows


def end_pair_table(stats: AttentionStats) -> list[dict[str, Any]]:
    """Rows ``layer, head, query_level, key_level, B, n_pairs``; level 0 = not an NT-end."""
    b, n = stats.family_b("end_pair")
    cats = (0, *stats.levels)
    rows = []
    for qi, ql in enumerate(cats):
        for ki, kl in enumerate(cats):
            c = qi * len(cats) + ki
            rows += [
                {
                    "layer": ly,
                    "head": h,
                    "query_level": ql,
                    "key_level": kl,
                    "B": _num(b[ly, h, c]),
                    "n_pairs": int(n[c]),
                }
                for ly in range(stats.n_layers)
                for h in range(stats.n_heads)
            ]
    return rows


def adjacency_table(stats: AttentionStats) -> list[dict[str, Any]]:
    """Rows ``r_level_offset, layer, head, query_level, key_level, r, B, n_pairs`` (end → end pairs only).

    r = p_m(j) - p_m(i) at level m = key_level - r_level_offset (offset 0: the paper's p_ℓ(j) - p_ℓ(i);
    offset 1: the parent level, where r = 0 means the key's subtree is a left sibling of the query's).
    """
    rows = []
    nl, nr = stats.n_nt_levels, stats.max_r + 1
    for off in stats.r_level_offsets:
        b, n = stats.family_b(f"adjacent_{off}")
        for qi, ql in enumerate(stats.levels):
            for ki, kl in enumerate(stats.levels):
                for r in range(nr):
                    c = (qi * nl + ki) * nr + r
                    if n[c] == 0:
                        continue
                    rows += [
                        {
                            "r_level_offset": off,
                            "layer": ly,
                            "head": h,
                            "query_level": ql,
                            "key_level": kl,
                            "r": r,
                            "B": _num(b[ly, h, c]),
                            "n_pairs": int(n[c]),
                        }
                        for ly in range(stats.n_layers)
                        for h in range(stats.n_heads)
                    ]
    return rows


def head_summary(stats: AttentionStats) -> list[dict[str, Any]]:
    """Heads ranked by how strongly their attention follows the parse, strongest first.

    * ``end_excess``: mean B to NT-end keys minus mean B to other keys (all queries) — the ranking score;
    * ``delta0_peak``: mean over levels of B(δ = 0) minus the mean of B at δ ≠ 0 (sharpness at the end);
    * ``end_to_end_contrast``: B(NT-end → NT-end) - B(NT-end → non-end);
    * ``adjacent_drop_<offset>``: B at the most adjacent r minus the mean B at larger r (end → end pairs).
    """
    nl = stats.n_nt_levels
    side = nl + 1
    end_keys = [q * side + k for q in range(side) for k in range(1, side)]
    non_end_keys = [q * side for q in range(side)]
    b_end, _ = stats.pooled_b("end_pair", end_keys)
    b_non, _ = stats.pooled_b("end_pair", non_end_keys)
    b_ee, _ = stats.pooled_b("end_pair", [q * side + k for q in range(1, side) for k in range(1, side)])
    b_en, _ = stats.pooled_b("end_pair", [q * side for q in range(1, side)])
    b_near, _ = stats.family_b("near_end")
    n_deltas = 2 * stats.max_delta + 1
    by_delta = b_near.reshape(stats.n_layers, stats.n_heads, n_deltas, nl)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an empty category is reported as None
        at0 = by_delta[:, :, stats.max_delta, :]
        others = np.nanmean(np.delete(by_delta, stats.max_delta, axis=2), axis=2) if n_deltas > 1 else 0 * at0
        peak = np.nanmean(at0 - others, axis=-1)
    drops: dict[int, np.ndarray] = {}
    nr = stats.max_r + 1
    for off in stats.r_level_offsets:
        fam = stats.families[f"adjacent_{off}"]
        by_r_sums = fam.sums.reshape(stats.n_layers, stats.n_heads, nl * nl, nr).sum(2)
        by_r_counts = fam.dist_counts.reshape(nl * nl, nr, -1).sum(0)
        b_r, n_r = stats.mean_b(by_r_sums, by_r_counts)
        present = np.nonzero(n_r > 0)[0]
        if len(present) >= 2:
            first = present[0]
            drops[off] = b_r[:, :, first] - np.nanmean(b_r[:, :, present[1:]], axis=-1)
        else:
            drops[off] = np.full((stats.n_layers, stats.n_heads), np.nan)
    rows = []
    for ly in range(stats.n_layers):
        for h in range(stats.n_heads):
            row: dict[str, Any] = {
                "rank": None,
                "layer": ly,
                "head": h,
                "end_excess": _num(b_end[ly, h] - b_non[ly, h]),
                "delta0_peak": _num(peak[ly, h]),
                "end_to_end_contrast": _num(b_ee[ly, h] - b_en[ly, h]),
            }
            for off, drop in drops.items():
                row[f"adjacent_drop_{off}"] = _num(drop[ly, h])
            rows.append(row)
    rows.sort(key=lambda r: -math.inf if r["end_excess"] is None else r["end_excess"], reverse=True)
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


__all__ = [
    "AttentionStats",
    "PairIndex",
    "accumulate_attention",
    "adjacency_table",
    "end_pair_table",
    "head_summary",
    "near_end_table",
    "pattern_layer",
    "position_table",
]

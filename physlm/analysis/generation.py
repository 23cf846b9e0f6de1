"""Generation evaluation against the exact grammar (spec part 1, §4).

* accuracy: complete a true prefix (none = "cut0", c tokens = "cut50") by multinomial sampling; a completion
  counts iff prefix + completion is in L(G) by the exact DP. No EOS within the context is a failure.
* diversity: duplicates among the cut0 samples (birthday estimate of the support size) and the model's
  entropy E_{x~model}[-log p_model(x)] against the grammar's E_{x~G}[-log p_G(x)], both in nats per token.
* distribution: KL(true || model) of the next-token distributions over (EOS, terminals) along fresh sentences.
* robustness: accuracy after prefixes with a fraction of flipped tokens, at several temperatures.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm

import physlm.tasks.cfg.dp as cfg_dp
from physlm.analysis.config import GenerationConfig
from physlm.analysis.layout import sentence_rng
from physlm.analysis.sampling import Continuations, ModelSampler, Sampler
from physlm.tasks.base import TokenTable
from physlm.tasks.cfg.corrupt import corrupt_symbols
from physlm.tasks.cfg.grammar import Grammar
from physlm.tasks.cfg.sample import sample_symbols
from physlm.tasks.cfg.tokens import ids_to_symbols, symbols_to_ids

Membership = Callable[[Sequence[int]], bool]
"""symbols (1..T) -> whether the string is in the language"""
TrueDistribution = Callable[[Sequence[int]], np.ndarray]
"""symbols x_1..x_n -> (n + 1, 1 + T) next-token probabilities over (EOS, t_1..t_T) after each prefix"""
LogitsFn = Callable[[Tensor], Tensor]
"""token ids [batch, pos] -> logits [batch, pos, vocab] (a HookedTransformer is one)"""


@runtime_checkable
class GrammarOracle(Protocol):
    """Exact answers about a grammar's strings: :mod:`physlm.tasks.cfg.dp`, or a test's full enumeration."""

    def is_valid(self, grammar: Grammar, symbols: Sequence[int]) -> bool: ...

    def log_prob(self, grammar: Grammar, symbols: Sequence[int]) -> float: ...

    def next_token_distribution(self, grammar: Grammar, symbols: Sequence[int]) -> np.ndarray: ...


def prefix_length(grammar: Grammar, config: GenerationConfig) -> int:
    """The "cut50" prefix: ``prefix_tokens`` if every sentence is longer, else a fraction of the shortest.

    The paper's grammars have at least 64 tokens, so they get 50; toy grammars with short sentences get
    ``floor(prefix_fraction * min_length)`` (at least 1), which always leaves something to complete.
    """
    min_len = grammar.span_bounds[0][0]
    if config.prefix_tokens < min_len:
        return config.prefix_tokens
    return max(1, min(min_len - 1, math.floor(config.prefix_fraction * min_len)))


def exact_dp() -> GrammarOracle:
    """The exact DPs of the CFG task (:mod:`physlm.tasks.cfg.dp`)."""
    return cfg_dp


def membership(grammar: Grammar, dp: GrammarOracle) -> Membership:
    """In-language test via the exact DP, rejecting lengths outside the grammar's span bounds up front.

    (Cheaper, and the DP refuses an empty string, which an immediate EOS after BOS produces.)
    """
    lo, hi = grammar.span_bounds[0]
    return lambda s: lo <= len(s) <= hi and bool(dp.is_valid(grammar, s))


# -- completion accuracy --------------------------------------------------------------------------
def completion_symbols(tokens: Sequence[int], num_terminals: int) -> list[int] | None:
    """Token ids of a completion to terminal symbols, or None when it holds a non-terminal token."""
    try:
        return ids_to_symbols(tokens, num_terminals)
    except ValueError:
        return None


def judge_completions(
    prefixes: Sequence[Sequence[int]],
    samples: Continuations,
    num_terminals: int,
    is_valid: Membership,
) -> list[bool]:
    """Whether each prefix (terminal symbols) + its completion is a sentence, in order."""
    verdicts = []
    for prefix, tokens, ended in zip(prefixes, samples.tokens, samples.ended):
        symbols = completion_symbols(tokens, num_terminals)
        verdicts.append(bool(ended and symbols is not None and is_valid(list(prefix) + symbols)))
    return verdicts


def run_completions(
    sampler: Sampler,
    prefixes: Sequence[Sequence[int]],
    table: TokenTable,
    num_terminals: int,
    is_valid: Membership,
    temperature: float,
    generator: torch.Generator,
    batch_size: int,
    judge_prefixes: Sequence[Sequence[int]] | None = None,
    desc: str = "sampling",
) -> dict[str, Any]:
    """Sample one completion per prefix (equal-length prefixes, batched) and judge them.

    ``prefixes`` are what the model sees (after BOS); ``judge_prefixes`` (default: the same) are what the
    completion is appended to for the membership test. Returns the verdicts, the raw samples and counts.
    """
    if judge_prefixes is None:
        judge_prefixes = prefixes
    if len(judge_prefixes) != len(prefixes):
        raise ValueError("judge_prefixes must match prefixes one to one")
    lengths = {len(p) for p in prefixes}
    if len(lengths) > 1:
        raise ValueError(f"prefixes must have equal lengths to be batched, got lengths {sorted(lengths)}")
    valid: list[bool] = []
    tokens: list[list[int]] = []
    ended: list[bool] = []
    logprob: list[float] = []
    bar = tqdm(total=len(prefixes), desc=desc, unit="sample", leave=False)
    for start in range(0, len(prefixes), batch_size):
        chunk = prefixes[start : start + batch_size]
        ids = torch.tensor([table.frame(symbols_to_ids(p), close=False) for p in chunk], dtype=torch.long)
        samples = sampler(ids, temperature, generator)
        if len(samples.tokens) != len(chunk):
            raise ValueError(f"sampler returned {len(samples.tokens)} completions for {len(chunk)} prefixes")
        valid += judge_completions(judge_prefixes[start : start + batch_size], samples, num_terminals, is_valid)
        tokens += samples.tokens
        ended += samples.ended
        logprob += samples.logprob
        bar.update(len(chunk))
    bar.close()
    n = len(valid)
    return {
        "accuracy": sum(valid) / n if n else float("nan"),
        "n": n,
        "n_valid": sum(valid),
        "n_no_eos": n - sum(ended),
        "valid": valid,
        "samples": Continuations(tokens=tokens, ended=ended, logprob=logprob),
    }


# -- diversity and entropy ------------------------------------------------------------------------
def diversity(completions: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Duplicates among M samples and the birthday-paradox estimate of the support size.

    With k colliding pairs among M draws from a uniform support of size N, E[k] = C(M, 2) / N, so
    N ≈ C(M, 2) / k. Without collisions, P(no collision) ≈ exp(-C(M, 2) / N) < 5% for N < C(M, 2) / ln 20,
    a one-sided 95% lower bound (non-uniform distributions only collide more, so it stays a lower bound of the
    effective support).
    """
    m = len(completions)
    counts = Counter(tuple(c) for c in completions)
    pairs = sum(c * (c - 1) // 2 for c in counts.values())
    all_pairs = m * (m - 1) // 2
    return {
        "n_samples": m,
        "distinct": len(counts),
        "duplicates": m - len(counts),
        "duplicate_pairs": pairs,
        "support_estimate": (all_pairs / pairs) if pairs else None,
        "support_lower_bound_95": (all_pairs / math.log(20.0)) if (not pairs and all_pairs) else None,
    }


def model_entropy(samples: Continuations) -> dict[str, Any]:
    """E_{x~model}[-log p_model(x)] from temperature-1 samples that ended with EOS (per sentence and token).

    Per token = total nats / total terminal tokens, the same normalisation as :func:`grammar_entropy`.
    Samples that ran out of context without EOS have no complete probability and are left out (counted).
    """
    done = [(lp, len(t)) for lp, t, e in zip(samples.logprob, samples.tokens, samples.ended) if e]
    if not done:
        return {"per_token": None, "per_sentence": None, "n": 0, "n_incomplete": len(samples.tokens)}
    nats = -sum(lp for lp, _ in done)
    tokens = sum(n for _, n in done)
    return {
        "per_token": nats / tokens if tokens else None,
        "per_sentence": nats / len(done),
        "n": len(done),
        "n_incomplete": len(samples.tokens) - len(done),
    }


def grammar_entropy(sentences: Sequence[Sequence[int]], log_prob: Callable[[Sequence[int]], float]) -> dict[str, Any]:
    """Monte-Carlo E_{x~G}[-log p_G(x)] over fresh sentences (nats per sentence and per terminal token)."""
    if not sentences:
        return {"per_token": None, "per_sentence": None, "n": 0}
    nats = [-float(log_prob(s)) for s in tqdm(sentences, desc="grammar entropy", unit="sentence", leave=False)]
    total_tokens = sum(len(s) for s in sentences)
    return {
        "per_token": sum(nats) / total_tokens,
        "per_sentence": sum(nats) / len(nats),
        "per_sentence_se": float(np.std(nats, ddof=1) / math.sqrt(len(nats))) if len(nats) > 1 else None,
        "n": len(nats),
    }


# -- KL(true || model) ----------------------------------------------------------------------------
def smoothed_kl_rows(
    p_true: Float[np.ndarray, "rows k"], p_model: Float[np.ndarray, "rows k"], eps: float
) -> Float[np.ndarray, " rows"]:
    """Σ_t p_true(t) [log p̃_true(t) - log p̃_model(t)] per row, p̃ = (p + ε) renormalised (official demo)."""
    if p_true.shape != p_model.shape:
        raise ValueError(f"distribution shapes differ: {p_true.shape} vs {p_model.shape}")
    pt = (p_true + eps) / (p_true + eps).sum(-1, keepdims=True)
    pm = (p_model + eps) / (p_model + eps).sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p_true > 0, p_true * (np.log(pt) - np.log(pm)), 0.0)
    return terms.sum(-1)


def model_next_token_probs(
    logits: Float[Tensor, "pos vocab"], eos_id: int, num_terminals: int
) -> Float[np.ndarray, "pos k"]:
    """The model's next-token distribution restricted to (EOS, t_1..t_T) and renormalised."""
    ids = [eos_id, *symbols_to_ids(range(1, num_terminals + 1))]
    return torch.softmax(logits[:, ids].double(), dim=-1).cpu().numpy()


@torch.no_grad()
def kl_to_grammar(
    logits_fn: LogitsFn,
    sentences: Sequence[Sequence[int]],
    true_distribution: TrueDistribution,
    table: TokenTable,
    num_terminals: int,
    n_ctx: int,
    eps: float = 1e-5,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """KL(true || model) per token, averaged over sentences (each sentence: the mean over its n + 1 rows).

    The model reads ``BOS x_1..x_n``; its n + 1 next-token rows (first token .. EOS) are compared with the
    exact rows of ``true_distribution``. Sentences with n + 1 > n_ctx do not fit and are skipped (counted).
    """
    usable = [list(s) for s in sentences if len(s) + 1 <= n_ctx]
    per_sentence: list[float] = []
    for start in tqdm(range(0, len(usable), batch_size), desc="KL to grammar", unit="batch", leave=False):
        chunk = usable[start : start + batch_size]
        width = max(len(s) for s in chunk) + 1
        # right padding cannot change earlier positions of a causal model
        ids = torch.full((len(chunk), width), table.pad_id, dtype=torch.long)
        for b, s in enumerate(chunk):
            ids[b, : len(s) + 1] = torch.tensor(table.frame(symbols_to_ids(s), close=False))
        logits = logits_fn(ids.to(device))
        for b, s in enumerate(chunk):
            p_model = model_next_token_probs(logits[b, : len(s) + 1], table.eos_id, num_terminals)
            p_true = np.asarray(true_distribution(s), dtype=np.float64)
            if p_true.shape != p_model.shape:
                raise ValueError(
                    f"true next-token distribution has shape {p_true.shape}, expected {p_model.shape} "
                    "(n + 1 rows over EOS and the terminals)"
                )
            per_sentence.append(float(smoothed_kl_rows(p_true, p_model, eps).mean()))
    return {
        "kl": float(np.mean(per_sentence)) if per_sentence else None,
        "kl_se": float(np.std(per_sentence, ddof=1) / math.sqrt(len(per_sentence))) if len(per_sentence) > 1 else None,
        "n": len(per_sentence),
        "n_skipped_too_long": len(sentences) - len(usable),
    }


# -- robustness -----------------------------------------------------------------------------------
def corrupted_prefixes(
    prefixes: Sequence[Sequence[int]], fraction: float, num_terminals: int, seed: int
) -> list[list[int]]:
    """Each prefix with ``fraction`` of its tokens flipped to another terminal (physlm.tasks.cfg.corrupt), seeded."""
    rng = random.Random(f"physlm-analysis/corrupt/{seed}/{fraction}")
    return [corrupt_symbols(p, fraction, num_terminals, rng) for p in prefixes]


def robustness(
    sampler: Sampler,
    prefixes: Sequence[Sequence[int]],
    table: TokenTable,
    num_terminals: int,
    is_valid: Membership,
    fractions: Sequence[float],
    temperatures: Sequence[float],
    seed: int,
    batch_size: int,
) -> list[dict[str, Any]]:
    """Completion accuracy after clean and corrupted prefixes, per (flip fraction, temperature).

    The spec leaves open how to score a completion of an invalid prefix (§4.4, [unknown]); two criteria are
    reported: ``accuracy_clean_prefix`` (clean prefix + completion ∈ L: the completion continues the intended
    sentence) and ``accuracy_as_given`` (corrupted prefix + completion ∈ L; near 0 once the prefix is no
    longer a viable prefix). Fraction 0 is the clean baseline, which the "mode switch" compares against.
    """
    rows = []
    for fraction in (0.0, *[f for f in fractions if f > 0]):
        seen = corrupted_prefixes(prefixes, fraction, num_terminals, seed) if fraction > 0 else prefixes
        for temperature in temperatures:
            # a string seed, not hash(): str hashing is salted per process
            gen_seed = random.Random(f"physlm-analysis/robust/{seed}/{fraction}/{temperature}").getrandbits(63)
            gen = torch.Generator().manual_seed(gen_seed)
            clean = run_completions(
                sampler,
                seen,
                table,
                num_terminals,
                is_valid,
                temperature,
                gen,
                batch_size,
                judge_prefixes=prefixes,
                desc=f"robustness f={fraction} T={temperature}",
            )
            as_given = [
                bool(e and s is not None and is_valid(list(p) + s))
                for p, e, s in zip(
                    seen,
                    clean["samples"].ended,
                    (completion_symbols(t, num_terminals) for t in clean["samples"].tokens),
                )
            ]
            rows.append(
                {
                    "flip_fraction": fraction,
                    "temperature": temperature,
                    "accuracy_clean_prefix": clean["accuracy"],
                    "accuracy_as_given": sum(as_given) / len(as_given) if as_given else None,
                    "n": clean["n"],
                    "n_no_eos": clean["n_no_eos"],
                }
            )
    return rows


# -- the whole evaluation -------------------------------------------------------------------------
def fresh_symbol_sentences(grammar: Grammar, seed: int, count: int, start: int = 0) -> list[list[int]]:
    """``count`` fresh sentences (terminal symbols), sentence k a pure function of (seed, k)."""
    return [sample_symbols(grammar, sentence_rng(seed, k)) for k in range(start, start + count)]


def evaluate_generation(
    model: nn.Module | None,
    grammar: Grammar,
    table: TokenTable,
    config: GenerationConfig,
    n_ctx: int,
    sampler: Sampler | None = None,
    dp: GrammarOracle | None = None,
) -> dict[str, Any]:
    """Everything of §4 for one model; the dict written as ``generation.json``.

    ``sampler`` defaults to multinomial sampling from ``model``; ``dp`` to :mod:`physlm.tasks.cfg.dp` (anything with
    ``is_valid``, ``log_prob`` and ``next_token_distribution`` taking ``(grammar, symbols)``).
    """
    dp = dp if dp is not None else exact_dp()
    sampler = sampler if sampler is not None else ModelSampler(model, table.eos_id, n_ctx, config.use_kv_cache)
    T = grammar.num_terminals
    is_valid = membership(grammar, dp)
    cut = prefix_length(grammar, config)
    seed = config.seed
    gen = torch.Generator().manual_seed(seed)

    cut0 = run_completions(
        sampler,
        [[]] * config.n_samples,
        table,
        T,
        is_valid,
        config.temperature,
        gen,
        config.batch_size,
        desc="cut0",
    )
    truth = fresh_symbol_sentences(grammar, seed, config.n_samples)
    prefixes = [s[:cut] for s in truth]
    cutc = run_completions(
        sampler, prefixes, table, T, is_valid, config.temperature, gen, config.batch_size, desc=f"cut{cut}"
    )
    div = diversity(cut0["samples"].tokens)
    ment = model_entropy(cut0["samples"]) if config.temperature == 1.0 else {"per_token": None, "per_sentence": None}
    ent_sentences = fresh_symbol_sentences(grammar, seed + 1, config.n_entropy_sentences)
    gent = grammar_entropy(ent_sentences, lambda s: dp.log_prob(grammar, s))
    kl_sentences = fresh_symbol_sentences(grammar, seed + 2, config.n_kl_sentences)
    kl = (
        kl_to_grammar(
            model,
            kl_sentences,
            lambda s: dp.next_token_distribution(grammar, s),
            table,
            T,
            n_ctx,
            config.kl_smoothing,
            device=next(model.parameters()).device,
        )
        if model is not None and kl_sentences
        else {"kl": None, "n": 0, "n_skipped_too_long": 0, "kl_se": None}
    )
    robust = (
        robustness(
            sampler,
            prefixes,
            table,
            T,
            is_valid,
            config.corruption_fractions,
            config.robust_temperatures,
            seed,
            config.batch_size,
        )
        if config.corruption_fractions
        else []
    )
    return {
        "grammar": grammar.name,
        "accuracy_cut0": cut0["accuracy"],
        "accuracy_cut50": cutc["accuracy"],
        "cut": cut,
        "n_samples": config.n_samples,
        "n_no_eos_cut0": cut0["n_no_eos"],
        "n_no_eos_cut50": cutc["n_no_eos"],
        "duplicates": div["duplicates"],
        "duplicate_pairs": div["duplicate_pairs"],
        "distinct": div["distinct"],
        "support_estimate": div["support_estimate"],
        "support_lower_bound_95": div["support_lower_bound_95"],
        "model_entropy": ment["per_token"],
        "model_entropy_per_sentence": ment["per_sentence"],
        "model_entropy_n": ment.get("n"),
        "grammar_entropy": gent["per_token"],
        "grammar_entropy_per_sentence": gent["per_sentence"],
        "grammar_entropy_n": gent["n"],
        "kl": kl["kl"],
        "kl_se": kl["kl_se"],
        "kl_n_sentences": kl["n"],
        "kl_n_skipped_too_long": kl["n_skipped_too_long"],
        "robustness": robust,
        "units": "accuracies are fractions in [0, 1]; kl and entropies are nats per terminal token",
    }

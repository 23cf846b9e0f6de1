"""The CFG task as the trainer sees it: token ids, a task config and a seeded document sampler.

Token ids (DEVELOPERS.md): ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<mask>`` = 3, terminal t = 3 + t.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from functools import cached_property

from physlm.config import Config
from physlm.tasks.base import TokenTable
from physlm.tasks.cfg.corrupt import maybe_corrupt
from physlm.tasks.cfg.grammar import Grammar
from physlm.tasks.cfg.presets import DEFAULT_GRAMMAR, load_grammar
from physlm.tasks.cfg.sample import CFGSample, sample_sentence, sample_symbols

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<mask>")
TERMINAL_OFFSET = len(SPECIAL_TOKENS) - 1
"""token id of terminal t is t + TERMINAL_OFFSET (terminal 1 -> id 4)"""


def cfg_token_table(grammar: Grammar) -> TokenTable:
    """The model vocabulary of a grammar: the four special tokens, then terminals ``"1"..."T"``."""
    terminals = tuple(str(t) for t in range(1, grammar.num_terminals + 1))
    return TokenTable(task=f"cfg:{grammar.name}", tokens=SPECIAL_TOKENS + terminals)


def symbols_to_ids(symbols: Sequence[int]) -> list[int]:
    """Terminal symbols 1..T to model token ids."""
    return [int(t) + TERMINAL_OFFSET for t in symbols]


def ids_to_symbols(ids: Sequence[int], num_terminals: int) -> list[int]:
    """Model token ids back to terminal symbols; raises on a special token or an id past the vocabulary."""
    out = []
    for i, tok in enumerate(ids):
        t = int(tok) - TERMINAL_OFFSET
        if not 1 <= t <= num_terminals:
            raise ValueError(
                f"token id {int(tok)} at position {i} is not a terminal (terminal ids are "
                f"{1 + TERMINAL_OFFSET}..{num_terminals + TERMINAL_OFFSET}); strip BOS/EOS/padding first"
            )
        out.append(t)
    return out


@dataclasses.dataclass(frozen=True)
class CFGTaskConfig(Config):
    """Which grammar to sample and how to corrupt the training stream."""

    grammar: str = DEFAULT_GRAMMAR
    """preset name (see `physlm data grammar-info`) or path to a grammar file (official JSON or text)"""
    corrupt_rate: float = 0.0
    """fraction of sentences that are corrupted (the paper's robustness runs use 0.1)"""
    flip_fraction: float = 0.15
    """fraction of the tokens of a corrupted sentence flipped to another terminal"""

    def __post_init__(self) -> None:
        for name in ("corrupt_rate", "flip_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"CFGTaskConfig.{name} must be in [0, 1], got {value}")


class CFGTask:
    """A stream of fresh CFG sentences as token ids (implements :class:`physlm.tasks.base.Task`)."""

    def __init__(self, config: CFGTaskConfig | None = None, grammar: Grammar | None = None):
        self.config = config if config is not None else CFGTaskConfig()
        self.grammar = grammar if grammar is not None else load_grammar(self.config.grammar)
        self.token_table = cfg_token_table(self.grammar)

    @cached_property
    def num_terminals(self) -> int:
        return self.grammar.num_terminals

    def sample_document(self, rng: random.Random) -> list[int]:
        """Token ids of one sentence without BOS/EOS (corrupted with probability ``corrupt_rate``)."""
        symbols = sample_symbols(self.grammar, rng)
        if self.config.corrupt_rate > 0.0:
            symbols, _ = maybe_corrupt(
                symbols, self.config.corrupt_rate, self.config.flip_fraction, self.num_terminals, rng
            )
        return symbols_to_ids(symbols)

    def sample_labelled(self, rng: random.Random) -> CFGSample:
        """One clean sentence with its labels and tree (for probing and evaluation)."""
        return sample_sentence(self.grammar, rng)

    def __repr__(self) -> str:
        return f"CFGTask(grammar={self.grammar.name!r}, corrupt_rate={self.config.corrupt_rate})"

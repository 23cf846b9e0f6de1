"""What every task gives the rest of physlm: a token table and a seeded document sampler."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from jaxtyping import Int

from physlm.config import Config


@dataclasses.dataclass(frozen=True)
class TokenTable(Config):
    """The model's vocabulary for one task: ``tokens[i]`` is the string of token id ``i``.

    Saved with every checkpoint so a model can always be read back with the right vocabulary.
    """

    task: str
    tokens: tuple[str, ...]
    bos: str = "<bos>"
    eos: str = "<eos>"
    pad: str = "<pad>"
    mask: str = "<mask>"

    def __post_init__(self) -> None:
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError(f"token table for {self.task!r} has duplicate tokens")
        for special in (self.bos, self.eos, self.pad, self.mask):
            if special not in self.tokens:
                raise ValueError(f"special token {special!r} missing from the {self.task!r} token table")

    @property
    def d_vocab(self) -> int:
        """Number of token ids (the model's ``d_vocab``)."""
        return len(self.tokens)

    def id(self, token: str) -> int:
        """The id of one token string."""
        try:
            return self._index()[token]
        except KeyError:
            raise KeyError(f"{token!r} is not in the {self.task!r} token table") from None

    @property
    def bos_id(self) -> int:
        return self.id(self.bos)

    @property
    def eos_id(self) -> int:
        return self.id(self.eos)

    @property
    def pad_id(self) -> int:
        return self.id(self.pad)

    @property
    def mask_id(self) -> int:
        return self.id(self.mask)

    def frame(self, ids: Iterable[int] | Int[np.ndarray, " n"], close: bool = True) -> list[int]:
        """One document as the model reads it: ``BOS ids EOS`` (every packer and prompt builds on this).

        ``close=False`` leaves out the EOS: a prompt the model is to continue.
        """
        index = self._index()
        body = ids.tolist() if isinstance(ids, np.ndarray) else ids  # plain ints, never numpy scalars
        framed = [index[self.bos], *body]
        if close:
            framed.append(index[self.eos])
        return framed

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Token strings to ids."""
        index = self._index()
        return [index[t] for t in tokens]

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Token ids to strings (raises on an id outside the table)."""
        return [self.tokens[int(i)] for i in ids]

    def _index(self) -> dict[str, int]:
        cache = self.__dict__.get("_index_cache")
        if cache is None:
            cache = {t: i for i, t in enumerate(self.tokens)}
            object.__setattr__(self, "_index_cache", cache)
        return cache


@runtime_checkable
class Task(Protocol):
    """A source of fresh training documents. Training streams from it (infinite data, as the papers do)."""

    token_table: TokenTable

    def sample_document(self, rng: random.Random) -> list[int]:
        """Token ids of one document, without BOS/EOS (the trainer adds the separators)."""
        ...

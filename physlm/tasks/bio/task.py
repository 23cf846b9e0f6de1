"""The bio tasks for the trainer: biographies (BIO pretraining) and BIO + QA mixed training."""

from __future__ import annotations

import random

from physlm.tasks.base import TokenTable
from physlm.tasks.bio.config import BioConfig, BioWorld, build_world
from physlm.tasks.bio.pools import ATTRIBUTES
from physlm.tasks.bio.qa import qa_item
from physlm.tasks.bio.tokenizer import bio_token_table


class BioTask:
    """Streams biography entries of all people, drawn uniformly over entries (BIO pretraining, §2.2).

    With ``qa_ratio > 0`` (mixed training, §2.3) a document is instead a QA pair of a P_train person with
    probability ``qa_ratio``. The paper makes whole 512-token windows BIO or QA; here the choice is per
    document, which gives the same token mix but mixes the two kinds inside a window (a documented
    deviation: the trainer packs documents, it does not pick windows).
    """

    def __init__(self, config: BioConfig, qa_ratio: float = 0.0) -> None:
        if not 0.0 <= qa_ratio < 1.0:
            raise ValueError(f"qa_ratio must be in [0, 1), got {qa_ratio}")
        self.config = config
        self.qa_ratio = qa_ratio
        self.world: BioWorld = build_world(config)
        self.token_table: TokenTable = bio_token_table()

    def sample_tokens(self, rng: random.Random) -> tuple[str, ...]:
        """Token strings of one fresh document."""
        if self.qa_ratio and rng.random() < self.qa_ratio:
            person = self.world.people[rng.choice(self.world.train_people)]
            return qa_item(person, rng.choice(ATTRIBUTES)).tokens
        return self.world.sample_entry(rng).tokens

    def sample_document(self, rng: random.Random) -> list[int]:
        """Token ids of one fresh document, without BOS/EOS."""
        return self.token_table.encode(self.sample_tokens(rng))

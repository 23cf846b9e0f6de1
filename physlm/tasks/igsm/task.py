"""The iGSM task for the trainer: fresh problems as token ids (physlm.tasks.base.Task)."""

from __future__ import annotations

import random

from physlm.tasks.base import TokenTable
from physlm.tasks.igsm.config import IGSMConfig
from physlm.tasks.igsm.generator import generate_problem
from physlm.tasks.igsm.problem import Problem
from physlm.tasks.igsm.tokenizer import igsm_token_table


class IGSMTask:
    """Streams ``[PROB] problem [SOL] solution [ANS] answer`` documents (the official layout without BOS/EOS).

    A new target op and perm level are drawn for every document, so difficulties mix within each window
    (spec §8.3, pitfall 1). ``max_tokens`` drops longer problems, as the papers drop problems longer than the
    context window.
    """

    def __init__(self, config: IGSMConfig, max_tokens: int | None = None) -> None:
        self.config = config
        self.max_tokens = max_tokens
        self.token_table: TokenTable = igsm_token_table()

    def sample_problem(self, rng: random.Random) -> Problem:
        """One problem that fits ``max_tokens`` (when set)."""
        while True:
            problem = generate_problem(self.config, rng)
            if self.max_tokens is None or len(problem.document_tokens()) <= self.max_tokens:
                return problem

    def sample_document(self, rng: random.Random) -> list[int]:
        """Token ids of one fresh document, without BOS/EOS."""
        return self.token_table.encode(self.sample_problem(rng).document_tokens())

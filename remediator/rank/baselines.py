"""Baseline rankers: `random` and `llm` (the proposer's own order); `rules` is in `remediator.rank.rules`."""

from __future__ import annotations

import random
from collections.abc import Sequence

from remediator.propose.base import Candidate
from remediator.rank.base import Ranked, by_scores
from remediator.snapshot import Snapshot


class RandomRanker:
    """Uniform over the proposed candidates."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def rank(self, snapshot: Snapshot, candidates: Sequence[Candidate]) -> list[Ranked]:
        return by_scores(candidates, [self._rng.random() for _ in candidates])


class ProposerOrderRanker:
    """The proposer's own first choice: its scores, no learned ranking."""

    name = "llm"

    def rank(self, snapshot: Snapshot, candidates: Sequence[Candidate]) -> list[Ranked]:
        return by_scores(candidates, [c.score for c in candidates])

"""The Ranker plug-in point: order the proposed candidates for this state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from remediator.propose.base import Candidate
from remediator.snapshot import Snapshot


@dataclass(frozen=True)
class Ranked:
    candidate: Candidate
    score: float


class Ranker(Protocol):
    """Returns every candidate it was given, best first, and nothing else."""

    name: str

    def rank(self, snapshot: Snapshot, candidates: Sequence[Candidate]) -> list[Ranked]: ...


def by_scores(candidates: Sequence[Candidate], scores: Sequence[float]) -> list[Ranked]:
    """Candidates sorted by score, highest first; ties keep the proposer's order."""
    order = sorted(range(len(candidates)), key=lambda i: -scores[i])
    return [Ranked(candidates[i], float(scores[i])) for i in order]

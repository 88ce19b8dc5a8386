"""What a proposer hands the ranker: candidate actions with their source and a score.

`Proposer` is a one-method protocol, as a plug-in point should be: the deterministic
catalog proposer, the LLM proposer and test doubles all satisfy it without a base class.
The ranker reads `score` only as a prior; the guards judge `action` whatever proposed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from remediator.actions import Action, ActionKind
from remediator.snapshot import Snapshot

__all__ = ["Candidate", "Proposer"]


@dataclass(frozen=True)
class Candidate:
    """One proposed action.

    `source` is "catalog" or "llm"; `score` in [0, 1] is the proposer's own preference
    (higher first); `rationale` says why this action fits this incident.
    """

    action: Action
    source: str
    score: float
    rationale: str

    @property
    def kind(self) -> ActionKind:
        return self.action.kind


@runtime_checkable
class Proposer(Protocol):
    """Turns an incident into candidate actions, at most one per action kind."""

    def propose(self, snapshot: Snapshot) -> list[Candidate]: ...

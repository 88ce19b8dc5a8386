"""One decision of the loop: rank the candidates, judge them, pick the first that may run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from remediator.actions import Action
from remediator.guards import Decision, Executed, GuardPolicy, Verdict, judge
from remediator.propose.base import Candidate
from remediator.rank.base import Ranked, Ranker
from remediator.snapshot import Snapshot


@dataclass(frozen=True)
class Choice:
    ranked: tuple[Ranked, ...]
    verdicts: tuple[Verdict, ...]  # aligned with `ranked`
    chosen: int | None  # index into `ranked`; None only when nothing may run
    denials: int  # better-ranked candidates the guards refused

    @property
    def candidate(self) -> Candidate | None:
        return self.ranked[self.chosen].candidate if self.chosen is not None else None

    @property
    def verdict(self) -> Verdict | None:
        return self.verdicts[self.chosen] if self.chosen is not None else None


def decide(snapshot: Snapshot, candidates: Sequence[Candidate], ranker: Ranker,
           history: Sequence[Executed], policy: GuardPolicy, now: float,
           policy_of: Callable[[Action], GuardPolicy] | None = None) -> Choice:
    """Every candidate gets a verdict; the best-ranked one not denied is chosen. `policy_of`: the
    guards of the namespace each action acts in (a dependency elsewhere has its own); else `policy`."""
    ranked = ranker.rank(snapshot, candidates)
    verdicts = tuple(judge(r.candidate.action, snapshot, history,
                           policy if policy_of is None else policy_of(r.candidate.action), now) for r in ranked)
    chosen = None
    denials = 0
    for i, v in enumerate(verdicts):
        if v.decision is Decision.DENY:
            denials += 1
            continue
        chosen = i
        break
    return Choice(tuple(ranked), verdicts, chosen, denials)

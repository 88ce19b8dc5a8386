"""The oracle ranker: it knows the injected fault and applies the best fix at once.

Its MTTR is the lower bound the others are measured against. It still goes through the
guards: where the workload is off limits it escalates, as the rules say it must.
"""

from __future__ import annotations

from collections.abc import Sequence

from remediator.actions import ActionKind
from remediator.propose.base import Candidate
from remediator.rank.base import Ranked, by_scores
from remediator.snapshot import Snapshot
from simulator.incident import Incident

A = ActionKind
SETTLE_S = 120.0
MAX_TRIES = 2  # how often the oracle applies one step of its plan


class OracleRanker:
    name = "oracle"

    def __init__(self, incident: Incident) -> None:
        self.incident = incident

    def rank(self, snapshot: Snapshot, candidates: Sequence[Candidate]) -> list[Ranked]:
        inc = self.incident
        executed = [a for a in snapshot.history if a.executed and a.kind is not A.NOOP]
        done = {a.kind for a in executed}
        plan = inc.best_plan()
        pending = [k for k in plan if k not in done]
        settled = not executed or snapshot.at - executed[-1].at >= SETTLE_S
        if not pending and settled and plan != [A.NOOP]:
            # The fix is in and has settled, yet the incident is open (a volume expanded from 97%
            # that still fills within the hour): an expert applies it once more, then waits.
            tries = {k: sum(a.kind is k for a in executed) for k in plan}
            pending = [k for k in plan if tries[k] < MAX_TRIES]
        offered = {c.kind for c in candidates}
        if inc.spec.variant in ("protected", "kube_system") and plan != [A.NOOP]:
            order = [A.ESCALATE]
        elif pending and settled and not offered & set(pending):
            # The rest of the fix lies outside this alert's runbook (a second fault the alert does
            # not name): an expert hands it on rather than wait out the horizon.
            order = [A.ESCALATE]
        elif not pending and executed and snapshot.at - executed[-1].at < SETTLE_S:
            order = [A.NOOP]  # the fix is rolling out: wait for it
        else:
            order = pending + [k for k in inc.fallback_plan() if k not in done] + [A.NOOP, A.ESCALATE]
        scores = [float(len(order) - order.index(c.kind)) if c.kind in order else -1.0 for c in candidates]
        return by_scores(candidates, scores)

"""Simulated incidents through the live loop: the operator's own code path, with the simulator as the cluster.

`remediator.live.loop.Loop` runs unchanged: the Alertmanager alert goes into the ledger as the
receiver puts it there (`Ledger.record_alerts`), the loop observes through the live `Observer`
(its PromQL templates answered from the simulated cluster's series by `SimMetrics`, its objects
from `SimObjects`), decides, records every candidate and execution, verifies recovery against
the SLO with its own tracker and closes the incident with the recovery time it measured. Only
the executor differs: `SimExecutor` records intent and result in the ledger as `KubeExecutor`
does and applies the action to the simulated cluster. The ledger it leaves is what
`train --from-ledger` learns from.

The incidents share one timeline, a week apart, and the ledger keeps simulated time: its guards
read an earlier incident's actions as long past, as a real ledger would (with every incident on
the simulator's one start time, or the ledger on the wall clock, the cooldowns read the agent's
own actions as made in the future and refused every second step).

The simulator keeps its own truth as well (`Incident.recovery_s`, its tracker over the true
signals), which is what a benchmark's MTTR reports; the loop's figure is in the ledger.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remediator.actions import PASSIVE_KINDS, Action, ActionKind
from remediator.guards import GuardPolicy
from remediator.incident import ACTIVE
from remediator.live.config import VerifySettings
from remediator.live.executor import ExecutionResult, idempotency_key
from remediator.live.ledger import ExecutionRow, Ledger, ReceivedAlert
from remediator.live.loop import Loop
from remediator.live.observer import Observer, RawSeries
from remediator.propose.catalog import CatalogProposer
from remediator.rank.base import Ranker
from remediator.replay.source import TraceMetrics
from remediator.replay.trace import RecordedSeries
from remediator.snapshot import Alert, Snapshot
from simulator.cluster import TICK_S, true_signals
from simulator.incident import EPOCH, Incident, IncidentSpec
from simulator.suite import Suite

__all__ = ["LoopResult", "SimExecutor", "SimMetrics", "SimObjects", "run_through_loop"]


class SimMetrics:
    """The observer's `MetricsSource` over a simulated cluster: what Prometheus would hold now
    (`Incident.scraped`: scrapes lag one interval; the exporters the cluster lacks are not there)."""

    def __init__(self, incident: Incident) -> None:
        self.incident = incident
        self._at: float | None = None
        self._source: TraceMetrics | None = None

    def raw(self, selector: str, at: float, window_s: float) -> list[RawSeries]:
        c = self.incident.cluster
        if self._source is None or self._at != c.now:
            series = self.incident.scraped()
            self._source = TraceMetrics(RecordedSeries({"__name__": s.name, **s.labels}, tuple(s.points))
                                        for s in series)
            self._at = c.now
        return self._source.raw(selector, at, window_s)


class SimObjects:
    def __init__(self, incident: Incident) -> None:
        self.incident = incident

    def fetch(self, alert: Alert) -> list[dict[str, Any]]:
        return self.incident.cluster.objects()


class SimExecutor:
    """Records intent and outcome in the ledger as `KubeExecutor` does; applies to the simulated cluster."""

    dry_run = False

    def __init__(self, ledger: Ledger, incident: Incident) -> None:
        self.ledger = ledger
        self.incident = incident

    def execute(self, action: Action, snapshot: Snapshot, *, incident_id: int | None = None,
                candidate_id: int | None = None, key: str | None = None, reason: str = "",
                dry_run: bool | None = None) -> ExecutionResult:
        key = key or idempotency_key(uuid.uuid4())
        exec_id = self.ledger.record_intent(incident_id=incident_id, candidate_id=candidate_id, action=action,
                                            key=key, dry_run=False, plan={"simulated": True, "reason": reason},
                                            inverse=None, reversible=False, inverse_note="simulated")
        inc = self.incident
        if action.kind is ActionKind.ESCALATE:
            ok = inc.execute(action)  # a human takes over and fixes it, as in the simulator's own runs
        else:
            ok = inc.cluster.apply(action)
        self.ledger.finish_execution(exec_id, "done" if ok else "failed",
                                     error=None if ok else "precondition does not hold in the simulated cluster")
        return ExecutionResult(exec_id, key, action, "done" if ok else "failed", False)

    def pending(self) -> list[ExecutionRow]:
        return []  # nothing outlives a simulated incident

    def resume(self, execution_id: int) -> ExecutionResult:
        raise RuntimeError("a simulated execution is never left half-done")

    def abandon(self, execution_id: int, reason: str) -> ExecutionResult:
        raise RuntimeError("a simulated execution is never left half-done")


@dataclass(frozen=True)
class LoopResult:
    fault: str
    recovery_s: float  # the simulator's truth: alert to recovery, the horizon when it never came
    recovered: bool
    ledger_status: str  # how the loop closed it
    ledger_recovery_s: float | None  # what the loop measured
    actions: tuple[str, ...]


SPACING_S = 7 * 86_400.0  # between two incidents' starts: a week keeps the weekday and the hour


class _SimClock:
    """The loop's, the observer's and the ledger's clock: the current incident's simulated time."""

    def __init__(self) -> None:
        self.incident: Incident | None = None

    def __call__(self) -> float:
        return self.incident.cluster.now if self.incident is not None else EPOCH


def _step(incident: Incident, seconds: float) -> None:
    """Advance the cluster, the simulator's tracker following the true signals until it recovers."""
    c = incident.cluster
    end = c.now + seconds
    while c.now < end - 1e-6:
        c.step()
        if not incident.recovered:
            incident.tracker.observe(true_signals(c), c.now)


def run_through_loop(suite: Suite, specs: Sequence[IncidentSpec], ranker: Ranker, store: Path, *,
                     policy: GuardPolicy | None = None, verify: VerifySettings | None = None) -> list[LoopResult]:
    """Each incident of `suite`, one after the other a week apart, handled by the live loop in `auto`
    mode and logged to the ledger at `store`. Nobody answers an approval request here: pass a `policy`
    with `approval_risk=None` (the default one here)."""
    out = []
    policy = policy or GuardPolicy(approval_risk=None)
    verify = verify or VerifySettings()
    clock = _SimClock()
    ledger = Ledger(store, clock=clock)
    topology = suite.topology.build()
    try:
        for i, spec in enumerate(specs):
            clock.incident = inc = Incident(topology, spec, suite.horizon_s, suite.dynamics,
                                            start=EPOCH + i * SPACING_S)
            out.append(_one(inc, ranker, ledger, clock, policy, verify))
    finally:
        ledger.close()
    return out


def _one(inc: Incident, ranker: Ranker, ledger: Ledger, clock: _SimClock, policy: GuardPolicy,
         verify: VerifySettings) -> LoopResult:
    # The operator is configured for the SLI profile the cluster speaks, and its healthy-time sweep
    # recorded the workload's configuration before the fault, as the simulator's own agent knows it.
    observer = Observer(SimMetrics(inc), SimObjects(inc), clock=clock, parallel=1, sli=inc.sli)
    for record in inc.known_good:
        ledger.record_known_good(record)
    loop = Loop(ledger, observer, CatalogProposer(), ranker, policy, SimExecutor(ledger, inc),
                mode="auto", verify=verify, clock=clock)
    receipt = ledger.record_alerts([ReceivedAlert(inc.alert)], received_at=inc.cluster.now)[0]
    incident_id = receipt.incident_id
    assert incident_id is not None, receipt
    limit = inc.alert_at + verify.horizon_s + 4 * verify.interval_s
    while inc.cluster.now <= limit:
        loop.tick(inc.cluster.now)
        row = ledger.incident(incident_id)
        if row is None or row.status not in ACTIVE:
            break
        _step(inc, TICK_S)
    # The alert clears as Alertmanager would say so, and the next simulated incident finds no
    # incident of this one still open or reopened on the same workload.
    ledger.record_alerts([ReceivedAlert(dataclasses.replace(inc.alert, status="resolved"),
                                        ends_at=inc.cluster.now)], received_at=inc.cluster.now)
    row = ledger.incident(incident_id)
    kinds = tuple(e.action.kind.value for e in ledger.executions(incident_id=incident_id)
                  if e.action.kind not in PASSIVE_KINDS or e.action.kind is ActionKind.ESCALATE)
    return LoopResult(inc.spec.fault, inc.recovery_s, inc.recovered, str(row.status) if row else "?",
                      row.recovery_s if row else None, kinds)

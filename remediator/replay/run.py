"""Replay a trace: the agent's first decision exactly, then the recording's own course.

Part one, *recorded and exact*: the observer (`remediator.live.observer.Observer`, the live
agent's) reads the trace through `TraceMetrics` and `StaticObjects` at the trace's decision
time; `build_snapshot`, the proposer, each ranker and the guards run as they do live. Nothing
is modelled: the observation equals the live observer's on the same data. A ranker that waits
(`noop`) changes nothing, so the replay steps on through the recording with the waits in the
incident's history (up to `WAIT_S`); its first action is the decision judged.

Part two, *what the recording shows afterwards*: the recording cannot know what the chosen
action would have changed, so the replay does not pretend. It steps the same observation
through the rest of the window and reports when the recorded series met the SLO again
(`remediator.verify.RecoveryTracker`) whatever anyone did then: the time the incident took
without this agent. It is no MTTR of the agent, and the report keeps the two apart.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from remediator.actions import ActionKind
from remediator.agent import decide
from remediator.guards import GuardPolicy
from remediator.live.observer import Observation, ObservationError, Observer, QueryTemplates, StaticObjects
from remediator.propose.base import Proposer
from remediator.propose.catalog import CatalogProposer
from remediator.rank.base import Ranker
from remediator.replay.judge import judge_action
from remediator.replay.source import TraceMetrics
from remediator.replay.trace import Trace
from remediator.snapshot import Attempt
from remediator.verify import RecoveryTracker, unmet

__all__ = ["WAIT_S", "Decision", "ReplayResult", "observe_trace", "replay_trace"]

# How long a ranker may wait (choose noop) on a replayed alert before its wait is its decision.
WAIT_S = 300.0


@dataclass(frozen=True)
class Decision:
    ranker: str
    action: str | None
    target: dict[str, str] | None
    verdict: str | None
    reason: str
    right: bool | None
    why: str
    acted_on: str = ""
    decided_after_s: float = 0.0  # after the alert's decision time: the ranker waited (noop) this long
    waited: int = 0  # how many noop steps before it
    denials: int = 0  # candidates the guards denied before the choice

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ReplayResult:
    trace: Trace
    observation: Observation | None
    problem: str | None  # why no decision could be taken (not observable)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    decisions: dict[str, Decision] = field(default_factory=dict)
    recorded_recovery_s: float | None = None  # when the recording met the SLO again (no agent involved)
    recorded_unmet_at_end: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        t, obs = self.trace, self.observation
        snap = obs.snapshot if obs else None
        fault = t.fault
        return {
            "trace": t.name, "alert": {"name": t.alert.name, "labels": dict(t.alert.labels),
                                       "starts_at": t.alert.starts_at},
            "decide_at": t.decide_at, "alerting": dict(t.alerting),
            "fault": None if fault is None else {
                "kind": fault.kind, "target": fault.target.name if fault.target else None, "pod": fault.pod},
            "exact": {
                "problem": self.problem,
                "workload": str(snap.workload) if snap and snap.workload else None,
                "missing": sorted({m.metric for m in obs.missing} | set(snap.missing)) if obs and snap else [],
                "signals": {f.name: _finite(getattr(snap.signals, f.name)) for f in dataclasses.fields(snap.signals)}
                if snap else {},
                "candidates": self.candidates,
                "decisions": {k: d.to_dict() for k, d in self.decisions.items()},
            },
            "recorded_after": {
                "what": "the recording's own course after the decision; the chosen action is not in it",
                "slo_met_again_after_s": self.recorded_recovery_s,
                "unmet_at_end": self.recorded_unmet_at_end,
            },
        }


def _finite(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)


def trace_observer(trace: Trace, templates: QueryTemplates | None = None) -> Observer:
    """The live observer, reading the trace. Staleness allows one recorded step of lag."""
    return Observer(TraceMetrics(trace.series), StaticObjects(trace.objects), templates=templates,
                    max_staleness_s=max(180.0, 3.0 * trace.step_s), parallel=1)


def observe_trace(trace: Trace, at: float | None = None, templates: QueryTemplates | None = None) -> Observation:
    return trace_observer(trace, templates).observe(trace.alert, now=trace.decide_at if at is None else at)


def replay_trace(trace: Trace, rankers: Mapping[str, Ranker], *, proposer: Proposer | None = None,
                 policy: GuardPolicy | None = None, templates: QueryTemplates | None = None,
                 follow: bool = True, wait_s: float = WAIT_S) -> ReplayResult:
    proposer = proposer or CatalogProposer()
    policy = policy or GuardPolicy()
    observer = trace_observer(trace, templates)
    try:
        obs = observer.observe(trace.alert, now=trace.decide_at)
    except ObservationError as e:
        return ReplayResult(trace, None, e.reason)
    result = ReplayResult(trace, obs, obs.problem)
    if follow:
        _follow(observer, trace, result)
    if not obs.usable or not trace.alerting.get("fired", True) and not trace.alerting.get("forced"):
        return result  # no data to act on, or no alert would have woken the agent
    snap = obs.snapshot
    candidates = proposer.propose(snap)
    result.candidates = [{"action": c.kind.value, "target": str(c.action.target), "source": c.source}
                         for c in candidates]
    for name, ranker in rankers.items():
        result.decisions[name] = _first_action(observer, trace, name, ranker, proposer, policy, wait_s)
    return result


def _first_action(observer: Observer, trace: Trace, name: str, ranker: Ranker, proposer: Proposer,
                  policy: GuardPolicy, wait_s: float) -> Decision:
    """The ranker's first decision that is not `noop`, or its last `noop` after `wait_s`.

    Waiting changes nothing in the cluster, so while the ranker only waits the recording is
    still exactly what it would observe: each step re-observes the trace with the waits in the
    incident's history, as the live loop does. The first action ends what a recording can judge."""
    t, waited = trace.decide_at, 0
    history: tuple[Attempt, ...] = ()
    step = max(trace.step_s, 1.0)
    while True:
        try:
            obs = observer.observe(trace.alert, now=t, history=history)
        except ObservationError:
            obs = None
        if obs is not None and obs.usable:
            snap = obs.snapshot
            candidates = proposer.propose(snap)
            choice = decide(snap, candidates, ranker, (), policy, t)
            cand, verdict = choice.candidate, choice.verdict
            if cand is None or cand.kind is not ActionKind.NOOP or t + step > min(
                    trace.end, trace.decide_at + wait_s) + 1e-6:
                break
            history = (*history, Attempt(ActionKind.NOOP, t, executed=True, target=str(cand.action.target)))
            waited += 1
        elif t + step > min(trace.end, trace.decide_at + wait_s) + 1e-6:
            problem = (obs.problem if obs else None) or "not observable"
            return Decision(ranker=name, action=None, target=None, verdict=None, reason=problem, right=None,
                            why="no usable observation", decided_after_s=t - trace.decide_at)
        t += step
    j = judge_action(trace.fault, cand.action if cand else None, trace.objects)
    target = cand.action.target if cand else None
    return Decision(
        ranker=name, action=cand.kind.value if cand else None,
        target={"kind": target.kind, "namespace": target.namespace, "name": target.name} if target else None,
        verdict=verdict.decision.value if verdict else None, reason=verdict.reason if verdict else "",
        right=j.right, why=j.why, acted_on=j.acted_on, decided_after_s=round(t - trace.decide_at, 1), waited=waited,
        denials=choice.denials)


def _follow(observer: Observer, trace: Trace, result: ReplayResult) -> None:
    """Part two: step the observation through the recording after the decision."""
    step = max(trace.step_s, 1.0)
    tracker: RecoveryTracker | None = None
    t = trace.decide_at
    last = None
    while t <= trace.end + 1e-6:
        try:
            obs = observer.observe(trace.alert, now=t)
        except ObservationError:
            break
        if obs.usable:
            tracker = tracker or RecoveryTracker(obs.snapshot.slo)
            if tracker.observe(obs.snapshot.signals, t) and result.recorded_recovery_s is None:
                result.recorded_recovery_s = round(max(0.0, (tracker.recovered_at or t) - trace.alert.starts_at), 1)
                return
            last = obs
        t += step
    if last is not None:
        result.recorded_unmet_at_end = unmet(last.snapshot.signals, last.snapshot.slo)


def summarize(results: Sequence[ReplayResult], rankers: Sequence[str]) -> dict[str, Any]:
    """Rates per ranker over labelled traces: right on faults that alerted, acted on fault-free stretches."""
    out: dict[str, Any] = {}
    faults = [r for r in results if r.trace.fault is not None and not r.trace.fault.is_none]
    alerted = [r for r in faults if r.trace.alerting.get("fired", True) and r.decisions]
    clean = [r for r in results if r.trace.fault is not None and r.trace.fault.is_none and r.decisions]
    for name in rankers:
        right = [r for r in alerted if r.decisions[name].right]
        kind_right = [r for r in alerted if name in r.decisions and "wrong workload" in r.decisions[name].why]
        acted = [r for r in clean if not r.decisions[name].right]
        out[name] = {
            "faults": len(faults), "faults_alerted": len(alerted),
            "right": len(right), "right_rate": round(len(right) / len(alerted), 4) if alerted else None,
            "right_kind_wrong_workload": len(kind_right),
            "fault_free": len(clean), "fault_free_acted": len(acted),
            "fault_free_acted_rate": round(len(acted) / len(clean), 4) if clean else None,
        }
    return out

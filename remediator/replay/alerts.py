"""The project's SLO alert rules, evaluated over replayed series: which alert a recording raises.

Two rules, one per SLI, against the service's own SLO (`Snapshot.slo`: its annotations, else the
default), with Prometheus' `for:` semantics (the condition holds at every evaluation for `for_s`
and then fires), labels `{namespace, service}` as our runbooks expect:

| rule | condition | for |
|---|---|---|
| `ServiceErrorBudgetBurn` | error ratio above the SLO's error ratio | 2 min |
| `ServiceLatencyHigh` | p99 latency above the SLO's p99 | 2 min |

A condition over an SLI that was not observed (`Snapshot.unknown_signals`) is false: a rule
never fires on a signal the data does not have. The observation is the live observer's over
the trace (`replay.run.trace_observer`), so the alert is the one the replayed series raise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from remediator.live.observer import ObservationError, Observer
from remediator.snapshot import Alert, Snapshot

__all__ = ["SLO_RULES", "Fired", "SloRule", "first_firing"]


@dataclass(frozen=True)
class SloRule:
    alert: str
    signal: str
    threshold: Callable[[Snapshot], float]
    for_s: float = 120.0
    severity: str = "critical"

    def breached(self, snap: Snapshot) -> tuple[bool, float]:
        """(whether the condition holds, by how much: value / threshold)."""
        if self.signal in snap.unknown_signals:
            return False, 0.0
        value, limit = float(getattr(snap.signals, self.signal)), self.threshold(snap)
        return value > limit, value / limit if limit > 0 else 0.0


SLO_RULES: tuple[SloRule, ...] = (
    SloRule("ServiceErrorBudgetBurn", "error_ratio", lambda s: s.slo.error_ratio),
    SloRule("ServiceLatencyHigh", "latency_p99_s", lambda s: s.slo.latency_p99_s),
)


@dataclass(frozen=True)
class Fired:
    rule: SloRule
    service: str
    at: float  # when the rule fired (the end of its `for`)
    pending_since: float
    severity_ratio: float  # value / threshold when it fired

    def alert(self, namespace: str) -> Alert:
        return Alert(self.rule.alert, {"namespace": namespace, "service": self.service,
                                       "severity": self.rule.severity},
                     {"summary": f"{self.service}: {self.rule.signal} above its SLO for {self.rule.for_s:g}s"},
                     starts_at=self.at)


def first_firing(observer: Observer, namespace: str, services: Sequence[str], times: Sequence[float],
                 rules: Sequence[SloRule] = SLO_RULES) -> Fired | None:
    """The first rule to fire for any of `services` at the evaluation `times` (oldest first);
    at the same minute the largest breach wins. None when nothing fires."""
    pending: dict[tuple[str, str], float] = {}
    for t in times:
        fired: list[Fired] = []
        for service in services:
            try:
                snap = observer.observe(Alert("SloRuleEvaluation", {"namespace": namespace, "service": service},
                                              starts_at=t), now=t).snapshot
            except ObservationError:
                continue
            for rule in rules:
                key = (rule.alert, service)
                hot, ratio = rule.breached(snap)
                if not hot:
                    pending.pop(key, None)
                    continue
                since = pending.setdefault(key, t)
                if t - since >= rule.for_s - 1e-6:
                    fired.append(Fired(rule, service, t, since, ratio))
        if fired:
            return max(fired, key=lambda f: (f.severity_ratio, f.service))
    return None

"""The `rules` ranker: a calibrated expert table over the signals an SRE reads.

The table is code (which evidence points at which remedy, in the runbooks' diagnosis order);
what counts as evidence is data (`RuleThresholds`, shipped in `remediator/data/rules.yaml` and
calibrated on the training suite by `remediator.calibrate`). It is meant as the strongest fixed
table we can write, so that the learned policy is measured against a real baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from remediator.actions import ActionKind
from remediator.propose.base import Candidate
from remediator.rank.base import Ranked, by_scores
from remediator.rank.thresholds import RuleThresholds, shipped_thresholds
from remediator.snapshot import Signals, Slo, Snapshot

__all__ = ["RulesRanker", "expert_plan"]

A = ActionKind


@dataclass(frozen=True)
class _Reading:
    """The dashboards as the expert table reads them: the raw signals plus the judgements
    (crashing, slow, ...) that several rows share, so each row stays one line."""

    g: Signals
    slo: Slo
    t: RuleThresholds
    recent_rollout: bool
    crashing: bool
    slow: bool
    erroring: bool
    deps_broken: bool
    since_alert_s: float = 0.0
    unknown: frozenset[str] = frozenset()  # signals not observed: no row reads their default as a fact

    def knows(self, signal: str) -> bool:
        return signal not in self.unknown

    @classmethod
    def of(cls, s: Snapshot, t: RuleThresholds) -> _Reading:
        g, slo = s.signals, s.slo
        deps_broken = g.deps > 0 and (g.dep_available_ratio < 1 or g.dep_latency_p99_s > slo.latency_p99_s
                                      or g.dep_error_ratio > slo.error_ratio * t.dep_error_factor)
        return cls(g=g, slo=slo, t=t, unknown=s.unknown_signals, since_alert_s=s.since_alert_s,
                   # A rollout made during the incident is the agent's own restart or rollback, not a suspect.
                   recent_rollout=(s.since_alert_s < g.rollout_age_s < t.rollout_window_s
                                   and g.has_previous_revision > 0),
                   crashing=g.crashloop_fraction > 0 or g.restarts_per_min > 0.2,
                   slow=g.latency_p99_s > slo.latency_p99_s,
                   erroring=g.error_ratio > slo.error_ratio,
                   deps_broken=deps_broken)

    @property
    def troubled(self) -> bool:
        """The page is about the service's SLIs (as opposed to capacity or pods)."""
        return self.slow or self.erroring

    @property
    def config_changed(self) -> bool:
        """A config it uses differs from its last-known-good version: edited within the config window,
        after the last rollout from before the incident (one made during it is the agent's own), and
        not followed by minutes of a healthy SLO (then the errors have another cause)."""
        g = self.g
        if not (g.config_revertible > 0 and g.config_changed_age_s < self.t.config_window_s):
            return False
        if self.since_alert_s < g.rollout_age_s <= g.config_changed_age_s:
            return False  # rolled out after the edit, before the alert: the rollout is the suspect
        held = g.config_changed_age_s - g.errors_since_s if g.errors_since_s > 0 else 0.0
        return held < self.t.config_held_s

    @property
    def oom(self) -> bool:
        return self.g.oom_fraction >= self.t.oom_ratio

    @property
    def spike(self) -> bool:
        g = self.g
        at_max = bool(g.hpa_present) and g.hpa_max > 0 and g.hpa_current >= g.hpa_max
        return at_max and g.request_rate_baseline > 0 and g.request_rate >= self.t.spike_ratio * g.request_rate_baseline

    @property
    def hung(self) -> bool:
        """Requests time out while every pod is ready and the dependencies are healthy: the
        processes hang (no liveness probe catches them)."""
        g = self.g
        return (g.latency_p99_s >= self.t.hung_latency_s and not self.deps_broken and not self.crashing
                and g.pods > 0 and g.ready_pods >= g.pods)


_Row = tuple[Callable[[_Reading], bool], tuple[ActionKind, ...]]

# Causes an SRE can see, in the runbooks' diagnosis order: capacity and volumes, the pod's
# last termination reason, the dependencies (before touching the workload itself), recent
# rollouts, then saturation and hung processes. Every row that holds adds its actions.
_CAUSES: tuple[_Row, ...] = (
    (lambda r: r.g.desired_replicas < 1 and r.g.baseline_replicas >= 1, (A.RESTORE_REPLICAS,)),
    # Traffic and room before the pods: a Service routing nowhere, pods Pending beside a cordoned node.
    (lambda r: r.g.service_revertible > 0 and r.g.service_ready_endpoints < 1, (A.RESTORE_SERVICE,)),
    (lambda r: r.g.pending_pods > 0 and r.g.cordoned_ready_nodes > 0, (A.UNCORDON_NODE,)),
    (lambda r: bool(r.g.pvc_present) and (r.g.pvc_used_ratio > r.t.pvc_used_ratio
                                          or r.g.pvc_minutes_to_full < r.t.pvc_minutes_to_full),
     (A.EXPAND_VOLUME,)),
    (lambda r: r.g.node_ready < 1.0, (A.CORDON_DRAIN_NODE, A.RESTART_ROLLOUT)),
    (lambda r: r.oom, (A.RAISE_MEMORY_LIMIT,)),
    # A caller that checks its dependencies on start crash-loops while one is down: fix the
    # dependency, then restart the caller out of its back-off.
    (lambda r: r.crashing and r.deps_broken, (A.RESTART_DEPENDENCY, A.RESTART_ROLLOUT)),
    # What changed last: a config edited after the last rollout is reverted before rolling back;
    # a Secret edited in place cannot be put back (its values were never kept): a human does it.
    (lambda r: (r.crashing or r.erroring) and r.config_changed, (A.REVERT_CONFIG,)),
    (lambda r: (r.crashing or r.erroring) and r.g.config_secret_edited > 0, (A.ESCALATE,)),
    (lambda r: r.crashing and r.recent_rollout, (A.ROLLBACK_ROLLOUT,)),
    # Pods that exit with an error of their own (no OOM, dependencies healthy) on a revision
    # that has a predecessor: the code is broken, whenever it went out (unless a config changed since).
    (lambda r: r.crashing and not r.deps_broken and r.g.error_exit_fraction > 0.5
     and r.g.has_previous_revision > 0 and not r.config_changed, (A.ROLLBACK_ROLLOUT,)),
    (lambda r: r.crashing, (A.RESTART_ROLLOUT,)),
    (lambda r: r.troubled and r.deps_broken, (A.RESTART_DEPENDENCY,)),
    (lambda r: r.erroring and r.recent_rollout, (A.ROLLBACK_ROLLOUT,)),
    (lambda r: r.slow and r.spike, (A.RAISE_HPA_MAX, A.RAISE_CPU_LIMIT)),
    (lambda r: r.slow and r.g.throttle_ratio > r.t.throttle_ratio, (A.RAISE_CPU_LIMIT, A.SCALE_OUT)),
    (lambda r: r.troubled and r.hung, (A.RESTART_ROLLOUT,)),
)

# Generic remedies, tried after the causes above once the page is known not to be a transient.
_GENERIC: tuple[_Row, ...] = (
    (lambda r: r.troubled, (A.RESTART_ROLLOUT, A.SCALE_OUT)),
    (lambda r: r.knows("ready_pods") and r.g.pods > r.g.ready_pods
     or r.knows("available_replicas") and r.g.available_replicas < r.g.desired_replicas,
     (A.DELETE_POD, A.RESTART_ROLLOUT)),
)


def _rows_that_hold(rows: Sequence[_Row], r: _Reading) -> list[ActionKind]:
    return [kind for holds, kinds in rows if holds(r) for kind in kinds]


# Steps that follow the one before at once, without waiting for it to settle: a caller
# crash-looping on a dead dependency sits out its back-off unless it is restarted too.
_CHAINED = {(A.RESTART_DEPENDENCY, A.RESTART_ROLLOUT)}


def _untried(s: Snapshot, plan: list[ActionKind], settle_s: float, crashing: bool) -> list[ActionKind]:
    """The plan minus what this incident already tried, waiting while the last change settles."""
    tried = {a.kind for a in s.history if a.executed}
    acted = [a for a in s.history if a.executed and a.kind not in (A.NOOP, A.ESCALATE)]
    plan = [k for k in dict.fromkeys(plan) if k not in tried]
    if acted and s.at - acted[-1].at < settle_s:
        if crashing and plan and (acted[-1].kind, plan[0]) in _CHAINED:
            return plan
        return [A.NOOP]  # give the last change time to take effect before judging it
    if not plan:
        # Healthy-looking signals mean a transient: wait. After acting in vain, hand over.
        plan = [A.ESCALATE if tried - {A.NOOP} else A.NOOP]
    return plan


def expert_plan(s: Snapshot, t: RuleThresholds | None = None) -> list[ActionKind]:
    """What a seasoned SRE tries, in order, reading the usual dashboards for this alert."""
    t = t or shipped_thresholds()
    if s.protected or s.namespace == "kube-system":
        return [A.ESCALATE]  # nobody here touches these without their owners
    r = _Reading.of(s, t)
    plan = _rows_that_hold(_CAUSES, r)
    # A rollback first: it would undo any change made before it (as `kubectl rollout undo` does).
    plan.sort(key=lambda k: k is not A.ROLLBACK_ROLLOUT)
    if r.troubled and not plan and s.since_alert_s < t.transient_s:
        # No cause in sight: most such pages are transient. Look again before touching anything.
        return [A.NOOP]
    return _untried(s, plan + _rows_that_hold(_GENERIC, r), t.settle_s, r.crashing)


class RulesRanker:
    """The expert table (`expert_plan`) as a ranker, with the shipped thresholds or the given ones."""

    name = "rules"

    def __init__(self, thresholds: RuleThresholds | None = None) -> None:
        self.thresholds = thresholds or shipped_thresholds()

    def rank(self, snapshot: Snapshot, candidates: Sequence[Candidate]) -> list[Ranked]:
        plan = expert_plan(snapshot, self.thresholds)
        n = len(plan)
        # When no step of the plan can be taken (not proposed, or the guards deny it): wait while
        # nothing was tried; after acting in vain, hand over rather than watch.
        acted = any(a.executed and a.kind not in (A.NOOP, A.ESCALATE) for a in snapshot.history)
        scores = []
        for c in candidates:
            if c.action.kind in plan:
                scores.append(float(n - plan.index(c.action.kind)))
            elif c.action.kind is A.NOOP:
                scores.append(-2.0 if acted else -1.0)
            elif c.action.kind is A.ESCALATE:
                scores.append(-1.0 if acted else -2.0)
            else:
                scores.append(-3.0 - c.score * 0.01)
        return by_scores(candidates, scores)

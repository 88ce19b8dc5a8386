"""Baseline rankers: `random`, `llm` (the proposer's own order) and `rules`, the expert table."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from remediator.actions import ActionKind
from remediator.propose.base import Candidate
from remediator.rank.base import Ranked, by_scores
from remediator.snapshot import Signals, Slo, Snapshot

A = ActionKind
# An SRE waits this long after a change before deciding it did not work.
SETTLE_S = 150.0
# Pages with no visible cause that clear within this long after firing are transients.
TRANSIENT_S = 180.0


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


@dataclass(frozen=True)
class _Reading:
    """The dashboards as the expert table reads them: the raw signals plus the judgements
    (crashing, slow, ...) that several rows share, so each row stays one line."""

    g: Signals
    slo: Slo
    recent_rollout: bool
    crashing: bool
    slow: bool
    erroring: bool

    @classmethod
    def of(cls, s: Snapshot) -> _Reading:
        g, slo = s.signals, s.slo
        return cls(g=g, slo=slo,
                   recent_rollout=g.rollout_age_s < 3600 and g.has_previous_revision > 0,
                   crashing=g.crashloop_fraction > 0 or g.restarts_per_min > 0.2,
                   slow=g.latency_p99_s > slo.latency_p99_s,
                   erroring=g.error_ratio > slo.error_ratio)

    @property
    def troubled(self) -> bool:
        """The page is about the service's SLIs (as opposed to capacity or pods)."""
        return self.slow or self.erroring


_Row = tuple[Callable[[_Reading], bool], tuple[ActionKind, ...]]

# Causes an SRE can see, in the runbooks' diagnosis order: capacity and volumes, the pod's
# last termination reason, recent rollouts, then saturation and dependencies. Every row
# that holds adds its actions, in this order.
_CAUSES: tuple[_Row, ...] = (
    (lambda r: r.g.desired_replicas < 1 and r.g.baseline_replicas >= 1, (A.RESTORE_REPLICAS,)),
    (lambda r: bool(r.g.pvc_present) and (r.g.pvc_used_ratio > 0.85 or r.g.pvc_minutes_to_full < 120),
     (A.EXPAND_VOLUME,)),
    (lambda r: r.g.node_ready < 1.0, (A.CORDON_DRAIN_NODE, A.RESTART_ROLLOUT)),
    (lambda r: r.g.oom_fraction > 0 or r.g.mem_ratio > 0.9, (A.RAISE_MEMORY_LIMIT,)),
    (lambda r: r.crashing and r.recent_rollout, (A.ROLLBACK_ROLLOUT,)),
    (lambda r: r.crashing, (A.RESTART_ROLLOUT, A.RESTART_DEPENDENCY)),
    (lambda r: r.slow and bool(r.g.hpa_present) and r.g.hpa_max > 0 and r.g.hpa_current >= r.g.hpa_max,
     (A.RAISE_HPA_MAX,)),
    (lambda r: r.erroring and r.recent_rollout, (A.ROLLBACK_ROLLOUT,)),
    (lambda r: r.erroring and (r.g.dep_error_ratio > r.slo.error_ratio * 5 or r.g.dep_available_ratio < 1),
     (A.RESTART_DEPENDENCY,)),
    (lambda r: r.slow and r.g.throttle_ratio > 0.25, (A.RAISE_CPU_LIMIT, A.SCALE_OUT)),
    (lambda r: r.slow and r.g.dep_latency_p99_s > r.slo.latency_p99_s, (A.RESTART_DEPENDENCY,)),
)

# Generic remedies, tried after the causes above once the page is known not to be a transient.
_GENERIC: tuple[_Row, ...] = (
    (lambda r: r.troubled, (A.RESTART_ROLLOUT, A.SCALE_OUT)),
    (lambda r: r.g.pods > r.g.ready_pods or r.g.available_replicas < r.g.desired_replicas,
     (A.DELETE_POD, A.RESTART_ROLLOUT)),
)


def _rows_that_hold(rows: Sequence[_Row], r: _Reading) -> list[ActionKind]:
    return [kind for holds, kinds in rows if holds(r) for kind in kinds]


def _untried(s: Snapshot, plan: list[ActionKind]) -> list[ActionKind]:
    """The plan minus what this incident already tried, waiting while the last change settles."""
    tried = {a.kind for a in s.history if a.executed}
    acted = [a for a in s.history if a.executed and a.kind not in (A.NOOP, A.ESCALATE)]
    if acted and s.at - acted[-1].at < SETTLE_S:
        return [A.NOOP]  # give the last change time to take effect before judging it
    plan = [k for k in dict.fromkeys(plan) if k not in tried]
    if not plan:
        # Healthy-looking signals mean a transient: wait. After acting in vain, hand over.
        plan = [A.ESCALATE if tried - {A.NOOP} else A.NOOP]
    return plan


def expert_plan(s: Snapshot) -> list[ActionKind]:
    """What a seasoned SRE tries, in order, reading the usual dashboards for this alert.

    It reads the same signals the policy sees and follows the public runbooks' diagnosis
    order: capacity and volumes first, then the pod's last termination reason, then recent
    rollouts, then resource saturation and dependencies. It is deliberately the strongest
    fixed table we could write, not a strawman.
    """
    if s.protected or s.namespace == "kube-system":
        return [A.ESCALATE]  # nobody here touches these without their owners
    r = _Reading.of(s)
    plan = _rows_that_hold(_CAUSES, r)
    if r.troubled and not plan and s.since_alert_s < TRANSIENT_S:
        # No cause in sight: most such pages are transient. Look again before touching anything.
        return [A.NOOP]
    return _untried(s, plan + _rows_that_hold(_GENERIC, r))


class RulesRanker:
    """The hand-written expert table (`expert_plan`) as a ranker."""

    name = "rules"

    def rank(self, snapshot: Snapshot, candidates: Sequence[Candidate]) -> list[Ranked]:
        plan = expert_plan(snapshot)
        n = len(plan)
        scores = []
        for c in candidates:
            if c.action.kind in plan:
                scores.append(float(n - plan.index(c.action.kind)))
            elif c.action.kind is A.NOOP:
                scores.append(-1.0)
            elif c.action.kind is A.ESCALATE:
                scores.append(-2.0)
            else:
                scores.append(-3.0 - c.score * 0.01)
        return by_scores(candidates, scores)

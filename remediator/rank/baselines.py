"""Baseline rankers: `random`, `llm` (the proposer's own order) and `rules`, the expert table."""

from __future__ import annotations

import random
from collections.abc import Sequence

from remediator.actions import ActionKind
from remediator.propose.base import Candidate
from remediator.rank.base import Ranked, by_scores
from remediator.snapshot import Snapshot

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


def expert_plan(s: Snapshot) -> list[ActionKind]:
    """What a seasoned SRE tries, in order, reading the usual dashboards for this alert.

    It reads the same signals the policy sees and follows the public runbooks' diagnosis
    order: capacity and volumes first, then the pod's last termination reason, then recent
    rollouts, then resource saturation and dependencies. It is deliberately the strongest
    fixed table we could write, not a strawman.
    """
    g = s.signals
    slo = s.slo
    if s.protected or s.namespace == "kube-system":
        return [A.ESCALATE]  # nobody here touches these without their owners
    plan: list[ActionKind] = []
    if g.desired_replicas < 1 and g.baseline_replicas >= 1:
        plan.append(A.RESTORE_REPLICAS)
    if g.pvc_present and (g.pvc_used_ratio > 0.85 or g.pvc_minutes_to_full < 120):
        plan.append(A.EXPAND_VOLUME)
    if g.node_ready < 1.0:
        plan += [A.CORDON_DRAIN_NODE, A.RESTART_ROLLOUT]
    recent_rollout = g.rollout_age_s < 3600 and g.has_previous_revision > 0
    crashing = g.crashloop_fraction > 0 or g.restarts_per_min > 0.2
    slow = g.latency_p99_s > slo.latency_p99_s
    if g.oom_fraction > 0 or g.mem_ratio > 0.9:
        plan.append(A.RAISE_MEMORY_LIMIT)
    if crashing:
        if recent_rollout:
            plan.append(A.ROLLBACK_ROLLOUT)
        plan += [A.RESTART_ROLLOUT, A.RESTART_DEPENDENCY]
    if slow and g.hpa_present and g.hpa_max > 0 and g.hpa_current >= g.hpa_max:
        plan.append(A.RAISE_HPA_MAX)
    if g.error_ratio > slo.error_ratio:
        if recent_rollout:
            plan.append(A.ROLLBACK_ROLLOUT)
        if g.dep_error_ratio > slo.error_ratio * 5 or g.dep_available_ratio < 1:
            plan.append(A.RESTART_DEPENDENCY)
    if slow:
        if g.throttle_ratio > 0.25:
            plan += [A.RAISE_CPU_LIMIT, A.SCALE_OUT]
        if g.dep_latency_p99_s > slo.latency_p99_s:
            plan.append(A.RESTART_DEPENDENCY)
    if (slow or g.error_ratio > slo.error_ratio) and not plan and s.since_alert_s < TRANSIENT_S:
        # No cause in sight: most such pages are transient. Look again before touching anything.
        return [A.NOOP]
    if slow or g.error_ratio > slo.error_ratio:
        plan += [A.RESTART_ROLLOUT, A.SCALE_OUT]
    if g.pods > g.ready_pods or g.available_replicas < g.desired_replicas:
        plan += [A.DELETE_POD, A.RESTART_ROLLOUT]
    tried = {a.kind for a in s.history if a.executed}
    acted = [a for a in s.history if a.executed and a.kind not in (A.NOOP, A.ESCALATE)]
    if acted and s.at - acted[-1].at < SETTLE_S:
        return [A.NOOP]  # give the last change time to take effect before judging it
    plan = [k for k in dict.fromkeys(plan) if k not in tried]
    if not plan:
        # Healthy-looking signals mean a transient: wait. After acting in vain, hand over.
        plan = [A.ESCALATE if tried - {A.NOOP} else A.NOOP]
    return plan


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

"""When an alert fires: its rule's expression, read off the simulated cluster, held for the rule's `for:`.

Prometheus fires an alert only after its expression has held at every evaluation for the
rule's `for:` duration (15 minutes for most kube-prometheus alerts), counted from the moment
it turned true; a gap resets the count. `RuleClock` does that per tick over the cluster's true
state, the expression of each rule approximated on what the simulator models.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

from remediator.snapshot import Slo
from simulator.cluster import Cluster
from simulator.dialect import (
    NO_SLI,
    ROLLOUT_STALL_WINDOW_S,
    RULE_FOR_S,
    RULE_WINDOW_S,
    THROTTLE_RULE_RATIO,
    VOLUME_RULE_FREE,
)

_SLO = Slo()


class RuleClock:
    """Feed it every tick (`tick`); it says when the named alert's rule has held for its `for:`.
    The labels are the alert's (KubeNodeNotReady reads its node from them)."""

    def __init__(self) -> None:
        self._pending: dict[str, float] = {}
        self.crash_seen: float | None = None
        # (t, {pod: (cfs periods, throttled periods)}) over the last RULE_WINDOW_S
        self._cfs: deque[tuple[float, dict[str, tuple[float, float]]]] = deque()
        # (t, the StatefulSet's updated replicas) over the last ROLLOUT_STALL_WINDOW_S
        self._updated: deque[tuple[float, int]] = deque()

    def tick(self, cluster: Cluster, name: str, labels: Mapping[str, str]) -> bool:
        """Record this tick; True when `name` fires now (its expression held for its whole `for:`)."""
        t = cluster.now
        w = cluster.focus
        if any(t < p.waiting_until for p in w.pods):
            self.crash_seen = t
        self._cfs.append((t, {p.name: (p.counters[1], p.counters[2]) for p in w.pods}))
        while self._cfs and self._cfs[0][0] < t - RULE_WINDOW_S - 1e-6:
            self._cfs.popleft()
        if w.kind == "StatefulSet":
            self._updated.append((t, w.updated_replicas))
            while self._updated[0][0] < t - ROLLOUT_STALL_WINDOW_S - 1e-6:
                self._updated.popleft()
        # Every rule is evaluated every time, whichever alert the fault would raise now: a rule's
        # count starts when its own expression turns true.
        for rule_name, rule in _RULES.items():
            if rule(self, cluster, labels):
                self._pending.setdefault(rule_name, t)
            else:
                self._pending.pop(rule_name, None)
        since = self._pending.get(name)
        return since is not None and t - since >= RULE_FOR_S.get(name, 0.0) - 1e-6

    def rollout_stalled(self) -> bool:
        """No change in the StatefulSet's updated replicas over the window (`changes(...[10m]) == 0`)."""
        return bool(self._updated) and len({n for _, n in self._updated}) == 1

    def throttled(self) -> float:
        """The most throttled pod's share of CFS periods over the window (CPUThrottlingHigh's ratio)."""
        if len(self._cfs) < 2:
            return 0.0
        (_, old), (_, new) = self._cfs[0], self._cfs[-1]
        ratios = [(new[p][1] - old[p][1]) / (new[p][0] - old[p][0]) for p in new
                  if p in old and new[p][0] > old[p][0]]
        return max(ratios, default=0.0)


def _crash_looping(clock: RuleClock, c: Cluster, labels: Mapping[str, str]) -> bool:
    # max_over_time(kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff"}[5m]) >= 1
    return clock.crash_seen is not None and c.now - clock.crash_seen <= RULE_WINDOW_S


def _not_ready(clock: RuleClock, c: Cluster, labels: Mapping[str, str]) -> bool:
    return any(not p.ready for p in c.focus.pods)


def _replicas_mismatch(clock: RuleClock, c: Cluster, labels: Mapping[str, str]) -> bool:
    return c.focus.desired > c.focus.available


def _statefulset_mismatch(clock: RuleClock, c: Cluster, labels: Mapping[str, str]) -> bool:
    # ready != replicas, and the rolling update has not moved in 10 minutes
    w = c.focus
    return w.kind == "StatefulSet" and w.available != w.desired and clock.rollout_stalled()


def _hpa_maxed(clock: RuleClock, c: Cluster, labels: Mapping[str, str]) -> bool:
    w = c.focus
    return bool(w.hpa_max) and w.desired >= w.hpa_max and w.hpa_max != w.hpa_min


def _throttling(clock: RuleClock, c: Cluster, labels: Mapping[str, str]) -> bool:
    return clock.throttled() > THROTTLE_RULE_RATIO


def _node_not_ready(clock: RuleClock, c: Cluster, labels: Mapping[str, str]) -> bool:
    node = c.nodes.get(labels.get("node", ""))
    return node is not None and not node.ready


def _volume_filling(clock: RuleClock, c: Cluster, labels: Mapping[str, str]) -> bool:
    w = c.focus
    return bool(w.pvc_cap) and (w.pvc_cap - w.pvc_used) / w.pvc_cap < VOLUME_RULE_FREE


# The SLO rules read the request metrics; where none exist (NO_SLI) their expression has no
# series, so it is never true, whatever the true error ratio or latency.
def _error_burn(clock: RuleClock, c: Cluster, labels: Mapping[str, str]) -> bool:
    return c.sli != NO_SLI and c.focus.error_ratio > _SLO.error_ratio


def _latency_high(clock: RuleClock, c: Cluster, labels: Mapping[str, str]) -> bool:
    return c.sli != NO_SLI and c.focus.p99 > _SLO.latency_p99_s


_RULES: Mapping[str, Callable[[RuleClock, Cluster, Mapping[str, str]], bool]] = {
    "KubePodCrashLooping": _crash_looping, "KubePodNotReady": _not_ready,
    "KubeDeploymentReplicasMismatch": _replicas_mismatch,
    "KubeStatefulSetReplicasMismatch": _statefulset_mismatch, "KubeHpaMaxedOut": _hpa_maxed,
    "CPUThrottlingHigh": _throttling, "KubeNodeNotReady": _node_not_ready,
    "KubePersistentVolumeFillingUp": _volume_filling, "ServiceErrorBudgetBurn": _error_burn,
    "ServiceLatencyHigh": _latency_high,
}

"""The simulator's rule timing against the real rules: the kube-prometheus expressions, evaluated
by a real Prometheus over the simulated series (kube-prometheus-stack's labels, backfilled with
promtool), turn true and hold for their `for:` when the simulator fires the alert.

Covered: every kube-prometheus alert a fault raises (KubePodCrashLooping, CPUThrottlingHigh,
KubeHpaMaxedOut, KubeNodeNotReady, KubePodNotReady from a stuck pod and from Pending pods,
KubePersistentVolumeFillingUp). The series only the rules read (kube_pod_status_phase,
kube_pod_owner, kube_node_spec_unschedulable, the HPA's minimum, kubelet_volume_stats_available_bytes)
come from `Cluster.series(history=True)`. KubeStatefulSetReplicasMismatch fires beside a
StatefulSet's own pod alert (no fault raises it first): its rule's clock is checked on its own,
kept ticking past the pod alert, with the updated replicas its `changes()` reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.dialect import RULE_FOR_S
from simulator.incident import EPOCH
from tests.live.conftest import requires_prometheus
from tests.live.sim import incident, prometheus_with

RULES = Path(__file__).resolve().parents[1] / "fixtures" / "kube-prometheus-rules"  # the real rule files, copied
STEP_S = 15.0
# Prometheus evaluates every rule each interval (kube-prometheus-stack: 30 s), so firing lands up
# to one interval after the `for:` ends; the simulator fires at the tick it ends.
TOLERANCE_S = 30.0


def _rule(name: str, for_s: float) -> dict[str, Any]:
    """The rule of that alert with that `for:` (KubePersistentVolumeFillingUp has a critical and a warning one)."""
    seconds = {"s": 1.0, "m": 60.0, "h": 3600.0}
    for f in sorted(RULES.glob("*.yaml")):
        for group in yaml.safe_load(f.read_text())["spec"]["groups"]:
            for rule in group["rules"]:
                d = str(rule.get("for", "0s"))
                if rule.get("alert") == name and float(d[:-1]) * seconds[d[-1]] == for_s:
                    return dict(rule)
    raise LookupError(name)


def _fires_at(values: list[list[Any]], for_s: float) -> float | None:
    """The first evaluation at which the expression has held for `for_s` (a gap resets)."""
    start = prev = None
    for t, _ in values:
        t = float(t)
        if prev is None or t - prev > STEP_S + 1e-6:
            start = t
        prev = t
        if start is not None and t - start >= for_s - 1e-6:
            return t
    return None


# (fault, seeds, alert, dialect, the labels that name the alert's object); seeds without herrings
CASES = [
    ("bad_rollout", (3, 4), "KubePodCrashLooping", {}, ("namespace", "pod", "container")),
    ("cpu_limit_low", (3, 18), "CPUThrottlingHigh", {}, ("namespace", "pod", "container")),
    # Without request metrics the spike raises the kube-prometheus alert (no SLO rule can fire).
    ("traffic_spike", (3, 4), "KubeHpaMaxedOut", {"sli": "none"}, ("namespace", "horizontalpodautoscaler")),
    ("node_not_ready", (3, 4), "KubeNodeNotReady", {}, ("node",)),
    ("pod_stuck_not_ready", (3, 4), "KubePodNotReady", {}, ("namespace", "pod")),
    ("node_left_cordoned", (3, 4), "KubePodNotReady", {}, ("namespace", "pod")),  # Pending pods
    ("volume_filling", (3, 4), "KubePersistentVolumeFillingUp", {}, ("namespace", "persistentvolumeclaim")),
]
_RUNS = [(f, seed, a, d, k) for f, seeds, a, d, k in CASES for seed in seeds]


@requires_prometheus
@pytest.mark.parametrize(("fault", "seed", "alert", "dialect", "keys"), _RUNS,
                         ids=[f"{c[0]}-{c[2]}-{c[1]}" for c in _RUNS])
def test_the_real_rule_fires_when_the_simulator_does(tmp_path: Path, fault: str, seed: int, alert: str,
                                                     dialect: dict[str, Any], keys: tuple[str, ...]) -> None:
    if not RULES.is_dir():
        pytest.fail(f"{RULES} missing: the kube-prometheus rule files are the fixture")
    inc = incident(fault, seed=seed, after_s=0.0, alert_for=True, scrape_labels=True, **dialect)
    assert inc.alert.name == alert and not inc.herrings and not inc.rule_timed_out, (inc.alert.name, inc.herrings)
    for_s = RULE_FOR_S[alert]
    rule = _rule(alert, for_s)
    series = inc.cluster.series(until=inc.alert_at + 120.0, alert_start=inc.alert_at, history=True)
    with prometheus_with(tmp_path, series) as prom:
        result = prom.query_range(rule["expr"], EPOCH + 60.0, inc.alert_at + 120.0, STEP_S)
    ours = [r for r in result if all(r["metric"].get(k) == inc.alert.labels[k] for k in keys)]
    assert ours, f"{alert}'s expression never held for {inc.alert.labels}: {[r['metric'] for r in result]}"
    fired = min(t for r in ours if (t := _fires_at(r["values"], for_s)) is not None)
    assert abs(fired - inc.alert_at) <= TOLERANCE_S, (fired - inc.onset, inc.alert_at - inc.onset)
    # and it had not held before the simulated onset: the fault, not the history, trips it
    assert fired - for_s >= inc.onset - STEP_S


@requires_prometheus
@pytest.mark.parametrize(("fault", "seed"), [("bad_rollout", 3), ("pod_stuck_not_ready", 4)])
def test_the_statefulset_replicas_rule_fires_when_the_simulators_clock_does(tmp_path: Path, fault: str,
                                                                            seed: int) -> None:
    name = "KubeStatefulSetReplicasMismatch"
    inc = incident(fault, seed=seed, after_s=0.0, alert_for=True, scrape_labels=True, statefulset=True)
    c, clock = inc.cluster, inc.rule_clock
    assert clock is not None and c.focus.kind == "StatefulSet"
    fired_sim = None
    while fired_sim is None and c.now < inc.alert_at + 1800.0:  # the pod alert first; this one may follow
        c.step()
        if clock.tick(c, name, inc.alert.labels):
            fired_sim = c.now
    assert fired_sim is not None, f"{name} never held for its for: in a stuck StatefulSet ({fault})"
    inc.advance(120.0)
    rule = _rule(name, RULE_FOR_S[name])
    series = c.series(until=c.now, alert_start=inc.alert_at, history=True)
    with prometheus_with(tmp_path, series) as prom:
        result = prom.query_range(rule["expr"], EPOCH + 60.0, c.now, STEP_S)
    ours = [r for r in result if r["metric"].get("statefulset") == c.focus.name
            and r["metric"].get("job") == "kube-state-metrics"]
    assert ours, f"{name}'s expression never held: {[r['metric'] for r in result]}"
    fired = min(t for r in ours if (t := _fires_at(r["values"], RULE_FOR_S[name])) is not None)
    assert abs(fired - fired_sim) <= TOLERANCE_S, (fired - inc.onset, fired_sim - inc.onset)
    assert fired - RULE_FOR_S[name] >= inc.onset - STEP_S

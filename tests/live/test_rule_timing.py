"""The simulator's rule timing against the real rules: the kube-prometheus expressions, evaluated
by a real Prometheus over the simulated series (kube-prometheus-stack's labels, backfilled with
promtool), turn true and hold for their `for:` when the simulator fires the alert.

Covered: the rules whose every input series the simulator exports (KubePodCrashLooping,
CPUThrottlingHigh). The others read series it does not model (kube_pod_status_phase,
kube_node_spec_unschedulable, kubelet_volume_stats_available_bytes, ...): their timing is the
approximation in simulator/alerting.py.
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

RULES = Path(__file__).resolve().parents[3] / "shared" / "data" / "kube-prometheus-rules"
STEP_S = 15.0
# Prometheus evaluates every rule each interval (kube-prometheus-stack: 30 s), so firing lands up
# to one interval after the `for:` ends; the simulator fires at the tick it ends.
TOLERANCE_S = 30.0


def _rule(name: str) -> dict[str, Any]:
    for f in sorted(RULES.glob("*.yaml")):
        for group in yaml.safe_load(f.read_text())["spec"]["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == name:
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


@requires_prometheus
@pytest.mark.parametrize(("fault", "seed", "alert"), [
    ("bad_rollout", 3, "KubePodCrashLooping"), ("cpu_limit_low", 3, "CPUThrottlingHigh")])
def test_the_real_rule_fires_when_the_simulator_does(tmp_path: Path, fault: str, seed: int, alert: str) -> None:
    if not RULES.is_dir():
        pytest.fail(f"{RULES} missing: the kube-prometheus rule files are the fixture")
    inc = incident(fault, seed=seed, after_s=0.0, alert_for=True, scrape_labels=True)
    assert inc.alert.name == alert and not inc.herrings and not inc.rule_timed_out
    rule = _rule(alert)
    for_s = float(rule["for"].removesuffix("m")) * 60.0
    assert for_s == RULE_FOR_S[alert]
    series = inc.cluster.series(until=inc.alert_at + 120.0, alert_start=inc.alert_at, history=True)
    with prometheus_with(tmp_path, series) as prom:
        result = prom.query_range(rule["expr"], EPOCH + 60.0, inc.alert_at + 120.0, STEP_S)
    pod = inc.alert.labels["pod"]
    ours = [r for r in result if r["metric"].get("pod") == pod]
    assert ours, f"{alert}'s expression never held for {pod}: {[r['metric'] for r in result]}"
    fired = min(t for r in ours if (t := _fires_at(r["values"], for_s)) is not None)
    assert abs(fired - inc.alert_at) <= TOLERANCE_S, (fired - inc.onset, inc.alert_at - inc.onset)
    # and it had not held before the simulated onset: the fault, not the history, trips it
    assert fired - for_s >= inc.onset - STEP_S
    labels = next(r["metric"] for r in ours)
    for key in ("namespace", "pod", "container"):
        assert labels[key] == inc.alert.labels[key]

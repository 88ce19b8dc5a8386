"""Rule timing: an alert fires when its rule has held for the rule's `for:`, as Prometheus fires it."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from simulator.alerting import RuleClock
from simulator.dialect import RULE_FOR_S
from simulator.faults import FAULTS
from simulator.incident import Incident
from simulator.suite import Dialect, load_suite
from tests.live.sim import incident


def test_the_rules_for_durations_are_the_rule_files() -> None:
    """Read off the kube-prometheus rule files copied into tests/fixtures (the fixtures of issue 10)."""
    import pathlib

    import yaml

    root = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "kube-prometheus-rules"
    assert any(root.glob("*.yaml")), root
    rules: dict[str, list[str]] = {}
    for f in root.glob("*.yaml"):
        for group in yaml.safe_load(f.read_text())["spec"]["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules.setdefault(rule["alert"], []).append(rule.get("for", "0s"))
    seconds = {"m": 60.0, "h": 3600.0, "s": 1.0}
    for name, for_s in RULE_FOR_S.items():
        if name.startswith("Service"):
            continue  # the project's own SLO alerts
        assert for_s in [float(d[:-1]) * seconds[d[-1]] for d in rules[name]], name


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_an_alert_fires_only_after_its_for(fault: str) -> None:
    inc = incident(fault, after_s=0.0, alert_for=True)
    name = inc.alert.name
    assert not inc.rule_timed_out
    if not inc.herrings:  # a herring (a tight CPU limit, say) may make a rule true before the onset
        assert inc.alert_at - inc.onset >= RULE_FOR_S[name] - 1e-6
    plain = incident(fault, after_s=0.0)
    assert plain.alert.name == name or FAULTS[fault].name in ("cpu_limit_low", "traffic_spike")


def test_a_gap_restarts_the_count() -> None:
    inc = incident("no_fault", after_s=0.0)
    c, clock = inc.cluster, RuleClock()
    w = c.focus
    fired = []
    for i in range(12):  # errors for 45 s, a healthy tick, errors again for 75 s
        w.error_ratio = 0.0 if i == 3 else 0.5
        c.now += 15.0
        fired.append(clock.tick(c, "ServiceErrorBudgetBurn", {}))
    assert fired.index(True) == 8  # 60 s after the expression turned true again at tick 4


def test_rule_timing_keeps_the_other_draws() -> None:
    """Turning rule timing on moves when alerts fire, not which incidents are drawn."""
    suite = load_suite("eval").model_copy(update={"dialect": Dialect()})
    timed = suite.model_copy(update={"dialect": Dialect(alert_for=True)})
    assert [dataclasses.replace(s, alert_for=False) for s in timed.specs(count=40)] == suite.specs(count=40)


@pytest.mark.slow
def test_few_faults_never_trip_their_rule() -> None:
    """A rule that has not fired an hour after the onset fires then: count how often, per fault."""
    suite = load_suite("default")
    topo = suite.topology.build()
    late: Counter[str] = Counter()
    specs = suite.specs(count=150)
    for spec in specs:
        inc = Incident(topo, dataclasses.replace(spec, alert_for=True), suite.horizon_s)
        late[spec.fault] += inc.rule_timed_out
    assert sum(late.values()) <= 0.03 * len(specs), late

"""Rule timing: an alert fires when its rule has held for the rule's `for:`, as Prometheus fires it."""

from __future__ import annotations

import dataclasses
import pathlib
from collections import Counter

import pytest

from simulator.alerting import RuleClock
from simulator.dialect import NO_SLI, RULE_FOR_S, SLO_ALERTS
from simulator.faults import FAULTS
from simulator.incident import Incident
from simulator.suite import Dialect, SuiteError, load_suite
from tests.live.sim import incident


def test_the_rules_for_durations_are_the_rule_files() -> None:
    """Read off the kube-prometheus rule files copied into tests/fixtures (the fixtures of issue 10)."""
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


@pytest.mark.parametrize("sli", ["http", NO_SLI])
def test_the_slo_rules_read_request_metrics(sli: str) -> None:
    """Errors and latency far over the SLO for ten minutes: the SLO rules fire only where request
    metrics exist; without them (a gRPC app without interceptors) no SLO rule has a series."""
    inc = incident("memory_leak", after_s=0.0, sli=sli)
    c, clock = inc.cluster, RuleClock()
    fired = {"ServiceErrorBudgetBurn": False, "ServiceLatencyHigh": False}
    for _ in range(40):
        c.focus.error_ratio, c.focus.p99 = 0.5, 5.0
        c.now += 15.0
        for name in fired:
            fired[name] |= clock.tick(c, name, {})
    assert all(fired.values()) is (sli == "http") and any(fired.values()) is (sli == "http")


@pytest.mark.parametrize("fault", sorted(f for f in FAULTS if not FAULTS[f].slo_only))
def test_without_request_metrics_a_fault_raises_its_kube_rule_alert(fault: str) -> None:
    """cpu_limit_low and traffic_spike raise the SLO alert half the time where it can fire; without
    request metrics each fault raises the kube-prometheus alert its rule fires for, after its for:."""
    for seed in range(6):
        inc = incident(fault, seed=seed, after_s=0.0, sli=NO_SLI, alert_for=True)
        assert inc.alert.name not in SLO_ALERTS and not inc.rule_timed_out, (seed, inc.alert.name)
    if fault in ("cpu_limit_low", "traffic_spike"):
        seen = {incident(fault, seed=seed, after_s=0.0).alert.name for seed in range(6)}
        assert seen & SLO_ALERTS and seen - SLO_ALERTS, seen  # both occur where request metrics exist


@pytest.mark.parametrize("fault", sorted(f for f in FAULTS if FAULTS[f].slo_only))
def test_an_slo_only_fault_needs_request_metrics(fault: str) -> None:
    """What `slo_only` declares is what the fault raises; without request metrics it is refused."""
    assert {incident(fault, seed=seed, after_s=0.0).alert.name for seed in range(4)} <= SLO_ALERTS
    with pytest.raises(ValueError, match="without request metrics"):
        incident(fault, after_s=0.0, sli=NO_SLI)


def test_suites_draw_no_slo_only_fault_without_request_metrics() -> None:
    suite = load_suite("default")
    specs = suite.specs(count=400)
    blind = [s for s in specs if s.sli == NO_SLI]
    assert blind and not any(FAULTS[s.fault].slo_only for s in blind)
    assert {s.fault for s in blind} >= {"cpu_limit_low", "traffic_spike", "memory_leak"}
    # The other faults keep the profile the dialect's own stream gives them; so do every other draw.
    for s in specs:
        drawn = suite.dialect.draw(s.seed)
        if not FAULTS[s.fault].slo_only:
            assert s.sli == drawn["sli"]
        assert (s.sidecar, s.scrape_labels, s.statefulset) == (drawn["sidecar"], drawn["scrape_labels"],
                                                               drawn["statefulset"])


def test_a_suite_that_could_only_draw_slo_only_faults_blind_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nfaults: {memory_leak: 1, hung_process: 1}\ndialect: {sli: {none: 1}}\n")
    with pytest.raises(SuiteError, match="hung_process raise only SLO alerts.*profile other than 'none'"):
        load_suite(str(path))

"""The simulator's dialect: SLI profiles, the istio-proxy sidecar, kube-prometheus-stack's labels."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from remediator.actions import Action, ActionKind
from remediator.slis import PROFILES
from simulator.dialect import KSM_POD, MONITORING_NS, NO_SLI, OUTCOME_LABELS, SIDECAR, rule_labels
from simulator.suite import Dialect, SuiteError, load_suite
from tests.live.sim import incident, observed_series


def test_every_profile_has_outcomes_its_error_rule_classifies() -> None:
    assert set(OUTCOME_LABELS) == set(PROFILES)
    for name, (ok, err) in OUTCOME_LABELS.items():
        assert not PROFILES[name].is_error(ok) and PROFILES[name].is_error(err), name


def test_the_default_dialect_leaves_every_suite_draw_as_it_was() -> None:
    suite = load_suite("eval").model_copy(update={"dialect": Dialect()})
    plain = suite.specs(count=60)
    assert all((s.sli, s.sidecar, s.scrape_labels) == ("http", False, False) for s in plain)
    mixed = suite.model_copy(update={"dialect": suite.dialect.model_copy(update={
        "sli": {"http": 1.0, "istio": 1.0, NO_SLI: 1.0}, "sidecar": 0.5, "scrape_labels": 0.5})})
    drawn = mixed.specs(count=60)
    assert [dataclasses.replace(s, sli="http", sidecar=False, scrape_labels=False) for s in drawn] == plain
    assert {s.sli for s in drawn} == {"http", "istio", NO_SLI} and {s.sidecar for s in drawn} == {True, False}


def test_a_bad_dialect_is_refused_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nfaults: {no_fault: 1}\ndialect: {sli: {envoy: 1}}\n")
    with pytest.raises(SuiteError, match=r"dialect\.sli.*unknown SLI profile\(s\) envoy"):
        load_suite(str(path))


@pytest.mark.parametrize("sli", sorted(PROFILES))
def test_each_profile_reads_the_same_traffic(sli: str) -> None:
    """The same incident in another profile: other names, labels and units, the same SLIs."""
    http, other = incident("bad_config_rollout").observe(), incident("bad_config_rollout", sli=sli).observe()
    assert other.sli_profile == sli and other.slo_known
    for name in ("request_rate", "error_ratio", "dep_error_ratio"):
        assert math.isclose(getattr(other.signals, name), getattr(http.signals, name), rel_tol=1e-9), name
    assert math.isclose(other.signals.latency_p99_s, http.signals.latency_p99_s, rel_tol=0.02)  # bucket bounds


def test_without_request_metrics_the_slo_is_unknown_and_the_rest_is_read() -> None:
    snap = incident("memory_leak", sli=NO_SLI).observe()
    assert not snap.slo_known and {"requests", "latency"} <= snap.unknown_groups
    assert snap.signals.oom_fraction > 0 or snap.signals.restarts_per_min > 0


def test_the_sidecar_is_its_own_container_and_its_limit_its_own() -> None:
    inc = incident("memory_leak", sidecar=True)
    snap = inc.observe()
    assert snap.containers == ("app", SIDECAR) and snap.container == "app"
    assert snap.container_param() == {"container": "app"}
    app_limit = inc.cluster.focus.current.mem_limit
    assert snap.workload is not None
    inc.cluster.apply(Action(ActionKind.RAISE_MEMORY_LIMIT, snap.workload, {"factor": 2.0, "container": SIDECAR}))
    assert inc.cluster.focus.current.mem_limit == app_limit  # the app keeps leaking into its old limit
    inc.advance(60.0)
    limits = {s.labels["container"]: s.points[-1][1] for s in observed_series(inc)
              if s.name == "kube_pod_container_resource_limits" and s.labels["resource"] == "memory"}
    assert limits[SIDECAR] == 2 * 1024 * 1024**2 and limits["app"] == app_limit


def test_scrape_labels_are_the_targets_under_the_series_own() -> None:
    inc = incident("traffic_spike", scrape_labels=True)
    by_name: dict[str, dict[str, str]] = {}
    for s in observed_series(inc):
        by_name.setdefault(s.name, dict(s.labels))
    dep = by_name["kube_deployment_spec_replicas"]
    assert dep["pod"] == KSM_POD and dep["namespace"] == inc.cluster.namespace and dep["job"] == "kube-state-metrics"
    assert by_name["kube_node_status_condition"]["namespace"] == MONITORING_NS
    mem = by_name["container_memory_working_set_bytes"]
    assert mem["job"] == "kubelet" and mem["metrics_path"] == "/metrics/cadvisor" and mem["pod"] != KSM_POD
    assert "job" not in by_name["http_requests_total"]  # the application's own scrape: not modelled
    clean = incident("traffic_spike").observe()
    assert dataclasses.replace(inc.observe(), alert=clean.alert) == clean


def test_rule_labels_follow_the_rules_expressions() -> None:
    crash = rule_labels("KubePodCrashLooping", {"namespace": "shop", "pod": "cart-1", "container": "app"})
    assert crash["reason"] == "CrashLoopBackOff" and crash["service"].endswith("kube-state-metrics")
    assert crash["pod"] == "cart-1"  # the series' own pod wins (honorLabels)
    node = rule_labels("KubeNodeNotReady", {"node": "node-1"})
    assert node["namespace"] == MONITORING_NS and node["pod"] == KSM_POD
    assert rule_labels("KubePodNotReady", {"namespace": "shop", "pod": "p"}) == {
        "namespace": "shop", "pod": "p", "job": "kube-state-metrics"}
    throttle = rule_labels("CPUThrottlingHigh", {"namespace": "shop", "pod": "p", "container": "app"}, node="n1")
    assert throttle["instance"].endswith(":10250") and "job" not in throttle and "node" not in throttle
    assert rule_labels("ServiceLatencyHigh", {"namespace": "shop", "service": "cart"}) == {
        "namespace": "shop", "service": "cart"}


def test_a_statefulset_keeps_its_pods_names_and_revisions_as_controller_revisions() -> None:
    inc = incident("bad_rollout", statefulset=True)
    snap = inc.observe()
    assert snap.workload is not None and snap.workload.kind == "StatefulSet"
    w = inc.cluster.focus
    assert sorted(p.name for p in w.pods) == [f"{w.name}-{i}" for i in range(len(w.pods))]
    objects = inc.cluster.objects()
    revisions = [o for o in objects if o["kind"] == "ControllerRevision"]
    assert len(revisions) == len(w.revisions) and not any(o["kind"] == "ReplicaSet" and
                                                          o["metadata"]["ownerReferences"][0]["name"] == w.name
                                                          for o in objects)
    assert snap.signals.has_previous_revision == 1.0  # the bad rollout's ControllerRevision history
    names = {s.name for s in observed_series(inc) if s.labels.get("statefulset") == w.name}
    assert names == {"kube_statefulset_replicas", "kube_statefulset_status_replicas_ready"}
    # a restart replaces every pod under the same names; a scale down removes the highest ordinal
    inc.cluster.apply(Action(ActionKind.RESTART_ROLLOUT, snap.workload))
    inc.advance(300.0)
    assert sorted(p.name for p in w.pods) == [f"{w.name}-{i}" for i in range(len(w.pods))]
    w.desired = len(w.pods) - 1
    inc.advance(15.0)
    assert sorted(p.name for p in w.pods) == [f"{w.name}-{i}" for i in range(w.desired)]


def test_a_statefulset_without_pods_alerts_on_its_replicas() -> None:
    inc = incident("scaled_to_zero", statefulset=True)
    from simulator.faults.base import pod_alert

    assert not inc.cluster.focus.pods
    name, labels = pod_alert(inc.cluster, "KubePodCrashLooping")
    assert name == "KubeStatefulSetReplicasMismatch" and labels["statefulset"] == inc.cluster.focus.name

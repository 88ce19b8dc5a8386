"""Honest SLIs: SLI profiles, per-container resource signals, and an SLO that is unknown when no
request metric exists (docs/slis.md). The worlds here are built with the labels real exporters
put on their series (Istio's sidecar, go-grpc-prometheus, cAdvisor's pod-level cgroup); the same
worlds go through a real Prometheus in tests/live/test_observer_slis.py.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from remediator.live.config import ConfigError, load_config
from remediator.slis import DEFAULT_PROFILE, PROFILES, SliProfile
from remediator.snapshot import Alert, Series, Signals, Slo, Snapshot, build_snapshot
from remediator.verify import RecoveryTracker, unmet

NS, APP = "shop", "cart"
NOW = 1_800_000_000.0
ALERT_AT = NOW - 120.0
STEP = 15.0
MI = 1024.0 * 1024.0
PODS = ("cart-5d9f7c-aaaaa", "cart-5d9f7c-bbbbb")


def _times(start: float, end: float) -> list[float]:
    n = int((end - start) / STEP)
    return [start + i * STEP for i in range(n + 1)]


def counter(rate: float, start: float = NOW - 1200.0, end: float = NOW) -> list[tuple[float, float]]:
    """A counter growing at `rate` per second, scraped every 15 s."""
    return [(t, round(rate * (t - start), 6)) for t in _times(start, end)]


def gauge(value: float, start: float = NOW - 150.0, end: float = NOW) -> list[tuple[float, float]]:
    return [(t, value) for t in _times(start, end)]


@dataclass
class World:
    """One incident's raw inputs: what Prometheus and the Kubernetes API would hand the observer."""

    alert: Alert
    series: list[Series]
    objects: list[dict[str, Any]]
    now: float = NOW
    sli: SliProfile = DEFAULT_PROFILE
    expect: dict[str, float] = field(default_factory=dict)

    def snapshot(self, sli: SliProfile | None = None) -> Snapshot:
        return build_snapshot(self.alert, self.series, self.objects, now=self.now, sli=sli or self.sli)


def objects(containers: Sequence[Mapping[str, Any]], *, annotations: Mapping[str, str] | None = None,
            native_sidecars: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    template = {"metadata": {"labels": {"app": APP}, "annotations": dict(annotations or {})},
                "spec": {"containers": [dict(c) for c in containers],
                         **({"initContainers": [dict(c) for c in native_sidecars]} if native_sidecars else {})}}
    out: list[dict[str, Any]] = [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": APP, "namespace": NS, "labels": {"app": APP}},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": APP}}, "template": template},
         "status": {"replicas": 2, "availableReplicas": 2}},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet",
         "metadata": {"name": "cart-5d9f7c", "namespace": NS, "labels": {"app": APP},
                      "annotations": {"deployment.kubernetes.io/revision": "1"},
                      "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": APP,
                                           "uid": "u1", "controller": True}]}},
    ]
    for pod in PODS:
        out.append({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod, "namespace": NS, "labels": {"app": APP},
                                 "annotations": dict(annotations or {}),
                                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                      "name": "cart-5d9f7c", "uid": "u2", "controller": True}]},
                    "spec": {"nodeName": "node-a", **template["spec"]},
                    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
    return out


def container(name: str, mem_mi: float, cpu: float) -> dict[str, Any]:
    limits = {"memory": f"{int(mem_mi)}Mi", "cpu": str(cpu)}
    return {"name": name, "image": f"{name}:1", "resources": {"limits": limits}}


def kube_series(*, replicas: float = 2.0) -> list[Series]:
    dep = {"namespace": NS, "deployment": APP, "service": "kube-state-metrics", "job": "kube-state-metrics"}
    out = [Series("kube_deployment_spec_replicas", dep, gauge(replicas, start=NOW - 1200.0)),
           Series("kube_deployment_status_replicas_available", dep, gauge(replicas))]
    for pod in PODS:
        out.append(Series("kube_pod_status_ready", {"namespace": NS, "pod": pod, "condition": "true"}, gauge(1.0)))
    out.append(Series("kube_node_status_condition", {"node": "node-a", "condition": "Ready", "status": "true"},
                      gauge(1.0)))
    return out


def resource_series(usage: Mapping[str, tuple[float, float, float, float]]) -> list[Series]:
    """Per container (in the given order): (memory MiB, memory limit MiB, cpu cores, cpu limit), as
    cAdvisor and kube-state-metrics export them, plus cAdvisor's pod-level cgroup (container="")
    and pause container (container="POD"), which are no container of the workload."""
    out: list[Series] = []
    for pod in PODS:
        base = {"namespace": NS, "pod": pod}
        total = sum(mem for mem, _, _, _ in usage.values())
        out.append(Series("container_memory_working_set_bytes", {**base, "container": ""}, gauge(total * MI)))
        out.append(Series("container_memory_working_set_bytes", {**base, "container": "POD"}, gauge(1 * MI)))
        for name, (mem, mem_limit, cpu, cpu_limit) in usage.items():
            c = {**base, "container": name}
            out.append(Series("container_memory_working_set_bytes", c, gauge(mem * MI)))
            out.append(Series("kube_pod_container_resource_limits", {**c, "resource": "memory", "unit": "byte"},
                              gauge(mem_limit * MI)))
            out.append(Series("kube_pod_container_resource_limits", {**c, "resource": "cpu", "unit": "core"},
                              gauge(cpu_limit)))
            out.append(Series("container_cpu_usage_seconds_total", c, counter(cpu, start=NOW - 150.0)))
            out.append(Series("container_cpu_cfs_periods_total", c, counter(10.0, start=NOW - 150.0)))
            out.append(Series("container_cpu_cfs_throttled_periods_total", c,
                              counter(10.0 * min(cpu / cpu_limit, 1.0) * 0.1, start=NOW - 150.0)))
    return out


def histogram(name: str, labels: Mapping[str, str], bounds: Sequence[str], rates: Sequence[float]
              ) -> list[Series]:
    """Cumulative `_bucket` counters: `rates` are per-second increments of each bucket (le ascending)."""
    return [Series(name, {**labels, "le": le}, counter(r)) for le, r in zip(bounds, rates)]


# ---------------------------------------------------------------------------- worlds


def sidecar_world(*, app_first: bool = False, alert_container: str | None = None) -> World:
    """An app near its memory limit next to an idle istio-proxy with a larger limit. The sidecar's
    series come last by default: read per pod, they overwrote the app's (mem_ratio 0.059)."""
    usage = {"istio-proxy": (60.0, 1024.0, 0.05, 2.0), "app": (485.0, 512.0, 0.2, 1.0)}
    if not app_first:
        usage = dict(reversed(list(usage.items())))
    labels = {"namespace": NS, "pod": PODS[0], "severity": "warning"}
    if alert_container:
        labels["container"] = alert_container
    svc = {"namespace": NS, "service": APP}
    series = kube_series() + resource_series(usage) + [
        Series("http_requests_total", {**svc, "code": "200"}, counter(20.0)),
        Series("http_requests_total", {**svc, "code": "500"}, counter(0.2)),
        *histogram("http_request_duration_seconds_bucket", svc, ["0.05", "0.1", "0.5", "+Inf"],
                   [15.0, 19.0, 20.2, 20.2])]
    return World(Alert("KubePodNotReady", labels, starts_at=ALERT_AT), series,
                 objects([container("app", 512, 1), container("istio-proxy", 1024, 2)]),
                 expect={"mem_ratio": 485.0 / 512.0, "error_ratio": 0.2 / 20.2})


def istio_world() -> World:
    """gRPC over Istio: HTTP 200 everywhere, UNAVAILABLE (14) in grpc_response_status; durations in ms.
    The client-side reports (reporter="source") of the same requests must not be counted twice."""
    dst = {"destination_workload": APP, "destination_workload_namespace": NS, "destination_service_name": APP,
           "request_protocol": "grpc", "namespace": NS, "pod": PODS[0], "container": "istio-proxy"}
    series = kube_series() + resource_series({"server": (100.0, 512.0, 0.2, 1.0),
                                              "istio-proxy": (50.0, 1024.0, 0.05, 2.0)})
    for reporter in ("destination", "source"):
        r = {**dst, "reporter": reporter, "source_workload": "frontend"}
        series += [Series("istio_requests_total", {**r, "response_code": "200", "grpc_response_status": "0"},
                          counter(18.0)),
                   Series("istio_requests_total", {**r, "response_code": "200", "grpc_response_status": "14"},
                          counter(1.5)),
                   Series("istio_requests_total", {**r, "response_code": "200", "grpc_response_status": "5"},
                          counter(0.5)),  # NotFound: the client's mistake, not an error of the server
                   Series("istio_requests_total", {**r, "response_code": "503", "grpc_response_status": "14"},
                          counter(0.5))]
        # p99 lands in the (10, 25] ms bucket.
        series += histogram("istio_request_duration_milliseconds_bucket", r, ["5", "10", "25", "50", "+Inf"],
                            [12.0, 19.0, 20.5, 20.5, 20.5])
    world = World(Alert("ServiceErrorBudgetBurn", {"namespace": NS, "service": APP, "severity": "critical"},
                        starts_at=ALERT_AT), series,
                  objects([container("server", 512, 1), container("istio-proxy", 1024, 2)],
                          annotations={"kubectl.kubernetes.io/default-container": "server"}),
                  sli=PROFILES["istio"], expect={"error_ratio": 2.0 / 20.5, "mem_ratio": 100.0 / 512.0})
    return world


def grpc_world() -> World:
    """A gRPC app with go-grpc-prometheus server metrics and no HTTP metrics at all."""
    svc = {"namespace": NS, "service": APP, "job": APP, "grpc_service": "hipstershop.CartService",
           "grpc_method": "GetCart", "grpc_type": "unary"}
    series = kube_series() + resource_series({"server": (100.0, 512.0, 0.2, 1.0)}) + [
        Series("grpc_server_handled_total", {**svc, "grpc_code": "OK"}, counter(9.0)),
        Series("grpc_server_handled_total", {**svc, "grpc_code": "Unavailable"}, counter(0.6)),
        Series("grpc_server_handled_total", {**svc, "grpc_code": "NotFound"}, counter(0.4)),
        *histogram("grpc_server_handling_seconds_bucket", svc, ["0.005", "0.01", "0.05", "+Inf"],
                   [8.0, 9.5, 10.0, 10.0])]
    return World(Alert("ServiceErrorBudgetBurn", {"namespace": NS, "service": APP, "severity": "critical"},
                       starts_at=ALERT_AT), series, objects([container("server", 512, 1)]),
                 sli=PROFILES["grpc"], expect={"error_ratio": 0.6 / 10.0})


# ---------------------------------------------------------------------------- profiles


def test_each_profile_derives_a_selector_of_its_own_labels() -> None:
    sel = {name: p.selector("requests") for name, p in PROFILES.items()}
    assert sel["http"] == 'http_requests_total{namespace="$namespace", service=~"$services"}'
    assert 'reporter="destination"' in sel["istio"] and 'destination_workload=~"$services"' in sel["istio"]
    assert sel["linkerd"].startswith('response_total{direction="inbound", ')
    assert sel["grpc"].startswith("grpc_server_handled_total{")
    assert 'span_kind="SPAN_KIND_SERVER"' in sel["otel-spanmetrics"]
    assert "$namespace" not in sel["otel-spanmetrics"]  # spanmetrics carry no Kubernetes namespace by default
    assert PROFILES["istio"].unit_s == 0.001 and PROFILES["linkerd"].unit_s == 0.001
    assert PROFILES["grpc"].unit_s == 1.0 and PROFILES["otel-spanmetrics"].unit_s == 0.001


@pytest.mark.parametrize(("profile", "labels", "error"), [
    ("http", {"code": "503"}, True), ("http", {"code": "404"}, False), ("http", {"code": "200"}, False),
    ("istio", {"response_code": "200", "grpc_response_status": "14"}, True),
    ("istio", {"response_code": "200", "grpc_response_status": "0"}, False),
    ("istio", {"response_code": "200", "grpc_response_status": "5"}, False),
    ("istio", {"response_code": "504", "grpc_response_status": ""}, True),
    ("linkerd", {"classification": "failure", "status_code": "200"}, True),
    ("linkerd", {"classification": "success"}, False),
    ("grpc", {"grpc_code": "Unavailable"}, True), ("grpc", {"grpc_code": "DeadlineExceeded"}, True),
    ("grpc", {"grpc_code": "InvalidArgument"}, False), ("grpc", {"grpc_code": "OK"}, False),
    ("otel-spanmetrics", {"status_code": "STATUS_CODE_ERROR"}, True),
    ("otel-spanmetrics", {"status_code": "STATUS_CODE_UNSET"}, False),
])
def test_error_rules(profile: str, labels: dict[str, str], error: bool) -> None:
    assert PROFILES[profile].is_error(labels) is error


def test_config_picks_a_profile_and_overrides_it(tmp_path: Any) -> None:
    path = tmp_path / "remediator.yaml"
    path.write_text("sli:\n  profile: otel-spanmetrics\n  duration: traces_span_metrics_duration_seconds_bucket\n"
                    "  duration_unit: s\n  namespace_label: service_namespace\n")
    sli = load_config(path).sli.resolve()
    assert (sli.name, sli.requests, sli.duration, sli.unit_s) == (
        "otel-spanmetrics", "traces_span_metrics_calls_total", "traces_span_metrics_duration_seconds_bucket", 1.0)
    assert 'service_namespace="$namespace"' in sli.selector("duration")
    assert load_config(_write(tmp_path, "mode: dry-run\n")).sli.resolve() == DEFAULT_PROFILE


@pytest.mark.parametrize(("text", "problem"), [
    ("sli: {profile: envoy}\n", "'envoy' is not an SLI profile"),
    ("sli: {profile: http, workload_label: app-name}\n", "not a Prometheus label name"),
    ("sli: {profile: http, errors: [{label: code, pattern: '5(('}]}\n", "not a regular expression"),
    ("sli: {profile: istio, duration_unit: minutes}\n", "sli.duration_unit"),
    ("sli: {profile: http, unit: ms}\n", "sli.unit"),
])
def test_a_bad_sli_section_names_the_file_line_and_key(tmp_path: Any, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, "mode: dry-run\n" + text))
    assert problem in str(e.value)
    assert "remediator.yaml:2" in str(e.value)


def _write(tmp_path: Any, text: str) -> Any:
    path = tmp_path / "remediator.yaml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------- signals


@pytest.mark.parametrize("app_first", [True, False])
def test_memory_is_the_app_containers_whatever_the_series_order(app_first: bool) -> None:
    snap = sidecar_world(app_first=app_first).snapshot()
    assert snap.container == "app"
    assert snap.containers == ("app", "istio-proxy")
    assert math.isclose(snap.signals.mem_ratio, 485.0 / 512.0)
    assert math.isclose(snap.signals.cpu_ratio, 0.2, rel_tol=1e-6)
    assert not snap.unknown_signals


def test_the_alerts_container_is_judged() -> None:
    snap = sidecar_world(alert_container="istio-proxy").snapshot()
    assert snap.container == "istio-proxy"
    assert math.isclose(snap.signals.mem_ratio, 60.0 / 1024.0)


def test_an_alert_naming_a_container_the_workload_lacks_is_not_believed() -> None:
    assert sidecar_world(alert_container="ghost").snapshot().container == "app"


def test_a_sidecar_in_trouble_is_judged_and_a_calm_one_loses_ties() -> None:
    w = sidecar_world()
    w.series = [s for s in w.series if s.labels.get("container") not in ("app", "istio-proxy")
                or s.name != "container_memory_working_set_bytes"]
    calm = {"app": 100.0, "istio-proxy": 100.0}
    hot = {"app": 100.0, "istio-proxy": 1000.0}  # the proxy at 98% of its 1Gi limit
    for usage, judged in ((calm, "app"), (hot, "istio-proxy")):
        extra = [Series("container_memory_working_set_bytes", {"namespace": NS, "pod": p, "container": c},
                        gauge(mi * MI)) for p in PODS for c, mi in usage.items()]
        snap = build_snapshot(w.alert, w.series + extra, w.objects, now=NOW)
        assert snap.container == judged


def test_main_container_from_the_default_container_annotation_or_native_sidecars() -> None:
    # Names that say nothing: the annotation decides, and a native sidecar (restartPolicy Always) is one.
    objs = objects([container("proxy", 128, 1), container("worker", 512, 1)],
                   annotations={"kubectl.kubernetes.io/default-container": "worker"})
    w = sidecar_world()
    snap = build_snapshot(w.alert, kube_series(), objs, now=NOW)
    assert snap.containers[0] == "worker"
    objs = objects([container("worker", 512, 1)],
                   native_sidecars=[{**container("mesh", 128, 1), "restartPolicy": "Always"}])
    snap = build_snapshot(w.alert, kube_series(), objs, now=NOW)
    assert snap.containers == ("worker", "mesh") and snap.container == "worker"


def test_istio_latency_is_read_in_seconds_and_grpc_unavailable_is_an_error() -> None:
    w = istio_world()
    snap = w.snapshot()
    s = snap.signals
    assert 0.010 < s.latency_p99_s <= 0.025, s.latency_p99_s  # 25 ms, not 25 s
    assert math.isclose(s.error_ratio, w.expect["error_ratio"], rel_tol=1e-6)
    assert math.isclose(s.request_rate, 20.5, rel_tol=1e-6)  # the destination's reports only
    assert snap.sli_profile == "istio" and snap.slo_known
    assert snap.container == "server" and math.isclose(s.mem_ratio, w.expect["mem_ratio"])


def test_a_grpc_app_read_as_http_has_an_unknown_slo() -> None:
    w = grpc_world()
    snap = w.snapshot(DEFAULT_PROFILE)
    assert {"request_rate", "error_ratio", "latency_p99_s", "request_rate_baseline"} <= snap.unknown_signals
    assert not snap.slo_known and "http_requests_total" in snap.missing
    assert "mem_ratio" not in snap.unknown_signals
    # With its own profile, the same series give the SLIs, NotFound not counted as an error.
    snap = w.snapshot()
    assert snap.slo_known and not snap.unknown_signals & {"request_rate", "error_ratio", "latency_p99_s"}
    assert math.isclose(snap.signals.error_ratio, w.expect["error_ratio"], rel_tol=1e-6)
    assert 0.005 < snap.signals.latency_p99_s <= 0.05


def test_unobserved_resources_are_unknown_not_zero() -> None:
    w = sidecar_world()
    snap = build_snapshot(w.alert, kube_series(), w.objects, now=NOW)
    assert {"mem_ratio", "mem_slope_per_min", "cpu_ratio", "throttle_ratio", "error_ratio"} <= snap.unknown_signals


# ---------------------------------------------------------------------------- verification


def test_recovery_is_never_declared_from_replicas_alone_when_the_slo_is_unknown() -> None:
    snap = grpc_world().snapshot(DEFAULT_PROFILE)
    assert snap.signals.available_replicas == snap.signals.desired_replicas == 2.0
    assert not snap.slo_known
    reasons = unmet(snap.signals, snap.slo, snap.unknown_signals)
    assert reasons and reasons[0].startswith("SLO unknown: error_ratio, latency_p99_s not observed")
    tracker = RecoveryTracker(Slo())
    assert not any(tracker.observe(snap.signals, NOW + i * 15.0, snap.unknown_signals) for i in range(20))
    # The very same numbers with the SLIs observed do verify recovery.
    tracker = RecoveryTracker(Slo())
    assert any(tracker.observe(snap.signals, NOW + i * 15.0) for i in range(20))


def test_a_known_slo_is_judged_as_before() -> None:
    healthy = Signals(desired_replicas=2, baseline_replicas=2, available_replicas=2, error_ratio=0.001,
                      latency_p99_s=0.1)
    assert unmet(healthy, Slo(), frozenset({"mem_ratio"})) == []
    assert unmet(healthy, Slo(), frozenset({"latency_p99_s"}))[0].startswith("SLO unknown: latency_p99_s")


def _names(series: Iterable[Series]) -> set[str]:
    return {s.name for s in series}


# ---------------------------------------------------------------------------- the container in the action


def _limit_check(snap: Snapshot, params: dict[str, Any]) -> tuple[list[str], list[str]]:
    from remediator.catalog import load_catalog
    from remediator.propose.validate import Proposal, ProposalValidator

    assert snap.workload is not None
    out = ProposalValidator(load_catalog()).validate([Proposal("raise_memory_limit", snap.workload, params)], snap)
    return [a.action.describe() for a in out.accepted], [r.reason for r in out.rejections]


def test_an_llms_container_must_be_one_the_workload_has() -> None:
    snap = sidecar_world(alert_container="app").snapshot()
    snap = dataclasses.replace(snap, alert=Alert("KubePodCrashLooping", snap.alert.labels))
    ok, _ = _limit_check(snap, {"factor": 1.5, "container": "istio-proxy"})
    assert ok == ["raise_memory_limit(Deployment/shop/cart, container=istio-proxy, factor=1.5)"]
    ok, _ = _limit_check(snap, {"factor": 1.5})  # none named: the judged one
    assert ok == ["raise_memory_limit(Deployment/shop/cart, container=app, factor=1.5)"]
    for bad in ("kube-apiserver", ["app"], 7):
        ok, why = _limit_check(snap, {"factor": 1.5, "container": bad})
        assert not ok and "is not a container of Deployment/shop/cart (it has app, istio-proxy)" in why[0]


def test_the_guards_refuse_a_container_the_snapshot_does_not_know() -> None:
    from remediator.actions import Action, ActionKind
    from remediator.guards import GuardPolicy, bounds_guard

    snap = sidecar_world().snapshot()
    assert snap.workload is not None
    fine = Action(ActionKind.RAISE_CPU_LIMIT, snap.workload, {"factor": 1.5, "container": "app"})
    assert bounds_guard(fine, snap, [], GuardPolicy(), NOW) is None
    ghost = Action(ActionKind.RAISE_CPU_LIMIT, snap.workload, {"factor": 1.5, "container": "sidecar-x"})
    verdict = bounds_guard(ghost, snap, [], GuardPolicy(), NOW)
    assert verdict is not None and "does not have (it has app, istio-proxy)" in verdict.reason
    other = Action(ActionKind.SCALE_OUT, snap.workload, {"factor": 1.5, "container": "app"})
    verdict = bounds_guard(other, snap, [], GuardPolicy(), NOW)
    assert verdict is not None and "unexpected parameter 'container'" in verdict.reason


def test_a_single_container_workload_names_none() -> None:
    from remediator.propose.catalog import CatalogProposer

    snap = grpc_world().snapshot()
    snap = dataclasses.replace(snap, alert=Alert("KubePodCrashLooping", {"namespace": NS}))
    limits = [c.action for c in CatalogProposer().propose(snap) if c.action.kind.value.startswith("raise_")]
    assert limits and all("container" not in a.params for a in limits)

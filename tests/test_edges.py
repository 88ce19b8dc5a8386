"""Dependencies from call edges (remediator/edges.py): Istio, Linkerd and trace service graphs.

The series carry the label sets the exporters really write (an Online Boutique frontend behind
an istio-proxy scraped by kube-prometheus-stack's PodMonitor; Linkerd's proxy as its
`linkerd-proxy` job scrapes it; Tempo's metrics-generator remote-writing service graphs). The
same worlds go through a real Prometheus and the Kubernetes emulator in
tests/live/test_observer_edges.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from remediator.actions import ObjectRef
from remediator.edges import EDGE_SOURCES, Callee, callees
from remediator.slis import PROFILES
from remediator.snapshot import DEPENDS_ON_ANNOTATION, Alert, Series, Snapshot, build_snapshot

NS, PAY = "shop", "payments"
CALLER = "frontend"
STEP = 15.0
BASE = 1_790_000_000.0


def counter(rate: float, start: float, end: float, offset: float = 0.0) -> list[tuple[float, float]]:
    """A counter growing at `rate`/s over [start, end], scraped every 15 s (flat when rate is 0)."""
    n = int((end - start) / STEP)
    return [(start + i * STEP, round(offset + rate * i * STEP, 6)) for i in range(n + 1)]


def _istio(src: str, src_ns: str, dst: str, dst_ns: str, *, reporter: str = "source", code: str = "200",
           service: str | None = None) -> dict[str, str]:
    """istio_requests_total's labels as Istio 1.22 writes them and the envoy-stats PodMonitor scrapes them."""
    svc = service or dst
    return {
        "reporter": reporter, "source_workload": src, "source_workload_namespace": src_ns,
        "source_app": src, "source_canonical_service": src, "source_canonical_revision": "latest",
        "source_principal": f"spiffe://cluster.local/ns/{src_ns}/sa/{src}", "source_version": "unknown",
        "source_cluster": "Kubernetes",
        "destination_workload": dst, "destination_workload_namespace": dst_ns, "destination_app": dst,
        "destination_canonical_service": dst, "destination_canonical_revision": "latest",
        "destination_service": f"{svc}.{dst_ns}.svc.cluster.local" if dst != "unknown" else svc,
        "destination_service_name": svc, "destination_service_namespace": dst_ns if dst != "unknown" else "unknown",
        "destination_principal": f"spiffe://cluster.local/ns/{dst_ns}/sa/{dst}" if dst != "unknown" else "unknown",
        "destination_version": "unknown", "destination_cluster": "Kubernetes",
        "request_protocol": "grpc", "response_code": code, "grpc_response_status": "0", "response_flags": "-",
        "connection_security_policy": "unknown" if reporter == "source" else "mutual_tls",
        # kube-prometheus-stack's PodMonitor on the sidecar's merged metrics port
        "job": "istio-system/envoy-stats-monitor", "namespace": src_ns if reporter == "source" else dst_ns,
        "pod": f"{src if reporter == 'source' else dst}-7d9c8f9b6-x2k4q", "container": "istio-proxy",
        "endpoint": "http-envoy-prom", "instance": "10.244.1.23:15090"}


def _linkerd(src: str, dst: str, dst_ns: str, *, direction: str = "outbound") -> dict[str, str]:
    """request_total's labels as linkerd2-proxy 2.14 writes them (the linkerd-proxy scrape job)."""
    return {
        "direction": direction, "deployment": src, "namespace": NS, "pod": f"{src}-5f86686c4d-58p7k",
        "pod_template_hash": "5f86686c4d", "serviceaccount": src, "control_plane_ns": "linkerd",
        "authority": f"{dst}.{dst_ns}.svc.cluster.local:8080", "tls": "true", "target_addr": "10.244.0.13:8080",
        "target_ip": "10.244.0.13", "target_port": "8080", "dst_deployment": dst, "dst_namespace": dst_ns,
        "dst_pod": f"{dst}-696d9d8f95-5vn9w", "dst_pod_template_hash": "696d9d8f95", "dst_service": dst,
        "dst_serviceaccount": dst, "dst_control_plane_ns": "linkerd", "job": "linkerd-proxy",
        "instance": "10.244.0.15:4191"}


def _graph(client: str, server: str, connection_type: str = "", **dims: str) -> dict[str, str]:
    """traces_service_graph_request_total as Tempo's metrics-generator remote-writes it."""
    return {"client": client, "server": server, "connection_type": connection_type, **dims}


@dataclass
class EdgeWorld:
    """One source's edges around the frontend, the objects of a shop with a payments namespace,
    and the dependencies an SRE would list."""

    name: str
    series: list[Series]
    now: float
    expect: frozenset[ObjectRef]
    alert: Alert = dataclasses.field(default_factory=lambda: Alert("X", {}))

    def __post_init__(self) -> None:
        self.alert = Alert("KubeDeploymentReplicasMismatch", {"namespace": NS, "deployment": CALLER},
                           starts_at=self.now - 120.0, fingerprint=f"edges-{self.name}")


def _dep(name: str, ns: str = NS, kind: str = "Deployment") -> ObjectRef:
    return ObjectRef(kind, ns, name)


ENV_DEP = _dep("cartservice")  # named by the frontend's CART_SERVICE_ADDR


def _replicas(name: str, ns: str, spec: float, available: float, now: float) -> list[Series]:
    """A Deployment's replica series (kube-state-metrics, kube-prometheus-stack scrape labels)."""
    ksm = {"job": "kube-state-metrics", "service": "kube-prometheus-stack-kube-state-metrics", "endpoint": "http",
           "instance": "10.244.0.17:8080", "pod": "kube-prometheus-stack-kube-state-metrics-6d8c7b9f4-x7k2p",
           "container": "kube-state-metrics", "namespace": ns, "deployment": name}
    return [Series("kube_deployment_spec_replicas", ksm, counter(0.0, now - 1200.0, now, spec)),
            Series("kube_deployment_status_replicas_available", ksm, counter(0.0, now - 1200.0, now, available))]


def _own(now: float) -> list[Series]:
    return _replicas(CALLER, NS, 2.0, 1.0, now)


def istio_world(day: int = 0) -> EdgeWorld:
    now = BASE + day * 86400.0
    start = now - 1200.0
    m = "istio_requests_total"
    series = [
        Series(m, _istio(CALLER, NS, "productcatalogservice", NS), counter(4.0, start, now)),
        Series(m, _istio(CALLER, NS, "productcatalogservice", NS, reporter="destination"), counter(4.0, start, now)),
        Series(m, _istio(CALLER, NS, "paymentservice", PAY), counter(0.5, start, now)),  # another namespace
        Series(m, _istio(CALLER, NS, "paymentservice", PAY, code="503"), counter(0.1, start, now)),
        # Called hours ago, not since: no traffic in the window.
        Series(m, _istio(CALLER, NS, "currencyservice", NS), counter(0.0, start, now, 5120.0)),
        # Egress to outside the mesh: Istio knows no workload there.
        Series(m, _istio(CALLER, NS, "unknown", "unknown", service="PassthroughCluster"), counter(1.0, start, now)),
        # The frontend's callers (the load generator) report it as their destination: not its dependencies.
        Series(m, _istio("loadgenerator", NS, CALLER, NS), counter(9.0, start, now)),
        # A frontend of another namespace (staging) calling its own catalog.
        Series(m, _istio(CALLER, "staging", "adservice", "staging"), counter(2.0, start, now)),
    ]
    # paymentservice as its own sidecar and kube-state-metrics see it, in payments: one of its two
    # replicas available, a sixth of its requests failing.
    series += [Series(m, _istio(CALLER, NS, "paymentservice", PAY, reporter="destination"), counter(0.5, start, now)),
               Series(m, _istio(CALLER, NS, "paymentservice", PAY, reporter="destination", code="503"),
                      counter(0.1, start, now)),
               *_replicas("paymentservice", PAY, 2.0, 1.0, now)]
    return EdgeWorld("istio", [*series, *_own(now)], now,
                     frozenset({ENV_DEP, _dep("productcatalogservice"), _dep("paymentservice", PAY)}))


def linkerd_world(day: int = 1) -> EdgeWorld:
    now = BASE + day * 86400.0
    start = now - 1200.0
    series = [
        Series("request_total", _linkerd(CALLER, "recommendationservice", NS), counter(3.0, start, now)),
        # A counter that reset when the proxy restarted mid-window still counts its calls.
        Series("request_total", _linkerd(CALLER, "checkoutservice", NS),
               [*counter(1.0, start, now - 600.0, 2000.0)[:-1], *counter(0.2, now - 600.0, now)]),
        # Inbound: the frontend's callers, seen from its own proxy.
        Series("request_total", _linkerd(CALLER, "loadgenerator", NS, direction="inbound"), counter(9.0, start, now)),
    ]
    return EdgeWorld("linkerd", [*series, *_own(now)], now,
                     frozenset({ENV_DEP, _dep("recommendationservice"), _dep("checkoutservice")}))


def graph_world(day: int = 2) -> EdgeWorld:
    now = BASE + day * 86400.0
    start = now - 1200.0
    m = "traces_service_graph_request_total"
    series = [
        # service.name "shippingservice" is the Service in front of the Deployment "shipping".
        Series(m, _graph(CALLER, "shippingservice"), counter(1.5, start, now)),
        # A database span (db.system): a virtual node named by the peer, the redis-cart Service.
        Series(m, _graph(CALLER, "redis-cart", "database"), counter(2.0, start, now)),
        # With the service.namespace dimension configured: the payments namespace's Service.
        Series(m, _graph(CALLER, "paymentservice", client_service_namespace=NS, server_service_namespace=PAY),
               counter(0.5, start, now)),
        Series(m, _graph("loadgenerator", CALLER), counter(9.0, start, now)),
        # A service name that is no Service or workload the cluster has.
        Series(m, _graph(CALLER, "api.stripe.com"), counter(0.5, start, now)),
    ]
    return EdgeWorld("service-graph", [*series, *_own(now)], now,
                     frozenset({ENV_DEP, _dep("shipping"), _dep("redis-cart", kind="StatefulSet"),
                                _dep("paymentservice", PAY)}))


WORLDS = {"istio": istio_world, "linkerd": linkerd_world, "service-graph": graph_world}


def _deployment(name: str, ns: str = NS, *, app: str | None = None, env: Mapping[str, str] | None = None,
                annotations: Mapping[str, str] | None = None, kind: str = "Deployment") -> dict[str, Any]:
    labels = {"app": app or name}
    container: dict[str, Any] = {"name": "server", "image": f"{name}:1"}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": ns, "labels": {**labels, "tier": "backend"},
                         "annotations": dict(annotations or {})},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}},
            "status": {"replicas": 1, "availableReplicas": 1, "readyReplicas": 1}}


def _service(name: str, app: str, ns: str = NS) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": app}, "ports": [{"name": "grpc", "port": 7070, "targetPort": 7070}]}}


FRONTEND_ENV = {"CART_SERVICE_ADDR": "cartservice:7070", "ENV_PLATFORM": "gcp"}


def shop_objects(*, annotations: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The workloads and Services the edges name (in shop and payments), as the cluster holds them."""
    return [
        _deployment(CALLER, env=FRONTEND_ENV, annotations=annotations),
        *[_deployment(n) for n in ("cartservice", "productcatalogservice", "currencyservice",
                                   "recommendationservice", "checkoutservice", "adservice")],
        _deployment("shipping"), _deployment("paymentservice", PAY),
        _deployment("redis-cart", kind="StatefulSet"),
        _service("cartservice", "cartservice"), _service("shippingservice", "shipping"),
        _service("redis-cart", "redis-cart"), _service("paymentservice", "paymentservice", PAY),
    ]


def snapshot_of(world: EdgeWorld, objects: list[dict[str, Any]] | None = None) -> Snapshot:
    return build_snapshot(world.alert, world.series, objects if objects is not None else shop_objects(),
                          now=world.now)


FRONTEND = ObjectRef("Deployment", NS, CALLER)


@pytest.mark.parametrize("name", sorted(WORLDS))
def test_the_callees_with_traffic_are_dependencies_merged_with_the_envs(name: str) -> None:
    world = WORLDS[name]()
    snap = snapshot_of(world)
    assert set(snap.dependencies) == world.expect
    assert len(snap.dependencies) == len(world.expect)


def test_istio_callees_read_off_the_client_side_report() -> None:
    w = istio_world()
    found = callees(w.series, FRONTEND, since=w.now - 900.0, until=w.now)
    assert [(c.namespace, c.name) for c in found] == [(PAY, "paymentservice"), (NS, "productcatalogservice")]
    assert all(c.source == "istio" and c.kind is None for c in found)


def test_an_edge_counts_only_with_traffic_in_the_window() -> None:
    w = istio_world()
    # The whole history: the catalog's counter grew; the currency service's never did.
    names = {c.name for c in callees(w.series, FRONTEND, since=w.now - 1200.0, until=w.now)}
    assert "productcatalogservice" in names and "currencyservice" not in names
    # A window before any sample: no traffic seen, no edge.
    assert callees(w.series, FRONTEND, since=w.now - 5000.0, until=w.now - 1300.0) == ()


def test_a_reset_counter_still_counts_its_calls() -> None:
    w = linkerd_world()
    reset = next(s for s in w.series if s.labels.get("dst_deployment") == "checkoutservice")
    window = [v for t, v in reset.points if t >= w.now - 620.0]
    assert window[-1] < window[0]  # the proxy restarted in the window: the last value is below the first
    found = callees([reset], FRONTEND, since=w.now - 620.0, until=w.now)
    assert found == (Callee(NS, "checkoutservice", "Deployment", False, "linkerd"),)


def test_linkerd_names_deployments_only() -> None:
    w = linkerd_world()
    sts = ObjectRef("StatefulSet", NS, CALLER)  # a StatefulSet named frontend is not the `deployment` label's
    assert callees(w.series, sts, since=w.now - 900.0, until=w.now) == ()


def test_service_graph_namespaces_come_from_its_dimensions() -> None:
    w = graph_world()
    found = {(c.namespace, c.name) for c in callees(w.series, FRONTEND, since=w.now - 900.0, until=w.now)}
    assert found == {(NS, "shippingservice"), (NS, "redis-cart"), (PAY, "paymentservice"), (NS, "api.stripe.com")}
    # The client dimension says which namespace's frontend called: not staging's.
    staging = ObjectRef("Deployment", "staging", CALLER)
    assert {c.name for c in callees(w.series, staging, since=w.now - 900.0, until=w.now)} == {
        "shippingservice", "redis-cart", "api.stripe.com"}


def test_the_annotation_overrides_edges_and_env() -> None:
    w = istio_world()
    snap = snapshot_of(w, shop_objects(annotations={DEPENDS_ON_ANNOTATION: "currencyservice"}))
    assert snap.dependencies == (_dep("currencyservice"),)


def test_a_callee_the_cluster_does_not_show_is_no_dependency() -> None:
    """Istio names a workload but not its kind: unobserved (a 403 in payments), it is not guessed."""
    w = istio_world()
    objects = [o for o in shop_objects() if o["metadata"]["namespace"] != PAY]
    assert set(snapshot_of(w, objects).dependencies) == {ENV_DEP, _dep("productcatalogservice")}


def test_a_name_two_kinds_share_names_none() -> None:
    w = istio_world()
    twin = _deployment("productcatalogservice", kind="StatefulSet")
    assert _dep("productcatalogservice") not in snapshot_of(w, [*shop_objects(), twin]).dependencies


def test_the_edge_selectors_select_the_callers_side() -> None:
    assert EDGE_SOURCES["linkerd"].selector() == (
        'request_total{direction="outbound", namespace="$namespace", deployment="$deployment"}')
    assert EDGE_SOURCES["service-graph"].selector() == 'traces_service_graph_request_total{client="$workload"}'


def test_a_dependency_in_another_namespace_is_judged_on_its_own_series() -> None:
    """paymentservice's replicas and requests are read in payments, not looked up in shop."""
    w = istio_world()
    snap = build_snapshot(w.alert, w.series, shop_objects(), now=w.now, sli=PROFILES["istio"])
    assert snap.dependencies[0] == _dep("paymentservice", PAY)  # the worst: half its replicas, errors
    assert snap.signals.dep_available_ratio == 0.5
    assert abs(snap.signals.dep_error_ratio - 0.1 / 0.6) < 1e-6
    assert not {"dep_available_ratio", "dep_error_ratio"} & snap.unknown_signals
    # The same names in shop would not stand in for it.
    moved = [Series(s.name, {**s.labels, "namespace": NS}, s.points) if s.labels.get("deployment") == "paymentservice"
             else s for s in w.series]
    assert build_snapshot(w.alert, moved, shop_objects(), now=w.now).signals.dep_available_ratio == 1.0

"""The live observer against a real Prometheus: the round trip of DESIGN §3, and its failure modes.

Round trip: a simulated incident's series are exported as OpenMetrics, backfilled into a
real Prometheus with promtool, read back through `PrometheusSource` (raw samples) and fed
with the same alert and objects to `build_snapshot`; the observation vector equals the
simulator's direct `encode(incident.observe())`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import numpy as np
import pytest

import remediator.snapshot
from remediator.actions import ObjectRef
from remediator.encoding import encode, feature_names
from remediator.live.config import ConfigError
from remediator.live.kube import Backoff
from remediator.live.observer import (
    CONTRACT_METRICS,
    KubeObjectSource,
    KubernetesUnavailable,
    Observer,
    PrometheusSource,
    PrometheusUnavailable,
    StaticObjects,
    load_templates,
    objects_from_alert,
)
from remediator.snapshot import Alert, build_snapshot
from tests.live.conftest import requires_prometheus
from tests.live.sim import incident, observed_series, prometheus_with
from tests.support.kube import KubeEmulator, KubeServer
from tests.support.prom import binaries_available as prom_binaries
from tests.support.prom import free_port

TOLERANCE = 1e-6  # float32 observation entries; measured difference here: 0.0

ROUND_TRIP = [
    ("memory_leak", 60.0), ("bad_rollout", 60.0), ("bad_config_rollout", 60.0), ("traffic_spike", 60.0),
    ("cpu_limit_low", 60.0), ("volume_filling", 60.0), ("node_not_ready", 60.0), ("dependency_errors", 60.0),
    ("scaled_to_zero", 60.0), ("pod_stuck_not_ready", 60.0), ("hung_process", 60.0), ("no_fault", 60.0),
    ("memory_leak", 420.0), ("traffic_spike", 600.0),
]

# The cluster's dialect (simulator.dialect): request metrics in another SLI profile or none at all,
# an istio-proxy sidecar, kube-prometheus-stack's scrape labels on every series and alert.
# (fault, SLI profile, sidecar, scrape labels, StatefulSet)
DIALECT_ROUND_TRIP = [
    ("memory_leak", "istio", True, True, False), ("bad_config_rollout", "grpc", False, True, False),
    ("dependency_errors", "linkerd", True, False, False), ("hung_process", "otel-spanmetrics", False, True, False),
    ("traffic_spike", "none", True, True, False), ("node_not_ready", "http", True, True, False),
    ("volume_filling", "istio", False, True, False), ("cpu_limit_low", "http", True, True, False),
    ("bad_rollout", "http", False, True, True), ("memory_leak", "istio", True, True, True),
    ("traffic_spike", "grpc", False, False, True), ("volume_filling", "none", False, True, True),
]


def _assert_same_observation(direct: Any, live: Any) -> float:
    a, b = encode(direct), encode(live)
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    worst = int(np.argmax(diff))
    assert diff.max() <= TOLERANCE, f"{feature_names()[worst]}: simulator {a[worst]} vs live {b[worst]}"
    for f in dataclasses.fields(direct.signals):
        x, y = getattr(direct.signals, f.name), getattr(live.signals, f.name)
        assert (math.isinf(x) and x == y) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), f.name
    assert live.workload == direct.workload and live.pods == direct.pods and live.node == direct.node
    assert live.missing == direct.missing
    return float(diff.max())


DAY = 86400.0


@dataclasses.dataclass(frozen=True)
class RoundTrip:
    direct: Any  # the simulator's own Snapshot
    alert: Alert
    objects: list[dict[str, Any]]
    history: tuple[Any, ...]
    now: float


def _shift(inc: Any, offset: float) -> tuple[list[Any], RoundTrip]:
    """The incident moved `offset` seconds later: series, alert, objects and history alike."""
    series = [remediator.snapshot.Series(s.name, s.labels, [(t + offset, v) for t, v in s.points])
              for s in observed_series(inc)]
    objects = inc.cluster.objects()
    for o in objects:
        if isinstance(o["metadata"].get("creationTimestamp"), float):
            o["metadata"]["creationTimestamp"] += offset
        for managed in o["metadata"].get("managedFields") or ():  # when a ConfigMap or Service was written
            managed["time"] += offset
    alert = dataclasses.replace(inc.alert, starts_at=inc.alert.starts_at + offset)
    history = tuple(dataclasses.replace(a, at=a.at + offset) for a in inc.attempts)
    return series, RoundTrip(inc.observe(), alert, objects, history, inc.now + offset)


@pytest.fixture(scope="module")
def round_trips(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, RoundTrip]]]:
    """All cases in one Prometheus, each moved to its own day (the observation must not care when)."""
    if not prom_binaries():
        pytest.fail("prometheus/promtool missing: run scripts/ci/install-system.sh")
    cases: dict[str, RoundTrip] = {}
    series: list[Any] = []
    for i, (fault, after_s) in enumerate(ROUND_TRIP):
        shifted, case = _shift(incident(fault, after_s=after_s), i * DAY)
        series += shifted
        cases[f"{fault}+{int(after_s)}s"] = case
    with prometheus_with(tmp_path_factory.mktemp("roundtrip"), series) as prom:
        yield prom.url, cases


@requires_prometheus
@pytest.mark.parametrize("case", [f"{f}+{int(t)}s" for f, t in ROUND_TRIP])
def test_round_trip_through_prometheus_gives_the_simulators_observation(
        round_trips: tuple[str, dict[str, RoundTrip]], case: str) -> None:
    url, cases = round_trips
    rt = cases[case]
    observer = Observer(PrometheusSource(url, retries=0), StaticObjects(rt.objects))
    obs = observer.observe(rt.alert, now=rt.now, history=rt.history)
    assert obs.usable, obs.problem
    _assert_same_observation(rt.direct, obs.snapshot)
    assert obs.queries >= 14


@requires_prometheus
@pytest.mark.parametrize(("fault", "sli", "sidecar", "scrape_labels", "statefulset"), DIALECT_ROUND_TRIP)
def test_round_trip_in_the_clusters_dialect(tmp_path: Path, fault: str, sli: str, sidecar: bool,
                                            scrape_labels: bool, statefulset: bool) -> None:
    """A cluster that speaks kube-prometheus-stack, a mesh or no request metrics at all: the series
    through a real Prometheus and the live observer (reading the incident's SLI profile) give the
    simulator's own observation, the SLO unknown exactly when no request metric exists."""
    inc = incident(fault, sli=sli, sidecar=sidecar, scrape_labels=scrape_labels, statefulset=statefulset)
    direct = inc.observe()
    assert direct.workload is not None
    assert direct.workload.kind == ("StatefulSet" if statefulset else "Deployment")
    series = observed_series(inc)
    if scrape_labels:
        ksm = next(s for s in series if s.name in ("kube_deployment_spec_replicas", "kube_statefulset_replicas"))
        assert ksm.labels["job"] == "kube-state-metrics" and ksm.labels["pod"].startswith("kube-prometheus-stack-")
        assert inc.alert.labels.get("job") in ("kube-state-metrics", "kubelet", None)
    with prometheus_with(tmp_path, series) as prom:
        obs = Observer(PrometheusSource(prom.url, retries=0), StaticObjects(inc.cluster.objects()),
                       sli=inc.sli).observe(inc.alert, now=inc.now)
    assert obs.usable, obs.problem
    _assert_same_observation(direct, obs.snapshot)
    assert obs.snapshot.unknown_signals == direct.unknown_signals
    assert obs.snapshot.slo_known is (sli != "none")
    if direct.workload and direct.workload.name == inc.cluster.focus.name:  # a node alert may name a neighbour
        assert obs.snapshot.containers == (("app", "istio-proxy") if sidecar else ("app",))


@requires_prometheus
def test_round_trip_after_actions(tmp_path: Path) -> None:
    """Later in an incident, with actions in its history, the observation still matches."""
    from remediator.actions import Action, ActionKind

    inc = incident("memory_leak", after_s=30.0)
    workload = inc.observe().workload
    assert workload is not None
    inc.execute(Action(ActionKind.RAISE_MEMORY_LIMIT, workload, {"factor": 2.0}))
    inc.advance(60.0)
    direct = inc.observe()
    assert direct.history
    with prometheus_with(tmp_path, observed_series(inc)) as prom:
        obs = Observer(PrometheusSource(prom.url, retries=0), StaticObjects(inc.cluster.objects())).observe(
            inc.alert, now=inc.now, history=tuple(inc.attempts))
    _assert_same_observation(direct, obs.snapshot)


@requires_prometheus
def test_a_missing_metric_is_reported_not_fatal(tmp_path: Path) -> None:
    inc = incident("memory_leak")
    series = [s for s in observed_series(inc) if not s.name.startswith("http_")]
    with prometheus_with(tmp_path, series) as prom:
        obs = Observer(PrometheusSource(prom.url, retries=0), StaticObjects(inc.cluster.objects())).observe(
            inc.alert, now=inc.now)
    assert obs.usable
    assert {m.metric for m in obs.missing} >= {"http_requests_total", "http_request_duration_seconds_bucket"}
    assert "http_requests_total" in obs.snapshot.missing
    assert obs.snapshot.signals.request_rate == 0.0 and obs.snapshot.signals.oom_fraction > 0


@requires_prometheus
def test_a_rejected_query_is_one_missing_metric(tmp_path: Path) -> None:
    inc = incident("bad_rollout")
    shipped = (Path(remediator.snapshot.__file__).parent / "data" / "promql.yaml").read_text()
    broken = shipped.replace('query: kube_pod_status_ready{namespace="$namespace", pod=~"$pods", condition="true"}',
                             'query: kube_pod_status_ready{namespace="$namespace", pod=~"$pods",,}')
    assert broken != shipped
    (tmp_path / "q.yaml").write_text(broken)
    with prometheus_with(tmp_path, observed_series(inc)) as prom:
        observer = Observer(PrometheusSource(prom.url, retries=0), StaticObjects(inc.cluster.objects()),
                            templates=load_templates(tmp_path / "q.yaml"))
        obs = observer.observe(inc.alert, now=inc.now)
    assert obs.usable
    [bad] = [m for m in obs.missing if m.metric == "kube_pod_status_ready"]
    assert "rejected" in bad.reason and "400" in bad.reason


@requires_prometheus
def test_stale_data_is_not_usable(tmp_path: Path) -> None:
    inc = incident("memory_leak")
    with prometheus_with(tmp_path, observed_series(inc)) as prom:
        source = PrometheusSource(prom.url, retries=0)
        objects = StaticObjects(inc.cluster.objects())
        late = Observer(source, objects).observe(inc.alert, now=inc.now + 600)  # scrapes stopped 10 min ago
        lagging = Observer(source, objects, max_staleness_s=60).observe(inc.alert, now=inc.now + 90)
    assert not late.usable and "no sample" in (late.problem or "")
    assert not lagging.usable and "stale data: the newest sample is 105s old" in (lagging.problem or "")


def test_prometheus_unreachable_raises_and_names_it() -> None:
    """No snapshot, and an error that says which Prometheus and why; how long failing takes is a figure
    of benchmarks/observer_latency.py, not an assertion here."""
    url = f"http://127.0.0.1:{free_port()}"
    observer = Observer(PrometheusSource(url, retries=1, timeout_s=2),
                        StaticObjects(objects_from_alert(Alert("X", {"namespace": "shop", "deployment": "cart"}))))
    with pytest.raises(PrometheusUnavailable, match=re.escape(url)) as raised:
        observer.observe(Alert("X", {"namespace": "shop", "deployment": "cart"}, starts_at=1.0), now=100.0)
    message = str(raised.value)
    assert f"Prometheus at {url} is unreachable: ConnectionError" in message
    assert "Max retries exceeded" in message  # the retries ran out: the observation gives up, it does not hang


class _Answer(BaseHTTPRequestHandler):
    status = 503

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def failing_prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_prometheus_5xx_means_no_snapshot(failing_prometheus: str) -> None:
    alert = Alert("X", {"namespace": "shop", "deployment": "cart"}, starts_at=1.0)
    observer = Observer(PrometheusSource(failing_prometheus, retries=0), StaticObjects(objects_from_alert(alert)))
    with pytest.raises(PrometheusUnavailable, match="503"):
        observer.observe(alert, now=100.0)


def test_shipped_templates_cover_the_snapshot_contract() -> None:
    documented = set(re.findall(r"^\s{4}(\w+)\{", remediator.snapshot.__doc__ or "", re.M))
    assert documented == set(CONTRACT_METRICS)
    assert set(load_templates().metrics) == set(CONTRACT_METRICS)


@pytest.mark.parametrize(("text", "problem"), [
    ("metrics: {kube_pod_ready: {query: 'x'}}", "not in the snapshot's metric contract"),
    ("metrics: {kube_pod_status_ready: {query: 'x{pod=\"$pod\"}'}}", "unknown placeholder(s) $pod"),
    ("metrics: {kube_pod_status_ready: {query: 'x[5m]'}}", "without a range"),
    ("metrics: {kube_pod_status_ready: {query: 'x', window: long}}", "metrics.kube_pod_status_ready.window"),
    ("windows: {baseline_start_s: 100, baseline_end_s: 300}\nmetrics: {}", "baseline_start_s"),
])
def test_template_errors_name_the_key(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "q.yaml").write_text(text)
    with pytest.raises(ConfigError) as e:
        load_templates(tmp_path / "q.yaml")
    assert problem in str(e.value)


def test_offline_objects_tie_every_alert_shape_to_its_workload() -> None:
    cases = {
        "deployment": {"deployment": "cart"},
        "service": {"service": "cart"},
        "pod": {"pod": "cart-7d9f8b6c5-x2x1z"},
        "hpa": {"horizontalpodautoscaler": "cart"},
        "pvc": {"persistentvolumeclaim": "cart-data"},
    }
    for labels in cases.values():
        alert = Alert("A", {"namespace": "shop", **labels})
        snap = build_snapshot(alert, [], objects_from_alert(alert), now=0.0)
        assert snap.workload == ObjectRef("Deployment", "shop", "cart"), labels


# ---------------------------------------------------------------------------- objects from the Kubernetes API


def _seed_cluster(kube: KubeServer) -> dict[str, Any]:
    seeded = kube.seed_deployment("cart", "shop", replicas=2, images=("cart:1", "cart:2"), nodes=("node-a", "node-b"))
    kube.seed_deployment("web", "front", replicas=1, nodes=("node-a",))
    kube.seed(
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "cart-hpa",
                                                                                       "namespace": "shop"},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cart"},
                  "maxReplicas": 4}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "front"},
         "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}},
        {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "shop"},
         "involvedObject": {"kind": "Pod", "name": seeded["pods"][0]["metadata"]["name"], "namespace": "shop"},
         "reason": "BackOff", "message": "Back-off restarting failed container", "type": "Warning",
         "lastTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    )
    return seeded


@pytest.mark.parametrize("labels", [
    {"deployment": "cart"}, {"pod": "<pod>"}, {"horizontalpodautoscaler": "cart-hpa"}, {"node": "node-b"},
], ids=["deployment", "pod", "hpa", "node"])
def test_kubernetes_objects_around_an_alert(kube: KubeServer, labels: dict[str, str]) -> None:
    seeded = _seed_cluster(kube)
    pod = seeded["pods"][1]["metadata"]["name"]
    labels = {k: (pod if v == "<pod>" else v) for k, v in labels.items()}
    alert = Alert("A", {"namespace": "shop", **labels} if "node" not in labels else labels)
    objects = KubeObjectSource(kube.api_client(retries=False)).fetch(alert)

    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert all(o.get("apiVersion") and o.get("kind") for o in objects)
    if "node" not in labels:
        assert ("Deployment", "cart") in kinds and ("HorizontalPodAutoscaler", "cart-hpa") in kinds
        assert sum(1 for k, n in kinds if k == "ReplicaSet" and n.startswith("cart-")) == 2
        assert {n for k, n in kinds if k == "Node"} == {"node-a", "node-b"}
        assert any(k == "Event" for k, _ in kinds)
    snap = build_snapshot(alert, [], objects, now=time.time())
    assert snap.workload == ObjectRef("Deployment", "shop", "cart")
    assert snap.signals.has_previous_revision == 1.0
    assert len(snap.pods) == 2
    # The drain budget sees the neighbour on node-a: web's PDB allows no disruption.
    if snap.node == "node-a":
        assert snap.signals.node_pdb_disruptions_allowed == 0


def test_kubernetes_api_down_means_no_snapshot(kube: KubeServer) -> None:
    _seed_cluster(kube)
    kube.inject_fault(500, times=100, method="GET")
    source = KubeObjectSource(kube.api_client(retries=False))
    source.backoff.sleep = lambda s: None
    with pytest.raises(KubernetesUnavailable, match="gave up"):
        Observer(None, source).observe(Alert("A", {"namespace": "shop", "deployment": "cart"}), now=1.0)


@attrs.define(kw_only=True)
class HangingEmulator(KubeEmulator):
    """Withholds the answer to every GET of `hang_path` until `release` is set (an API server that hangs)."""

    hang_path: str = ""
    hung: int = 0
    release: threading.Event = attrs.field(factory=threading.Event)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if raw_request.method == "GET" and raw_request.path == self.hang_path:
            self.hung += 1
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        return await super().__call__(raw_request)


def test_a_hung_kubernetes_call_fails_the_observation_within_the_request_timeout() -> None:
    emulator = HangingEmulator(hang_path="/apis/apps/v1/namespaces/shop/deployments/cart")
    with KubeServer(emulator) as kube:
        try:
            _seed_cluster(kube)
            source = KubeObjectSource(kube.api_client(retries=False), timeout_s=0.3,
                                      backoff=Backoff(max_attempts=2, sleep=lambda s: None))
            with pytest.raises(KubernetesUnavailable) as raised:
                Observer(None, source).observe(Alert("A", {"namespace": "shop", "deployment": "cart"}), now=1.0)
            assert str(raised.value) == (
                "read Deployment shop/cart: gave up after 2 attempts (last answer ReadTimeoutError): "
                "no answer within kubernetes.timeout_s (0.3s) on any attempt")
            assert emulator.hung == 2  # each attempt was sent, and each one timed out
        finally:
            emulator.release.set()


def test_the_configured_kubernetes_timeout_reaches_the_observer() -> None:
    from remediator.live.config import LiveConfig
    from remediator.live.wiring import make_observer

    config = LiveConfig.model_validate({"kubernetes": {"timeout_s": 2.5}})
    with KubeServer(KubeEmulator()) as kube:
        observer = make_observer(config, kube_api=kube.api_client(retries=False))
    assert isinstance(observer.objects, KubeObjectSource) and observer.objects.timeout_s == 2.5

"""Dependencies from mesh and tracing edges through a real Prometheus and the Kubernetes emulator.

The worlds of tests/test_edges.py (Istio's client-side report, Linkerd's outbound proxy, Tempo's
service graph, each with the labels its exporter writes) are backfilled into one Prometheus with
promtool, each on its own day. The live observer runs the edge queries remediator/edges.py
derives, reads the callees' objects from the emulator (in another namespace too) and decides the
same dependencies `build_snapshot` does on the raw series; `remediator record` records the edge
series and the callees' objects, so that a replay of the trace sees the same dependencies.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import yaml

from remediator.actions import ObjectRef
from remediator.edges import EDGE_SOURCES
from remediator.live.config import ConfigError
from remediator.live.kube import Backoff
from remediator.live.observer import KubeObjectSource, Observer, PrometheusSource, load_templates
from remediator.replay.record import record
from remediator.replay.run import observe_trace
from remediator.slis import PROFILES
from remediator.snapshot import build_snapshot
from tests.live.conftest import requires_prometheus
from tests.live.sim import prometheus_with
from tests.support.kube import KubeEmulator, KubeServer
from tests.support.prom import binaries_available as prom_binaries
from tests.test_edges import FRONTEND_ENV, PAY, WORLDS, EdgeWorld, shop_objects


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, EdgeWorld]]]:
    if not prom_binaries():
        pytest.fail("prometheus/promtool missing: run scripts/ci/install-system.sh")
    worlds = {name: make(day) for day, (name, make) in enumerate(WORLDS.items())}
    with prometheus_with(tmp_path_factory.mktemp("edges"), [s for w in worlds.values() for s in w.series]) as server:
        yield server.url, worlds


@pytest.fixture
def shop() -> Iterator[KubeServer]:
    with KubeServer(KubeEmulator()) as kube:
        kube.seed(*shop_objects())
        yield kube


def _observer(url: str, kube: KubeServer) -> Observer:
    source = KubeObjectSource(kube.api_client(retries=False), backoff=Backoff(base_s=0.01, max_s=0.05))
    return Observer(PrometheusSource(url, retries=0), source)


@requires_prometheus
@pytest.mark.parametrize("name", sorted(WORLDS))
def test_the_live_observer_reads_dependencies_off_the_edges(prom: tuple[str, dict[str, EdgeWorld]],
                                                             shop: KubeServer, name: str) -> None:
    url, worlds = prom
    world = worlds[name]
    obs = _observer(url, shop).observe(world.alert, now=world.now)
    assert obs.usable, obs.problem
    snap = obs.snapshot
    assert set(snap.dependencies) == world.expect and len(snap.dependencies) == len(world.expect)
    # The env-derived one is still there; a callee in payments was read from payments, labels and all.
    assert any(d.name == "cartservice" for d in snap.dependencies) and "CART_SERVICE_ADDR" in FRONTEND_ENV
    for dep in snap.dependencies:
        assert (snap.dependency_labels_of(dep) or {}).get("tier") == "backend", dep
    # The same decision as the core's on the raw series and the objects the observer read.
    direct = build_snapshot(world.alert, world.series, list(obs.objects), now=world.now)
    assert set(direct.dependencies) == set(snap.dependencies)
    # No mesh of the other kinds is no missing signal.
    assert not {m.metric for m in obs.missing} & {"istio_requests_total", "request_total",
                                                  "traces_service_graph_request_total"}


@requires_prometheus
def test_a_callee_in_another_namespace_is_read_there(prom: tuple[str, dict[str, EdgeWorld]],
                                                      shop: KubeServer) -> None:
    url, worlds = prom
    world = worlds["istio"]
    obs = _observer(url, shop).observe(world.alert, now=world.now)
    read = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in obs.objects}
    assert ("Deployment", PAY, "paymentservice") in read
    # Only what an edge named: nothing else of payments.
    assert {r for r in read if r[1] == PAY} == {("Deployment", PAY, "paymentservice")}


@requires_prometheus
def test_a_dependency_in_another_namespace_is_judged_on_its_series_there(
        prom: tuple[str, dict[str, EdgeWorld]], shop: KubeServer) -> None:
    url, worlds = prom
    world = worlds["istio"]
    observer = _observer(url, shop)
    observer.sli = PROFILES["istio"]
    snap = observer.observe(world.alert, now=world.now).snapshot
    assert snap.dependencies[0] == ObjectRef("Deployment", PAY, "paymentservice")
    assert snap.signals.dep_available_ratio == 0.5 and abs(snap.signals.dep_error_ratio - 0.1 / 0.6) < 1e-6
    direct = build_snapshot(world.alert, world.series, shop_objects(), now=world.now, sli=PROFILES["istio"])
    assert snap.signals == direct.signals and snap.unknown_signals == direct.unknown_signals


@requires_prometheus
@pytest.mark.parametrize("name", sorted(WORLDS))
def test_a_recorded_trace_replays_the_same_dependencies(prom: tuple[str, dict[str, EdgeWorld]],
                                                         shop: KubeServer, name: str) -> None:
    url, worlds = prom
    world = worlds[name]
    observer = _observer(url, shop)
    trace = record(observer, world.alert, before_s=900.0, after_s=120.0, now=world.now)
    edge_metrics = {"istio_requests_total", "request_total", "traces_service_graph_request_total"}
    assert {s.name for s in trace.series} & edge_metrics, "the edge series are in the trace"
    live = observer.observe(world.alert, now=world.now).snapshot
    replayed = observe_trace(trace, at=world.now).snapshot
    assert set(replayed.dependencies) == set(live.dependencies) == world.expect
    assert replayed.dependency_labels == live.dependency_labels
    assert replayed.signals == live.signals  # the dependencies' series in other namespaces recorded too
    # At the decision time too (the alert's start): the same edges had traffic then.
    at = trace.decide_at
    assert set(observe_trace(trace, at=at).snapshot.dependencies) == set(
        observer.observe(world.alert, now=at).snapshot.dependencies)


def test_a_templates_file_may_replace_one_edge_query(tmp_path: Path) -> None:
    path = tmp_path / "promql.yaml"
    base = yaml.safe_load(resources.files("remediator").joinpath("data/promql.yaml").read_text())
    query = 'istio_requests_total{reporter="source", source_workload="$workload", source_cluster="east"}'
    path.write_text(yaml.safe_dump({**base, "edges": {"istio": {"query": query, "window": "trend"}}}))
    t = load_templates(path)
    assert dict((m, q.query) for m, q in t.edge_queries())["istio_requests_total"] == query
    assert len(t.edge_queries()) == len(EDGE_SOURCES)  # the others stay derived
    path.write_text(yaml.safe_dump({**base, "edges": {"envoy": {"query": query}}}))
    with pytest.raises(ConfigError, match="envoy not an edge source"):
        load_templates(path)
    path.write_text(yaml.safe_dump({**base, "edges": {"linkerd": {"query": query}}}))
    with pytest.raises(ConfigError, match="linkerd: the query must select request_total"):
        load_templates(path)

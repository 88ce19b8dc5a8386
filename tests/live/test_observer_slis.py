"""Honest SLIs through a real Prometheus (docs/slis.md).

The worlds of tests/test_slis.py (an app with an istio-proxy sidecar, gRPC over Istio, a gRPC app
with go-grpc-prometheus metrics and no HTTP metrics) are backfilled into one Prometheus with
promtool, each on its own day, and read back by the live observer with the PromQL it derives from
the SLI profile. The signals must be right (the app container's mem_ratio, latency in seconds,
gRPC 14 counted as an error), equal to `build_snapshot` on the raw series, and the SLO unknown
where no request metric of the profile exists. Then the executor, against the Kubernetes
emulator, raises only the judged container's limit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from remediator.actions import Action, ActionKind, ObjectRef
from remediator.live.config import load_config
from remediator.live.executor import KubeExecutor
from remediator.live.kube import Backoff
from remediator.live.ledger import Ledger
from remediator.live.observer import Observation, Observer, PrometheusSource, StaticObjects
from remediator.live.wiring import make_observer
from remediator.propose.catalog import CatalogProposer
from remediator.slis import DEFAULT_PROFILE, PROFILES, SliProfile
from remediator.snapshot import Alert, Series
from tests.live.conftest import APP, NS, requires_prometheus, validating
from tests.live.sim import prometheus_with
from tests.support.kube import KubeServer
from tests.support.prom import binaries_available as prom_binaries
from tests.test_slis import World, grpc_world, istio_world, sidecar_world

DAY = 86400.0
WORLDS = {"sidecar": sidecar_world, "istio": istio_world, "grpc": grpc_world}


def _shifted(world: World, offset: float) -> World:
    series = [Series(s.name, s.labels, [(t + offset, v) for t, v in s.points]) for s in world.series]
    alert = dataclasses.replace(world.alert, starts_at=world.alert.starts_at + offset)
    return dataclasses.replace(world, alert=alert, series=series, now=world.now + offset)


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, World]]]:
    if not prom_binaries():
        pytest.fail("prometheus/promtool missing: run scripts/ci/install-system.sh")
    worlds = {name: _shifted(make(), i * DAY) for i, (name, make) in enumerate(WORLDS.items())}
    with prometheus_with(tmp_path_factory.mktemp("slis"), [s for w in worlds.values() for s in w.series]) as server:
        yield server.url, worlds


def _observe(url: str, world: World, sli: SliProfile | None = None) -> Observation:
    observer = Observer(PrometheusSource(url, retries=0), StaticObjects(world.objects), sli=sli or world.sli)
    obs = observer.observe(world.alert, now=world.now)
    assert obs.usable, obs.problem
    return obs


def _same_as_direct(obs: Observation, world: World, sli: SliProfile) -> None:
    """What came back through Prometheus is what the raw series give (the seam, per profile)."""
    direct = world.snapshot(sli)
    for f in dataclasses.fields(direct.signals):
        x, y = getattr(direct.signals, f.name), getattr(obs.snapshot.signals, f.name)
        assert (math.isinf(x) and x == y) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), f.name
    snap = obs.snapshot
    assert (snap.unknown_signals, snap.container, snap.containers, snap.missing) == (
        direct.unknown_signals, direct.container, direct.containers, direct.missing)


@requires_prometheus
def test_sidecar_world_judges_the_app_container(prom: tuple[str, dict[str, World]]) -> None:
    url, worlds = prom
    w = worlds["sidecar"]
    obs = _observe(url, w)
    s = obs.snapshot
    assert s.container == "app" and s.containers == ("app", "istio-proxy")
    assert math.isclose(s.signals.mem_ratio, w.expect["mem_ratio"], rel_tol=1e-9)  # 0.947, not the proxy's 0.059
    assert math.isclose(s.signals.error_ratio, w.expect["error_ratio"], rel_tol=1e-6)
    assert s.slo_known and not s.unknown_signals
    _same_as_direct(obs, w, DEFAULT_PROFILE)
    # The catalog's limit actions name the judged container.
    oom = dataclasses.replace(s, alert=Alert("KubePodCrashLooping", {"namespace": NS, "pod": w.alert.labels["pod"]}))
    limits = [c.action for c in CatalogProposer().propose(oom)
              if c.action.kind in (ActionKind.RAISE_MEMORY_LIMIT, ActionKind.RAISE_CPU_LIMIT)]
    assert limits and all(a.params.get("container") == "app" for a in limits)


@requires_prometheus
def test_istio_world_reads_milliseconds_as_seconds_and_grpc_14_as_an_error(
        prom: tuple[str, dict[str, World]]) -> None:
    url, worlds = prom
    w = worlds["istio"]
    obs = _observe(url, w)
    s = obs.snapshot.signals
    assert 0.010 < s.latency_p99_s <= 0.025, s.latency_p99_s
    assert math.isclose(s.error_ratio, w.expect["error_ratio"], rel_tol=1e-6) and s.error_ratio > 0.09
    assert math.isclose(s.request_rate, 20.5, rel_tol=1e-6)  # reporter="source" not counted twice
    assert obs.snapshot.container == "server" and math.isclose(s.mem_ratio, w.expect["mem_ratio"])
    assert obs.snapshot.slo_known
    _same_as_direct(obs, w, PROFILES["istio"])
    assert {m.metric for m in obs.missing}.isdisjoint({"istio_requests_total",
                                                       "istio_request_duration_milliseconds_bucket"})


@requires_prometheus
def test_grpc_app_without_http_metrics(prom: tuple[str, dict[str, World]]) -> None:
    url, worlds = prom
    w = worlds["grpc"]
    # Read as plain HTTP (the default profile): nothing to read, so the SLO is unknown, said twice.
    obs = _observe(url, w, DEFAULT_PROFILE)
    snap = obs.snapshot
    assert not snap.slo_known
    assert {"request_rate", "error_ratio", "latency_p99_s"} <= snap.unknown_signals
    assert {"http_requests_total", "http_request_duration_seconds_bucket"} <= {m.metric for m in obs.missing}
    assert snap.signals.available_replicas == 2.0 and "mem_ratio" not in snap.unknown_signals
    _same_as_direct(obs, w, DEFAULT_PROFILE)
    # With the grpc profile, the same Prometheus gives the SLIs: Unavailable counted, NotFound not.
    obs = _observe(url, w)
    assert obs.snapshot.slo_known
    assert math.isclose(obs.snapshot.signals.error_ratio, w.expect["error_ratio"], rel_tol=1e-6)
    assert 0.005 < obs.snapshot.signals.latency_p99_s <= 0.05
    _same_as_direct(obs, w, PROFILES["grpc"])


@requires_prometheus
def test_the_configs_sli_section_reaches_the_observer(prom: tuple[str, dict[str, World]],
                                                        tmp_path: Path) -> None:
    url, worlds = prom
    config = tmp_path / "remediator.yaml"
    config.write_text(f"prometheus: {{url: {url}}}\nsli: {{profile: grpc}}\n")
    observer = make_observer(load_config(config))
    assert observer.sli == PROFILES["grpc"]
    observer.objects = StaticObjects(worlds["grpc"].objects)
    obs = observer.observe(worlds["grpc"].alert, now=worlds["grpc"].now)
    assert obs.snapshot.slo_known and obs.snapshot.sli_profile == "grpc"


# ---------------------------------------------------------------------------- the container into the action


def _with_sidecar(kube: KubeServer) -> None:
    """cart gets an istio-proxy container with a limit of its own, as the injector would add it."""
    from kubernetes import client

    apps = client.AppsV1Api(kube.api_client(retries=False))
    apps.patch_namespaced_deployment(APP, NS, {"spec": {"template": {"spec": {"containers": [
        {"name": "istio-proxy", "image": "proxyv2:1.22", "resources": {"limits": {"memory": "1Gi", "cpu": "2"}}}]}}}})


def _limits(kube: KubeServer) -> dict[str, dict[str, str]]:
    dep: Any = kube.get("apps/v1", "Deployment", NS, APP)
    return {c["name"]: c["resources"]["limits"] for c in dep["spec"]["template"]["spec"]["containers"]}


@pytest.mark.parametrize("kind", [ActionKind.RAISE_MEMORY_LIMIT, ActionKind.RAISE_CPU_LIMIT])
def test_the_executor_raises_only_the_named_containers_limit(kube: KubeServer, ledger: Ledger,
                                                             kind: ActionKind) -> None:
    from tests.live.conftest import seed_workload, snapshot_for

    seed_workload(kube)
    _with_sidecar(kube)
    validating(kube)
    executor = KubeExecutor(kube.api_client(retries=False), ledger, dry_run=False,
                            backoff=Backoff(base_s=0.01, max_s=0.05, sleep=lambda s: None))
    snap = dataclasses.replace(snapshot_for(), containers=(APP, "istio-proxy"), container=APP)
    cart = ObjectRef("Deployment", NS, APP)

    ambiguous = executor.execute(Action(kind, cart, {"factor": 1.5}), snap)
    assert not ambiguous.ok and "names no container" in (ambiguous.error or "")
    ghost = executor.execute(Action(kind, cart, {"factor": 1.5, "container": "ghost"}), snap)
    assert not ghost.ok and "has no container 'ghost'" in (ghost.error or "")
    assert _limits(kube) == {APP: {"memory": "256Mi", "cpu": "500m"}, "istio-proxy": {"memory": "1Gi", "cpu": "2"}}

    result = executor.execute(Action(kind, cart, {"factor": 1.5, "container": APP}), snap)
    assert result.ok, result.error
    raised = {"memory": "384Mi"} if kind is ActionKind.RAISE_MEMORY_LIMIT else {"cpu": "750m"}
    assert _limits(kube) == {APP: {"memory": "256Mi", "cpu": "500m", **raised},
                             "istio-proxy": {"memory": "1Gi", "cpu": "2"}}
    executor.undo(result.execution_id)
    assert _limits(kube)[APP] == {"memory": "256Mi", "cpu": "500m"}

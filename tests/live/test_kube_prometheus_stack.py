"""Acceptance: kube-prometheus alerts, as a kube-prometheus-stack cluster sends them, resolve to the right object.

The alert rules are kube-prometheus' own (tests/fixtures/kube-prometheus-rules/, unmodified). The
series carry the labels kube-prometheus-stack's scrape configuration leaves on them: every
kube-state-metrics series its target's `job`, `service`, `endpoint`, `instance`, `container`, and
(where the series has none of its own) kube-state-metrics' own `namespace` and `pod` (honorLabels
keeps a series' own); every kubelet/cAdvisor series the kubelet's `service`, `endpoint`, `instance`,
`metrics_path` and `node`. A real Prometheus, backfilled with them, evaluates each rule's `expr`:
its result is the alert's labels (plus the rule's `severity`), what the rule fires once `for:` has
passed. A real Alertmanager receives that alert and delivers its webhook; the delivered payload goes
to `remediator propose --config`, which observes the emulated cluster and that Prometheus and must
name the right object with its real kind, or escalate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from remediator.cli import app
from tests.live.conftest import requires_prometheus
from tests.live.kinds import seed_every_kind
from tests.support.kube import KubeEmulator, KubeServer
from tests.support.prom import (
    AlertmanagerServer,
    PrometheusServer,
    Series,
    WebhookRecorder,
    render_openmetrics,
    start_alertmanager,
    start_prometheus,
)

RULES = Path(__file__).resolve().parents[1] / "fixtures" / "kube-prometheus-rules" / \
    "kubernetesControlPlane-prometheusRule.yaml"
NS = "shop"
AT = 1_790_000_000.0  # the observation time; the series cover the 40 minutes before it
STEP = 15.0
KSM = {"job": "kube-state-metrics", "service": "kube-prometheus-stack-kube-state-metrics", "endpoint": "http",
       "instance": "10.244.0.12:8080", "container": "kube-state-metrics"}


def _kubelet(node: str, path: str) -> dict[str, str]:
    return {"job": "kubelet", "service": "kube-prometheus-stack-kubelet", "endpoint": "https-metrics",
            "instance": f"10.0.0.{node[-1]}:10250", "metrics_path": path, "node": node}


runner = CliRunner()


def _series(name: str, labels: dict[str, str], value: float | list[float]) -> Series:
    n = int(2400 / STEP) + 1
    values = value if isinstance(value, list) else [value] * n
    return Series(name, labels, [(AT - STEP * (n - 1 - i), v) for i, v in enumerate(values)])


def _cluster(kube: KubeServer) -> dict[str, Any]:
    """shop: Deployments cart, checkout, payment, ads, catalog, frontend (with an HPA); the
    StatefulSet redis-cart and the rest of `seed_every_kind`; kube-state-metrics in `monitoring`."""
    seeded = {name: kube.seed_deployment(name, NS, replicas=2, nodes=("node-a", "node-b"))
              for name in ("cart", "checkout", "payment", "ads", "catalog", "frontend")}
    ksm = kube.seed_deployment(KSM["service"], "monitoring", replicas=1, nodes=("node-a",))
    ksm_pod = ksm["pods"][0]["metadata"]["name"]
    kube.seed(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": KSM["service"], "namespace": "monitoring"},
         "spec": {"selector": {"app": KSM["service"]}, "ports": [{"name": "http", "port": 8080}]}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
         "metadata": {"name": "frontend", "namespace": NS},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "frontend"},
                  "minReplicas": 2, "maxReplicas": 4}})
    seed_every_kind(kube)
    return {"pods": {name: [p["metadata"]["name"] for p in s["pods"]] for name, s in seeded.items()},
            "ksm_pod": ksm_pod}


def _metrics(pods: dict[str, list[str]], ksm_pod: str) -> list[Series]:
    """Ten faults at once, each in the series its alert reads."""
    ksm_own = {"namespace": "monitoring", "pod": ksm_pod}  # where a series has no namespace/pod of its own
    n = int(2400 / STEP) + 1

    def ksm(name: str, own: dict[str, str], value: float | list[float]) -> Series:
        return _series(name, {**KSM, **ksm_own, **own}, value)

    cart, payment, ads, catalog = pods["cart"][0], pods["payment"][0], pods["ads"][0], pods["catalog"][0]
    cadvisor = _kubelet("node-a", "/metrics/cadvisor")
    volume = _kubelet("node-s1", "/metrics")
    return [
        ksm("kube_pod_container_status_waiting_reason", {"namespace": NS, "pod": cart, "container": "cart",
                                                         "reason": "CrashLoopBackOff", "uid": "u1"}, 1),
        ksm("kube_pod_status_phase", {"namespace": NS, "pod": payment, "phase": "Pending", "uid": "u2"}, 1),
        ksm("kube_pod_owner", {"namespace": NS, "pod": payment, "owner_kind": "ReplicaSet",
                               "owner_name": payment.rsplit("-", 1)[0], "owner_is_controller": "true", "uid": "u2"}, 1),
        ksm("kube_deployment_spec_replicas", {"namespace": NS, "deployment": "checkout"}, 2),
        ksm("kube_deployment_status_replicas_available", {"namespace": NS, "deployment": "checkout"}, 1),
        ksm("kube_deployment_status_replicas_updated", {"namespace": NS, "deployment": "checkout"}, 2),
        ksm("kube_statefulset_replicas", {"namespace": NS, "statefulset": "redis-cart"}, 2),
        ksm("kube_statefulset_status_replicas_ready", {"namespace": NS, "statefulset": "redis-cart"}, 1),
        ksm("kube_statefulset_status_replicas_updated", {"namespace": NS, "statefulset": "redis-cart"}, 2),
        ksm("kube_horizontalpodautoscaler_status_current_replicas",
            {"namespace": NS, "horizontalpodautoscaler": "frontend"}, 4),
        ksm("kube_horizontalpodautoscaler_spec_max_replicas", {"namespace": NS, "horizontalpodautoscaler": "frontend"},
            4),
        ksm("kube_horizontalpodautoscaler_spec_min_replicas", {"namespace": NS, "horizontalpodautoscaler": "frontend"},
            2),
        ksm("kube_node_status_condition", {"node": "node-b", "condition": "Ready", "status": "true"}, 0),
        ksm("kube_node_spec_unschedulable", {"node": "node-b"}, 0),
        ksm("kube_pod_container_status_waiting_reason", {"namespace": NS, "pod": ads, "container": "ads",
                                                         "reason": "ContainerCreating", "uid": "u3"}, 1),
        ksm("kube_job_failed", {"namespace": NS, "job_name": "nightly-29000000", "condition": "true"}, 1),
        ksm("kube_pod_container_status_last_terminated_reason",
            {"namespace": NS, "pod": "nightly-29000000-q8w2e", "container": "nightly", "reason": "Error",
             "uid": "u4"}, 1),
        # cAdvisor: catalog's container throttled in 60% of its periods.
        _series("container_cpu_cfs_periods_total", {**cadvisor, "namespace": NS, "pod": catalog,
                                                    "container": "catalog", "id": "/kubepods/x"},
                [100.0 * i for i in range(n)]),
        _series("container_cpu_cfs_throttled_periods_total", {**cadvisor, "namespace": NS, "pod": catalog,
                                                              "container": "catalog", "id": "/kubepods/x"},
                [60.0 * i for i in range(n)]),
        # The kubelet: redis-cart-0's claim 98% full.
        *(_series(f"kubelet_volume_stats_{what}_bytes", {**volume, "namespace": NS,
                                                         "persistentvolumeclaim": "data-redis-cart-0"}, value)
          for what, value in (("available", 2.0e7), ("capacity", 1.0e9), ("used", 9.8e8))),
    ]


def _rules() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    out: dict[str, dict[str, Any]] = {}
    for group in doc["spec"]["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                out.setdefault(rule["alert"], rule)  # KubePersistentVolumeFillingUp: the critical (first) one
    return out


World = tuple[KubeServer, PrometheusServer, AlertmanagerServer, WebhookRecorder, Path]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("kps")
    with KubeServer(KubeEmulator()) as kube, WebhookRecorder() as hook:
        seeded = _cluster(kube)
        om = tmp / "series.om"
        om.write_text(render_openmetrics(_metrics(seeded["pods"], seeded["ksm_pod"])))
        with start_prometheus(tmp / "prom", backfill=[om]) as prom, \
                start_alertmanager(tmp / "am", f"{hook.url}/alerts") as am:
            kube.write_kubeconfig(tmp / "kubeconfig.yaml")
            (tmp / "c.yaml").write_text(yaml.safe_dump({
                "kubernetes": {"kubeconfig": "kubeconfig.yaml"}, "prometheus": {"url": prom.url, "retries": 0},
                "mode": "dry-run", "store": "ledger.db", "ranker": "rules"}))
            yield kube, prom, am, hook, tmp


def _delivered(hook: WebhookRecorder, alertname: str, timeout: float = 30.0) -> dict[str, Any]:
    """The webhook payload Alertmanager delivered for `alertname` (it groups by alert name)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in list(hook.requests):
            body = request.json()
            if body.get("groupLabels", {}).get("alertname") == alertname:
                return dict(body)
        time.sleep(0.1)
    raise AssertionError(f"Alertmanager delivered nothing for {alertname}")


# alert -> the object it is about (kind, namespace, name); None: escalate (no workload).
EXPECTED: dict[str, tuple[str, str, str] | None] = {
    "KubePodCrashLooping": ("Deployment", NS, "cart"),
    "KubePodNotReady": ("Deployment", NS, "payment"),
    "KubeDeploymentReplicasMismatch": ("Deployment", NS, "checkout"),
    "KubeStatefulSetReplicasMismatch": ("StatefulSet", NS, "redis-cart"),
    "KubeHpaMaxedOut": ("Deployment", NS, "frontend"),
    "CPUThrottlingHigh": ("Deployment", NS, "catalog"),
    "KubePersistentVolumeFillingUp": ("StatefulSet", NS, "redis-cart"),
    "KubeNodeNotReady": ("Node", "", "node-b"),
    "KubeContainerWaiting": ("Deployment", NS, "ads"),
    "KubeJobFailed": ("CronJob", NS, "nightly"),
}


@requires_prometheus
@pytest.mark.parametrize("alertname", sorted(EXPECTED))
def test_a_kube_prometheus_alert_resolves_to_its_object_with_its_kind(
        world: World, alertname: str) -> None:
    kube, prom, am, hook, tmp = world
    rule = _rules()[alertname]
    fired = prom.query(rule["expr"], at=AT)
    assert len(fired) == 1, f"{alertname}: the rule's expression gave {fired}"
    # As the rule manager makes an alert of a result: its labels without the metric name, plus the rule's.
    result = {k: v for k, v in fired[0]["metric"].items() if k != "__name__"}
    labels = {**result, **rule["labels"], "alertname": alertname}
    assert labels.get("service") or alertname == "KubePodNotReady", labels  # the scrape target's labels are on it
    starts = datetime.fromtimestamp(AT - 1200, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    am.post_alerts([{"labels": labels, "annotations": {"summary": rule["annotations"].get("summary", "")},
                     "startsAt": starts}])
    payload = _delivered(hook, alertname)
    [delivered] = payload["alerts"]
    assert delivered["labels"] == labels and delivered["status"] == "firing"
    (tmp / f"{alertname}.json").write_text(json.dumps(payload))
    before = len(kube.requests())
    result = runner.invoke(app, ["propose", "--alert", str(tmp / f"{alertname}.json"), "--config",
                                 str(tmp / "c.yaml"), "--at", str(AT), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    [decision] = doc["decisions"]
    kind, ns, name = EXPECTED[alertname]
    if kind == "Node":  # a node incident: the node itself, never the scraper's workload
        assert decision["workload"] is None or decision["workload"]["name"] != KSM["service"], decision
        assert {"kind": kind, "namespace": ns, "name": name} in [c["target"] for c in doc["candidates"]]
    else:
        assert decision["workload"] == {"kind": kind, "namespace": ns, "name": name}, decision
    assert all(c["target"]["name"] != KSM["service"] for c in doc["candidates"])
    assert [r for r in kube.requests()[before:] if r.method != "GET"] == []  # observed, acted on nothing

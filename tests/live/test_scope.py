"""Scope comes from the cluster, not from the alert (the red team's cases, issue 15).

The official client reads the emulator through `KubeObjectSource`, `build_snapshot` builds the
snapshot, and the default guards judge what a hostile alert would have the agent do:
  - an alert for shop/cart carrying `persistentvolumeclaim=vault-data` (the protected vault's
    claim) must not make vault's volume a target;
  - an alert for shop/cart carrying `node=node-v` (vault's node) must not make that node a target;
  - a drain of cart's own node would evict kube-system/coredns and is denied by default.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import kubernetes.client as k
import pytest

from remediator.actions import Action, ActionKind, ObjectRef
from remediator.guards import Decision, GuardPolicy, judge
from remediator.live.observer import API_CALLS, KubeObjectSource, KubernetesUnavailable, Observer
from remediator.snapshot import Alert, Snapshot
from tests.live.conftest import NS
from tests.live.kinds import seed_every_kind
from tests.live.test_executor import _api_call
from tests.support.kube import KubeEmulator, KubeServer

A = ActionKind
NOW = 2_000_000_000.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[KubeServer]:
    """shop/cart on node-a and node-b, the protected shop/vault (claim vault-data) alone on node-v,
    and kube-system/coredns on node-a."""
    with KubeServer(KubeEmulator()) as kube:
        kube.seed_deployment("cart", NS, replicas=2, nodes=("node-a", "node-b"))
        kube.seed_deployment("vault", NS, replicas=1, nodes=("node-v",))
        kube.seed_deployment("coredns", "kube-system", replicas=1, nodes=("node-a",))
        kube.seed({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": "vault-data", "namespace": NS},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
                   "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}}})
        apps = k.AppsV1Api(kube.api_client())
        apps.patch_namespaced_deployment("vault", NS, {
            "metadata": {"labels": {"remediator.io/protected": "true"}},
            "spec": {"template": {"spec": {"volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "vault-data"}}]}}}})
        yield kube


def observe(kube: KubeServer, labels: dict[str, str], name: str = "KubePodCrashLooping") -> Snapshot:
    source = KubeObjectSource(kube.api_client(), clock=lambda: NOW)
    # No Prometheus: the observation is not usable for acting, but the snapshot and its scope
    # are exactly what the loop would judge.
    return Observer(None, source, clock=lambda: NOW).observe(Alert(name, labels, starts_at=NOW - 60), now=NOW).snapshot


def verdict(action: Action, snap: Snapshot, **policy: Any) -> tuple[Decision, str]:
    v = judge(action, snap, [], GuardPolicy(**policy), NOW)
    return v.decision, v.reason


def test_an_alerts_claim_label_does_not_make_another_workloads_volume_a_target(cluster: KubeServer) -> None:
    snap = observe(cluster, {"namespace": NS, "deployment": "cart", "persistentvolumeclaim": "vault-data"},
                   "KubePersistentVolumeFillingUp")
    assert snap.workload == ObjectRef("Deployment", NS, "cart") and snap.pvc is None
    decision, reason = verdict(Action(A.EXPAND_VOLUME, ObjectRef("PersistentVolumeClaim", NS, "vault-data"),
                                      {"factor": 1.5}), snap)
    assert decision is Decision.DENY
    assert reason.startswith("scope: PersistentVolumeClaim/shop/vault-data is not the PVC"), reason


def test_an_alerts_node_label_does_not_make_another_node_a_target(cluster: KubeServer) -> None:
    for node in ("node-v", "node-that-does-not-exist"):
        snap = observe(cluster, {"namespace": NS, "deployment": "cart", "node": node})
        assert snap.node in ("node-a", "node-b"), node
        decision, reason = verdict(Action(A.CORDON_DRAIN_NODE, ObjectRef("Node", "", node)), snap, approval_risk=None)
        assert decision is Decision.DENY and reason.startswith(f"scope: Node/{node} is not the node"), reason


def test_a_drain_that_would_evict_kube_system_pods_is_denied_by_default(cluster: KubeServer) -> None:
    snap = observe(cluster, {"namespace": NS, "deployment": "cart", "node": "node-a"})
    assert snap.node == "node-a"
    evicted = {str(p.ref) for p in snap.node_pods}
    assert any(p.startswith("Pod/kube-system/coredns-") for p in evicted), evicted
    drain = Action(A.CORDON_DRAIN_NODE, ObjectRef("Node", "", "node-a"))
    decision, reason = verdict(drain, snap, approval_risk=None)
    assert decision is Decision.DENY
    assert reason == "namespace: evicted pod namespace kube-system is in denied_namespaces (kube-system)"
    # The same drain passes where a policy says kube-system may be touched.
    assert verdict(drain, snap, approval_risk=None, allowed_namespaces=["shop", "kube-system"])[0] is Decision.ALLOW


def test_a_node_alert_resolves_to_a_workload_on_that_node_and_judges_every_evicted_pod(cluster: KubeServer) -> None:
    snap = observe(cluster, {"node": "node-v"}, "KubeNodeNotReady")
    assert snap.workload == ObjectRef("Deployment", NS, "vault") and snap.node == "node-v"
    decision, reason = verdict(Action(A.CORDON_DRAIN_NODE, ObjectRef("Node", "", "node-v")), snap, approval_risk=None)
    assert decision is Decision.DENY and reason.startswith("protected: Deployment/shop/vault carries"), reason


# ---------------------------------------------------------------------------- least-privilege reads (issue 10)

CANDIDATES = [
    Action(A.RESTART_ROLLOUT, ObjectRef("Deployment", NS, "cart")),
    Action(A.SCALE_OUT, ObjectRef("Deployment", NS, "cart"), {"replicas": 3}),
    Action(A.ROLLBACK_ROLLOUT, ObjectRef("Deployment", NS, "cart")),
]


@pytest.fixture
def small_cluster() -> Iterator[KubeServer]:
    """shop/cart on node-a and node-b, kube-system/coredns on node-a."""
    with KubeServer(KubeEmulator()) as kube:
        kube.seed_deployment("cart", NS, replicas=2, nodes=("node-a", "node-b"))
        kube.seed_deployment("coredns", "kube-system", replicas=1, nodes=("node-a",))
        yield kube


def _judged(snap: Snapshot) -> list[tuple[Decision, str]]:
    return [verdict(a, snap, approval_risk=None) for a in CANDIDATES]


@pytest.mark.parametrize("forbidden", ["/api/v1/pods", "/api/v1/nodes/*", "/apis/apps/v1/namespaces/kube-system/*"],
                         ids=["pods-on-the-node", "node", "neighbour-namespace"])
def test_a_forbidden_read_of_the_neighbours_makes_the_drain_unknown_and_denied(
        small_cluster: KubeServer, forbidden: str) -> None:
    labels = {"namespace": NS, "deployment": "cart", "node": "node-a"}
    before = observe(small_cluster, labels)
    assert before.node_pods_known and before.node == "node-a"
    small_cluster.inject_fault(403, times=100, method="GET", path=forbidden)
    snap = observe(small_cluster, labels)  # the observation succeeds

    assert snap.workload == ObjectRef("Deployment", NS, "cart") and snap.node == "node-a"
    assert not snap.node_pods_known
    drain = Action(A.CORDON_DRAIN_NODE, ObjectRef("Node", "", "node-a"))
    assert verdict(drain, snap, approval_risk=None)[0] is Decision.DENY
    # Denied even where a policy lets every namespace be touched (it passes with full access): nothing is assumed.
    everywhere = {"approval_risk": None, "allowed_namespaces": ["shop", "kube-system"]}
    assert verdict(drain, before, **everywhere)[0] is Decision.ALLOW
    decision, reason = verdict(drain, snap, **everywhere)
    assert decision is Decision.DENY
    assert reason.startswith("drain: cordon_drain_node on Node") and \
        "the pods on node node-a were not observed (a forbidden read" in reason, reason
    # The other candidates are judged exactly as with full access.
    assert _judged(snap) == _judged(before)
    assert any(d is Decision.ALLOW for d, _ in _judged(snap))


@pytest.mark.parametrize("forbidden", ["/apis/apps/v1/namespaces/shop/deployments/cart",
                                       "/api/v1/namespaces/shop/pods"], ids=["deployment", "pods"])
def test_a_forbidden_read_of_the_workloads_own_objects_still_fails_the_observation(
        small_cluster: KubeServer, forbidden: str) -> None:
    small_cluster.inject_fault(403, times=100, method="GET", path=forbidden)
    with pytest.raises(KubernetesUnavailable, match="refused access \\(403\\); check the ClusterRole"):
        observe(small_cluster, {"namespace": NS, "deployment": "cart"})


def test_the_api_call_table_declares_every_call_the_observer_makes() -> None:
    """A pod, node, PVC, service and HPA alert, and one on each other workload kind, observed against
    one cluster, and the known-good sweep's listing of a namespace: the request log is the table, exactly."""
    with KubeServer(KubeEmulator()) as kube:
        pods = kube.seed_deployment("cart", NS, replicas=2, nodes=("node-a", "node-b"))["pods"]
        kube.seed_deployment("web", "front", replicas=1, nodes=("node-a",))
        kube.seed_deployment("db", NS, replicas=1, nodes=("node-b",))
        kube.seed(
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "cart-data", "namespace": NS},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cart", "namespace": NS},
             "spec": {"selector": {"app": "cart"}, "ports": [{"port": 80}]}},
            {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
             "metadata": {"name": "cart-hpa", "namespace": NS},
             "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cart"},
                      "maxReplicas": 4}},
            {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
             "metadata": {"name": "web", "namespace": "front"},
             "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}},
        )
        k.AppsV1Api(kube.api_client()).patch_namespaced_deployment("cart", NS, {
            "metadata": {"annotations": {"remediator.io/depends-on": "db"}},
            "spec": {"template": {"spec": {"volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "cart-data"}},
                {"name": "cfg", "configMap": {"name": "cart-config"}}]}}}})
        # A ConfigMap the template references, and a pod Pending for want of room (the nodes are listed).
        pending = {**pods[1], "metadata": {k: v for k, v in pods[1]["metadata"].items()
                                           if k not in ("uid", "resourceVersion", "creationTimestamp")},
                   "spec": {k: v for k, v in pods[1]["spec"].items() if k != "nodeName"},
                   "status": {"phase": "Pending", "conditions": [
                       {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}}
        pending["metadata"]["name"] += "p"
        kube.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cart-config", "namespace": NS},
                   "data": {"mode": "fast"}}, pending)
        seed_every_kind(kube)
        before = len(kube.requests())
        kinds = [("KubeStatefulSetReplicasMismatch", {"namespace": NS, "statefulset": "redis-cart"},
                  ObjectRef("StatefulSet", NS, "redis-cart")),
                 ("KubeDaemonSetRolloutStuck", {"namespace": NS, "daemonset": "agent"},
                  ObjectRef("DaemonSet", NS, "agent")),
                 ("KubeJobFailed", {"namespace": NS, "job_name": "nightly-29000000"},
                  ObjectRef("CronJob", NS, "nightly")),
                 ("KubePodNotReady", {"namespace": NS, "pod": "checkout-6b9f7-z9x8c"},
                  ObjectRef("Rollout", NS, "checkout"))]
        for name, labels, ref in kinds:
            assert observe(kube, labels, name).workload == ref, name
        alerts = [("KubePodCrashLooping", {"namespace": NS, "pod": pods[0]["metadata"]["name"]}),
                  ("KubeNodeNotReady", {"node": "node-a"}),
                  ("KubePersistentVolumeFillingUp", {"namespace": NS, "persistentvolumeclaim": "cart-data"}),
                  ("TargetDown", {"namespace": NS, "service": "cart"}),
                  ("KubeHpaMaxedOut", {"namespace": NS, "horizontalpodautoscaler": "cart-hpa"})]
        for name, labels in alerts:
            assert observe(kube, labels, name).workload == ObjectRef("Deployment", NS, "cart"), name
        # The known-good sweep lists the workloads of its namespaces.
        listed = set(KubeObjectSource(kube.api_client()).workloads(NS))
        assert {ObjectRef("Deployment", NS, "cart"), ObjectRef("StatefulSet", NS, "redis-cart"),
                ObjectRef("DaemonSet", NS, "agent")} <= listed, listed
        logged = {_api_call(r.method, r.path) for r in kube.requests()[before:]}
    undeclared = logged - set(API_CALLS)
    assert not undeclared, f"calls missing from observer.API_CALLS: {sorted(undeclared)}"
    assert set(API_CALLS) == logged, f"declared but never made: {sorted(set(API_CALLS) - logged)}"
    assert len(set(API_CALLS)) == len(API_CALLS)


# A Role in `shop` only: every read outside the namespace (cluster-wide lists, nodes, other namespaces) is 403.
OUTSIDE_SHOP = re.compile(r"^/api/v1/(pods|nodes|events|services|persistentvolumeclaims)(/|$)|/namespaces/(?!shop/)")
KSM_LABELS = {"service": "kube-prometheus-stack-kube-state-metrics", "job": "kube-state-metrics",
              "endpoint": "http", "instance": "10.244.0.12:8080"}


@pytest.mark.parametrize(("alertname", "labels"), [
    ("KubePodCrashLooping", {"namespace": NS, "deployment": "cart", "container": "cart", **KSM_LABELS}),
    ("KubeNodeNotReady", {"node": "node-a", "namespace": "monitoring", "pod": "kube-state-metrics-0",
                          **KSM_LABELS}),
    ("ServiceErrorBudgetBurn", {"namespace": NS, "service": "cart"}),
])
def test_a_namespace_scoped_role_degrades_the_observation_and_nothing_unchecked_is_allowed(
        small_cluster: KubeServer, alertname: str, labels: dict[str, str]) -> None:
    small_cluster.seed({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cart", "namespace": NS},
                        "spec": {"selector": {"app": "cart"}, "ports": [{"port": 80}]}})
    before = observe(small_cluster, labels, alertname)
    small_cluster.inject_fault(403, times=1000, method="GET", path=OUTSIDE_SHOP)
    snap = observe(small_cluster, labels, alertname)  # never a crash
    refused = [r for r in small_cluster.requests() if r.status == 403]
    assert refused, "the Role refused nothing: the test checks nothing"
    assert snap.node is not None and not snap.node_pods_known
    drain = Action(A.CORDON_DRAIN_NODE, ObjectRef("Node", "", snap.node))
    everywhere = {"approval_risk": None, "allowed_namespaces": ["shop", "kube-system", "monitoring"]}
    decision, reason = verdict(drain, snap, **everywhere)
    assert decision is Decision.DENY and "were not observed" in reason, reason
    if alertname == "KubeNodeNotReady":  # the pods on the node are unknown: no workload is guessed
        assert before.workload is not None and snap.workload is None
    else:  # the workload's own namespace is readable: judged exactly as with full access
        assert snap.workload == before.workload == ObjectRef("Deployment", NS, "cart")
        assert _judged(snap) == _judged(before)


def test_without_a_drain_in_the_runbook_no_cluster_wide_read_is_made(small_cluster: KubeServer) -> None:
    source = KubeObjectSource(small_cluster.api_client(), clock=lambda: NOW, drains=lambda alert: False)
    before = len(small_cluster.requests())
    snap = Observer(None, source, clock=lambda: NOW).observe(
        Alert("KubePodCrashLooping", {"namespace": NS, "deployment": "cart"}, starts_at=NOW - 60), now=NOW).snapshot
    paths = [r.path for r in small_cluster.requests()[before:]]
    assert all(p.startswith((f"/api/v1/namespaces/{NS}/", f"/apis/apps/v1/namespaces/{NS}/",
                             f"/apis/autoscaling/v2/namespaces/{NS}/", f"/apis/policy/v1/namespaces/{NS}/",
                             "/api/v1/nodes/")) for p in paths), paths
    assert not any(p == "/api/v1/pods" for p in paths)
    assert snap.workload == ObjectRef("Deployment", NS, "cart") and not snap.node_pods_known
    decision, reason = verdict(Action(A.CORDON_DRAIN_NODE, ObjectRef("Node", "", str(snap.node))), snap,
                               approval_risk=None)
    assert decision is Decision.DENY and "were not observed" in reason, reason


def test_dependencies_are_read_from_the_environment_through_services_in_any_namespace() -> None:
    """frontend's env names redis-cart (a StatefulSet behind its Service) and a URL on pay.billing's
    cluster DNS name (a Deployment of another name and namespace): both are its dependencies, read
    through the API with their labels; a Role that may not read `billing` leaves that one unknown."""
    with KubeServer(KubeEmulator()) as kube:
        kube.seed_deployment("frontend", NS, replicas=1, nodes=("node-a",))
        kube.seed_deployment("payments", "billing", replicas=1, nodes=("node-a",))
        seed_every_kind(kube)
        kube.seed({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "pay", "namespace": "billing"},
                   "spec": {"selector": {"app": "payments"}, "ports": [{"port": 80}]}})
        env = [{"name": "REDIS_ADDR", "value": "redis-cart:6379"},
               {"name": "PAYMENT_URL", "value": "http://pay.billing.svc.cluster.local/charge"}]
        k.AppsV1Api(kube.api_client()).patch_namespaced_deployment("frontend", NS, {"spec": {"template": {"spec": {
            "containers": [{"name": "frontend", "env": env}]}}}})
        snap = observe(kube, {"namespace": NS, "deployment": "frontend"})
        assert set(snap.dependencies) == {ObjectRef("StatefulSet", NS, "redis-cart"),
                                          ObjectRef("Deployment", "billing", "payments")}
        assert set(snap.dependency_labels) == {"redis-cart", "billing/payments"}  # another namespace's: namespace/name
        kube.inject_fault(403, times=100, method="GET", path=re.compile("/namespaces/billing/"))
        limited = observe(kube, {"namespace": NS, "deployment": "frontend"})
        assert limited.dependencies == (ObjectRef("StatefulSet", NS, "redis-cart"),)

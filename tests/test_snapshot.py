"""The Snapshot builder: raw samples under real metric names plus objects in, signals out."""

from __future__ import annotations

import math

import pytest

from remediator.actions import ObjectRef
from remediator.snapshot import (
    DEPENDS_ON_ANNOTATION,
    Alert,
    Series,
    SnapshotError,
    _quantile,
    _rate,
    _selects,
    build_snapshot,
    resolve_workload,
)

NOW = 10_000.0
NS = "shop"


def _pts(values: list[float], step: float = 15.0) -> list[tuple[float, float]]:
    start = NOW - step * (len(values) - 1)
    return [(start + i * step, v) for i, v in enumerate(values)]


def _objects() -> list[dict]:
    return [
        {"kind": "Deployment", "metadata": {"name": "cart", "namespace": NS, "labels": {"app": "cart"},
                                            "annotations": {DEPENDS_ON_ANNOTATION: "redis"}},
         "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "cart"}},
                                              "spec": {"volumes": [{"name": "d", "persistentVolumeClaim":
                                                                    {"claimName": "cart-data"}}]}}}},
        {"kind": "Deployment", "metadata": {"name": "redis", "namespace": NS}, "spec": {"replicas": 1}},
        {"kind": "ReplicaSet", "metadata": {"name": "cart-aaa", "namespace": NS, "creationTimestamp": NOW - 86400,
                                            "annotations": {"deployment.kubernetes.io/revision": "1"},
                                            "ownerReferences": [{"kind": "Deployment", "name": "cart"}]}},
        {"kind": "ReplicaSet", "metadata": {"name": "cart-bbb", "namespace": NS,
                                            "creationTimestamp": "1970-01-01T02:35:00Z",
                                            "annotations": {"deployment.kubernetes.io/revision": "2"},
                                            "ownerReferences": [{"kind": "Deployment", "name": "cart"}]}},
        *({"kind": "Pod", "metadata": {"name": f"cart-bbb-{i}", "namespace": NS,
                                       "ownerReferences": [{"kind": "ReplicaSet", "name": "cart-bbb"}]},
           "spec": {"nodeName": f"node-{i}"}} for i in range(2)),
        {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "cart-hpa", "namespace": NS},
         "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "cart"}, "maxReplicas": 4}},
        {"kind": "PodDisruptionBudget", "metadata": {"name": "cart", "namespace": NS},
         "spec": {"selector": {"matchLabels": {"app": "cart"}}}, "status": {"disruptionsAllowed": 0}},
        {"kind": "Event", "involvedObject": {"name": "cart-bbb-0"}, "message": "Back-off restarting failed container"},
    ]


def _series() -> list[Series]:
    pod0 = {"namespace": NS, "pod": "cart-bbb-0", "container": "app"}
    pod1 = {"namespace": NS, "pod": "cart-bbb-1", "container": "app"}
    return [
        Series("kube_deployment_spec_replicas", {"namespace": NS, "deployment": "cart"}, _pts([2] * 9)),
        Series("kube_deployment_status_replicas_available", {"namespace": NS, "deployment": "cart"}, _pts([1] * 9)),
        Series("kube_deployment_spec_replicas", {"namespace": NS, "deployment": "redis"}, _pts([1] * 9)),
        Series("kube_deployment_status_replicas_available", {"namespace": NS, "deployment": "redis"}, _pts([0] * 9)),
        Series("kube_pod_status_ready", {**pod0, "condition": "true"}, _pts([0] * 9)),
        Series("kube_pod_status_ready", {**pod1, "condition": "true"}, _pts([1] * 9)),
        # 3 restarts in 2 minutes, with a counter reset in the middle: 1.5 restarts per minute.
        Series("kube_pod_container_status_restarts_total", pod0, _pts([5, 5, 6, 6, 7, 0, 1, 1, 1])),
        Series("kube_pod_container_status_last_terminated_reason", {**pod0, "reason": "OOMKilled"}, _pts([1] * 9)),
        Series("kube_pod_container_status_waiting_reason", {**pod0, "reason": "CrashLoopBackOff"}, _pts([1] * 9)),
        Series("container_memory_working_set_bytes", pod1, _pts([50.0 + i for i in range(9)])),
        Series("kube_pod_container_resource_limits", {**pod1, "resource": "memory"}, _pts([100.0] * 9)),
        Series("kube_pod_container_resource_limits", {**pod1, "resource": "cpu"}, _pts([1.0] * 9)),
        Series("container_cpu_usage_seconds_total", pod1, _pts([i * 15 * 0.8 for i in range(9)])),
        Series("container_cpu_cfs_periods_total", pod1, _pts([i * 150.0 for i in range(9)])),
        Series("container_cpu_cfs_throttled_periods_total", pod1, _pts([i * 75.0 for i in range(9)])),
        Series("http_requests_total", {"namespace": NS, "service": "cart", "code": "200"},
               _pts([i * 15 * 90.0 for i in range(9)])),
        Series("http_requests_total", {"namespace": NS, "service": "cart", "code": "503"},
               _pts([i * 15 * 10.0 for i in range(9)])),
        *(Series("http_request_duration_seconds_bucket", {"namespace": NS, "service": "cart", "le": le},
                 _pts([i * 15 * 100.0 * frac for i in range(9)]))
          for le, frac in (("0.1", 0.5), ("0.5", 0.9), ("1.0", 0.98), ("+Inf", 1.0))),
        Series("kube_horizontalpodautoscaler_status_current_replicas",
               {"namespace": NS, "horizontalpodautoscaler": "cart-hpa"}, _pts([4] * 9)),
        Series("kube_horizontalpodautoscaler_spec_max_replicas",
               {"namespace": NS, "horizontalpodautoscaler": "cart-hpa"}, _pts([4] * 9)),
        Series("kube_node_status_condition", {"node": "node-0", "condition": "Ready", "status": "true"},
               _pts([0] * 9)),
        Series("kubelet_volume_stats_used_bytes", {"namespace": NS, "persistentvolumeclaim": "cart-data"},
               _pts([80.0 + 0.25 * i for i in range(9)])),
        Series("kubelet_volume_stats_capacity_bytes", {"namespace": NS, "persistentvolumeclaim": "cart-data"},
               _pts([100.0] * 9)),
        Series("container_memory_working_set_bytes", {"namespace": "other", "pod": "x", "container": "app"},
               _pts([1e12] * 9)),
    ]


def test_signals_are_computed_from_raw_samples() -> None:
    alert = Alert("KubePodCrashLooping", {"namespace": NS, "pod": "cart-bbb-0"}, starts_at=NOW - 60)
    snap = build_snapshot(alert, _series(), _objects(), now=NOW)
    s = snap.signals
    assert snap.workload == ObjectRef("Deployment", NS, "cart")
    assert s.desired_replicas == 2 and s.available_replicas == 1 and s.ready_pods == 1
    assert s.restarts_per_min == pytest.approx(1.5)
    assert s.oom_fraction == 0.5 and s.crashloop_fraction == 0.5
    assert s.mem_ratio == pytest.approx(0.58)
    assert s.mem_slope_per_min == pytest.approx(0.04)
    assert s.cpu_ratio == pytest.approx(0.8) and s.throttle_ratio == pytest.approx(0.5)
    assert s.request_rate == pytest.approx(100.0) and s.error_ratio == pytest.approx(0.1)
    assert s.latency_p99_s == pytest.approx(1.0)  # rank falls in +Inf: the last finite bound
    assert s.hpa_present == 1 and s.hpa_current == s.hpa_max == 4
    assert s.node_ready == 0.0 and snap.node == "node-0"
    assert s.pvc_used_ratio == pytest.approx(0.82) and s.pvc_minutes_to_full == pytest.approx(18.0)
    assert s.dep_available_ratio == 0.0 and snap.dependencies == (ObjectRef("Deployment", NS, "redis"),)
    assert s.has_previous_revision == 1 and s.rollout_age_s == pytest.approx(NOW - 9300)
    assert s.pdb_disruptions_allowed == 0
    assert snap.pods[0] == "cart-bbb-0"  # the worst pod first
    assert snap.events == ("Back-off restarting failed container",)
    assert snap.missing == ()


@pytest.mark.parametrize("labels", [
    {"namespace": NS, "deployment": "cart"},
    {"namespace": NS, "pod": "cart-bbb-1"},
    {"namespace": NS, "horizontalpodautoscaler": "cart-hpa"},
    {"namespace": NS, "persistentvolumeclaim": "cart-data"},
    {"namespace": NS, "service": "cart"},
    {"node": "node-1"},
])
def test_workload_is_resolved_from_any_alert_label(labels: dict[str, str]) -> None:
    assert resolve_workload(Alert("X", labels), _objects()) == ObjectRef("Deployment", NS, "cart")


def test_unknown_workload_is_a_clear_error() -> None:
    with pytest.raises(SnapshotError, match="names no workload"):
        build_snapshot(Alert("KubePodCrashLooping", {"namespace": NS, "pod": "ghost-1"}), [], _objects(), now=NOW)


def test_missing_metrics_are_reported_not_fatal() -> None:
    alert = Alert("KubePodCrashLooping", {"namespace": NS, "deployment": "cart"}, starts_at=NOW)
    snap = build_snapshot(alert, [], _objects(), now=NOW)
    assert "http_requests_total" in snap.missing
    assert snap.signals.error_ratio == 0.0 and math.isinf(snap.signals.pvc_minutes_to_full)


def test_rate_and_quantile_follow_prometheus() -> None:
    assert _rate([(0, 10), (15, 20), (30, 5)], now=30) == pytest.approx(15 / 30)  # reset counts from zero
    assert _quantile({0.1: 50, 0.5: 90, 1.0: 100, math.inf: 100}, 0.5) == pytest.approx(0.1)
    assert _quantile({0.1: 50, 0.5: 90, 1.0: 100, math.inf: 100}, 0.7) == pytest.approx(0.3)


def test_scrape_service_label_does_not_name_the_workload() -> None:
    """kube-prometheus alerts carry service="kubelet" (the scrape target); the pod decides."""
    alert = Alert("CPUThrottlingHigh", {"namespace": NS, "pod": "cart-bbb-1", "service": "kubelet"})
    assert resolve_workload(alert, _objects()) == ObjectRef("Deployment", NS, "cart")
    # Without the objects nothing is guessed from the name: unknown means escalate.
    bare = Alert("CPUThrottlingHigh", {"namespace": NS, "pod": "cart-7d4b9c-x2x9z", "service": "kubelet"})
    assert resolve_workload(bare, []) is None


# ---------------------------------------------------------------------------- scope comes from the cluster


def _with_vault_and_coredns() -> list[dict]:
    """The cart objects plus a protected `vault` (claim vault-data, on node-9) and kube-system's
    coredns next to cart's pod on node-0."""
    vault = {"kind": "Deployment", "metadata": {"name": "vault", "namespace": NS,
                                                "labels": {"remediator.io/protected": "true"}},
             "spec": {"replicas": 1, "template": {"spec": {"volumes": [
                 {"name": "d", "persistentVolumeClaim": {"claimName": "vault-data"}}]}}}}
    vault_rs = {"kind": "ReplicaSet", "metadata": {"name": "vault-ccc", "namespace": NS,
                                                   "ownerReferences": [{"kind": "Deployment", "name": "vault"}]}}
    vault_pod = {"kind": "Pod", "metadata": {"name": "vault-ccc-0", "namespace": NS,
                                             "ownerReferences": [{"kind": "ReplicaSet", "name": "vault-ccc"}]},
                 "spec": {"nodeName": "node-9"}}
    coredns = {"kind": "Pod", "metadata": {"name": "coredns-abc-1", "namespace": "kube-system",
                                           "labels": {"k8s-app": "kube-dns"}}, "spec": {"nodeName": "node-0"}}
    daemon = {"kind": "Pod", "metadata": {"name": "node-exporter-x", "namespace": "monitoring",
                                          "ownerReferences": [{"kind": "DaemonSet", "name": "node-exporter"}]},
              "spec": {"nodeName": "node-0"}}
    return [*_objects(), vault, vault_rs, vault_pod, coredns, daemon]


def test_an_alert_cannot_name_a_claim_the_workload_does_not_mount() -> None:
    alert = Alert("KubePersistentVolumeFillingUp",
                  {"namespace": NS, "deployment": "cart", "persistentvolumeclaim": "vault-data"})
    snap = build_snapshot(alert, [], _with_vault_and_coredns(), now=NOW)
    assert snap.workload == ObjectRef("Deployment", NS, "cart")
    assert snap.pvc == ObjectRef("PersistentVolumeClaim", NS, "cart-data")
    # Named alone, the claim leads to the workload that mounts it: the protected vault.
    alone = build_snapshot(Alert("KubePersistentVolumeFillingUp", {"namespace": NS, "persistentvolumeclaim":
                                                                   "vault-data"}), [], _with_vault_and_coredns(),
                           now=NOW)
    assert alone.workload == ObjectRef("Deployment", NS, "vault") and alone.workload_labels


def test_an_alert_cannot_name_a_node_the_workload_does_not_run_on() -> None:
    for node in ("node-9", "node-nonexistent"):
        alert = Alert("KubePodCrashLooping", {"namespace": NS, "deployment": "cart", "node": node})
        snap = build_snapshot(alert, [], _with_vault_and_coredns(), now=NOW)
        assert snap.node in ("node-0", "node-1"), node
    # A node the workload does run on is taken as named.
    named = build_snapshot(Alert("KubePodCrashLooping", {"namespace": NS, "deployment": "cart", "node": "node-1"}),
                           [], _with_vault_and_coredns(), now=NOW)
    assert named.node == "node-1"


def test_the_snapshot_lists_every_pod_a_drain_would_evict_with_its_owners_labels() -> None:
    alert = Alert("KubeNodeNotReady", {"node": "node-0"})
    snap = build_snapshot(alert, [], _with_vault_and_coredns(), now=NOW)
    assert snap.node == "node-0"
    evicted = {str(n.ref): dict(n.labels) for n in snap.node_pods}
    # The DaemonSet pod stays (drain ignores it); coredns in kube-system is listed.
    assert evicted == {"Pod/kube-system/coredns-abc-1": {"k8s-app": "kube-dns"},
                       f"Pod/{NS}/cart-bbb-0": {"app": "cart"}}
    assert snap.dependency_labels == {"redis": {}}


def _pod_on_node_0(name: str, owners: list[dict], volumes: list[dict] | None = None) -> dict:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": NS, "ownerReferences": owners},
            "spec": {"nodeName": "node-0", "volumes": volumes or []}}


def test_the_snapshot_marks_the_pods_kubectl_drain_would_refuse() -> None:
    """Bare: no ownerReference is a controller (`controller: true`, or the field absent on a
    built-in controller kind). emptyDir: any emptyDir volume, whatever the others."""
    pods = [
        _pod_on_node_0("rollout-pod", [{"kind": "Rollout", "name": "r", "controller": True}]),
        _pod_on_node_0("adopted", [{"kind": "ReplicaSet", "name": "cart-bbb", "controller": False}]),
        _pod_on_node_0("gc-only", [{"kind": "ConfigMap", "name": "c"}]),
        _pod_on_node_0("job-pod", [{"kind": "Job", "name": "j"}],
                       [{"name": "cfg", "configMap": {"name": "c"}}, {"name": "tmp", "emptyDir": {}}]),
        _pod_on_node_0("cfg-only", [{"kind": "StatefulSet", "name": "s", "controller": True}],
                       [{"name": "cfg", "configMap": {"name": "c"}}]),
    ]
    snap = build_snapshot(Alert("KubeNodeNotReady", {"node": "node-0"}), [], [*_with_vault_and_coredns(), *pods],
                          now=NOW)
    marks = {n.ref.name: (n.bare, n.empty_dir) for n in snap.node_pods}
    assert marks == {
        "coredns-abc-1": (True, False),  # no ownerReferences at all
        "cart-bbb-0": (False, False),  # the simulator's form: a ReplicaSet owner without the field
        "rollout-pod": (False, False),
        "adopted": (True, False),
        "gc-only": (True, False),
        "job-pod": (False, True),
        "cfg-only": (False, False),
    }


# ---------------------------------------------------------------------------- kube-prometheus-stack's dialect

KSM_TARGET = {"service": "kube-prometheus-stack-kube-state-metrics", "job": "kube-state-metrics",
              "endpoint": "http", "instance": "10.244.1.7:8080"}
KSM_POD = "kube-prometheus-stack-kube-state-metrics-6d8f9c7b5-q2w3e"


def _with_statefulset_and_services() -> list[dict]:
    """The cart objects (with a Deployment named redis) plus StatefulSet pod redis-0, and a
    Service `cart-external` selecting cart's pods."""
    redis_pod = {"kind": "Pod", "metadata": {"name": "redis-0", "namespace": NS,
                                             "ownerReferences": [{"kind": "StatefulSet", "name": "redis"}]},
                 "spec": {"nodeName": "node-0"}}
    svc = {"kind": "Service", "metadata": {"name": "cart-external", "namespace": NS},
           "spec": {"selector": {"app": "cart"}}}
    return [*_objects(), redis_pod, svc]


def test_kube_prometheus_stack_alert_labels_resolve_through_the_cluster() -> None:
    objects = _with_statefulset_and_services()
    crash = Alert("KubePodCrashLooping", {"namespace": NS, "pod": "cart-bbb-0", "container": "app", **KSM_TARGET})
    assert resolve_workload(crash, objects) == ObjectRef("Deployment", NS, "cart")
    hpa = Alert("KubeHpaMaxedOut", {"namespace": NS, "horizontalpodautoscaler": "cart-hpa", **KSM_TARGET})
    assert resolve_workload(hpa, objects) == ObjectRef("Deployment", NS, "cart")
    # A StatefulSet's pod is its StatefulSet's, whatever the names say (a Deployment `redis` exists).
    sts = Alert("KubePodCrashLooping", {"namespace": NS, "pod": "redis-0", **KSM_TARGET})
    assert resolve_workload(sts, objects) == ObjectRef("StatefulSet", NS, "redis")
    # A Service counts through its selector, not its name.
    slo = Alert("ServiceErrorBudgetBurn", {"namespace": NS, "service": "cart-external"})
    assert resolve_workload(slo, objects) == ObjectRef("Deployment", NS, "cart")
    # The scrape target's Service is no workload's.
    assert resolve_workload(Alert("KubeDeploymentReplicasMismatch", {"namespace": NS, **KSM_TARGET}), objects) is None


def test_object_series_count_whatever_pod_label_the_scrape_target_added() -> None:
    """On kube-prometheus-stack kube_deployment_*, kube_horizontalpodautoscaler_* and
    kube_node_status_condition carry kube-state-metrics' own `pod`: it neither hides the
    series nor becomes one of the workload's pods."""
    relabelled = [Series(s.name, {**s.labels, "pod": KSM_POD, **KSM_TARGET}, s.points)
                  if s.name.startswith(("kube_deployment_", "kube_horizontalpodautoscaler_", "kube_node_status"))
                  else s for s in _series()]
    alert = Alert("KubePodCrashLooping", {"namespace": NS, "pod": "cart-bbb-0"}, starts_at=NOW - 60)
    plain = build_snapshot(alert, _series(), _objects(), now=NOW)
    snap = build_snapshot(alert, relabelled, _objects(), now=NOW)
    assert snap.signals == plain.signals and snap.pods == plain.pods and KSM_POD not in snap.pods
    assert snap.signals.available_replicas == 1 and snap.signals.hpa_max == 4 and snap.signals.node_ready == 0.0


def _ksm() -> list[dict]:
    """kube-state-metrics as kube-prometheus-stack deploys it, in `monitoring`, on node-0."""
    sel = {"app.kubernetes.io/name": "kube-state-metrics"}
    return [
        {"kind": "Service", "metadata": {"name": KSM_TARGET["service"], "namespace": "monitoring"},
         "spec": {"selector": sel}},
        {"kind": "Deployment", "metadata": {"name": KSM_TARGET["service"], "namespace": "monitoring"},
         "spec": {"template": {"metadata": {"labels": sel}}}},
        {"kind": "ReplicaSet", "metadata": {"name": KSM_POD.rsplit("-", 1)[0], "namespace": "monitoring",
                                            "ownerReferences": [{"kind": "Deployment",
                                                                 "name": KSM_TARGET["service"]}]}},
        {"kind": "Pod", "metadata": {"name": KSM_POD, "namespace": "monitoring", "labels": sel,
                                     "ownerReferences": [{"kind": "ReplicaSet",
                                                          "name": KSM_POD.rsplit("-", 1)[0]}]},
         "spec": {"nodeName": "node-0"}},
    ]


def test_a_node_alert_is_not_about_the_scraper_whose_labels_it_carries() -> None:
    """KubeNodeNotReady on kube-prometheus-stack: `namespace`/`pod`/`service` are kube-state-metrics'
    own; the workload is the one on the node, not kube-state-metrics."""
    alert = Alert("KubeNodeNotReady", {"node": "node-1", "namespace": "monitoring", "pod": KSM_POD, **KSM_TARGET})
    assert resolve_workload(alert, [*_objects(), *_ksm()]) == ObjectRef("Deployment", NS, "cart")


def test_a_pod_replaced_since_the_alert_still_names_its_workload_through_its_replicaset() -> None:
    """After a restart the alerted pod is gone; the ReplicaSet that made it is in the history."""
    gone = Alert("KubePodCrashLooping", {"namespace": NS, "pod": "cart-aaa-x7k2p"})
    assert resolve_workload(gone, _objects()) == ObjectRef("Deployment", NS, "cart")
    assert resolve_workload(Alert("KubePodCrashLooping", {"namespace": NS, "pod": "cart-zzz-x7k2p"}),
                            _objects()) is None  # no ReplicaSet made it: unknown


# ---------------------------------------------------------------------------- PodDisruptionBudget selectors

APP = {"app": "cart", "tier": "web"}


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        (None, False),  # policy/v1: a null selector selects no pod
        ({}, True),  # ... and an empty one every pod in the namespace
        ({"matchLabels": {}, "matchExpressions": []}, True),
        ({"matchLabels": {"app": "cart"}}, True),
        ({"matchLabels": {"app": "cart", "tier": "db"}}, False),
        ({"matchLabels": {"app": "cart", "zone": "a"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["api"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, True),  # absent key
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
        # matchLabels AND matchExpressions, every requirement AND the others
        ({"matchLabels": {"app": "cart"}, "matchExpressions": [{"key": "tier", "operator": "Exists"},
                                                              {"key": "zone", "operator": "DoesNotExist"}]}, True),
        ({"matchLabels": {"app": "cart"}, "matchExpressions": [{"key": "tier", "operator": "Exists"},
                                                              {"key": "app", "operator": "DoesNotExist"}]}, False),
        ({"matchLabels": {"app": "shop"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]}, False),
        # An operator the API server would reject: the budget is taken to bind (the safe side).
        ({"matchExpressions": [{"key": "tier", "operator": "Gt", "values": ["1"]}]}, True),
    ],
)
def test_label_selectors_follow_kubernetes(selector: dict | None, selected: bool) -> None:
    assert _selects(selector, APP) is selected


def _budget_objects(selector: dict | None, allowed: int = 1) -> list[dict]:
    objects = [o for o in _objects() if o["kind"] != "PodDisruptionBudget"]
    cart = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "cart")
    cart["spec"]["template"]["metadata"]["labels"] = dict(APP)
    pdb: dict = {"kind": "PodDisruptionBudget", "metadata": {"name": "cart", "namespace": NS},
                 "spec": {} if selector is None else {"selector": selector}, "status": {"disruptionsAllowed": allowed}}
    return [*objects, pdb]


@pytest.mark.parametrize(
    ("selector", "allowed"),
    [
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}, 1.0),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}, math.inf),
        ({}, 1.0),
        (None, math.inf),
    ],
)
def test_the_workloads_budget_is_found_by_its_whole_selector(selector: dict | None, allowed: float) -> None:
    alert = Alert("KubePodCrashLooping", {"namespace": NS, "deployment": "cart"})
    s = build_snapshot(alert, [], _budget_objects(selector), now=NOW).signals
    assert s.pdb_disruptions_allowed == allowed
    # The drain's budget reads the same selector: one ready cart pod on node-0 leaves allowed - 1 + 1.
    drain = build_snapshot(Alert("KubeNodeNotReady", {"node": "node-0"}), [], _budget_objects(selector), now=NOW)
    assert drain.signals.node_pdb_disruptions_allowed == allowed


def test_a_drain_counts_every_pod_a_budget_selects_whoever_owns_it() -> None:
    """A budget over two workloads counts both workloads' pods; a StatefulSet's or a bare pod's
    budget is found by the pod's own labels."""
    objects = _budget_objects({"matchLabels": {"tier": "web"}}, allowed=2)
    web = {"kind": "Pod", "metadata": {"name": "web-0", "namespace": NS, "labels": {"tier": "web"},
                                       "ownerReferences": [{"kind": "StatefulSet", "name": "web", "controller": True}]},
           "spec": {"nodeName": "node-0"}}
    alert = Alert("KubeNodeNotReady", {"node": "node-0"})
    assert build_snapshot(alert, [], objects, now=NOW).signals.node_pdb_disruptions_allowed == 2  # 2 - 1 + 1
    assert build_snapshot(alert, [], [*objects, web], now=NOW).signals.node_pdb_disruptions_allowed == 1
    unready = {**web, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    assert build_snapshot(alert, [], [*objects, unready], now=NOW).signals.node_pdb_disruptions_allowed == 2
    elsewhere = {**web, "metadata": {**web["metadata"], "namespace": "other"}}
    assert build_snapshot(alert, [], [*objects, elsewhere], now=NOW).signals.node_pdb_disruptions_allowed == 2


def test_the_depends_on_annotation_names_the_observed_workload_of_its_real_kind() -> None:
    """`redis` is a StatefulSet here: the dependency (and the executor's restart) names a
    StatefulSet, not a Deployment of that name that does not exist; an unobserved name stays a Deployment."""
    objects = [o for o in _objects() if (o["kind"], o.get("metadata", {}).get("name")) != ("Deployment", "redis")]
    objects.append({"kind": "StatefulSet", "metadata": {"name": "redis", "namespace": NS}, "spec": {"replicas": 1}})
    objects[0]["metadata"]["annotations"] = {DEPENDS_ON_ANNOTATION: "redis, billing/ledger"}
    alert = Alert("KubePodCrashLooping", {"namespace": NS, "pod": "cart-bbb-0"}, starts_at=NOW - 60)
    snap = build_snapshot(alert, _series(), objects, now=NOW)
    assert snap.dependencies[0] == ObjectRef("StatefulSet", NS, "redis")
    assert ObjectRef("Deployment", "billing", "ledger") in snap.dependencies



def _requests(errors_per_s: list[float], served_per_s: float | list[float] = 100.0, step: float = 15.0) -> list[Series]:
    """Request counters: `served_per_s` requests a second, `errors_per_s[i]` of them failing in scrape interval i."""
    served = served_per_s if isinstance(served_per_s, list) else [served_per_s] * len(errors_per_s)
    ok, bad, good_total, bad_total = [], [], 0.0, 0.0
    for e, n in zip(errors_per_s, served):
        good_total += (n - e) * step
        bad_total += e * step
        ok.append(good_total)
        bad.append(bad_total)
    svc = {"namespace": NS, "service": "cart"}
    return [Series("http_requests_total", {**svc, "code": "200"}, _pts(ok, step)),
            Series("http_requests_total", {**svc, "code": "500"}, _pts(bad, step))]


def _errors_since(series: list[Series]) -> float:
    alert = Alert("ServiceErrorBudgetBurn", {"namespace": NS, "service": "cart"}, starts_at=NOW - 60)
    return build_snapshot(alert, series, _objects(), now=NOW).signals.errors_since_s


@pytest.mark.parametrize("errors, since", [
    ([0.0] * 40, (0.0, 0.0)),                    # healthy
    ([0.0] * 30 + [20.0] * 10, (150.0, 180.0)),  # errors for the last 150 s
    ([0.0] * 10 + [20.0] * 30, (450.0, 480.0)),  # for the last 450 s
    ([20.0] * 40, (math.inf, math.inf)),         # for as long as the samples go
])
def test_errors_since_reads_back_to_when_the_slo_last_held(errors: list[float], since: tuple[float, float]) -> None:
    assert since[0] <= _errors_since(_requests(errors)) <= since[1]


def test_errors_since_skips_a_stretch_with_no_requests_served() -> None:
    # Healthy, then failing for 150 s, then every pod in back-off (nothing served) for 5 minutes, then
    # failing again: the errors began 555 s ago (37 scrapes).
    errors = [0.0] * 10 + [20.0] * 10 + [0.0] * 20 + [20.0] * 8
    served = [100.0] * 20 + [0.0] * 20 + [100.0] * 8
    assert 540.0 <= _errors_since(_requests(errors, served)) <= 600.0

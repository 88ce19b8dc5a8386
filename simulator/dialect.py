"""What a real kube-prometheus-stack cluster adds to the simulator's clean series and alerts.

Prometheus puts the *scrape target's* labels on every series it scrapes: `job`, `service`,
`endpoint`, `instance`, and — where the series has none of its own — the target's `namespace`,
`pod` and `container` (the ServiceMonitors of kube-state-metrics and the kubelet honour the
series' own labels, so those win). So `kube_deployment_*`, `kube_horizontalpodautoscaler_*`
and `kube_node_status_condition` carry kube-state-metrics' own pod, and node conditions its
namespace. Alerts keep whatever labels their rule's expression leaves (read off the rules in
`shared/data/kube-prometheus-rules/`). Request metrics come in one of the SLI profiles
(remediator/slis.py), or not at all (`NO_SLI`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from remediator.slis import PROFILES

# The release name kube-prometheus-stack's objects are prefixed with, and its namespace.
RELEASE = "kube-prometheus-stack"
MONITORING_NS = "monitoring"
KSM_POD = f"{RELEASE}-kube-state-metrics-6d8c7b9f4-x7k2p"
# kube-state-metrics' target labels (its ServiceMonitor: honorLabels, port "http").
KSM_TARGET: Mapping[str, str] = {
    "job": "kube-state-metrics", "service": f"{RELEASE}-kube-state-metrics", "endpoint": "http",
    "instance": "10.244.0.17:8080", "namespace": MONITORING_NS, "pod": KSM_POD, "container": "kube-state-metrics"}
KUBELET_SERVICE = f"{RELEASE}-kubelet"
# The series families each exporter serves; anything else is the application's own.
KSM_FAMILIES = frozenset({
    "kube_deployment_spec_replicas", "kube_deployment_status_replicas_available", "kube_pod_status_ready",
    "kube_pod_container_status_restarts_total", "kube_pod_container_status_last_terminated_reason",
    "kube_pod_container_status_waiting_reason", "kube_pod_container_resource_limits",
    "kube_horizontalpodautoscaler_status_current_replicas", "kube_horizontalpodautoscaler_spec_max_replicas",
    "kube_node_status_condition", "kube_statefulset_replicas", "kube_statefulset_status_replicas_ready",
    # read only by the alert rules (Cluster.series(history=True))
    "kube_node_spec_unschedulable", "kube_horizontalpodautoscaler_spec_min_replicas", "kube_pod_owner",
    "kube_pod_status_phase", "kube_statefulset_status_replicas_updated"})
CADVISOR_FAMILIES = frozenset({
    "container_memory_working_set_bytes", "container_cpu_usage_seconds_total", "container_cpu_cfs_periods_total",
    "container_cpu_cfs_throttled_periods_total"})
KUBELET_FAMILIES = frozenset({"kubelet_volume_stats_used_bytes", "kubelet_volume_stats_capacity_bytes",
                              "kubelet_volume_stats_available_bytes"})

# Exporters a real cluster may lack (`Dialect.missing`): without kube-state-metrics the workload's
# replicas, readiness, restarts, termination reasons and node conditions are unknown to the agent (the
# Nezha recordings have none); without the kubelet's CFS counters (no CPU quota accounting) so is
# throttling. A cluster raises no alert from an exporter it lacks, so an incident whose alert comes
# from one keeps it (`missing_for`).
MISSING_FAMILIES: Mapping[str, frozenset[str]] = {
    "kube_state_metrics": KSM_FAMILIES,
    "cfs_throttling": frozenset({"container_cpu_cfs_periods_total", "container_cpu_cfs_throttled_periods_total"}),
}
MISSING_ALERTS: Mapping[str, frozenset[str]] = {
    "kube_state_metrics": frozenset({
        "KubePodCrashLooping", "KubePodNotReady", "KubeDeploymentReplicasMismatch", "KubeHpaMaxedOut",
        "KubeNodeNotReady", "KubeStatefulSetReplicasMismatch", "KubeContainerWaiting",
        "KubeDaemonSetRolloutStuck", "KubeJobFailed"}),
    "cfs_throttling": frozenset({"CPUThrottlingHigh"}),
}


def missing_for(missing: tuple[str, ...], alert: str) -> frozenset[str]:
    """The series families the agent cannot read in a cluster lacking the exporters `missing`, given
    the alert it raised (whose own exporter is there, or the alert could not have fired)."""
    out: set[str] = set()
    for exporter in missing:
        if alert not in MISSING_ALERTS[exporter]:
            out |= MISSING_FAMILIES[exporter]
    return frozenset(out)


# An incident whose application exports no request metric the agent reads (a gRPC app without
# interceptors, a mesh not scraped): its SLO is unknown (Snapshot.slo_known).
NO_SLI = "none"
SLI_CHOICES: tuple[str, ...] = (*PROFILES, NO_SLI)
# The project's own SLO alerts (runbooks/Service*.yaml): their rules read the request metrics, so
# in the NO_SLI profile they cannot fire, as no such rule could in a cluster without those series.
SLO_ALERTS = frozenset({"ServiceErrorBudgetBurn", "ServiceLatencyHigh"})
# Per profile, the labels of a successful and of a failed request (each profile's error rule
# classifies them; tests/simulator/test_dialect.py checks that it does).
OUTCOME_LABELS: Mapping[str, tuple[Mapping[str, str], Mapping[str, str]]] = {
    "http": ({"code": "200"}, {"code": "500"}),
    "istio": ({"response_code": "200", "grpc_response_status": "0"},
              {"response_code": "200", "grpc_response_status": "14"}),  # gRPC UNAVAILABLE over HTTP 200
    "linkerd": ({"classification": "success", "status_code": "200"},
                {"classification": "failure", "status_code": "503"}),
    "grpc": ({"grpc_code": "OK", "grpc_type": "unary"}, {"grpc_code": "Unavailable", "grpc_type": "unary"}),
    "otel-spanmetrics": ({"status_code": "STATUS_CODE_UNSET"}, {"status_code": "STATUS_CODE_ERROR"}),
}
# The main container and the sidecar the mesh injects (Istio names it, and sets the
# default-container annotation to the application's).
APP_CONTAINER = "app"
SIDECAR = "istio-proxy"


def node_ip(node: str) -> str:
    """A node's InternalIP, stable per name (the kubelet's scrape address)."""
    n = sum(ord(ch) for ch in node) % 200
    return f"10.0.{n // 100}.{n % 100 + 10}"


def kubelet_target(node: str, metrics_path: str) -> dict[str, str]:
    """The kubelet's target labels on `node` (endpoint https-metrics, the path as `metrics_path`)."""
    return {"job": "kubelet", "service": KUBELET_SERVICE, "endpoint": "https-metrics",
            "instance": f"{node_ip(node)}:10250", "metrics_path": metrics_path, "node": node,
            "namespace": "kube-system"}


def scraped(name: str, labels: Mapping[str, str], node: str | None = None) -> dict[str, str]:
    """A series' labels as Prometheus stores them: the target's labels under the series' own."""
    if name in KSM_FAMILIES:
        target: Mapping[str, str] = KSM_TARGET
    elif name in CADVISOR_FAMILIES and node:
        target = kubelet_target(node, "/metrics/cadvisor")
    elif name in KUBELET_FAMILIES and node:
        target = kubelet_target(node, "/metrics")
    else:
        return dict(labels)
    return {**target, **labels}


def rule_labels(name: str, labels: Mapping[str, str], node: str | None = None) -> dict[str, str]:
    """The labels a kube-prometheus rule leaves on `name`, given the simulator's clean labels
    (namespace plus the object: pod/container, deployment, horizontalpodautoscaler, node,
    persistentvolumeclaim). Alerts the rules do not define (the SLO alerts) keep their labels."""
    own = dict(labels)
    if name == "KubePodCrashLooping":
        return scraped("kube_pod_container_status_waiting_reason", {**own, "reason": "CrashLoopBackOff"})
    if name == "KubePodNotReady":  # sum by (namespace, pod, job, cluster)
        return {k: v for k, v in own.items() if k in ("namespace", "pod")} | {"job": KSM_TARGET["job"]}
    if name in ("KubeDeploymentReplicasMismatch", "KubeHpaMaxedOut"):
        return scraped("kube_deployment_spec_replicas", own)
    if name == "KubeNodeNotReady":
        return scraped("kube_node_status_condition", {**own, "condition": "Ready", "status": "true"})
    if name == "CPUThrottlingHigh":  # sum without (id, metrics_path, name, image, endpoint, job, node)
        target = scraped("container_cpu_cfs_throttled_periods_total", own, node)
        return {k: v for k, v in target.items() if k not in ("metrics_path", "endpoint", "job", "node")}
    if name == "KubePersistentVolumeFillingUp":
        return scraped("kubelet_volume_stats_used_bytes", own, node)
    return own


def le_label(bound_s: float, unit_s: float) -> str:
    """A histogram bound in the profile's unit, as its exporter prints it."""
    if math.isinf(bound_s):
        return "+Inf"
    value = bound_s / unit_s
    return repr(round(value, 6))


# ---------------------------------------------------------------------------- when alerts fire

# Each alert's `for:` in seconds: the kube-prometheus rules' (shared/data/kube-prometheus-rules/;
# KubePersistentVolumeFillingUp's critical rule, under 3% free), and for the project's own SLO
# alerts (runbooks/Service*.yaml) a fast-burn page of one minute.
RULE_FOR_S: Mapping[str, float] = {
    "KubePodCrashLooping": 900.0, "KubePodNotReady": 900.0, "KubeDeploymentReplicasMismatch": 900.0,
    "KubeHpaMaxedOut": 900.0, "CPUThrottlingHigh": 900.0, "KubeNodeNotReady": 900.0,
    "KubeStatefulSetReplicasMismatch": 900.0,
    "KubeContainerWaiting": 3600.0, "KubePersistentVolumeFillingUp": 60.0,
    "ServiceErrorBudgetBurn": 60.0, "ServiceLatencyHigh": 60.0,
}
# CPUThrottlingHigh's threshold and window; KubePodCrashLooping's max_over_time window;
# KubeStatefulSetReplicasMismatch's changes() window over the updated replicas.
THROTTLE_RULE_RATIO = 0.25
RULE_WINDOW_S = 300.0
ROLLOUT_STALL_WINDOW_S = 600.0
VOLUME_RULE_FREE = 0.03


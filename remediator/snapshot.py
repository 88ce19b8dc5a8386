"""The incident as the agent sees it, built from raw metric samples and Kubernetes objects.

This module is one half of the seam between simulation and reality (the encoder is the
other): the simulator, the replay and the live observer all hand `build_snapshot` the same
kind of data — raw samples under the real metric names of kube-state-metrics, cAdvisor,
kubelet and the application, plus Kubernetes objects as their JSON dicts — and get the same
`Snapshot`. Rates and ratios are computed here, not in PromQL, so that a series backfilled
into Prometheus and read back gives the same answer as the simulator's direct path.

Metric contract (labels in braces; `service` equals the Deployment name):

    kube_deployment_spec_replicas{namespace,deployment}
    kube_deployment_status_replicas_available{namespace,deployment}
    kube_pod_status_ready{namespace,pod,condition="true"}
    kube_pod_container_status_restarts_total{namespace,pod,container}          counter
    kube_pod_container_status_last_terminated_reason{namespace,pod,container,reason}
    kube_pod_container_status_waiting_reason{namespace,pod,container,reason}
    kube_pod_container_resource_limits{namespace,pod,container,resource}
    container_memory_working_set_bytes{namespace,pod,container}
    container_cpu_usage_seconds_total{namespace,pod,container}                counter
    container_cpu_cfs_periods_total{namespace,pod,container}                  counter
    container_cpu_cfs_throttled_periods_total{namespace,pod,container}        counter
    http_requests_total{namespace,service,code}                               counter
    http_request_duration_seconds_bucket{namespace,service,le}                counter
    kube_horizontalpodautoscaler_status_current_replicas{namespace,horizontalpodautoscaler}
    kube_horizontalpodautoscaler_spec_max_replicas{namespace,horizontalpodautoscaler}
    kube_node_status_condition{node,condition="Ready",status="true"}
    kubelet_volume_stats_used_bytes{namespace,persistentvolumeclaim}
    kubelet_volume_stats_capacity_bytes{namespace,persistentvolumeclaim}
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from remediator.actions import ActionKind, ObjectRef

DEPENDS_ON_ANNOTATION = "remediator.io/depends-on"
PROTECTED_LABEL = "remediator.io/protected"
SLO_ERROR_ANNOTATION = "remediator.io/slo-error-ratio"
SLO_LATENCY_ANNOTATION = "remediator.io/slo-latency-p99"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"

# Counters are turned into rates over this trailing window (seconds).
RATE_WINDOW_S = 120.0
# The "normal" request rate is read from this window before the alert fired: [start-900s, start-300s].
BASELINE_END_BEFORE_ALERT_S = 300.0
BASELINE_WINDOW_S = 600.0

K8sObject = Mapping[str, Any]


class SnapshotError(ValueError):
    """The alert cannot be tied to anything the agent can observe."""


@dataclass(frozen=True)
class Alert:
    """One Alertmanager alert: name and labels say what fired, annotations are free text."""

    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: float = 0.0
    status: str = "firing"
    fingerprint: str = ""

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "warning")

    @property
    def namespace(self) -> str:
        return self.labels.get("namespace", "")


@dataclass(frozen=True)
class Series:
    """Raw samples of one time series: `points` are (unix seconds, value), oldest first."""

    name: str
    labels: Mapping[str, str]
    points: Sequence[tuple[float, float]]


@dataclass(frozen=True)
class Slo:
    """What recovered means for a service: both SLIs under threshold and capacity back."""

    error_ratio: float = 0.02
    latency_p99_s: float = 0.5
    consecutive: int = 4


@dataclass(frozen=True)
class Attempt:
    """An action tried during this incident and what happened to it."""

    kind: ActionKind
    at: float
    executed: bool
    target: str = ""


@dataclass(frozen=True)
class Signals:
    """What an SRE reads off the dashboards for the alerted workload, as numbers."""

    desired_replicas: float = 0.0
    baseline_replicas: float = 0.0
    available_replicas: float = 0.0
    pods: float = 0.0
    ready_pods: float = 0.0
    restarts_per_min: float = 0.0
    oom_fraction: float = 0.0
    error_exit_fraction: float = 0.0
    crashloop_fraction: float = 0.0
    mem_ratio: float = 0.0
    mem_slope_per_min: float = 0.0
    cpu_ratio: float = 0.0
    throttle_ratio: float = 0.0
    request_rate: float = 0.0
    request_rate_baseline: float = 0.0
    error_ratio: float = 0.0
    latency_p99_s: float = 0.0
    hpa_present: float = 0.0
    hpa_current: float = 0.0
    hpa_max: float = 0.0
    node_ready: float = 1.0
    pvc_present: float = 0.0
    pvc_used_ratio: float = 0.0
    pvc_minutes_to_full: float = math.inf
    deps: float = 0.0
    dep_error_ratio: float = 0.0
    dep_available_ratio: float = 1.0
    dep_latency_p99_s: float = 0.0
    rollout_age_s: float = math.inf
    has_previous_revision: float = 0.0
    pdb_disruptions_allowed: float = math.inf
    # For a drain of the node: the tightest budget's disruptionsAllowed minus the ready pods
    # the drain would evict from it, plus one (so, like the field above, > 0 means it fits).
    node_pdb_disruptions_allowed: float = math.inf

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class Neighbour:
    """An object beyond the alerted workload that an action may change, with the labels the
    guards judge it by: a pod a drain of the incident's node would evict (its own labels and
    its owning Deployment's), or a dependency's Deployment."""

    ref: ObjectRef
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """Everything the agent knows about one incident at one moment.

    Scope comes from the cluster's objects, never from the alert: `node` is a node the
    workload's pods run on, `pvc` a claim the workload mounts, `node_pods` every pod a drain
    of `node` would evict (all namespaces), `dependency_labels` the labels of each observed
    dependency by name (a dependency missing from it was not observed).
    """

    alert: Alert
    at: float
    workload: ObjectRef | None
    signals: Signals
    slo: Slo = Slo()
    node: str | None = None
    pods: tuple[str, ...] = ()  # worst first
    hpa: ObjectRef | None = None
    pvc: ObjectRef | None = None
    dependencies: tuple[ObjectRef, ...] = ()  # worst first
    workload_labels: Mapping[str, str] = field(default_factory=dict)
    node_pods: tuple[Neighbour, ...] = ()
    dependency_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    events: tuple[str, ...] = ()
    history: tuple[Attempt, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def namespace(self) -> str:
        return self.workload.namespace if self.workload else self.alert.namespace

    @property
    def protected(self) -> bool:
        return self.workload_labels.get(PROTECTED_LABEL, "").lower() in ("true", "yes", "1")

    @property
    def since_alert_s(self) -> float:
        return max(0.0, self.at - self.alert.starts_at)

    def with_history(self, history: tuple[Attempt, ...]) -> Snapshot:
        return Snapshot(**{**{f.name: getattr(self, f.name) for f in fields(self)},
                           "history": history})


# ---------------------------------------------------------------------------- objects


def parse_time(value: Any) -> float:
    """Kubernetes timestamps arrive as RFC 3339 strings, datetimes or unix seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return math.nan


def _meta(obj: K8sObject) -> Mapping[str, Any]:
    meta = obj.get("metadata") or {}
    return meta if isinstance(meta, Mapping) else {}


def _owner(obj: K8sObject, kind: str) -> str | None:
    for ref in _meta(obj).get("ownerReferences") or ():
        if ref.get("kind") == kind:
            return str(ref.get("name"))
    return None


class _Objects:
    """Index of the objects around an incident, by kind and (namespace, name)."""

    def __init__(self, objects: Iterable[K8sObject]) -> None:
        self.by_kind: dict[str, list[K8sObject]] = defaultdict(list)
        for obj in objects:
            self.by_kind[str(obj.get("kind", ""))].append(obj)

    def get(self, kind: str, namespace: str, name: str) -> K8sObject | None:
        for obj in self.by_kind.get(kind, ()):
            meta = _meta(obj)
            if meta.get("name") == name and meta.get("namespace", "") in (namespace, ""):
                return obj
        return None

    def pods_of(self, namespace: str, deployment: str) -> list[K8sObject]:
        rs_names = {str(_meta(rs).get("name")) for rs in self.replicasets_of(namespace, deployment)}
        out = []
        for pod in self.by_kind.get("Pod", ()):
            meta = _meta(pod)
            if meta.get("namespace") != namespace:
                continue
            owner = _owner(pod, "ReplicaSet")
            if owner in rs_names or (owner is None and str(meta.get("name", "")).startswith(deployment + "-")):
                out.append(pod)
        return out

    def replicasets_of(self, namespace: str, deployment: str) -> list[K8sObject]:
        return [rs for rs in self.by_kind.get("ReplicaSet", ())
                if _meta(rs).get("namespace") == namespace and _owner(rs, "Deployment") == deployment]

    def deployment_of_pod(self, namespace: str, pod: str) -> str | None:
        obj = self.get("Pod", namespace, pod)
        if obj is not None:
            rs = _owner(obj, "ReplicaSet")
            if rs is not None:
                rs_obj = self.get("ReplicaSet", namespace, rs)
                if rs_obj is not None and _owner(rs_obj, "Deployment"):
                    return _owner(rs_obj, "Deployment")
                return rs.rsplit("-", 1)[0]
        # kube-state-metrics pod names are <deployment>-<rs hash>-<pod hash>
        for dep in self.by_kind.get("Deployment", ()):
            name = str(_meta(dep).get("name", ""))
            if _meta(dep).get("namespace") == namespace and pod.startswith(name + "-"):
                return name
        return None


def resolve_workload(alert: Alert, objects: Iterable[K8sObject]) -> ObjectRef | None:
    """The Deployment an alert is about, from whichever labels the alert rule keeps."""
    return _resolve(alert, _Objects(objects))


def _resolve(alert: Alert, idx: _Objects) -> ObjectRef | None:
    labels, ns = alert.labels, alert.namespace
    name: str | None = None
    known = {str(_meta(d).get("name")) for d in idx.by_kind.get("Deployment", ())
             if _meta(d).get("namespace") == ns}
    if "deployment" in labels:
        name = labels["deployment"]
    elif "pod" in labels:
        # Checked before `service`: on kube-prometheus alerts `service` is the scrape
        # target's Service (kubelet, kube-state-metrics), not the workload.
        name = idx.deployment_of_pod(ns, labels["pod"]) or (None if known else _guess_from_pod(labels["pod"]))
    elif "horizontalpodautoscaler" in labels:
        hpa = idx.get("HorizontalPodAutoscaler", ns, labels["horizontalpodautoscaler"])
        if hpa is not None:
            name = (hpa.get("spec") or {}).get("scaleTargetRef", {}).get("name")
    elif "persistentvolumeclaim" in labels:
        name = _claimant(idx, ns, labels["persistentvolumeclaim"])
    elif "service" in labels and (not known or labels["service"] in known):
        name = labels["service"]
    elif "node" in labels:
        name, ns = _most_hurt_on_node(idx, labels["node"])
    if not name:
        return None
    return ObjectRef("Deployment", ns, name)


def _guess_from_pod(pod: str) -> str | None:
    """<deployment>-<replicaset hash>-<pod hash>, when no objects say better."""
    parts = pod.rsplit("-", 2)
    return parts[0] if len(parts) == 3 and parts[0] else None


def _claimant(idx: _Objects, ns: str, claim: str) -> str | None:
    for dep in idx.by_kind.get("Deployment", ()):
        if _meta(dep).get("namespace") == ns and claim in _claims_of(dep):
            return str(_meta(dep).get("name"))
    return None


def _most_hurt_on_node(idx: _Objects, node: str) -> tuple[str | None, str]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for pod in idx.by_kind.get("Pod", ()):
        if (pod.get("spec") or {}).get("nodeName") != node:
            continue
        ns = str(_meta(pod).get("namespace", ""))
        dep = idx.deployment_of_pod(ns, str(_meta(pod).get("name", "")))
        if dep:
            counts[(ns, dep)] += 1
    if not counts:
        return None, ""
    (ns, dep), _ = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    return dep, ns


# ---------------------------------------------------------------------------- series


def _last(points: Sequence[tuple[float, float]]) -> float:
    return points[-1][1] if points else math.nan


def _rate(points: Sequence[tuple[float, float]], now: float, window: float = RATE_WINDOW_S) -> float:
    """Per-second increase of a counter over the window ending at `now`, tolerating resets."""
    pts = [p for p in points if now - window - 1e-6 <= p[0] <= now + 1e-6]
    if len(pts) < 2:
        return 0.0
    inc = 0.0
    for (_, a), (_, b) in zip(pts, pts[1:]):
        inc += b - a if b >= a else b
    span = pts[-1][0] - pts[0][0]
    return inc / span if span > 0 else 0.0


def _slope_per_min(points: Sequence[tuple[float, float]], now: float,
                   window: float = RATE_WINDOW_S) -> float:
    pts = [p for p in points if p[0] >= now - window - 1e-6]
    if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
        return 0.0
    return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0]) * 60.0


def _quantile(buckets: Mapping[float, float], q: float) -> float:
    """histogram_quantile over per-bucket rates, as Prometheus interpolates it."""
    if not buckets:
        return 0.0
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return 0.0
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return bounds[-1]


@dataclass
class _ServiceTraffic:
    requests: float = 0.0
    baseline: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests > 0 else 0.0

    @property
    def p99(self) -> float:
        return _quantile(self.buckets, 0.99)


def _traffic(series: Sequence[Series], now: float,
             alert_start: float) -> dict[tuple[str, str], _ServiceTraffic]:
    out: dict[tuple[str, str], _ServiceTraffic] = defaultdict(_ServiceTraffic)
    for s in series:
        key = (s.labels.get("namespace", ""), s.labels.get("service", ""))
        if s.name == "http_requests_total":
            r = _rate(s.points, now)
            out[key].requests += r
            out[key].baseline += _rate(s.points, alert_start - BASELINE_END_BEFORE_ALERT_S,
                                       BASELINE_WINDOW_S)
            if s.labels.get("code", "200").startswith("5"):
                out[key].errors += r
        elif s.name == "http_request_duration_seconds_bucket":
            le = float(s.labels.get("le", "+Inf"))
            b = out[key].buckets
            b[le] = b.get(le, 0.0) + _rate(s.points, now)
    return out


# ---------------------------------------------------------------------------- builder


def build_snapshot(alert: Alert, series: Sequence[Series], objects: Sequence[K8sObject], *,
                   now: float, history: tuple[Attempt, ...] = (),
                   default_slo: Slo = Slo()) -> Snapshot:
    """Turn (alert, raw samples, objects) into a Snapshot. The one function every mode calls.

    Raises `SnapshotError` only when the alert names no workload the objects know; a metric
    that is absent is listed in `Snapshot.missing` and its signal keeps a neutral default.
    """
    idx = _Objects(objects)
    workload = _resolve(alert, idx)
    if workload is None and "node" not in alert.labels:
        raise SnapshotError(
            f"alert {alert.name!r} with labels {dict(alert.labels)} names no Deployment "
            "among the observed objects")
    ns = workload.namespace if workload else alert.namespace
    wname = workload.name if workload else ""
    dep_obj = idx.get("Deployment", ns, wname) if workload else None
    dep_meta = _meta(dep_obj) if dep_obj is not None else {}
    annotations: Mapping[str, str] = dep_meta.get("annotations") or {}
    slo = Slo(
        error_ratio=float(annotations.get(SLO_ERROR_ANNOTATION, default_slo.error_ratio)),
        latency_p99_s=float(annotations.get(SLO_LATENCY_ANNOTATION, default_slo.latency_p99_s)),
        consecutive=default_slo.consecutive)

    pod_objs = idx.pods_of(ns, wname) if workload else []
    pod_names = {str(_meta(p).get("name")) for p in pod_objs}
    by_pod_node = {str(_meta(p).get("name")): str((p.get("spec") or {}).get("nodeName", ""))
                   for p in pod_objs}
    deps = tuple(ObjectRef("Deployment", ns, d.strip())
                 for d in str(annotations.get(DEPENDS_ON_ANNOTATION, "")).split(",") if d.strip())
    dep_names = {d.name for d in deps}

    hpa_ref: ObjectRef | None = None
    for hpa in idx.by_kind.get("HorizontalPodAutoscaler", ()):
        spec = hpa.get("spec") or {}
        if _meta(hpa).get("namespace") == ns and (spec.get("scaleTargetRef") or {}).get("name") == wname:
            hpa_ref = ObjectRef("HorizontalPodAutoscaler", ns, str(_meta(hpa).get("name")))
    # The alert may say which claim is filling, but only among the claims the workload mounts.
    claims = _claims_of(dep_obj)
    alerted_claim = alert.labels.get("persistentvolumeclaim")
    claim = alerted_claim if alerted_claim in claims else (claims[0] if claims else None)
    pvc_ref = ObjectRef("PersistentVolumeClaim", ns, claim) if claim else None

    # One pass over the series, keeping what concerns the workload, its pods, node and deps.
    found: set[str] = set()
    spec_replicas: list[tuple[float, float]] = []
    available = math.nan
    ready: dict[str, float] = {}
    restarts: dict[str, float] = defaultdict(float)
    last_reason: dict[str, str] = {}
    waiting: dict[str, str] = {}
    mem: dict[str, Sequence[tuple[float, float]]] = {}
    limits: dict[tuple[str, str], float] = {}
    cpu: dict[str, float] = defaultdict(float)
    periods: dict[str, float] = defaultdict(float)
    throttled: dict[str, float] = defaultdict(float)
    hpa_cur = hpa_max = math.nan
    node_ready: dict[str, float] = {}
    pvc_used: Sequence[tuple[float, float]] = ()
    pvc_cap = math.nan
    dep_avail: dict[str, float] = {}
    dep_spec: dict[str, float] = {}
    pods_seen: set[str] = set()

    for s in series:
        lb, name = s.labels, s.name
        if lb.get("namespace", ns) != ns and name != "kube_node_status_condition":
            continue
        pod = lb.get("pod")
        if pod is not None:
            if pod not in pod_names and not (not pod_objs and wname and pod.startswith(wname + "-")):
                continue
            pods_seen.add(pod)
        found.add(name)
        if name == "kube_deployment_spec_replicas":
            d = lb.get("deployment")
            if d == wname:
                spec_replicas = list(s.points)
            elif d in dep_names:
                dep_spec[d] = _last(s.points)
        elif name == "kube_deployment_status_replicas_available":
            d = lb.get("deployment")
            if d == wname:
                available = _last(s.points)
            elif d in dep_names:
                dep_avail[d] = _last(s.points)
        elif name == "kube_pod_status_ready" and pod is not None:
            if lb.get("condition", "true") == "true":
                ready[pod] = _last(s.points)
        elif name == "kube_pod_container_status_restarts_total" and pod is not None:
            restarts[pod] += _rate(s.points, now) * 60.0
        elif name == "kube_pod_container_status_last_terminated_reason" and pod is not None:
            if _last(s.points) >= 1:
                last_reason[pod] = lb.get("reason", "")
        elif name == "kube_pod_container_status_waiting_reason" and pod is not None:
            if _last(s.points) >= 1:
                waiting[pod] = lb.get("reason", "")
        elif name == "container_memory_working_set_bytes" and pod is not None:
            mem[pod] = s.points
        elif name == "kube_pod_container_resource_limits" and pod is not None:
            limits[(pod, lb.get("resource", ""))] = _last(s.points)
        elif name == "container_cpu_usage_seconds_total" and pod is not None:
            cpu[pod] += _rate(s.points, now)
        elif name == "container_cpu_cfs_periods_total" and pod is not None:
            periods[pod] += _rate(s.points, now)
        elif name == "container_cpu_cfs_throttled_periods_total" and pod is not None:
            throttled[pod] += _rate(s.points, now)
        elif name == "kube_horizontalpodautoscaler_status_current_replicas":
            if hpa_ref and lb.get("horizontalpodautoscaler") == hpa_ref.name:
                hpa_cur = _last(s.points)
        elif name == "kube_horizontalpodautoscaler_spec_max_replicas":
            if hpa_ref and lb.get("horizontalpodautoscaler") == hpa_ref.name:
                hpa_max = _last(s.points)
        elif name == "kube_node_status_condition":
            if lb.get("condition") == "Ready" and lb.get("status", "true") == "true":
                node_ready[lb.get("node", "")] = _last(s.points)
        elif name == "kubelet_volume_stats_used_bytes":
            if pvc_ref and lb.get("persistentvolumeclaim") == pvc_ref.name:
                pvc_used = s.points
        elif name == "kubelet_volume_stats_capacity_bytes":
            if pvc_ref and lb.get("persistentvolumeclaim") == pvc_ref.name:
                pvc_cap = _last(s.points)

    traffic = _traffic([s for s in series if s.labels.get("namespace", ns) == ns
                        and s.labels.get("service") in dep_names | {wname}], now, alert.starts_at)
    own = traffic.get((ns, wname), _ServiceTraffic())

    pods = sorted(pod_names | pods_seen)
    n_pods = float(len(pods))
    mem_ratios = {p: _last(pts) / limits[(p, "memory")] for p, pts in mem.items()
                  if limits.get((p, "memory"), 0) > 0 and pts}
    mem_slopes = [_slope_per_min(pts, now) / limits[(p, "memory")] for p, pts in mem.items()
                  if limits.get((p, "memory"), 0) > 0]
    cpu_ratios = [cpu[p] / limits[(p, "cpu")] for p in cpu if limits.get((p, "cpu"), 0) > 0]
    throttle = [throttled[p] / periods[p] for p in periods if periods[p] > 0]

    def frac(pred: Mapping[str, str], value: str) -> float:
        return sum(1 for p in pods if pred.get(p) == value) / n_pods if n_pods else 0.0

    # Worst pods first: not ready, then most restarts, then highest memory pressure.
    worst = tuple(sorted(pods, key=lambda p: (ready.get(p, 1.0), -restarts.get(p, 0.0),
                                              -mem_ratios.get(p, 0.0), p)))
    nodes = {by_pod_node.get(p, "") for p in pods} - {""}
    # The alert may say which node, but only among the nodes the workload's pods run on; an
    # alert about a node with no workload on it names that node only if the cluster has it.
    alerted_node = alert.labels.get("node")
    if workload is None:
        node = alerted_node if alerted_node and idx.get("Node", "", alerted_node) is not None else None
    elif alerted_node in nodes:
        node = alerted_node
    else:
        node = min(nodes, key=lambda n: (node_ready.get(n, 1.0), n)) if nodes else None
    rs = idx.replicasets_of(ns, wname) if workload else []
    revisions = sorted((int(str((_meta(r).get("annotations") or {}).get(REVISION_ANNOTATION, 0))),
                         parse_time(_meta(r).get("creationTimestamp"))) for r in rs)
    rollout_age = now - revisions[-1][1] if revisions and not math.isnan(revisions[-1][1]) else math.inf

    dep_ratio = {d: (dep_avail.get(d, 0.0) / dep_spec[d]) if dep_spec.get(d) else 1.0
                 for d in dep_names if d in dep_avail or d in dep_spec}
    dep_err = {d: traffic[(ns, d)].error_ratio for d in dep_names if (ns, d) in traffic}
    dep_lat = {d: traffic[(ns, d)].p99 for d in dep_names if (ns, d) in traffic}
    deps_sorted = tuple(sorted(deps, key=lambda r: (dep_ratio.get(r.name, 1.0), -dep_err.get(r.name, 0.0),
                                                    -dep_lat.get(r.name, 0.0), r.name)))
    pdb_allowed = _pdb_allowed(idx, ns, dep_obj)
    node_pdb_allowed = _node_pdb_allowed(idx, node) if node else math.inf
    used = _last(pvc_used)
    desired = _last(spec_replicas) if spec_replicas else float((dep_obj or {}).get("spec", {}).get("replicas", 0) or 0)

    signals = Signals(
        desired_replicas=desired,
        baseline_replicas=max([v for _, v in spec_replicas] + [desired]),
        available_replicas=0.0 if math.isnan(available) else available,
        pods=n_pods,
        ready_pods=sum(ready.get(p, 0.0) for p in pods),
        restarts_per_min=sum(restarts.values()),
        oom_fraction=frac(last_reason, "OOMKilled"),
        error_exit_fraction=frac(last_reason, "Error"),
        crashloop_fraction=frac(waiting, "CrashLoopBackOff"),
        mem_ratio=max(mem_ratios.values(), default=0.0),
        mem_slope_per_min=max(mem_slopes, default=0.0),
        cpu_ratio=max(cpu_ratios, default=0.0),
        throttle_ratio=max(throttle, default=0.0),
        request_rate=own.requests,
        request_rate_baseline=own.baseline,
        error_ratio=own.error_ratio,
        latency_p99_s=own.p99,
        hpa_present=1.0 if hpa_ref else 0.0,
        hpa_current=0.0 if math.isnan(hpa_cur) else hpa_cur,
        hpa_max=0.0 if math.isnan(hpa_max) else hpa_max,
        node_ready=min((node_ready.get(n, 1.0) for n in nodes | ({node} if node else set())), default=1.0),
        pvc_present=1.0 if pvc_ref else 0.0,
        pvc_used_ratio=used / pvc_cap if pvc_cap and pvc_cap > 0 and not math.isnan(used) else 0.0,
        pvc_minutes_to_full=_minutes_to_full(pvc_used, pvc_cap, now),
        deps=float(len(deps)),
        dep_error_ratio=max(dep_err.values(), default=0.0),
        dep_available_ratio=min(dep_ratio.values(), default=1.0),
        dep_latency_p99_s=max(dep_lat.values(), default=0.0),
        rollout_age_s=rollout_age,
        has_previous_revision=1.0 if len(revisions) > 1 else 0.0,
        pdb_disruptions_allowed=pdb_allowed,
        node_pdb_disruptions_allowed=node_pdb_allowed,
    )
    expected = ["kube_deployment_spec_replicas", "kube_deployment_status_replicas_available",
                "http_requests_total", "container_memory_working_set_bytes"]
    missing = tuple(m for m in expected if m not in found) if workload else ()
    events = tuple(str(e.get("message", ""))[:500] for e in idx.by_kind.get("Event", ())
                   if ((e.get("involvedObject") or {}).get("name", "") in pod_names | {wname})
                   or ((e.get("regarding") or {}).get("name", "") in pod_names | {wname}))
    return Snapshot(
        alert=alert, at=now, workload=workload, signals=signals, slo=slo, node=node, pods=worst,
        hpa=hpa_ref, pvc=pvc_ref, dependencies=deps_sorted,
        workload_labels=dict(dep_meta.get("labels") or {}), events=events[-20:],
        node_pods=_evicted_by_drain(idx, node) if node else (),
        dependency_labels={d.name: dict(_meta(obj).get("labels") or {}) for d in deps
                           if (obj := idx.get("Deployment", ns, d.name)) is not None},
        history=history, missing=missing)


def _claims_of(dep: K8sObject | None) -> list[str]:
    """The PersistentVolumeClaims a Deployment's pod template mounts, in template order."""
    if dep is None:
        return []
    volumes = (((dep.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or ()
    return [str(c) for v in volumes if (c := (v.get("persistentVolumeClaim") or {}).get("claimName"))]


def drain_evicts(pod: K8sObject) -> bool:
    """Whether draining the pod's node evicts it, as `kubectl drain` decides: DaemonSet pods
    would come straight back, mirror (static) pods belong to the kubelet, and finished or
    terminating pods are left alone. The guards and the executor both use this one rule."""
    meta = _meta(pod)
    if any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or ()):
        return False
    if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
        return False
    return not (meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"))


def _evicted_by_drain(idx: _Objects, node: str) -> tuple[Neighbour, ...]:
    """Every pod a drain of `node` would evict, with its own and its Deployment's labels."""
    out = []
    for pod in idx.by_kind.get("Pod", ()):
        if (pod.get("spec") or {}).get("nodeName") != node or not drain_evicts(pod):
            continue
        meta = _meta(pod)
        ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        dep_name = idx.deployment_of_pod(ns, name)
        owner = idx.get("Deployment", ns, dep_name) if dep_name else None
        labels = {**(meta.get("labels") or {}), **((_meta(owner).get("labels") or {}) if owner else {})}
        out.append(Neighbour(ObjectRef("Pod", ns, name), labels))
    return tuple(sorted(out, key=lambda n: (n.ref.namespace, n.ref.name)))


def _minutes_to_full(used: Sequence[tuple[float, float]], cap: float, now: float) -> float:
    if not used or math.isnan(cap) or cap <= 0:
        return math.inf
    slope = _slope_per_min(used, now, window=600.0)
    if slope <= 0:
        return math.inf
    return max(0.0, (cap - used[-1][1]) / slope)


def _pdb_allowed(idx: _Objects, ns: str, dep: K8sObject | None) -> float:
    """disruptionsAllowed of the PodDisruptionBudget selecting the workload's pods, if any."""
    if dep is None:
        return math.inf
    pod_labels = (((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    allowed = math.inf
    for pdb in idx.by_kind.get("PodDisruptionBudget", ()):
        if _meta(pdb).get("namespace") != ns:
            continue
        selector = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if selector and all(pod_labels.get(k) == v for k, v in selector.items()):
            allowed = min(allowed, float((pdb.get("status") or {}).get("disruptionsAllowed", 0)))
    return allowed


def _node_pdb_allowed(idx: _Objects, node: str) -> float:
    """What a drain of `node` leaves in the tightest budget: for every workload with ready
    pods there, its disruptionsAllowed minus those pods, plus one. Above 0 the whole drain
    fits every PodDisruptionBudget; 0 or less means some eviction would be refused."""
    allowed = math.inf
    on_node: dict[tuple[str, str], int] = defaultdict(int)
    for pod in idx.by_kind.get("Pod", ()):
        if (pod.get("spec") or {}).get("nodeName") != node or not _pod_ready(pod):
            continue
        ns = str(_meta(pod).get("namespace", ""))
        dep = idx.deployment_of_pod(ns, str(_meta(pod).get("name", "")))
        if dep:
            on_node[(ns, dep)] += 1
    for (ns, dep), n in on_node.items():
        allowed = min(allowed, _pdb_allowed(idx, ns, idx.get("Deployment", ns, dep)) - n + 1)
    return allowed


def _pod_ready(pod: K8sObject) -> bool:
    """The pod's Ready condition; a pod whose status is unknown counts as ready (conservative)."""
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return str(cond.get("status")) == "True"
    return True

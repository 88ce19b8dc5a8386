"""The incident as the agent sees it, built from raw metric samples and Kubernetes objects.

This module is one half of the seam between simulation and reality (the encoder is the
other): the simulator, the replay and the live observer all hand `build_snapshot` the same
kind of data — raw samples under the real metric names of kube-state-metrics, cAdvisor,
kubelet and the application, plus Kubernetes objects as their JSON dicts — and get the same
`Snapshot`. Rates and ratios are computed here, not in PromQL, so that a series backfilled
into Prometheus and read back gives the same answer as the simulator's direct path.

Metric contract (labels in braces). Each series counts for the object its identifying labels
name (`deployment`, `statefulset`, `horizontalpodautoscaler`, `node`, `persistentvolumeclaim`, ...);
on object-level families a `pod` label is the scrape target's (kube-state-metrics' own on
kube-prometheus-stack), never the workload's:

    kube_deployment_spec_replicas{namespace,deployment}
    kube_deployment_status_replicas_available{namespace,deployment}
    kube_statefulset_replicas{namespace,statefulset}
    kube_statefulset_status_replicas_ready{namespace,statefulset}
    kube_daemonset_status_desired_number_scheduled{namespace,daemonset}
    kube_daemonset_status_number_available{namespace,daemonset}
    kube_pod_status_ready{namespace,pod,condition="true"}
    kube_pod_container_status_restarts_total{namespace,pod,container}          counter
    kube_pod_container_status_last_terminated_reason{namespace,pod,container,reason}
    kube_pod_container_status_waiting_reason{namespace,pod,container,reason}
    kube_pod_container_resource_limits{namespace,pod,container,resource}
    container_memory_working_set_bytes{namespace,pod,container}
    container_cpu_usage_seconds_total{namespace,pod,container}                counter
    container_cpu_cfs_periods_total{namespace,pod,container}                  counter
    container_cpu_cfs_throttled_periods_total{namespace,pod,container}        counter
    kube_horizontalpodautoscaler_status_current_replicas{namespace,horizontalpodautoscaler}
    kube_horizontalpodautoscaler_spec_max_replicas{namespace,horizontalpodautoscaler}
    kube_node_status_condition{node,condition="Ready",status="true"}
    kubelet_volume_stats_used_bytes{namespace,persistentvolumeclaim}
    kubelet_volume_stats_capacity_bytes{namespace,persistentvolumeclaim}

and the SLI profile's request counter and duration histogram, e.g. the `http` profile's:

      http_requests_total{namespace,service,code}                             counter
      http_request_duration_seconds_bucket{namespace,service,le}              counter
"""

from __future__ import annotations

import bisect
import functools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from remediator import edges, workloads
from remediator.actions import CONTAINER_PARAM, ActionKind, ObjectRef
from remediator.actions import WORKLOAD_KINDS as ACTED_ON_KINDS
from remediator.edges import Callee
from remediator.slis import DEFAULT_PROFILE, SLI_SIGNALS, SliProfile
from remediator.versions import (
    ConfigDrift,
    ConfigVersion,
    KnownGood,
    ServiceDrift,
    ServiceVersion,
    config_drift,
    config_refs,
    config_version,
    service_drift,
    service_version,
)

DEPENDS_ON_ANNOTATION = "remediator.io/depends-on"
PROTECTED_LABEL = "remediator.io/protected"
# A workload that keeps data the cluster cannot recreate (a database on a Deployment with a PVC,
# say) is marked `remediator.io/keeps-data: "true"`; a StatefulSet with volumeClaimTemplates keeps
# data without the label. Such a workload is never scaled to zero and never loses a volume.
KEEPS_DATA_LABEL = "remediator.io/keeps-data"
SLO_ERROR_ANNOTATION = "remediator.io/slo-error-ratio"
SLO_LATENCY_ANNOTATION = "remediator.io/slo-latency-p99"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
ROLLOUT_REVISION_ANNOTATION = "rollout.argoproj.io/revision"  # an Argo Rollout's ReplicaSets
# The kind of the marker an observer adds for a node whose pods (or the node itself) it could not
# read: `{"kind": NODE_PODS_UNOBSERVED, "metadata": {"name": <node>}}`; the snapshot then has
# `node_pods_known=False` for that node. No Kubernetes kind has this name.
NODE_PODS_UNOBSERVED = "remediator.io/NodePodsUnobserved"
# The kind of the marker an observer adds for an object the API server said does not exist:
# `{"kind": OBJECT_ABSENT, "of": "Service", "metadata": {"namespace": ..., "name": ...}}`. Offline data
# (the simulator's) never looked objects up; live, a Service that is absent routes to nothing.
OBJECT_ABSENT = "remediator.io/Absent"
# The pod template's annotation naming its main container (kubectl's default; Istio sets it on injection).
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
# Containers that are someone's sidecar, not the application: only a tie-breaker when choosing the
# container to judge (a sidecar that is the one in trouble is judged). Kubernetes-native sidecars
# (init containers with restartPolicy Always) count as sidecars whatever their name.
KNOWN_SIDECARS = frozenset({
    "istio-proxy", "linkerd-proxy", "envoy", "envoy-sidecar", "cloud-sql-proxy", "cloudsql-proxy", "vault-agent",
    "oauth2-proxy", "kube-rbac-proxy", "config-reloader", "otel-collector", "jaeger-agent", "fluent-bit", "fluentd",
    "datadog-agent", "dapr-sidecar", "consul-dataplane", "aws-xray-daemon"})
# A container is in trouble when its memory reaches this share of its limit, or its CPU is
# throttled this often (kube-prometheus' CPUThrottlingHigh fires at 25%).
MEM_TROUBLE_RATIO = 0.9
THROTTLE_TROUBLE_RATIO = 0.25

# Counters are turned into rates over this trailing window (seconds).
RATE_WINDOW_S = 120.0
# The "normal" request rate is read from this window before the alert fired: [start-900s, start-300s].
BASELINE_END_BEFORE_ALERT_S = 300.0
BASELINE_WINDOW_S = 600.0

K8sObject = Mapping[str, Any]

# Signal groups an observation can lack, each a set of `Signals` fields (`Snapshot.unknown_groups`):
# the encoder says "not observed" per group, so a missing source never reads as healthy or broken.
SIGNAL_GROUPS: Mapping[str, frozenset[str]] = {
    # the SLI profile's request counter / duration histogram of the workload itself
    "requests": frozenset({"request_rate", "error_ratio"}),
    "request_baseline": frozenset({"request_rate_baseline"}),
    "latency": frozenset({"latency_p99_s"}),
    # the same for its dependencies
    "dependency_slis": frozenset({"dep_error_ratio", "dep_latency_p99_s"}),
    # kube-state-metrics: the workload's replicas and its pods' readiness
    "kube_state": frozenset({"available_replicas", "ready_pods"}),
    # cAdvisor (kubelet) with the limits kube-state-metrics exports: the judged container's resources
    "memory": frozenset({"mem_ratio", "mem_slope_per_min"}),
    "cpu": frozenset({"cpu_ratio", "throttle_ratio"}),
    "node": frozenset({"node_ready"}),
    "hpa": frozenset({"hpa_current", "hpa_max"}),
    "volume": frozenset({"pvc_used_ratio", "pvc_minutes_to_full"}),
}


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
    # What routes traffic to the workload and configures it (`remediator.versions`), and room to run.
    service_ready_endpoints: float = math.inf  # ready pods its Service routes to; inf: no Service observed
    service_changed_age_s: float = math.inf  # since the Service was last written
    service_revertible: float = 0.0  # 1: the Service differs from its last-known-good version
    config_changed_age_s: float = math.inf  # since a ConfigMap/Secret it references was last written
    config_revertible: float = 0.0  # 1: a config differs from its last-known-good version and can be put back
    config_secret_edited: float = 0.0  # 1: a Secret it uses was edited in place (cannot be put back)
    # How long its error ratio has been over the SLO, read back over the request counters' trend
    # window and pre-alert baseline in steps of ERRORS_SINCE_STEP_S (0: not over it now; inf: over it
    # as far back as the samples go). A stretch without requests neither holds nor breaks the SLO
    # (pods in back-off serve nothing).
    errors_since_s: float = 0.0
    pending_pods: float = 0.0  # its pods Pending because no node has room (PodScheduled False, Unschedulable)
    cordoned_ready_nodes: float = 0.0  # nodes Ready but cordoned (spec.unschedulable)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class Neighbour:
    """An object beyond the alerted workload that an action may change, with the labels the
    guards judge it by: a pod a drain of the incident's node would evict (its own labels and
    its owning Deployment's), or a dependency's Deployment.

    For a pod a drain would evict, what `kubectl drain` refuses without an override: `bare`, no
    controller owns it (deleted, it is gone for good; `--force`), and `empty_dir`, it mounts an
    emptyDir volume whose data the eviction deletes (`--delete-emptydir-data`)."""

    ref: ObjectRef
    labels: Mapping[str, str] = field(default_factory=dict)
    bare: bool = False
    empty_dir: bool = False


@dataclass(frozen=True)
class Snapshot:
    """Everything the agent knows about one incident at one moment.

    Scope comes from the cluster's objects, never from the alert: `node` is a node the
    workload's pods run on, `pvc` a claim the workload mounts, `node_pods` every pod a drain
    of `node` would evict (all namespaces), `dependency_labels` the labels of each observed
    dependency by name, `namespace/name` in another namespace (`dependency_labels_of`; a dependency
    missing from it was not observed). `node_pods_known` is
    False when the observer could not read the node or the pods on it (a forbidden read): then
    `node_pods` is not every pod a drain would evict.
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
    node_pods_known: bool = True
    dependency_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    keeps_data: bool = False  # the workload keeps data (`object_keeps_data` of its object)
    events: tuple[str, ...] = ()
    history: tuple[Attempt, ...] = ()
    missing: tuple[str, ...] = ()
    # Names of `Signals` fields that were not observed: their value is the neutral default, not a
    # measurement (no request metric of the SLI profile, no memory series or limit, ...).
    unknown_signals: frozenset[str] = frozenset()
    # The container the resource signals (memory, CPU, throttling) describe and a limit action
    # changes: the alert's `container` when the workload has it, else the one worst off.
    container: str | None = None
    containers: tuple[str, ...] = ()  # the workload's own, main first
    sli_profile: str = DEFAULT_PROFILE.name  # the SLI profile the request signals were read with
    # The Service that routes to the workload (the alert's, else one selecting it, else its
    # last-known-good one), and how its selector/ports differ from the last-known-good version.
    service: ServiceVersion | None = None
    service_drift: ServiceDrift | None = None
    # The ConfigMaps/Secrets its pod template references now, and how they differ from the
    # last-known-good versions, newest change first; `config_users`: every workload in the
    # namespace that references a drifted config (a revert restarts them all), with its labels.
    configs: tuple[ConfigVersion, ...] = ()
    config_drift: tuple[ConfigDrift, ...] = ()
    config_users: tuple[Neighbour, ...] = ()
    # A node that is Ready but cordoned while the workload has pods Pending for want of room
    # (the one with the fewest pods, so the most room), with its labels.
    cordoned_node: str | None = None
    cordoned_node_labels: Mapping[str, str] = field(default_factory=dict)

    def container_param(self) -> dict[str, str]:
        """The `container` parameter of a limit-raising action (`actions.CONTAINER_KINDS`): the judged
        container when the workload has several; with one, there is nothing to choose."""
        return {CONTAINER_PARAM: self.container} if self.container and len(self.containers) > 1 else {}

    @property
    def unknown_groups(self) -> frozenset[str]:
        """The SIGNAL_GROUPS with at least one signal not observed."""
        return frozenset(g for g, names in SIGNAL_GROUPS.items() if names & self.unknown_signals)

    @property
    def slo_known(self) -> bool:
        """Whether the SLO can be judged at all: every SLI (error ratio, latency) was observed."""
        return not self.unknown_signals.intersection(SLI_SIGNALS)

    @property
    def namespace(self) -> str:
        return self.workload.namespace if self.workload else self.alert.namespace

    def dependency_labels_of(self, ref: ObjectRef) -> Mapping[str, str] | None:
        """The labels of the observed dependency `ref`; None when it is none or was not observed."""
        return self.dependency_labels.get(dependency_key(ref, self.namespace))

    @property
    def workload_kind(self) -> str:
        """The workload's kind (one of `workloads.WORKLOAD_KINDS`), "" for a node incident."""
        return self.workload.kind if self.workload else ""

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


def object_keeps_data(obj: K8sObject | None) -> bool:
    """A StatefulSet with volumeClaimTemplates, or any workload labelled `KEEPS_DATA_LABEL: "true"`."""
    if not obj:
        return False
    label = str((_meta(obj).get("labels") or {}).get(KEEPS_DATA_LABEL, "")).strip().lower()
    return label in ("true", "yes", "1") or bool((obj.get("spec") or {}).get("volumeClaimTemplates"))


class _Objects:
    """Index of the objects around an incident, by kind and (namespace, name)."""

    def __init__(self, objects: Iterable[K8sObject], known_good: Sequence[KnownGood] = ()) -> None:
        self.known_good = tuple(known_good)
        self.by_kind: dict[str, list[K8sObject]] = defaultdict(list)
        # By (kind, name) as well, in the same order: a lookup per owner reference and per pod
        # would otherwise scan every object of the kind (thousands in a big namespace).
        self._by_name: dict[tuple[str, str], list[K8sObject]] = defaultdict(list)
        self._owner_of_pod: dict[tuple[str, str], ObjectRef | None] = {}
        self._owner: dict[int, ObjectRef | None] = {}  # by id(): the objects live as long as the index
        for obj in objects:
            kind = str(obj.get("kind", ""))
            self.by_kind[kind].append(obj)
            name = _meta(obj).get("name")
            if isinstance(name, str):
                self._by_name[(kind, name)].append(obj)

    def get(self, kind: str, namespace: str, name: str) -> K8sObject | None:
        for obj in self._by_name.get((kind, name), ()):
            if _meta(obj).get("namespace", "") in (namespace, ""):
                return obj
        return None

    def absent(self, kind: str, namespace: str, name: str) -> bool:
        """Whether the API server said there is no such object (an `OBJECT_ABSENT` marker)."""
        return any(m.get("of") == kind and _meta(m).get("name") == name and _meta(m).get("namespace", "") == namespace
                   for m in self.by_kind.get(OBJECT_ABSENT, ()))

    def workload(self, ref: ObjectRef) -> K8sObject | None:
        return self.get(ref.kind, ref.namespace, ref.name)

    def owner(self, obj: K8sObject) -> ObjectRef | None:
        """`workloads.workload_of(obj)`, once per object."""
        key = id(obj)
        if key not in self._owner:
            self._owner[key] = workloads.workload_of(obj, self.get)
        return self._owner[key]

    def pods_of(self, ref: ObjectRef) -> list[K8sObject]:
        """The observed pods whose controllers lead to the workload (`workloads.workload_of`)."""
        return [p for p in self.by_kind.get("Pod", ()) if _meta(p).get("namespace") == ref.namespace
                and self.owner(p) == ref]

    def workload_of_pod(self, namespace: str, pod: str) -> ObjectRef | None:
        """The workload owning the pod, through its ownerReferences. A pod already replaced (a
        restart, a rollout) is matched to the observed ReplicaSet that made it: the controller
        names its pods `<replicaset>-<suffix>`, and the ReplicaSet stays in the rollout history."""
        key = (namespace, pod)
        if key not in self._owner_of_pod:
            self._owner_of_pod[key] = self._resolve_pod(namespace, pod)
        return self._owner_of_pod[key]

    def _resolve_pod(self, namespace: str, pod: str) -> ObjectRef | None:
        obj = self.get("Pod", namespace, pod)
        if obj is not None:
            return self.owner(obj)
        for rs in self.by_kind.get("ReplicaSet", ()):
            name = str(_meta(rs).get("name", ""))
            suffix = pod[len(name) + 1:] if pod.startswith(name + "-") else ""
            if _meta(rs).get("namespace") == namespace and suffix.isalnum():
                return self.owner(rs)
        # A StatefulSet names its pods `<statefulset>-<ordinal>`; one scaled down or replaced is still its.
        for sts in self.by_kind.get("StatefulSet", ()):
            name = str(_meta(sts).get("name", ""))
            ordinal = pod[len(name) + 1:] if pod.startswith(name + "-") else ""
            if _meta(sts).get("namespace") == namespace and ordinal.isdigit():
                return ObjectRef("StatefulSet", namespace, name)
        return None

    def scrape_target_pod(self, namespace: str, service: str, pod: str) -> bool:
        """Whether `pod` is the scrape target behind `service` (kube-prometheus-stack leaves the
        target's `pod` on series that have none of their own, such as node conditions)."""
        svc = self.get("Service", namespace, service)
        obj = self.get("Pod", namespace, pod)
        selector = ((svc or {}).get("spec") or {}).get("selector") or {}
        labels = (_meta(obj).get("labels") or {}) if obj is not None else {}
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    def callee_workload(self, callee: Callee) -> ObjectRef | None:
        """The workload an edge's callee is: of the kind the source names (Linkerd's `dst_deployment`);
        for a service name (tracing), the one workload its Service of that name routes to; else the
        one observed workload of that name (Istio derives the name from the pods' owners). Several
        kinds of that name, or none observed: None."""
        ns, name = callee.namespace, callee.name
        if callee.kind:
            return ObjectRef(callee.kind, ns, name)
        if callee.service and self.get("Service", ns, name) is not None:
            via = self.workload_selected_by(ns, name)
            if via is not None:
                return via
        named = [ObjectRef(k, ns, name) for k in workloads.WORKLOAD_KINDS
                 if any(_meta(o).get("name") == name and _meta(o).get("namespace") == ns
                        for o in self.by_kind.get(k, ()))]
        return named[0] if len(named) == 1 else None

    def workload_selected_by(self, namespace: str, service: str) -> ObjectRef | None:
        """The one workload a Service routes to (`workload_matching` its selector). A Service whose
        selector now selects none (edited: the incident `restore_service` is for) names the one its
        last-known-good selector selected."""
        svc = self.get("Service", namespace, service)
        found = self.workload_matching(namespace, ((svc or {}).get("spec") or {}).get("selector") or {})
        good = next((v for k in self.known_good if (v := k.service(service)) and v.ref.namespace == namespace), None)
        return found if found is not None or good is None else self.workload_matching(namespace, good.selector)

    def workload_matching(self, namespace: str, selector: Mapping[str, str]) -> ObjectRef | None:
        """The one workload a Service selector selects: the owners of the pods it selects, else (no
        such pod observed) the workloads whose pod template it selects. None: none, or several."""
        if not selector:
            return None
        pods = [p for p in self.by_kind.get("Pod", ()) if _meta(p).get("namespace") == namespace
                and all((_meta(p).get("labels") or {}).get(k) == v for k, v in selector.items())]
        found = {self.owner(p) for p in pods}
        if not pods:
            found = {ObjectRef(kind, namespace, str(_meta(w).get("name"))) for kind in workloads.WORKLOAD_KINDS
                     for w in self.by_kind.get(kind, ()) if _meta(w).get("namespace") == namespace
                     and all(workloads.template_labels(w).get(k) == v for k, v in selector.items())}
        return found.pop() if len(found) == 1 and None not in found else None


def resolve_workload(alert: Alert, objects: Iterable[K8sObject]) -> ObjectRef | None:
    """The workload an alert is about (any kind of `workloads.WORKLOAD_KINDS`), from whichever
    labels the alert rule keeps, each checked against the objects. None: unknown, escalate."""
    return _resolve(alert, _Objects(objects))


# The labels that name a workload outright, and its kind (kube-state-metrics' names: a Job is
# `job_name`, for `job` is the scrape job's).
WORKLOAD_LABELS: tuple[tuple[str, str], ...] = (
    ("deployment", "Deployment"), ("statefulset", "StatefulSet"), ("daemonset", "DaemonSet"),
    ("job_name", "Job"), ("cronjob", "CronJob"), ("rollout", "Rollout"))
# The labels naming the object an alert is about; on such an alert `pod`, `service`, `job`,
# `endpoint`, `instance` are the scrape target's (kube-state-metrics, the kubelet).
SUBJECT_LABELS: tuple[str, ...] = (*(label for label, _ in WORKLOAD_LABELS), "horizontalpodautoscaler",
                                   "persistentvolumeclaim")


def _resolve(alert: Alert, idx: _Objects) -> ObjectRef | None:
    """The most explicit clue first, each checked against the objects:

    1. a workload label (`deployment`, `statefulset`, `daemonset`, `job_name`, `cronjob`,
       `rollout`) naming an observed object; then `horizontalpodautoscaler` (its
       scaleTargetRef) and `persistentvolumeclaim` (the workload mounting it). An alert with
       any of these is about that object: if none leads anywhere, the answer is None, for its
       `pod` and `service` are kube-state-metrics' or the kubelet's own;
    2. `pod`, when the pod is observed (or its ReplicaSet made it), through its owners; on a
       node alert only a pod on that node that is not the scrape target behind `service`;
    3. `node`: the workload most hurt on the node (None when it has none: a node incident);
    4. `service`, only on an alert with no other clue, and only through a real Service's
       selector. Only offline, when the Service was never looked up (neither observed nor
       marked absent), does a Deployment of that very name count.
    """
    labels, ns = alert.labels, alert.namespace
    for label, kind in WORKLOAD_LABELS:
        if labels.get(label):
            obj = idx.get(kind, ns, labels[label])
            if obj is not None:
                return workloads.workload_of(obj, idx.get)
    if labels.get("horizontalpodautoscaler"):
        hpa = idx.get("HorizontalPodAutoscaler", ns, labels["horizontalpodautoscaler"])
        target = workloads.scale_target(hpa) if hpa is not None else None
        if target is not None and idx.workload(target) is not None:
            return target
    if labels.get("persistentvolumeclaim"):
        found = _claimant(idx, ns, labels["persistentvolumeclaim"])
        if found is not None:
            return found
    if any(labels.get(label) for label in SUBJECT_LABELS):
        return None
    node = labels.get("node")
    if labels.get("pod") and not (node and not _pod_on_node_of_its_own(idx, alert, node)):
        found = idx.workload_of_pod(ns, labels["pod"])
        if found is not None:
            return found
    if node:
        return _most_hurt_on_node(idx, node)
    if labels.get("service") and not labels.get("pod"):
        if idx.get("Service", ns, labels["service"]) is not None:
            return idx.workload_selected_by(ns, labels["service"])
        if not idx.absent("Service", ns, labels["service"]) and idx.get("Deployment", ns, labels["service"]):
            return ObjectRef("Deployment", ns, labels["service"])
    return None


def _pod_on_node_of_its_own(idx: _Objects, alert: Alert, node: str) -> bool:
    """On an alert with a `node`, whether its `pod` is a subject: a pod on that node, not the
    scrape target behind the alert's `service` (kube-state-metrics' own pod on node alerts)."""
    ns, pod = alert.namespace, alert.labels["pod"]
    obj = idx.get("Pod", ns, pod)
    if obj is None or (obj.get("spec") or {}).get("nodeName") != node:
        return False
    service = alert.labels.get("service")
    return not (service and idx.scrape_target_pod(ns, service, pod))


def _claimant(idx: _Objects, ns: str, claim: str) -> ObjectRef | None:
    """The one workload that mounts the claim: its pods (a StatefulSet's claims are its pods'),
    else its pod template. None when no workload, or several, mount it."""
    found = {w for p in idx.by_kind.get("Pod", ()) if _meta(p).get("namespace") == ns
             and claim in workloads.claims_of(None, [p]) and (w := idx.owner(p)) is not None}
    if not found:
        found = {ObjectRef(kind, ns, str(_meta(w).get("name"))) for kind in workloads.WORKLOAD_KINDS
                 for w in idx.by_kind.get(kind, ()) if _meta(w).get("namespace") == ns
                 and claim in workloads.claims_of(w)}
    return found.pop() if len(found) == 1 else None


def _most_hurt_on_node(idx: _Objects, node: str) -> ObjectRef | None:
    """The workload with the most pods on the node (ties: by name); None when none has any."""
    counts: dict[ObjectRef, int] = defaultdict(int)
    for pod in idx.by_kind.get("Pod", ()):
        if (pod.get("spec") or {}).get("nodeName") == node and (w := idx.owner(pod)):
            counts[w] += 1
    if not counts:
        return None
    return max(counts.items(), key=lambda kv: (kv[1], kv[0].namespace, kv[0].name))[0]


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


ERRORS_SINCE_STEP_S = 30.0


@dataclass
class _ServiceTraffic:
    requests: float = 0.0
    baseline: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    # Whether a sample lies in the window: a counter that is not exported is unknown, not zero.
    seen: bool = False
    seen_baseline: bool = False
    seen_duration: bool = False
    # The request counters' samples, each with whether it counts errors (for `errors_since`).
    calls: list[tuple[Sequence[tuple[float, float]], bool]] = field(default_factory=list)

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests > 0 else 0.0

    @property
    def p99(self) -> float:
        return _quantile(self.buckets, 0.99)

    def errors_since(self, now: float, threshold: float) -> float:
        """Seconds the error ratio has been over `threshold`: stepping back from `now` to the last
        moment it held with requests served; infinite when it was over it in the oldest samples read."""
        counters = [(_Counter(pts), error) for pts, error in self.calls if pts]
        oldest = min((c.times[0] for c, _ in counters), default=now)
        since, t = 0.0, now
        while t - RATE_WINDOW_S >= oldest - 1e-6:
            rates = [(c.rate(t), error) for c, error in counters]
            total = sum(r for r, _ in rates)
            if total > 0:
                if sum(r for r, error in rates if error) / total <= threshold:
                    return since
                since = now - t + ERRORS_SINCE_STEP_S
            t -= ERRORS_SINCE_STEP_S
        return math.inf if since > 0 else 0.0


class _Counter:
    """A counter's samples with their running increase (resets tolerated), so that its rate over
    any window costs two bisections: `rate(t)` is `_rate(points, t)`."""

    def __init__(self, points: Sequence[tuple[float, float]]) -> None:
        self.times = [p[0] for p in points]
        self.increase = [0.0]
        for (_, a), (_, b) in zip(points, points[1:]):
            self.increase.append(self.increase[-1] + (b - a if b >= a else b))

    def rate(self, now: float, window: float = RATE_WINDOW_S) -> float:
        lo = bisect.bisect_left(self.times, now - window - 1e-6)
        hi = bisect.bisect_right(self.times, now + 1e-6) - 1
        if hi - lo < 1:
            return 0.0
        span = self.times[hi] - self.times[lo]
        return (self.increase[hi] - self.increase[lo]) / span if span > 0 else 0.0


def _has_point(points: Sequence[tuple[float, float]], start: float, end: float) -> bool:
    return any(start - 1e-6 <= t <= end + 1e-6 for t, _ in points)


def _traffic(series: Sequence[Series], now: float, alert_start: float, sli: SliProfile, scope_ns: str,
             keys: set[tuple[str, str]]) -> dict[tuple[str, str], _ServiceTraffic]:
    """Request rate, errors and latency buckets per (namespace, workload) of `keys`, read through the
    SLI profile: its counter and histogram, its server-side labels, its error rule and its unit (a
    profile without a namespace label reads every workload in the alerted one's namespace)."""
    out: dict[tuple[str, str], _ServiceTraffic] = defaultdict(_ServiceTraffic)
    base_end = alert_start - BASELINE_END_BEFORE_ALERT_S
    for s in series:
        if s.name not in sli.metrics or not sli.selects(s.labels):
            continue
        key = sli.key(s.labels, scope_ns)
        if key not in keys:
            continue
        t = out[key]
        if s.name == sli.requests:
            r = _rate(s.points, now)
            t.requests += r
            t.baseline += _rate(s.points, base_end, BASELINE_WINDOW_S)
            t.seen = t.seen or _has_point(s.points, now - RATE_WINDOW_S, now)
            t.seen_baseline = t.seen_baseline or _has_point(s.points, base_end - BASELINE_WINDOW_S, base_end)
            error = sli.is_error(s.labels)
            if error:
                t.errors += r
            t.calls.append((s.points, error))
        else:
            le = float(s.labels.get("le", "+Inf")) * sli.unit_s
            t.buckets[le] = t.buckets.get(le, 0.0) + _rate(s.points, now)
            t.seen_duration = t.seen_duration or _has_point(s.points, now - RATE_WINDOW_S, now)
    return out


# ---------------------------------------------------------------------------- builder


def build_snapshot(alert: Alert, series: Sequence[Series], objects: Sequence[K8sObject], *,
                   now: float, history: tuple[Attempt, ...] = (),
                   default_slo: Slo = Slo(), sli: SliProfile = DEFAULT_PROFILE,
                   known_good: Sequence[KnownGood] = ()) -> Snapshot:
    """Turn (alert, raw samples, objects) into a Snapshot. The one function every mode calls.

    Raises `SnapshotError` only when the alert names no workload the objects know; a metric
    that is absent is listed in `Snapshot.missing`, its signals in `Snapshot.unknown_signals`,
    and they keep a neutral default. The request signals are read through the SLI profile `sli`.
    `known_good` is what workloads of the namespace used while their SLO held (the ledger's latest
    record of each): the snapshot says how the alerted one's configs and Service differ from it.
    Three steps: the scope from the objects, one pass over the series, the signals.
    """
    idx = _Objects(objects, known_good)
    scope = _scope(alert, idx, series, now)
    r = _read(series, scope, now)
    traffic = _traffic(series, now, alert.starts_at, sli, scope.ns, scope.dep_keys | {(scope.ns, scope.name)})
    pods = sorted(scope.pod_names | r.pods_seen)
    nodes = _nodes_of(scope, pods)
    node = _pick_node(alert, idx, scope, r, nodes)
    containers, sidecars = _containers_of(scope, r)
    container = _judged_container(alert, containers, sidecars, r, pods)
    # Worst pods first: not ready, then most restarts, then highest memory pressure (of the judged container).
    mem_ratios = r.mem_ratios
    worst = tuple(sorted(pods, key=lambda p: (r.ready.get(p, 1.0), -r.restarts.get(p, 0.0),
                                              -mem_ratios.get((p, container or ""), 0.0), p)))
    health = _dep_health(idx, scope, r, traffic)
    slo = _slo(scope, default_slo)
    deps = _deps_worst_first(scope, health, slo)
    judged_nodes = nodes | ({node} if node else set())
    signals = _signals(idx, scope, r, traffic, health, pods, judged_nodes, node, container, now)
    around = _around(idx, scope, alert, r, now)
    own = traffic.get((scope.ns, scope.name))
    since = own.errors_since(now, slo.error_ratio) if own is not None else 0.0
    signals = replace(signals, errors_since_s=since, **around.signals)
    replicas = REPLICA_SERIES.get(scope.workload.kind if scope.workload else "")
    expected = [*(replicas[1:] if replicas else ()), sli.requests, "container_memory_working_set_bytes"]
    # The request counter counts only when the workload's own traffic is in it.
    found = (r.found - {sli.requests}) | ({sli.requests} if (scope.ns, scope.name) in traffic else set())
    missing = tuple(m for m in expected if m not in found) if scope.workload else ()
    unknown = _unknown(scope, r, traffic, container, pods, judged_nodes) if scope.workload else frozenset()
    involved = scope.pod_names | {scope.name}
    events = tuple(str(e.get("message", ""))[:500] for e in idx.by_kind.get("Event", ())
                   if ((e.get("involvedObject") or {}).get("name", "") in involved)
                   or ((e.get("regarding") or {}).get("name", "") in involved))
    return Snapshot(
        alert=alert, at=now, workload=scope.workload, signals=signals, slo=slo, node=node,
        pods=worst, hpa=scope.hpa, pvc=scope.pvc, dependencies=deps,
        workload_labels=dict(scope.labels), events=events[-20:], keeps_data=object_keeps_data(scope.obj),
        node_pods=_evicted_by_drain(idx, node) if node else (),
        node_pods_known=not node or idx.get(NODE_PODS_UNOBSERVED, "", node) is None,
        dependency_labels={dependency_key(d, scope.ns): dict(_meta(obj).get("labels") or {}) for d in scope.deps
                           if (obj := idx.workload(d)) is not None},
        history=history, missing=missing, unknown_signals=unknown, container=container, containers=containers,
        sli_profile=sli.name, service=around.service, service_drift=around.service_drift, configs=around.configs,
        config_drift=around.config_drift, config_users=around.config_users, cordoned_node=around.cordoned_node,
        cordoned_node_labels=around.cordoned_labels)


def _containers_of(scope: _Scope, r: _Readings) -> tuple[tuple[str, ...], frozenset[str]]:
    """The workload's containers, main first, and which of them are sidecars.

    From the pod template (the Deployment's, else a pod's): its containers in order, then native
    sidecars (init containers with `restartPolicy: Always`). The template's default-container
    annotation names the main one. Without a spec (offline), the containers the series name."""
    specs = [workloads.pod_template(scope.obj)]
    specs += [{"metadata": _meta(p), "spec": p.get("spec") or {}} for p in scope.pods]
    for template in specs:
        spec = template.get("spec") or {}
        names = [str(c.get("name")) for c in spec.get("containers") or () if c.get("name")]
        native = [str(c.get("name")) for c in spec.get("initContainers") or ()
                  if c.get("name") and c.get("restartPolicy") == "Always"]
        if names:
            sidecars = frozenset(native) | frozenset(n for n in names if n in KNOWN_SIDECARS)
            main = ((template.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
            order = {n: i for i, n in enumerate(names + native)}
            ranked = sorted(order, key=lambda n: (n != main, n in sidecars, order[n]))
            return tuple(ranked), sidecars
    seen = sorted(r.containers_seen)
    sidecars = frozenset(c for c in seen if c in KNOWN_SIDECARS)
    return tuple(sorted(seen, key=lambda c: (c in sidecars, c))), sidecars


def _judged_container(alert: Alert, containers: Sequence[str], sidecars: frozenset[str], r: _Readings,
                      pods: Sequence[str]) -> str | None:
    """The container the resource signals describe: the alert's `container` when the workload has
    it; else the one worst off (crashing or restarting in the most pods, then closest to its memory
    limit past MEM_TROUBLE_RATIO, then the most throttled past THROTTLE_TROUBLE_RATIO); with no
    container in trouble, the main one. Sidecars lose ties, nothing more: a sidecar in trouble is judged."""
    alerted = alert.labels.get("container")
    if alerted and alerted in containers:
        return alerted
    if not containers:
        return None
    ratios = r.mem_ratios

    def trouble(c: str) -> tuple[float, float, float]:
        crashing = sum(r.troubled.get((p, c), 0.0) > 0 for p in pods)
        mem = max((ratios.get((p, c), 0.0) for p in pods), default=0.0)
        throttled = max((r.throttle_ratio(p, c) for p in pods), default=0.0)
        return (float(crashing), mem if mem >= MEM_TROUBLE_RATIO else 0.0,
                throttled if throttled >= THROTTLE_TROUBLE_RATIO else 0.0)

    rank = {c: i for i, c in enumerate(containers)}  # main first: the tie-breaker
    return max(containers, key=lambda c: (trouble(c), -rank[c]))


def _unknown(scope: _Scope, r: _Readings, traffic: Mapping[tuple[str, str], _ServiceTraffic],
             container: str | None, pods: Sequence[str], nodes: Set[str]) -> frozenset[str]:
    """The signals the series could not measure (docs/slis.md): neutral defaults, not observations."""
    out: set[str] = set()
    own = traffic.get((scope.ns, scope.name))
    if own is None or not own.seen:
        out |= {"request_rate", "error_ratio"}
    if own is None or not own.seen_baseline:
        out.add("request_rate_baseline")
    if own is None or not own.seen_duration:
        out.add("latency_p99_s")
    dep_traffic = [traffic[d] for d in scope.dep_keys if d in traffic]
    if scope.dep_keys and not any(t.seen for t in dep_traffic):
        out.add("dep_error_ratio")
    if scope.dep_keys and not any(t.seen_duration for t in dep_traffic):
        out.add("dep_latency_p99_s")
    c = container or ""
    if not any((p, c) in r.mem_ratios for p in pods):
        out |= {"mem_ratio", "mem_slope_per_min"}
    if not any((p, c) in r.cpu and r.limits.get((p, c, "cpu"), 0) > 0 for p in pods):
        out.add("cpu_ratio")
    # No CFS series is no throttling only when the container is known to have no CPU limit.
    no_cpu_limit = ("kube_pod_container_resource_limits" in r.found
                    and not any(r.limits.get((p, c, "cpu"), 0) > 0 for p in pods))
    if not any((p, c) in r.periods for p in pods) and not no_cpu_limit:
        out.add("throttle_ratio")
    if math.isnan(r.available):
        out.add("available_replicas")
    if pods and not any(p in r.ready for p in pods):
        out.add("ready_pods")
    if scope.hpa:
        out |= {name for name, v in (("hpa_current", r.hpa_current), ("hpa_max", r.hpa_max)) if math.isnan(v)}
    # Pods on no named node and no node condition series at all (a dataset without them, such as
    # Nezha's): readiness is not known, not Ready. (Without pods, scaled to zero, no node matters.)
    if (nodes and not any(n in r.node_ready for n in nodes)) or (
            not nodes and pods and "kube_node_status_condition" not in r.found):
        out.add("node_ready")
    if scope.pvc and (not r.pvc_used or math.isnan(r.pvc_cap)):
        out |= {"pvc_used_ratio", "pvc_minutes_to_full"}
    return frozenset(out | _unknown_state(scope, r, pods))


# kube-state-metrics' pod-state families (limits are not state: a dataset may give them).
_KSM_POD_STATE = frozenset({"kube_pod_status_ready", "kube_pod_container_status_restarts_total",
                            "kube_pod_container_status_last_terminated_reason",
                            "kube_pod_container_status_waiting_reason"})


def _unknown_state(scope: _Scope, r: _Readings, pods: Sequence[str]) -> set[str]:
    """What else is unknown when no kube-state-metrics series was read at all (a dataset without
    it, such as Nezha's): restarts and termination reasons (not "none"), the desired replicas when
    the object's spec does not say, the dependencies' availability.

    With kube-state-metrics scraped, an absent reason series is the cluster's own answer (no
    termination: none), as before; without pods (scaled to zero) the per-pod signals are none."""
    if r.found & (_KSM_POD_STATE | set(_REPLICA_FAMILY)):
        return set()
    out: set[str] = set()
    status = (scope.obj or {}).get("status") or {}
    spec = (scope.obj or {}).get("spec") or {}
    if not r.spec_replicas and "replicas" not in spec and "desiredNumberScheduled" not in status:
        out |= {"desired_replicas", "baseline_replicas"}
    if pods:
        out |= {"restarts_per_min", "oom_fraction", "error_exit_fraction", "crashloop_fraction"}
    if scope.dep_keys:
        out.add("dep_available_ratio")
    return out


@dataclass(frozen=True)
class _Scope:
    """What the incident is about, from the cluster's objects: the workload and what is its own."""

    workload: ObjectRef | None
    ns: str
    name: str  # "" without a workload
    obj: K8sObject | None  # the workload's object, of its kind
    pods: list[K8sObject]
    pod_names: set[str]
    deps: tuple[ObjectRef, ...]
    dep_keys: set[tuple[str, str]]  # (namespace, name) of each dependency: its series are read in its namespace
    hpa: ObjectRef | None
    pvc: ObjectRef | None

    @property
    def labels(self) -> Mapping[str, str]:
        return (_meta(self.obj).get("labels") or {}) if self.obj is not None else {}

    @property
    def annotations(self) -> Mapping[str, str]:
        return (_meta(self.obj).get("annotations") or {}) if self.obj is not None else {}


def _scope(alert: Alert, idx: _Objects, series: Sequence[Series] = (), now: float = math.inf) -> _Scope:
    workload = _resolve(alert, idx)
    # Without a workload only a node alert has a scope: the node (an alert about an object that
    # was not found, or of no kind the agent knows, must not become one about the kubelet's node).
    if workload is None and ("node" not in alert.labels or any(alert.labels.get(x) for x in SUBJECT_LABELS)):
        raise SnapshotError(
            f"alert {alert.name!r} with labels {dict(alert.labels)} names no workload "
            f"({', '.join(workloads.WORKLOAD_KINDS)}) among the observed objects")
    ns = workload.namespace if workload else alert.namespace
    name = workload.name if workload else ""
    obj = idx.workload(workload) if workload else None
    deps = _dependencies(idx, obj, workload, callees_of(workload, series, alert, now)) if workload else ()
    hpa: ObjectRef | None = None
    for h in idx.by_kind.get("HorizontalPodAutoscaler", ()):
        if workload is not None and _meta(h).get("namespace") == ns and workloads.scale_target(h) == workload:
            hpa = ObjectRef("HorizontalPodAutoscaler", ns, str(_meta(h).get("name")))
    pods = idx.pods_of(workload) if workload else []
    # The alert may say which claim is filling, but only among the claims the workload mounts.
    claims = workloads.claims_of(obj, pods) if obj is not None else []
    alerted_claim = alert.labels.get("persistentvolumeclaim")
    claim = alerted_claim if alerted_claim in claims else (claims[0] if claims else None)
    return _Scope(workload, ns, name, obj, pods, {str(_meta(p).get("name")) for p in pods}, deps,
                  {(d.namespace, d.name) for d in deps}, hpa,
                  ObjectRef("PersistentVolumeClaim", ns, claim) if claim else None)


def dependency_key(ref: ObjectRef, namespace: str) -> str:
    """`Snapshot.dependency_labels`' key: the name in the incident's namespace, `namespace/name` in
    another (two namespaces may each hold a dependency of one name, and one may be protected)."""
    return ref.name if ref.namespace == namespace else f"{ref.namespace}/{ref.name}"


def callees_of(workload: ObjectRef, series: Iterable[Series], alert: Alert, now: float) -> tuple[Callee, ...]:
    """The workload's call edges with traffic from the start of the pre-alert baseline window to
    `now` (`remediator.edges`): a dependency that stopped answering during the incident was
    still called before it."""
    since = alert.starts_at - BASELINE_END_BEFORE_ALERT_S - BASELINE_WINDOW_S
    return edges.callees(series, workload, since=since, until=now)


def dependencies_of(workload: ObjectRef, objects: Iterable[K8sObject],
                    callees: Sequence[Callee] = ()) -> tuple[ObjectRef, ...]:
    """The workload's direct dependencies among the objects and call edges (`_dependencies`), for the observer."""
    idx = _Objects(objects)
    return _dependencies(idx, idx.workload(workload), workload, callees)


def _dependencies(idx: _Objects, obj: K8sObject | None, workload: ObjectRef,
                  callees: Sequence[Callee] = ()) -> tuple[ObjectRef, ...]:
    """The workload's direct dependencies. The annotation `remediator.io/depends-on` (Deployments
    of its namespace, or `namespace/name`) is an override; without it, the Services its pod
    template's environment names (`REDIS_ADDR=redis-cart:6379`, a URL on `svc.ns.svc.cluster.local`),
    each through its selector to the one workload behind it, then the callees of its call edges
    with traffic (`callees_of`: Istio, Linkerd, trace service graphs), each in any namespace. A
    Service or callee not observed, or naming no single workload, names none: nothing is guessed."""
    annotation = str((_meta(obj).get("annotations") or {}).get(DEPENDS_ON_ANNOTATION, "")).strip() if obj else ""
    if annotation:
        named = [d.strip() for d in annotation.split(",") if d.strip()]
        return tuple(_named_workload(idx, *(d.split("/", 1) if "/" in d else (workload.namespace, d)))
                     for d in named)
    found: list[ObjectRef] = []
    for svc_ns, svc in workloads.services_named_in_env(obj, workload.namespace):
        ref = idx.workload_selected_by(svc_ns, svc) if idx.get("Service", svc_ns, svc) is not None else None
        if ref is not None and ref != workload and ref not in found:
            found.append(ref)
    for callee in callees:
        ref = idx.callee_workload(callee)
        if ref is not None and ref != workload and ref not in found:
            found.append(ref)
    return tuple(found)


def _named_workload(idx: _Objects, namespace: str, name: str) -> ObjectRef:
    """The observed workload of that name, of whichever kind (a StatefulSet `redis-cart` is no
    Deployment); a Deployment when none was observed, as the annotation has always meant."""
    for kind in workloads.WORKLOAD_KINDS:
        if idx.get(kind, namespace, name) is not None:
            return ObjectRef(kind, namespace, name)
    return ObjectRef("Deployment", namespace, name)


def _slo(scope: _Scope, default: Slo) -> Slo:
    """The workload's SLO from its annotations, else the configured default."""
    a = scope.annotations
    return Slo(error_ratio=float(a.get(SLO_ERROR_ANNOTATION, default.error_ratio)),
               latency_p99_s=float(a.get(SLO_LATENCY_ANNOTATION, default.latency_p99_s)),
               consecutive=default.consecutive)


@dataclass
class _Readings:
    """What one pass over the series found about the scope: last values and per-pod rates."""

    found: set[str] = field(default_factory=set)
    pods_seen: set[str] = field(default_factory=set)
    spec_replicas: list[tuple[float, float]] = field(default_factory=list)
    available: float = math.nan
    ready: dict[str, float] = field(default_factory=dict)
    restarts: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    last_reason: dict[str, str] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)
    # Per (pod, container): a sidecar's series must not stand in for the application's.
    troubled: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    mem: dict[tuple[str, str], Sequence[tuple[float, float]]] = field(default_factory=dict)
    limits: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (pod, container, resource)
    cpu: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    periods: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    throttled: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    containers_seen: set[str] = field(default_factory=set)
    hpa_current: float = math.nan
    hpa_max: float = math.nan
    node_ready: dict[str, float] = field(default_factory=dict)
    pvc_used: Sequence[tuple[float, float]] = ()
    pvc_cap: float = math.nan
    dep_available: dict[tuple[str, str], float] = field(default_factory=dict)  # by (namespace, name)
    dep_spec: dict[tuple[str, str], float] = field(default_factory=dict)

    @functools.cached_property
    def mem_ratios(self) -> dict[tuple[str, str], float]:
        """Per (pod, container), working set over memory limit (read once the pass is over)."""
        return {(p, c): _last(pts) / self.limits[(p, c, "memory")] for (p, c), pts in self.mem.items()
                if self.limits.get((p, c, "memory"), 0) > 0 and pts}

    def throttle_ratio(self, pod: str, container: str) -> float:
        periods = self.periods.get((pod, container), 0.0)
        return self.throttled.get((pod, container), 0.0) / periods if periods > 0 else 0.0


def _container(s: Series) -> str | None:
    """The container a per-container series is about; None for cAdvisor's pod-level cgroup
    (`container=""`) and pause container (`POD`), which are not containers of the workload."""
    c = s.labels.get("container")
    if c is None:
        return ""  # a source without the label (an old recording): the pod's one container
    return None if c in ("", "POD") else c


def _read_ready(r: _Readings, pod: str, s: Series, now: float) -> None:
    if s.labels.get("condition", "true") == "true":
        r.ready[pod] = _last(s.points)


def _pod_restarts(r: _Readings, pod: str, s: Series, now: float) -> None:
    rate = _rate(s.points, now) * 60.0
    r.restarts[pod] += rate
    if (c := _container(s)) is not None and rate > 0:
        r.troubled[(pod, c)] += 1.0


def _pod_terminated(r: _Readings, pod: str, s: Series, now: float) -> None:
    if _last(s.points) >= 1:
        reason = s.labels.get("reason", "")
        r.last_reason[pod] = reason
        if (c := _container(s)) is not None and reason in ("OOMKilled", "Error"):
            r.troubled[(pod, c)] += 1.0


def _pod_waiting(r: _Readings, pod: str, s: Series, now: float) -> None:
    if _last(s.points) >= 1:
        r.waiting[pod] = s.labels.get("reason", "")
        if (c := _container(s)) is not None:
            r.troubled[(pod, c)] += 1.0


def _pod_memory(r: _Readings, pod: str, s: Series, now: float) -> None:
    if (c := _container(s)) is not None:
        r.mem[(pod, c)] = s.points
        r.containers_seen.add(c)


def _pod_limit(r: _Readings, pod: str, s: Series, now: float) -> None:
    if (c := _container(s)) is not None:
        r.limits[(pod, c, s.labels.get("resource", ""))] = _last(s.points)
        r.containers_seen.add(c)


def _pod_counter(field_name: str) -> Callable[[_Readings, str, Series, float], None]:
    """A per-container counter as a per-second rate (cpu, CFS periods)."""
    def read(r: _Readings, pod: str, s: Series, now: float) -> None:
        if (c := _container(s)) is not None:
            getattr(r, field_name)[(pod, c)] += _rate(s.points, now)
            r.containers_seen.add(c)
    return read


# Per-pod series: name -> what to keep of it.
_POD_READERS: Mapping[str, Callable[[_Readings, str, Series, float], None]] = {
    "kube_pod_status_ready": _read_ready,
    "kube_pod_container_status_restarts_total": _pod_restarts,
    "kube_pod_container_status_last_terminated_reason": _pod_terminated,
    "kube_pod_container_status_waiting_reason": _pod_waiting,
    "container_memory_working_set_bytes": _pod_memory,
    "kube_pod_container_resource_limits": _pod_limit,
    "container_cpu_usage_seconds_total": _pod_counter("cpu"),
    "container_cpu_cfs_periods_total": _pod_counter("periods"),
    "container_cpu_cfs_throttled_periods_total": _pod_counter("throttled"),
}


# kube-state-metrics' replica families per workload kind: (spec, available) and the label naming
# the object. A series counts for the workload whose kind and name it names (never by its `pod`).
REPLICA_SERIES: Mapping[str, tuple[str, str, str]] = {
    "Deployment": ("deployment", "kube_deployment_spec_replicas", "kube_deployment_status_replicas_available"),
    "StatefulSet": ("statefulset", "kube_statefulset_replicas", "kube_statefulset_status_replicas_ready"),
    "DaemonSet": ("daemonset", "kube_daemonset_status_desired_number_scheduled",
                  "kube_daemonset_status_number_available"),
}
_REPLICA_FAMILY = {name: (kind, label, name == spec) for kind, (label, spec, avail) in REPLICA_SERIES.items()
                   for name in (spec, avail)}


def _read_replicas(r: _Readings, scope: _Scope, s: Series) -> None:
    kind, label, spec = _REPLICA_FAMILY[s.name]
    name = s.labels.get(label)
    if scope.workload is not None and kind == scope.workload.kind and name == scope.name:
        if spec:
            r.spec_replicas = list(s.points)
        else:
            r.available = _last(s.points)
    elif kind == "Deployment" and (key := (s.labels.get("namespace", scope.ns), str(name))) in scope.dep_keys:
        (r.dep_spec if spec else r.dep_available)[key] = _last(s.points)


def _read_hpa(r: _Readings, scope: _Scope, s: Series) -> None:
    if scope.hpa and s.labels.get("horizontalpodautoscaler") == scope.hpa.name:
        if s.name == "kube_horizontalpodautoscaler_status_current_replicas":
            r.hpa_current = _last(s.points)
        else:
            r.hpa_max = _last(s.points)


def _read_node(r: _Readings, scope: _Scope, s: Series) -> None:
    if s.labels.get("condition") == "Ready" and s.labels.get("status", "true") == "true":
        r.node_ready[s.labels.get("node", "")] = _last(s.points)


def _read_volume(r: _Readings, scope: _Scope, s: Series) -> None:
    if scope.pvc and s.labels.get("persistentvolumeclaim") == scope.pvc.name:
        if s.name == "kubelet_volume_stats_used_bytes":
            r.pvc_used = s.points
        else:
            r.pvc_cap = _last(s.points)


# Object-level series: name -> what to keep of it.
_OBJECT_READERS: Mapping[str, Callable[[_Readings, _Scope, Series], None]] = {
    **{name: _read_replicas for name in _REPLICA_FAMILY},
    "kube_horizontalpodautoscaler_status_current_replicas": _read_hpa,
    "kube_horizontalpodautoscaler_spec_max_replicas": _read_hpa,
    "kube_node_status_condition": _read_node,
    "kubelet_volume_stats_used_bytes": _read_volume,
    "kubelet_volume_stats_capacity_bytes": _read_volume,
}


def _own_pod(s: Series) -> str | None:
    """The pod a series is about. Object-level families (Deployment, HPA, node, volume) carry
    no pod of their own: a `pod` label there is the scraping target's, kube-state-metrics' own
    pod on kube-prometheus-stack, and says nothing about the workload."""
    return None if s.name in _OBJECT_READERS else s.labels.get("pod")


def _concerns(s: Series, scope: _Scope) -> bool:
    """Whether a series is about the scope: its namespace (node conditions are cluster-wide, a
    dependency's replicas are in its own), and for a per-pod series one of the workload's pods."""
    ns = s.labels.get("namespace", scope.ns)
    if ns != scope.ns and s.name != "kube_node_status_condition":
        return s.name in _REPLICA_FAMILY and any(d[0] == ns for d in scope.dep_keys)
    pod = _own_pod(s)
    if pod is None:
        return True
    # Without pod objects (offline), the <workload>-... shape is the best evidence.
    return pod in scope.pod_names or (not scope.pods and bool(scope.name) and pod.startswith(scope.name + "-"))


def _read(series: Sequence[Series], scope: _Scope, now: float) -> _Readings:
    """One pass over the series, keeping what concerns the workload, its pods, node and deps."""
    r = _Readings()
    for s in series:
        if not _concerns(s, scope):
            continue
        pod = _own_pod(s)
        if pod is not None:
            r.pods_seen.add(pod)
        r.found.add(s.name)
        if pod is not None and s.name in _POD_READERS:
            _POD_READERS[s.name](r, pod, s, now)
        elif s.name in _OBJECT_READERS:
            _OBJECT_READERS[s.name](r, scope, s)
    return r


def _pick_node(alert: Alert, idx: _Objects, scope: _Scope, r: _Readings, nodes: set[str]) -> str | None:
    """The incident's node. The alert may say which, but only among the nodes the workload's
    pods run on; an alert about a node with no workload on it names that node only if the
    cluster has it (or refused to show it: then its pods are unknown). Otherwise the least ready
    of the workload's nodes."""
    alerted = alert.labels.get("node")
    if scope.workload is None:  # a node the cluster has, or one it would not let the observer read
        known = alerted and (idx.get("Node", "", alerted) is not None or idx.get(NODE_PODS_UNOBSERVED, "", alerted))
        return alerted if known else None
    if alerted in nodes:
        return alerted
    return min(nodes, key=lambda n: (r.node_ready.get(n, 1.0), n)) if nodes else None


def _nodes_of(scope: _Scope, pods: Sequence[str]) -> set[str]:
    by_pod = {str(_meta(p).get("name")): str((p.get("spec") or {}).get("nodeName", "")) for p in scope.pods}
    return {by_pod.get(p, "") for p in pods} - {""}


def _dep_health(idx: _Objects, scope: _Scope, r: _Readings, traffic: Mapping[tuple[str, str], _ServiceTraffic]
                ) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float], dict[tuple[str, str], float]]:
    """Per observed dependency, by (namespace, name): available/desired ratio, error ratio, p99 latency,
    each read in the dependency's own namespace."""
    keys = scope.dep_keys
    ratio = {d: (r.dep_available.get(d, 0.0) / r.dep_spec[d]) if r.dep_spec.get(d) else 1.0
             for d in keys if d in r.dep_available or d in r.dep_spec}
    # A dependency without replica series (another kind, a namespace not scraped): its object's status, if read.
    for d in scope.deps:
        obj = idx.workload(d)
        key = (d.namespace, d.name)
        if key not in ratio and obj is not None and obj.get("status") is not None:
            spec = _object_replicas(obj, "spec")
            ratio[key] = _object_replicas(obj, "available") / spec if spec else 1.0
    err = {d: traffic[d].error_ratio for d in keys if d in traffic}
    lat = {d: traffic[d].p99 for d in keys if d in traffic}
    return ratio, err, lat


_Health = tuple[dict[tuple[str, str], float], dict[tuple[str, str], float], dict[tuple[str, str], float]]


def _deps_worst_first(scope: _Scope, health: _Health, slo: Slo) -> tuple[ObjectRef, ...]:
    """Least available first; then the one furthest past the SLO on either SLI, each measured
    against its threshold (so a scrape's stray 0.2% of errors does not outrank a second of latency)."""
    ratio, err, lat = health

    def key(d: ObjectRef) -> tuple[float, float, str, str]:
        k = (d.namespace, d.name)
        past = max(err.get(k, 0.0) / slo.error_ratio, lat.get(k, 0.0) / slo.latency_p99_s)
        return ratio.get(k, 1.0), -past, d.name, d.namespace
    return tuple(sorted(scope.deps, key=key))


def _revisions(idx: _Objects, scope: _Scope) -> list[tuple[int, float]]:
    """(revision, creation time) of the workload's revisions, oldest first: a Deployment's or
    Rollout's ReplicaSets, a StatefulSet's or DaemonSet's ControllerRevisions."""
    if scope.workload is None:
        return []
    owned = workloads.revisions_owned(scope.workload, [*idx.by_kind.get("ReplicaSet", ()),
                                                       *idx.by_kind.get("ControllerRevision", ())])
    out = []
    for x in owned:
        annotations = _meta(x).get("annotations") or {}
        number = (x.get("revision") if x.get("kind") == "ControllerRevision"
                  else annotations.get(REVISION_ANNOTATION, annotations.get(ROLLOUT_REVISION_ANNOTATION, 0)))
        out.append((int(str(number or 0)), parse_time(_meta(x).get("creationTimestamp"))))
    return sorted(out)


def _signals(idx: _Objects, scope: _Scope, r: _Readings, traffic: Mapping[tuple[str, str], _ServiceTraffic],
             health: _Health, pods: Sequence[str],
             nodes: set[str], node: str | None, container: str | None, now: float) -> Signals:
    own = traffic.get((scope.ns, scope.name), _ServiceTraffic())
    n_pods = float(len(pods))
    limit = r.limits
    mem_slopes = [_slope_per_min(pts, now) / limit[(p, c, "memory")] for (p, c), pts in r.mem.items()
                  if c == container and limit.get((p, c, "memory"), 0) > 0]
    cpu_ratios = [v / limit[(p, c, "cpu")] for (p, c), v in r.cpu.items()
                  if c == container and limit.get((p, c, "cpu"), 0) > 0]
    throttle = [r.throttle_ratio(p, c) for (p, c) in r.periods if c == container]
    mem_ratios = [v for (_, c), v in r.mem_ratios.items() if c == container]

    def frac(pred: Mapping[str, str], value: str) -> float:
        return sum(1 for p in pods if pred.get(p) == value) / n_pods if n_pods else 0.0

    revisions = _revisions(idx, scope)
    rollout_age = now - revisions[-1][1] if revisions and not math.isnan(revisions[-1][1]) else math.inf
    dep_ratio, dep_err, dep_lat = health
    used, cap = _last(r.pvc_used), r.pvc_cap
    desired = _last(r.spec_replicas) if r.spec_replicas else _object_replicas(scope.obj, "spec")
    return Signals(
        desired_replicas=desired,
        baseline_replicas=max([v for _, v in r.spec_replicas] + [desired]),
        available_replicas=_object_replicas(scope.obj, "available") if math.isnan(r.available) else r.available,
        pods=n_pods,
        ready_pods=sum(r.ready.get(p, 0.0) for p in pods),
        restarts_per_min=sum(r.restarts.values()),
        oom_fraction=frac(r.last_reason, "OOMKilled"),
        error_exit_fraction=frac(r.last_reason, "Error"),
        crashloop_fraction=frac(r.waiting, "CrashLoopBackOff"),
        mem_ratio=max(mem_ratios, default=0.0),
        mem_slope_per_min=max(mem_slopes, default=0.0),
        cpu_ratio=max(cpu_ratios, default=0.0),
        throttle_ratio=max(throttle, default=0.0),
        request_rate=own.requests,
        request_rate_baseline=own.baseline,
        error_ratio=own.error_ratio,
        latency_p99_s=own.p99,
        hpa_present=1.0 if scope.hpa else 0.0,
        hpa_current=0.0 if math.isnan(r.hpa_current) else r.hpa_current,
        hpa_max=0.0 if math.isnan(r.hpa_max) else r.hpa_max,
        node_ready=min((r.node_ready.get(n, 1.0) for n in nodes), default=1.0),
        pvc_present=1.0 if scope.pvc else 0.0,
        pvc_used_ratio=used / cap if cap and cap > 0 and not math.isnan(used) else 0.0,
        pvc_minutes_to_full=_minutes_to_full(r.pvc_used, cap, now),
        deps=float(len(scope.deps)),
        dep_error_ratio=max(dep_err.values(), default=0.0),
        dep_available_ratio=min(dep_ratio.values(), default=1.0),
        dep_latency_p99_s=max(dep_lat.values(), default=0.0),
        rollout_age_s=rollout_age,
        has_previous_revision=1.0 if len(revisions) > 1 else 0.0,
        pdb_disruptions_allowed=_pdb_allowed(idx, scope.ns, scope.obj),
        node_pdb_disruptions_allowed=_node_pdb_allowed(idx, node) if node else math.inf,
    )


def _object_replicas(obj: K8sObject | None, which: str) -> float:
    """Desired or available replicas from the workload's own object, where no kube-state-metrics
    series says (a Rollout has none; a series not scraped): 0 when the object does not say either."""
    spec, status = (obj or {}).get("spec") or {}, (obj or {}).get("status") or {}
    if (obj or {}).get("kind") == "DaemonSet":
        value = status.get("desiredNumberScheduled" if which == "spec" else "numberAvailable")
    else:
        value = spec.get("replicas") if which == "spec" else status.get("availableReplicas")
    return float(value or 0)


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
    """Every pod a drain of `node` would evict, with its own and its workload's labels, and
    whether `kubectl drain` would refuse it as bare or as holding emptyDir data."""
    out = []
    for pod in idx.by_kind.get("Pod", ()):
        if (pod.get("spec") or {}).get("nodeName") != node or not drain_evicts(pod):
            continue
        meta = _meta(pod)
        ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        ref = idx.owner(pod)
        owner = idx.workload(ref) if ref is not None else None
        labels = {**(meta.get("labels") or {}), **((_meta(owner).get("labels") or {}) if owner else {})}
        # kubectl's rule is an ownerReference with `controller: true`. One without the field
        # (objects written by hand, the simulator's) counts when its kind is a built-in controller.
        bare = workloads.controller_ref(pod) is None
        empty_dir = any(v.get("emptyDir") is not None for v in (pod.get("spec") or {}).get("volumes") or ())
        out.append(Neighbour(ObjectRef("Pod", ns, name), labels, bare=bare, empty_dir=empty_dir))
    return tuple(sorted(out, key=lambda n: (n.ref.namespace, n.ref.name)))


def _minutes_to_full(used: Sequence[tuple[float, float]], cap: float, now: float) -> float:
    if not used or math.isnan(cap) or cap <= 0:
        return math.inf
    slope = _slope_per_min(used, now, window=600.0)
    if slope <= 0:
        return math.inf
    return max(0.0, (cap - used[-1][1]) / slope)


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a label selector selects an object with `labels`, as `metav1.LabelSelectorAsSelector`
    reads it: every `matchLabels` pair AND every `matchExpressions` requirement, where `In` needs the
    key with one of the values, `NotIn` the key absent or its value not listed, `Exists` the key,
    `DoesNotExist` its absence.

    For a policy/v1 PodDisruptionBudget a null (absent) selector selects no pod, and an empty one
    (`{}`, or only empty lists) selects every pod in its namespace; policy/v1beta1 selected none
    with `{}`, and this reads the v1 rule. The API server rejects an unknown operator; Kubernetes
    would then match nothing, but here such a requirement holds, so that a budget of unknown reach
    binds (the safe side for the guards)."""
    if selector is None:
        return False
    if any(labels.get(str(k)) != str(v) for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for req in selector.get("matchExpressions") or ():
        key, op, values = str(req.get("key", "")), req.get("operator"), [str(v) for v in req.get("values") or ()]
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def _budget(pdb: K8sObject) -> float:
    # A budget the disruption controller has not counted yet allows nothing.
    return float((pdb.get("status") or {}).get("disruptionsAllowed", 0))


def _pdb_allowed(idx: _Objects, ns: str, obj: K8sObject | None) -> float:
    """disruptionsAllowed of the tightest PodDisruptionBudget selecting the workload's pods (its
    pod template's labels), inf if none does."""
    if obj is None:
        return math.inf
    pod_labels = workloads.template_labels(obj)
    allowed = math.inf
    for pdb in idx.by_kind.get("PodDisruptionBudget", ()):
        if _meta(pdb).get("namespace") == ns and _selects((pdb.get("spec") or {}).get("selector"), pod_labels):
            allowed = min(allowed, _budget(pdb))
    return allowed


def _node_pdb_allowed(idx: _Objects, node: str) -> float:
    """What a drain of `node` leaves in the tightest budget: for every PodDisruptionBudget that
    selects ready pods the drain would evict, its disruptionsAllowed minus those pods, plus one.
    Above 0 the whole drain fits every budget; 0 or less means some eviction would be refused.
    A pod is judged by its own labels and its workload's pod template's (the simulator's pods
    carry none of their own); pods of no known workload (bare) count too."""
    evicted: dict[str, list[Mapping[str, str]]] = defaultdict(list)
    for pod in idx.by_kind.get("Pod", ()):
        if (pod.get("spec") or {}).get("nodeName") != node or not drain_evicts(pod) or not _pod_ready(pod):
            continue
        meta = _meta(pod)
        ns = str(meta.get("namespace", ""))
        ref = idx.owner(pod)
        template_labels = workloads.template_labels(idx.workload(ref)) if ref is not None else {}
        evicted[ns].append({**template_labels, **(meta.get("labels") or {})})
    allowed = math.inf
    for pdb in idx.by_kind.get("PodDisruptionBudget", ()):
        selector = (pdb.get("spec") or {}).get("selector")
        n = sum(1 for labels in evicted.get(str(_meta(pdb).get("namespace", "")), ()) if _selects(selector, labels))
        if n:
            allowed = min(allowed, _budget(pdb) - n + 1)
    return allowed


def _pod_ready(pod: K8sObject) -> bool:
    """The pod's Ready condition; a pod whose status is unknown counts as ready (conservative)."""
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return str(cond.get("status")) == "True"
    return True


# ---------------------------------------------------------------------------- routing, config, room


@dataclass(frozen=True)
class _Around:
    """What routes traffic to the workload, what configures it, and where it could run."""

    signals: dict[str, float]
    service: ServiceVersion | None = None
    service_drift: ServiceDrift | None = None
    configs: tuple[ConfigVersion, ...] = ()
    config_drift: tuple[ConfigDrift, ...] = ()
    config_users: tuple[Neighbour, ...] = ()
    cordoned_node: str | None = None
    cordoned_labels: Mapping[str, str] = field(default_factory=dict)


def _around(idx: _Objects, scope: _Scope, alert: Alert, r: _Readings, now: float) -> _Around:
    """The Service and configs of the workload against their last-known-good versions, and the
    Ready-but-cordoned nodes when its pods are Pending for want of room."""
    cordoned = _cordoned_ready(idx, r)
    if scope.workload is None or scope.obj is None:
        return _Around({"cordoned_ready_nodes": float(len(cordoned))})
    good = next((k for k in idx.known_good if k.workload == scope.workload), None)
    template = workloads.pod_template(scope.obj)
    configs = tuple(config_version(obj) if (obj := idx.get(ref.kind, ref.namespace, ref.name)) is not None
                    else ConfigVersion(ref, "") for ref in config_refs(template, scope.ns))
    drift = config_drift(configs, good.configs if good is not None else ())
    svc_obj = _service_of(idx, scope, alert, good)
    svc = service_version(svc_obj) if svc_obj is not None else None
    sdrift = service_drift(svc, good.service(svc.ref.name) if good is not None and svc is not None else None)
    pending = [p for p in scope.pods if _unschedulable(p)]
    on_node: dict[str, int] = defaultdict(int)
    for pod in idx.by_kind.get("Pod", ()):
        on_node[str((pod.get("spec") or {}).get("nodeName", ""))] += 1
    node = min(cordoned, key=lambda n: (on_node[n], n)) if pending and cordoned else None
    drifted = {d.current.ref for d in drift}
    # Every workload kind that mounts a drifted config restarts with the revert: a StatefulSet or
    # DaemonSet reads its env and files on start like a Deployment does.
    users = tuple(Neighbour(ObjectRef(kind, scope.ns, str(_meta(d).get("name"))), dict(_meta(d).get("labels") or {}))
                  for kind in ACTED_ON_KINDS for d in idx.by_kind.get(kind, ()) if _meta(d).get("namespace") == scope.ns
                  and drifted & set(config_refs((d.get("spec") or {}).get("template") or {}, scope.ns)))
    written = [c.changed_at for c in configs if c.changed_at > 0]
    signals = {
        "service_ready_endpoints": float(_ready_endpoints(idx, svc_obj)) if svc_obj is not None else math.inf,
        "service_changed_age_s": now - svc.changed_at if svc is not None and svc.changed_at > 0 else math.inf,
        "service_revertible": 1.0 if sdrift is not None else 0.0,
        "config_changed_age_s": now - max(written) if written else math.inf,
        "config_revertible": 1.0 if any(not d.blocked for d in drift) else 0.0,
        "config_secret_edited": 1.0 if any(d.blocked and d.current.secret for d in drift) else 0.0,
        "pending_pods": float(len(pending)),
        "cordoned_ready_nodes": float(len(cordoned)),
    }
    return _Around(signals, svc, sdrift, configs, drift, users, node,
                   cordoned.get(node, {}) if node else {})


def _service_of(idx: _Objects, scope: _Scope, alert: Alert, good: KnownGood | None) -> K8sObject | None:
    """The workload's Service: the alert's `service` when it routes (or routed, while the SLO held)
    to the workload, else a Service selecting the workload's pod template, else its last-known-good
    one. A Service that selects nothing and has no record counts by its name."""
    labels = workloads.template_labels(scope.obj)

    def routes(svc: K8sObject) -> bool:
        selector = (svc.get("spec") or {}).get("selector") or {}
        name = str(_meta(svc).get("name", ""))
        was = good.service(name) if good is not None else None
        return ((bool(selector) and all(labels.get(k) == v for k, v in selector.items()))
                or (was is not None and all(labels.get(k) == v for k, v in was.selector.items()))
                or (name == scope.name and idx.workload_matching(scope.ns, selector) is None))

    alerted = alert.labels.get("service")
    svc = idx.get("Service", scope.ns, alerted) if alerted else None
    if svc is not None and routes(svc):
        return svc
    mine = sorted((s for s in idx.by_kind.get("Service", ()) if _meta(s).get("namespace") == scope.ns and routes(s)),
                  key=lambda s: str(_meta(s).get("name", "")))
    return mine[0] if mine else None


def _pod_labels(idx: _Objects, pod: K8sObject) -> Mapping[str, str]:
    """A pod's labels; a pod written without any (the simulator's) carries its workload's template's."""
    own = _meta(pod).get("labels") or {}
    if own:
        return own
    ns = str(_meta(pod).get("namespace", ""))
    ref = idx.workload_of_pod(ns, str(_meta(pod).get("name", "")))
    return workloads.template_labels(idx.workload(ref)) if ref is not None else {}


def _container_ports(idx: _Objects, pod: K8sObject) -> list[Mapping[str, Any]]:
    containers = (pod.get("spec") or {}).get("containers")
    if not containers:
        ns = str(_meta(pod).get("namespace", ""))
        ref = idx.workload_of_pod(ns, str(_meta(pod).get("name", "")))
        containers = (workloads.pod_template(idx.workload(ref) if ref else None).get("spec") or {}).get("containers")
    return [p for c in containers or () for p in c.get("ports") or ()]


def _ready_endpoints(idx: _Objects, svc: K8sObject) -> int:
    """Ready pods a Service routes to, as the endpoints controller finds them: selected by its
    selector, Ready, and every port's targetPort found on the pod (a named one among its container
    ports; a number among them when the pod declares any)."""
    spec = svc.get("spec") or {}
    selector = spec.get("selector") or {}
    if not selector:
        return 0
    ns = str(_meta(svc).get("namespace", ""))
    count = 0
    for pod in idx.by_kind.get("Pod", ()):
        if _meta(pod).get("namespace") != ns or not _pod_ready(pod):
            continue
        labels = _pod_labels(idx, pod)
        if not all(labels.get(k) == v for k, v in selector.items()):
            continue
        declared = _container_ports(idx, pod)
        names = {str(p.get("name")) for p in declared if p.get("name")}
        numbers = {p.get("containerPort") for p in declared}
        ports = spec.get("ports") or ()
        if all((p.get("targetPort", p.get("port")) in names) if isinstance(p.get("targetPort"), str)
               else (not declared or p.get("targetPort", p.get("port")) in numbers) for p in ports):
            count += 1
    return count


def _unschedulable(pod: K8sObject) -> bool:
    """Pending because the scheduler found no node with room (PodScheduled False, reason Unschedulable)."""
    status = pod.get("status") or {}
    return status.get("phase") == "Pending" and any(
        c.get("type") == "PodScheduled" and str(c.get("status")) == "False" and c.get("reason") == "Unschedulable"
        for c in status.get("conditions") or ())


def _cordoned_ready(idx: _Objects, r: _Readings) -> dict[str, Mapping[str, str]]:
    """Nodes that are Ready (by kube_node_status_condition, else the object's condition) yet cordoned."""
    out: dict[str, Mapping[str, str]] = {}
    for node in idx.by_kind.get("Node", ()):
        name = str(_meta(node).get("name", ""))
        if not (node.get("spec") or {}).get("unschedulable"):
            continue
        ready = r.node_ready.get(name)
        if ready is None:
            ready = 1.0 if any(c.get("type") == "Ready" and str(c.get("status")) == "True"
                               for c in (node.get("status") or {}).get("conditions") or ()) else 0.0
        if ready >= 1.0:
            out[name] = dict(_meta(node).get("labels") or {})
    return out

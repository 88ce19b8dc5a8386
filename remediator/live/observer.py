"""The live observer: an alert in, the same `Snapshot` the simulator builds out.

Observing is two reads and one shared function:

1. `ObjectSource.fetch(alert)`: the Kubernetes objects around the alerted workload
   (Deployment, its ReplicaSets and Pods, their Nodes, the HPA, PVCs, PDBs, recent Events)
   as JSON dicts (`KubeObjectSource`), a fixed list (`StaticObjects`) or the alert's own
   labels when there is no cluster (`objects_from_alert`);
2. `MetricsSource.raw(selector, at, window_s)`: raw samples. `PrometheusSource` evaluates
   `selector[window]` at `at`, so Prometheus returns stored samples with their own
   timestamps -- not a `query_range` grid, not `rate()`. The PromQL selectors are data
   (`remediator/data/promql.yaml`, overridable);
3. `build_snapshot(alert, series, objects, now=...)`, the function the simulator calls.

A metric that returns nothing is listed in `Observation.missing`, never fatal. Prometheus
unreachable or answering 5xx raises `PrometheusUnavailable`: there is no snapshot, so the
loop cannot act on stale data. No fresh sample at all (scrapes stopped, or the newest is
older than `max_staleness_s`) makes the observation not `usable`, with the reason.

    >>> obs = Observer(None, StaticObjects([]))
    >>> alert = Alert("KubePodCrashLooping", {"namespace": "shop", "deployment": "cart"}, starts_at=0.0)
    >>> o = obs.observe(alert, now=60.0)
    >>> o.snapshot.workload, o.usable, o.problem
    (ObjectRef(kind='Deployment', namespace='shop', name='cart'), False, 'no Prometheus configured')
"""

from __future__ import annotations

import functools
import logging
import math
import re
import string
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from remediator import workloads
from remediator.actions import WORKLOAD_KINDS as ACTED_ON_KINDS  # swept for known-good, a config's users
from remediator.actions import ObjectRef
from remediator.edges import EDGE_SOURCES, Callee, EdgeSource
from remediator.live.config import ConfigError, ConfigIssue
from remediator.live.executor import ApiCall
from remediator.live.kube import Backoff, KubeError, is_status, selector_text, to_dict, with_backoff
from remediator.slis import DEFAULT_PROFILE, PROFILES, SliProfile
from remediator.snapshot import (
    DEPENDS_ON_ANNOTATION,
    NODE_PODS_UNOBSERVED,
    OBJECT_ABSENT,
    SUBJECT_LABELS,
    WORKLOAD_LABELS,
    Alert,
    Attempt,
    K8sObject,
    Series,
    Snapshot,
    SnapshotError,
    build_snapshot,
    callees_of,
    dependencies_of,
    resolve_workload,
)
from remediator.versions import KnownGood, config_refs, redact_secret

__all__ = [
    "API_CALLS", "CONTRACT_METRICS", "KubeObjectSource", "MetricsSource", "MissingMetric", "ObjectSource",
    "Observation", "ObservationError", "Observer", "PrometheusSource", "PrometheusUnavailable", "QueryError",
    "QueryTemplates", "SECRET_API_CALLS", "StaticObjects", "load_templates", "objects_from_alert",
]

log = logging.getLogger("remediator.live")

# The metric names of the snapshot contract (remediator/snapshot.py's module docstring). The request
# SLIs are the SLI profile's (remediator/slis.py): the observer derives their selectors from it.
CONTRACT_METRICS: tuple[str, ...] = (
    "kube_deployment_spec_replicas", "kube_deployment_status_replicas_available",
    "kube_statefulset_replicas", "kube_statefulset_status_replicas_ready",
    "kube_daemonset_status_desired_number_scheduled", "kube_daemonset_status_number_available",
    "kube_pod_status_ready",
    "kube_pod_container_status_restarts_total", "kube_pod_container_status_last_terminated_reason",
    "kube_pod_container_status_waiting_reason", "kube_pod_container_resource_limits",
    "container_memory_working_set_bytes", "container_cpu_usage_seconds_total", "container_cpu_cfs_periods_total",
    "container_cpu_cfs_throttled_periods_total",
    "kube_horizontalpodautoscaler_status_current_replicas", "kube_horizontalpodautoscaler_spec_max_replicas",
    "kube_node_status_condition", "kubelet_volume_stats_used_bytes", "kubelet_volume_stats_capacity_bytes",
)
# A templates file may still give the selector of a profile's request metric (it then replaces the
# one the profile derives); only the active profile's are run.
_SLI_METRICS: frozenset[str] = frozenset(m for p in PROFILES.values() for m in p.metrics)
#: Every API call `KubeObjectSource` makes, for the Helm chart's ClusterRole (tests/live/test_scope.py
#: checks it against the emulator's request log for a pod, node, PVC, service and HPA alert). Only
#: reads; a 403 on the cluster-wide ones (pods on a node, other namespaces, nodes) degrades, see `_neighbours`.
API_CALLS: tuple[ApiCall, ...] = (
    ApiCall("get", "apps", "deployments"),                          # the alerted workload, its dependencies
    ApiCall("list", "apps", "deployments"),                         # a claim's workload; the neighbours' owners
    ApiCall("get", "apps", "statefulsets"),                         # the alerted workload, a pod's owner
    ApiCall("list", "apps", "statefulsets"),                        # a claim's workload; the neighbours' owners
    ApiCall("get", "apps", "daemonsets"),                           # the alerted workload, a pod's owner
    ApiCall("list", "apps", "daemonsets"),                          # the known-good sweep; a config's other users
    ApiCall("get", "apps", "replicasets"),                          # a pod's owner
    ApiCall("list", "apps", "replicasets"),                         # the workload's revisions; the neighbours' owners
    ApiCall("list", "apps", "controllerrevisions"),                 # a StatefulSet's or DaemonSet's revisions
    ApiCall("get", "batch", "jobs"),                                # the alerted Job, a pod's owner
    ApiCall("list", "batch", "jobs"),                               # a CronJob's Jobs
    ApiCall("get", "batch", "cronjobs"),                            # the alerted CronJob, a Job's owner
    ApiCall("get", "argoproj.io", "rollouts"),                      # an Argo Rollout, a ReplicaSet's owner
    ApiCall("get", "", "pods"),                                     # the alerted pod
    ApiCall("list", "", "pods"),                                    # the workload's; a claim's; on its nodes
    ApiCall("get", "", "nodes"),
    ApiCall("get", "", "services"),                                 # a service alert
    ApiCall("get", "", "persistentvolumeclaims"),                   # the claims the workload mounts
    ApiCall("get", "autoscaling", "horizontalpodautoscalers"),      # an hpa alert
    ApiCall("list", "autoscaling", "horizontalpodautoscalers"),     # the HPA scaling the workload
    ApiCall("list", "policy", "poddisruptionbudgets"),              # the namespace's, the neighbours'
    ApiCall("list", "", "events"),                                  # by involvedObject.name
    ApiCall("get", "", "configmaps"),                               # the ConfigMaps the pod template references
    ApiCall("list", "", "services"),                                # the Services that route to the workload
    ApiCall("list", "", "nodes"),                                   # Ready but cordoned nodes, when pods are Pending
)
#: The observer's reads with secret reverts on (`secrets.revert`): the Secrets the pod template references,
#: one by name (never listed), handed to the core redacted (`versions.redact_secret`: a digest, no value).
SECRET_API_CALLS: tuple[ApiCall, ...] = (
    ApiCall("get", "", "secrets"),
)
PLACEHOLDERS = ("namespace", "workload", "deployment", "deployments", "statefulset", "daemonset", "services", "pods",
                "nodes", "hpa", "pvc")
_OWNER_READS_MAX = 20  # pods whose owners are read to resolve a claim or a Service (one owner chain each)
_EVENT_OBJECTS_MAX = 50  # objects whose Events are read (the workload and its first pods)
_POD_REGEX_MAX = 200  # more pods than this: select them by name prefix instead of listing them
_RE_META = re.compile(r"[.^$*+?()\[\]{}|\\]")  # RE2 metacharacters (Kubernetes names only ever contain ".")


class ObservationError(RuntimeError):
    """No snapshot could be built; the loop must not act. `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PrometheusUnavailable(ObservationError):
    """Prometheus did not answer, or answered 5xx/429: no metrics, so no action on stale data."""


class KubernetesUnavailable(ObservationError):
    """The Kubernetes API did not answer the object reads."""


class _Forbidden(KubernetesUnavailable):
    """A 403 on one read. Fatal for the workload's own objects; for the neighbours of a drain it
    makes that signal unknown (`NODE_PODS_UNOBSERVED`) instead."""


class QueryError(RuntimeError):
    """Prometheus rejected one query (4xx): that metric is missing, the others are fine."""


# ---------------------------------------------------------------------------- templates


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricQuery(_Strict):
    query: str
    window: Literal["recent", "trend"] = "recent"
    baseline: bool = False
    labels: dict[str, str] = {}

    @field_validator("query")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        template = string.Template(value)
        if not template.is_valid():
            raise ValueError(f"{value!r} has a malformed $placeholder")
        unknown = sorted(set(template.get_identifiers()) - set(PLACEHOLDERS))
        if unknown:
            raise ValueError(f"unknown placeholder(s) {', '.join('$' + u for u in unknown)}; "
                             f"known: {', '.join('$' + p for p in PLACEHOLDERS)}")
        if "[" in value:
            raise ValueError("give a selector without a range: the observer appends the window")
        return value


class Windows(_Strict):
    recent_s: float = Field(default=150.0, gt=0)
    trend_s: float = Field(default=600.0, gt=0)
    baseline_start_s: float = Field(default=900.0, gt=0)
    baseline_end_s: float = Field(default=300.0, ge=0)

    @model_validator(mode="after")
    def _order(self) -> Windows:
        if self.baseline_start_s <= self.baseline_end_s:
            raise ValueError("baseline_start_s must be further before the alert than baseline_end_s")
        return self


def _edge_query(source: EdgeSource) -> MetricQuery:
    # The trend window and the pre-alert baseline: a dependency that stopped answering was called before.
    return MetricQuery(query=source.selector(), window="trend", baseline=True)


class QueryTemplates(_Strict):
    windows: Windows = Windows()
    metrics: dict[str, MetricQuery]
    # The call-edge queries by source (remediator/edges.py derives them); a file may replace one.
    edges: dict[str, MetricQuery] = Field(default_factory=lambda: {
        name: _edge_query(source) for name, source in EDGE_SOURCES.items()})

    @field_validator("edges")
    @classmethod
    def _edge_sources(cls, edges: dict[str, MetricQuery]) -> dict[str, MetricQuery]:
        unknown = sorted(set(edges) - set(EDGE_SOURCES))
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not an edge source; known: {', '.join(EDGE_SOURCES)}")
        for name, q in edges.items():
            if not q.query.lstrip().startswith(EDGE_SOURCES[name].metric):
                raise ValueError(f"{name}: the query must select {EDGE_SOURCES[name].metric}, not {q.query!r}")
        # A file that gives some sources keeps the derived queries of the others.
        return {n: edges.get(n) or _edge_query(s) for n, s in EDGE_SOURCES.items()}

    def edge_queries(self) -> list[tuple[str, MetricQuery]]:
        """(metric, query) of every edge source: the callers' call counts."""
        return [(EDGE_SOURCES[name].metric, q) for name, q in self.edges.items()]

    @field_validator("metrics")
    @classmethod
    def _contract(cls, metrics: dict[str, MetricQuery]) -> dict[str, MetricQuery]:
        unknown = sorted(set(metrics) - set(CONTRACT_METRICS) - _SLI_METRICS)
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not in the snapshot's metric contract (remediator/snapshot.py) "
                             "nor an SLI profile's request metric (remediator/slis.py)")
        return metrics

    def for_profile(self, sli: SliProfile) -> dict[str, MetricQuery]:
        """The queries to run: the contract's, and the SLI profile's request counter (with its
        pre-alert baseline, over the trend window: since when errors rose) and duration histogram,
        unless this file gives their selectors."""
        out = {m: q for m, q in self.metrics.items() if m not in _SLI_METRICS}
        out[sli.requests] = self.metrics.get(sli.requests) or MetricQuery(query=sli.selector("requests"),
                                                                          window="trend", baseline=True)
        if sli.duration:
            out[sli.duration] = self.metrics.get(sli.duration) or MetricQuery(query=sli.selector("duration"))
        return out


def load_templates(path: Path | str | None = None) -> QueryTemplates:
    """The PromQL templates: `path`, or the shipped `remediator/data/promql.yaml`."""
    if path is None:
        text = resources.files("remediator").joinpath("data/promql.yaml").read_text()
        label = "remediator/data/promql.yaml"
    else:
        label = str(path)
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ConfigError([ConfigIssue(label, 0, "", f"cannot read the PromQL templates: {e.strerror}")]) from None
    try:
        doc = yaml.safe_load(text)
        return QueryTemplates.model_validate(doc)
    except yaml.YAMLError as e:
        raise ConfigError([ConfigIssue(label, 0, "", f"not valid YAML: {e}")]) from None
    except ValidationError as e:
        raise ConfigError([ConfigIssue(label, 0, ".".join(str(p) for p in err["loc"]), err["msg"])
                           for err in e.errors()]) from None


def _promql_regex(values: Iterable[str]) -> str:
    """Alternatives for `label=~"..."`: regex-escaped, then escaped for a PromQL string literal."""
    return "|".join(_RE_META.sub(r"\\\g<0>", v) for v in sorted(set(values))).replace("\\", "\\\\")


def _promql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _short(selector: str, limit: int = 160) -> str:
    return selector if len(selector) <= limit else selector[:limit - 3] + "..."


def _duration(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


# ---------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class RawSeries:
    labels: Mapping[str, str]  # with __name__
    points: Sequence[tuple[float, float]]


class MetricsSource(Protocol):
    """Raw samples of `selector` in the window (at - window_s, at]."""

    def raw(self, selector: str, at: float, window_s: float) -> list[RawSeries]: ...


class PrometheusSource:
    """Reads raw samples from Prometheus with `prometheus-api-client`.

    The client's own retry adapter is kept short (`retries`, 0.2 s backoff, 502/503/504)
    and every request has `timeout_s`, so a dead Prometheus fails an observation in
    seconds instead of hanging the loop.
    """

    def __init__(self, url: str, *, timeout_s: float = 10.0, retries: int = 2, bearer_token: str | None = None
                 ) -> None:
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        self.url = url.rstrip("/")
        retry = Retry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=0.2,
                      status_forcelist=(502, 503, 504), allowed_methods=("GET", "POST"), raise_on_status=False)
        headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else None
        self._prom = PrometheusConnect(self.url, headers=headers, retry=retry, timeout=int(math.ceil(timeout_s)))
        self.timeout_s = timeout_s

    def close(self) -> None:
        self._prom.close()

    def raw(self, selector: str, at: float, window_s: float) -> list[RawSeries]:
        import requests
        from prometheus_api_client.exceptions import PrometheusApiClientException

        query = f"{selector}[{_duration(window_s)}]"
        try:
            result = self._prom.custom_query(query, params={"time": f"{at:.3f}"}, timeout=self.timeout_s)
        except requests.RequestException as e:
            raise PrometheusUnavailable(f"Prometheus at {self.url} is unreachable: {type(e).__name__}: {e}") from e
        except PrometheusApiClientException as e:
            m = re.search(r"HTTP Status Code (\d+)", str(e))
            status = int(m.group(1)) if m else 0
            if status == 429 or status >= 500 or status == 0:
                raise PrometheusUnavailable(f"Prometheus at {self.url} answered {status or 'an error'} "
                                            f"to {query}") from e
            raise QueryError(f"Prometheus rejected {query}: {e}") from e
        out = []
        for item in result or ():
            values = item.get("values")
            if values is None and "value" in item:
                values = [item["value"]]
            points = [(float(t), float(v)) for t, v in values or ()]
            out.append(RawSeries(dict(item.get("metric") or {}), points))
        return out


class ObjectSource(Protocol):
    def fetch(self, alert: Alert) -> list[dict[str, Any]]: ...


@runtime_checkable
class CalleeObjects(Protocol):
    """An object source that can also read the workloads at the far end of call edges."""

    def fetch_callees(self, callees: Sequence[Callee]) -> list[dict[str, Any]]: ...


class StaticObjects:
    """A fixed list of objects (tests, replay, or objects fetched elsewhere)."""

    def __init__(self, objects: Sequence[K8sObject]) -> None:
        self.objects = [dict(o) for o in objects]

    def fetch(self, alert: Alert) -> list[dict[str, Any]]:
        return list(self.objects)

    def workloads(self, namespace: str) -> list[ObjectRef]:
        return [ObjectRef(str(o["kind"]), namespace, str(o["metadata"]["name"])) for o in self.objects
                if o.get("kind") in ACTED_ON_KINDS and (o.get("metadata") or {}).get("namespace") == namespace]


def objects_from_alert(alert: Alert) -> list[dict[str, Any]]:
    """Skeleton objects named by the alert's labels, for observing without a cluster.

    Offline only (`propose` without `--config`): with no API server to ask, a pod's workload is
    read from its name (`<deployment>-<replicaset hash>-<pod hash>`) and the skeleton spells that
    reading out as ownerReferences, so that `build_snapshot` resolves it as it would a real chain.
    A live observation never does this: there the owners come from the cluster. Every metric
    stays missing.
    """
    labels, ns = alert.labels, alert.namespace
    kind, name = next(((k, labels[label]) for label, k in WORKLOAD_LABELS if labels.get(label)), ("Deployment", ""))
    name = name or labels.get("service", "")
    out: list[dict[str, Any]] = []
    pod = labels.get("pod")
    if not name and pod:
        parts = pod.rsplit("-", 2)  # <deployment>-<replicaset hash>-<pod hash>
        name = parts[0] if len(parts) == 3 else pod.rsplit("-", 1)[0]
    if not name and labels.get("horizontalpodautoscaler"):
        name = labels["horizontalpodautoscaler"]
    volumes = []
    if labels.get("persistentvolumeclaim"):
        claim = labels["persistentvolumeclaim"]
        name = name or (claim[:-5] if claim.endswith("-data") else claim)
        volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
        out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": ns}})
    if name:
        out.append({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": ns},
                    "spec": {"template": {"spec": {"volumes": volumes}}}})
    if pod:
        owner = {"kind": kind, "name": name, "controller": True}
        if kind == "Deployment" and name:
            rs = pod.rsplit("-", 1)[0] if pod.startswith(name + "-") else f"{name}-unknown"
            out.append({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
                "name": rs, "namespace": ns, "ownerReferences": [owner]}})
            owner = {"kind": "ReplicaSet", "name": rs, "controller": True}
        out.append({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": pod, "namespace": ns, "ownerReferences": [owner] if name else []},
            "spec": {"nodeName": labels.get("node", "")}})
    if labels.get("horizontalpodautoscaler") and name:
        out.append({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": labels["horizontalpodautoscaler"], "namespace": ns},
                    "spec": {"scaleTargetRef": {"kind": kind, "name": name}}})
    if labels.get("node"):
        out.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": labels["node"]}})
    return out


class KubeObjectSource:
    """Reads the objects around an alert from the Kubernetes API (official client).

    Resolution reads what each of the alert's labels names (a workload of any kind, a pod, an
    HPA, a claim, a node, a Service) and the owners above it, then lets the core decide
    (`resolve_workload`). Around the workload it reads its revisions (ReplicaSets or
    ControllerRevisions), its Jobs (a CronJob), its pods (by its selector, kept when their owners
    lead to it), the HPA scaling it, the claims it mounts, the namespace's PDBs and the last hour's
    Events of it and its pods (selected by involvedObject), plus, for drains, the pods on its
    nodes and their owners' budgets. Every read is in `API_CALLS`; a 403 outside the workload's
    own objects makes that signal unknown instead of failing the observation.
    """

    def __init__(self, api: Any, *, backoff: Backoff | None = None, events_window_s: float = 3600.0,
                 clock: Callable[[], float] = time.time, timeout_s: float | None = 10.0,
                 drains: Callable[[Alert], bool] | None = None, read_secrets: bool = False) -> None:
        import kubernetes.client as k

        # Whether a drain can be a candidate for the alert (its runbook lists one; None: always).
        # Only then are the pods on the workload's nodes read, in every namespace.
        self.drains = drains
        # Secret reverts on (`secrets.revert` with a key): the Secrets the pod template references are
        # read, and handed on redacted (a digest, never a value).
        self.read_secrets = read_secrets

        self.api = api
        self.timeout_s = timeout_s
        self.core = _Timed(k.CoreV1Api(api), timeout_s)
        self.apps = _Timed(k.AppsV1Api(api), timeout_s)
        self.batch = _Timed(k.BatchV1Api(api), timeout_s)
        self.autoscaling = _Timed(k.AutoscalingV2Api(api), timeout_s)
        self.policy = _Timed(k.PolicyV1Api(api), timeout_s)
        self.custom = _Timed(k.CustomObjectsApi(api), timeout_s)
        self.backoff = backoff or Backoff(max_attempts=4, base_s=0.2, max_s=2.0)
        self.events_window_s = events_window_s
        self.clock = clock
        rollouts = ("argoproj.io", "v1alpha1")
        # kind -> (apiVersion, read(name, namespace), list(namespace, **query)): one home for every read.
        self._apis: dict[str, tuple[str, Callable[..., Any], Callable[..., Any]]] = {
            "Deployment": ("apps/v1", self.apps.read_namespaced_deployment, self.apps.list_namespaced_deployment),
            "StatefulSet": ("apps/v1", self.apps.read_namespaced_stateful_set, self.apps.list_namespaced_stateful_set),
            "DaemonSet": ("apps/v1", self.apps.read_namespaced_daemon_set, self.apps.list_namespaced_daemon_set),
            "ReplicaSet": ("apps/v1", self.apps.read_namespaced_replica_set, self.apps.list_namespaced_replica_set),
            "ControllerRevision": ("apps/v1", self.apps.read_namespaced_controller_revision,
                                   self.apps.list_namespaced_controller_revision),
            "Job": ("batch/v1", self.batch.read_namespaced_job, self.batch.list_namespaced_job),
            "CronJob": ("batch/v1", self.batch.read_namespaced_cron_job, self.batch.list_namespaced_cron_job),
            "Rollout": ("argoproj.io/v1alpha1",
                        lambda name, ns: self.custom.get_namespaced_custom_object(*rollouts, ns, "rollouts", name),
                        lambda ns, **q: self.custom.list_namespaced_custom_object(*rollouts, ns, "rollouts", **q)),
            "Pod": ("v1", self.core.read_namespaced_pod, self.core.list_namespaced_pod),
            "Service": ("v1", self.core.read_namespaced_service, self.core.list_namespaced_service),
            "PersistentVolumeClaim": ("v1", self.core.read_namespaced_persistent_volume_claim,
                                      self.core.list_namespaced_persistent_volume_claim),
            "HorizontalPodAutoscaler": ("autoscaling/v2",
                                        self.autoscaling.read_namespaced_horizontal_pod_autoscaler,
                                        self.autoscaling.list_namespaced_horizontal_pod_autoscaler),
            "PodDisruptionBudget": ("policy/v1", self.policy.read_namespaced_pod_disruption_budget,
                                    self.policy.list_namespaced_pod_disruption_budget),
            "Event": ("v1", self.core.read_namespaced_event, self.core.list_namespaced_event),
        }

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        import urllib3

        try:
            return with_backoff(call, self.backoff, what=what)
        except KubeError as e:
            if isinstance(e.__cause__, (urllib3.exceptions.TimeoutError, TimeoutError)):
                raise KubernetesUnavailable(f"{e}: no answer within kubernetes.timeout_s ({self.timeout_s:g}s) "
                                            "on any attempt") from e
            raise KubernetesUnavailable(str(e)) from e
        except Exception as e:
            if is_status(e, 404):
                return None
            if is_status(e, 401, 403):
                kind = _Forbidden if is_status(e, 403) else KubernetesUnavailable
                raise kind(f"{what}: the Kubernetes API refused access ({getattr(e, 'status', '')}); "
                           "check the ClusterRole of the remediator's service account") from e
            raise

    def _dict(self, model: Any, kind: str, api_version: str) -> dict[str, Any]:
        return to_dict(self.api, model, kind, api_version)

    def _items(self, what: str, call: Callable[[], Any], kind: str, api_version: str) -> list[dict[str, Any]]:
        result = self._call(what, call)
        if result is None:
            return []
        items = result.get("items") or [] if isinstance(result, dict) else result.items  # custom objects: a dict
        return [self._dict(i, kind, api_version) for i in items]

    def _get(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        """One object by kind and name; None when it does not exist. A 403 raises `_Forbidden`."""
        api_version, read, _ = self._apis[kind]
        model = self._call(f"read {kind} {ns}/{name}", lambda: read(name, ns))
        return self._dict(model, kind, api_version) if model is not None else None

    def _list(self, kind: str, ns: str, **query: Any) -> list[dict[str, Any]]:
        api_version, _, list_ = self._apis[kind]
        return self._items(f"list {kind} in {ns}", lambda: list_(ns, **query), kind, api_version)

    def _clue(self, kind: str, ns: str, name: str, found: list[dict[str, Any]], *,
              soft: bool = False) -> dict[str, Any] | None:
        """Read what an alert label names into `found`. A 403 fails the observation (the alerted
        workload's own objects must be readable), unless `soft`: then that clue is unknown, and the
        core decides on the others (never on a guess)."""
        try:
            obj = self._get(kind, ns, name)
        except _Forbidden:
            if not soft:
                raise
            return None
        if obj is not None:
            found.append(obj)
        return obj

    def _owners(self, obj: Mapping[str, Any], ns: str, found: list[dict[str, Any]], *, soft: bool = False) -> None:
        """Read the controllers above `obj` (a ReplicaSet, then its Deployment or Rollout; a Job,
        then its CronJob) into `found`, so that `workloads.workload_of` can follow the chain."""
        ref = workloads.controller_ref(obj)
        while ref is not None and str(ref.get("kind")) in self._apis and ref.get("kind") != "Pod":
            owner = self._clue(str(ref["kind"]), ns, str(ref.get("name")), found, soft=soft)
            if owner is None or owner.get("kind") not in workloads.INTERMEDIATE_KINDS:
                return
            ref = workloads.controller_ref(owner)

    def _resolve(self, alert: Alert, found: list[dict[str, Any]]) -> ObjectRef | None:
        """Read what each of the alert's labels points at into `found`, then let the core decide
        (`resolve_workload`: most explicit label first, each checked against these objects)."""
        labels, ns = alert.labels, alert.namespace
        if not ns:
            return None
        for label, kind in WORKLOAD_LABELS:
            if labels.get(label) and (obj := self._clue(kind, ns, labels[label], found)) is not None:
                self._owners(obj, ns, found)
        if labels.get("horizontalpodautoscaler"):
            hpa = self._clue("HorizontalPodAutoscaler", ns, labels["horizontalpodautoscaler"], found)
            target = workloads.scale_target(hpa) if hpa is not None else None
            if target is not None and target.kind in self._apis:
                self._clue(target.kind, ns, target.name, found)
        if labels.get("persistentvolumeclaim"):
            self._claimants(ns, labels["persistentvolumeclaim"], found)
        subject = any(labels.get(x) for x in SUBJECT_LABELS)
        # On a node alert `namespace`/`pod`/`service` may be kube-state-metrics' own, in a namespace
        # the remediator need not be allowed to read: there a 403 only makes the clue unknown.
        soft = bool(labels.get("node"))
        if labels.get("pod") and not subject:
            pod = self._clue("Pod", ns, labels["pod"], found, soft=soft)
            if pod is not None:
                self._owners(pod, ns, found, soft=soft)
            else:  # replaced since: the ReplicaSet that made it names the workload
                found.extend(self._soft_list("ReplicaSet", ns))
        if labels.get("service") and not subject:
            self._service_clue(ns, labels["service"], found, soft=soft, routes=not labels.get("pod"))
        return resolve_workload(alert, found)

    def _service_clue(self, ns: str, service: str, found: list[dict[str, Any]], *, soft: bool, routes: bool) -> None:
        """The alert's Service: where it `routes` (no other clue), its selected pods and their owners;
        else (a node alert) only the Service, to tell whether the alerted pod is its scrape target."""
        if routes:
            svc = self._clue("Service", ns, service, found, soft=soft)
            if svc is None:
                if not soft:  # the API server says there is none (a 403 says nothing)
                    found.append(_absent("Service", ns, service))
            elif selector := ((svc.get("spec") or {}).get("selector") or {}):
                pods = self._soft_list("Pod", ns, label_selector=selector_text({"matchLabels": selector}))
                found.extend(pods)
                for p in pods[:_OWNER_READS_MAX]:
                    self._owners(p, ns, found)
                if not pods:  # scaled to zero: the workloads whose pod template the selector selects
                    for kind in ("Deployment", "StatefulSet"):
                        found.extend(self._soft_list(kind, ns))
        elif soft:  # the scrape target's Service: is the alerted pod behind it?
            self._clue("Service", ns, service, found, soft=True)

    def _soft_list(self, kind: str, ns: str, **query: Any) -> list[dict[str, Any]]:
        try:
            return self._list(kind, ns, **query)
        except _Forbidden:
            return []

    def _claimants(self, ns: str, claim: str, found: list[dict[str, Any]]) -> None:
        """The pods mounting the claim and their owners; if none does, the namespace's workloads
        whose pod template mounts it (a Deployment scaled to zero)."""
        pods = [p for p in self._soft_list("Pod", ns) if claim in workloads.claims_of(None, [p])]
        found.extend(pods)
        for p in pods[:_OWNER_READS_MAX]:
            self._owners(p, ns, found)
        if not pods:
            for kind in ("Deployment", "StatefulSet"):
                found.extend(self._soft_list(kind, ns))

    def fetch(self, alert: Alert) -> list[dict[str, Any]]:
        ns = alert.namespace
        objects: list[dict[str, Any]] = []
        seen: set[tuple[str, str, str]] = set()

        def add(items: Iterable[dict[str, Any]]) -> None:
            for o in items:
                meta = o.get("metadata") or {}
                key = (str(o.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))
                if key not in seen:
                    seen.add(key)
                    objects.append(o)

        clues: list[dict[str, Any]] = []
        ref = self._resolve(alert, clues)
        add(clues)  # build_snapshot resolves on the same evidence
        scanned: set[str] = set()
        node_alert = alert.labels.get("node") and not any(alert.labels.get(x) for x in SUBJECT_LABELS)
        if ref is None and node_alert:
            # A node alert: the workload is the one most hurt on the node, as build_snapshot decides.
            scanned = {alert.labels["node"]}
            self._neighbours(sorted(scanned), "", add)
            ref = resolve_workload(alert, objects)
        # The nodes are those the workload's pods run on (an alert's `node` label widens nothing),
        # or, for a node alert with no workload on the node, that node alone.
        nodes = self._workload(ref, add, clues) if ref is not None else set(scanned)
        for node in sorted(nodes):
            try:
                n = self._call(f"read node {node}", lambda node=node: self.core.read_node(node))  # type: ignore[misc]
            except _Forbidden as e:
                add([_unobserved(node, e.reason)])
                continue
            if n is not None:
                add([self._dict(n, "Node", "v1")])
        # Every pod a drain would evict, in every namespace, so that the guards judge them all.
        if nodes - scanned and (self.drains is None or self.drains(alert)):
            self._neighbours(sorted(nodes - scanned), ref.namespace if ref else ns, add)
        elif nodes - scanned:  # least privilege: not read, so a drain proposed anyway is denied
            add([_unobserved(n, f"not read: no drain among {alert.name}'s runbook actions")
                 for n in sorted(nodes - scanned)])
        return objects

    def _workload(self, ref: ObjectRef, add: Callable[[Iterable[dict[str, Any]]], None],
                  read: Sequence[dict[str, Any]] = ()) -> set[str]:
        ns, name = ref.namespace, ref.name
        # The workload is read once: resolving the alert may have read it already (`read`).
        obj = next((o for o in read if o.get("kind") == ref.kind and (o.get("metadata") or {}).get("name") == name
                    and (o.get("metadata") or {}).get("namespace") == ns), None) or self._get(ref.kind, ns, name)
        if obj is None:
            return set()
        around: list[dict[str, Any]] = [obj, *read]
        add([obj])
        self._dependencies(ref, obj, add)
        spec = obj.get("spec") or {}
        selector = selector_text(spec.get("selector"))
        owned: list[dict[str, Any]] = []  # what sits between the pods and the workload, and its revisions
        if ref.kind in ("Deployment", "Rollout"):
            owned = workloads.revisions_owned(ref, self._list("ReplicaSet", ns, label_selector=selector))
        elif ref.kind in ("StatefulSet", "DaemonSet"):
            owned = workloads.revisions_owned(ref, self._soft_list("ControllerRevision", ns, label_selector=selector))
        elif ref.kind == "CronJob":
            owned = [j for j in self._list("Job", ns) if (workloads.controller_ref(j) or {}).get("name") == name
                     and (workloads.controller_ref(j) or {}).get("kind") == "CronJob"]
        add(owned)
        around += owned
        selectors = [selector] if ref.kind != "CronJob" else [
            selector_text((j.get("spec") or {}).get("selector")) for j in owned]
        index = {(str(o.get("kind")), str((o.get("metadata") or {}).get("name"))): o for o in around}
        pods: list[dict[str, Any]] = []
        for sel in selectors:
            if not sel:
                continue
            pods += [p for p in self._list("Pod", ns, label_selector=sel)
                     if workloads.workload_of(p, lambda kind, _ns, n: index.get((kind, n))) == ref]
        add(pods)
        hpas = [h for h in self._soft_list("HorizontalPodAutoscaler", ns) if workloads.scale_target(h) == ref]
        add(hpas)
        for claim in sorted(set(workloads.claims_of(obj, pods))):
            pvc = self._get("PersistentVolumeClaim", ns, claim)
            if pvc is not None:
                add([pvc])
        add(self._soft_list("PodDisruptionBudget", ns))
        add(self._events(ns, [name, *(str(p["metadata"]["name"]) for p in pods)]))
        self._around(ns, obj, pods, add)
        return {str((p.get("spec") or {}).get("nodeName")) for p in pods if (p.get("spec") or {}).get("nodeName")}

    def _dependencies(self, ref: ObjectRef, obj: Mapping[str, Any], add: Callable[[Iterable[dict[str, Any]]], None]
                      ) -> None:
        """What `dependencies_of` decides on: the Deployments the depends-on annotation names, else the
        Services the pod template's environment names (any namespace) with the pods they select and
        those pods' owners. The dependencies' own objects too: the guards judge a restart by its
        target's labels. A forbidden read in another namespace leaves that dependency unknown."""
        annotation = str(((obj.get("metadata") or {}).get("annotations") or {}).get(DEPENDS_ON_ANNOTATION, ""))
        for other in sorted({d.strip() for d in annotation.split(",")} - {""}):
            dep_ns, dep = other.split("/", 1) if "/" in other else (ref.namespace, other)
            found: list[dict[str, Any]] = []
            self._clue("Deployment", dep_ns, dep, found, soft=dep_ns != ref.namespace)
            add(found)
        if annotation.strip():
            return
        services: list[dict[str, Any]] = []
        for svc_ns, name in workloads.services_named_in_env(obj, ref.namespace)[:_OWNER_READS_MAX]:
            self._service_clue(svc_ns, name, services, soft=True, routes=True)
        add(services)
        for target in dependencies_of(ref, [dict(obj), *services]):  # the workloads behind, for their labels
            if target.kind in self._apis and not any(
                    o.get("kind") == target.kind and (o.get("metadata") or {}).get("name") == target.name
                    and (o.get("metadata") or {}).get("namespace") == target.namespace for o in services):
                add([o for o in [self._soft_get(target.kind, target.namespace, target.name)] if o is not None])

    def fetch_callees(self, callees: Sequence[Callee]) -> list[dict[str, Any]]:
        """The workloads at the far end of call edges (`remediator.edges`), for `dependencies_of` to
        decide which they are and for the guards to judge a restart by their labels: of the kind the
        source names; for a service name, its Service with the pods it selects and their owners;
        else each workload kind of that name. Soft: a 403 or 404 leaves that callee unknown."""
        found: list[dict[str, Any]] = []
        for c in callees[:_OWNER_READS_MAX]:
            if c.service:
                self._service_clue(c.namespace, c.name, found, soft=True, routes=True)
            kinds = [c.kind] if c.kind else [k for k in ("Deployment", "StatefulSet", "DaemonSet", "Rollout")]
            for kind in kinds:
                if kind in self._apis and (obj := self._soft_get(kind, c.namespace, c.name)) is not None:
                    found.append(obj)
        return [o for o in found if o.get("kind") != OBJECT_ABSENT]

    def workloads(self, namespace: str) -> list[ObjectRef]:
        """The Deployments, StatefulSets and DaemonSets of a namespace (the known-good sweep's); a
        kind the RBAC does not let the agent list is left out."""
        out = []
        for kind in ACTED_ON_KINDS:
            try:
                out += [ObjectRef(kind, namespace, str(o["metadata"]["name"])) for o in self._list(kind, namespace)]
            except _Forbidden as e:
                log.warning("known-good sweep: %s", e)
        return out

    def _soft_get(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        try:
            return self._get(kind, ns, name)
        except _Forbidden:
            return None

    def _events(self, ns: str, names: Sequence[str]) -> list[dict[str, Any]]:
        """The last `events_window_s` of Events about the workload and its pods, each object's
        selected by the API server (`involvedObject.name`), not one unpaged list of the namespace."""
        cutoff = self.clock() - self.events_window_s
        events: list[dict[str, Any]] = []
        for involved in list(dict.fromkeys(names))[:_EVENT_OBJECTS_MAX]:
            events += [e for e in self._soft_list("Event", ns, field_selector=f"involvedObject.name={involved}")
                       if _event_time(e) >= cutoff]
        events.sort(key=_event_time)
        return events

    def _around(self, ns: str, obj: Mapping[str, Any], pods: Sequence[dict[str, Any]],
                add: Callable[[Iterable[dict[str, Any]]], None]) -> None:
        """What `revert_config`, `restore_service` and `uncordon_node` judge by: the ConfigMaps the
        pod template references (a Secret only with `read_secrets`, and then redacted: by default the
        agent reads no Secret, it sees only which one the template names), the namespace's Services
        and workloads (the other users of a config), and the cluster's nodes when a pod of the
        workload waits Pending."""
        for ref in config_refs(workloads.pod_template(obj), ns):
            if ref.kind == "ConfigMap":
                cm = self._call(f"read configmap {ns}/{ref.name}",
                                lambda name=ref.name: self.core.read_namespaced_config_map(name, ns))  # type: ignore[misc]
                if cm is not None:
                    add([self._dict(cm, "ConfigMap", "v1")])
            elif self.read_secrets:
                try:
                    secret = self.secret(ns, ref.name)
                except _Forbidden:  # no RBAC for it in this namespace: by name only, as with the switch off
                    continue
                if secret is not None:
                    add([redact_secret(secret)])
        add(self._items("list services", lambda: self.core.list_namespaced_service(ns), "Service", "v1"))
        for kind in ACTED_ON_KINDS:  # soft: a kind the Role does not list leaves its users unknown, none restarted
            add(self._soft_list(kind, ns))
        if any((p.get("status") or {}).get("phase") == "Pending" for p in pods):
            try:  # cluster-wide: without it no cordoned node is known, so none is uncordoned
                add(self._items("list nodes", lambda: self.core.list_node(), "Node", "v1"))
            except _Forbidden:
                pass

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One Secret with its data (the healthy-time sweep seals it; nothing else may keep it); None when
        it does not exist. Only with `read_secrets`."""
        if not self.read_secrets:
            raise PermissionError("secret reverts are off (secrets.revert): remediator reads no Secret")
        model = self._call(f"read secret {namespace}/{name}",
                           lambda: self.core.read_namespaced_secret(name, namespace))
        return self._dict(model, "Secret", "v1") if model is not None else None

    def _neighbours(self, nodes: Sequence[str], own_ns: str, add: Callable[[Iterable[dict[str, Any]]], None]) -> None:
        """Pods on the nodes (all namespaces) with their owners (ReplicaSets, Deployments,
        StatefulSets) and PDBs.

        A forbidden read (a namespace-scoped Role) does not fail the observation: the node gets
        a `NODE_PODS_UNOBSERVED` marker, so the snapshot says its pods are unknown and the
        guards refuse a drain of it."""
        on_nodes: dict[str, set[str]] = {}  # namespace -> the nodes with pods of it
        for node in nodes:
            try:
                pods = self._items(f"list pods on {node}", lambda node=node: self.core.list_pod_for_all_namespaces(  # type: ignore[misc]
                    field_selector=f"spec.nodeName={node}"), "Pod", "v1")
            except _Forbidden as e:
                add([_unobserved(node, e.reason)])
                continue
            add(pods)
            for p in pods:
                on_nodes.setdefault(str(p["metadata"].get("namespace")), set()).add(node)
        for other in sorted(on_nodes):
            try:
                for kind in ("ReplicaSet", "Deployment", "StatefulSet", "PodDisruptionBudget"):
                    if other != own_ns or kind != "PodDisruptionBudget":  # the own namespace's are read
                        add(self._list(kind, other))
            except _Forbidden as e:  # those pods' labels and budgets are unknown
                add([_unobserved(node, e.reason) for node in sorted(on_nodes[other])])


class _Timed:
    """An official-client API object whose every call carries `_request_timeout`."""

    def __init__(self, api: Any, timeout_s: float | None) -> None:
        self._api = api
        self._timeout_s = timeout_s

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._api, name)
        if self._timeout_s is None or not callable(method):
            return method
        return functools.partial(method, _request_timeout=self._timeout_s)


def _absent(kind: str, ns: str, name: str) -> dict[str, Any]:
    """The marker `build_snapshot` reads as "the API server has no such object" (`OBJECT_ABSENT`)."""
    return {"apiVersion": "remediator.io/v1", "kind": OBJECT_ABSENT, "of": kind,
            "metadata": {"namespace": ns, "name": name}}


def _unobserved(node: str, reason: str) -> dict[str, Any]:
    """The marker `build_snapshot` reads as "the pods on `node` were not observed"."""
    return {"apiVersion": "remediator.io/v1", "kind": NODE_PODS_UNOBSERVED, "metadata": {"name": node},
            "reason": reason}


def _owner_name(obj: Mapping[str, Any], kind: str) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("kind") == kind:
            return str(ref.get("name"))
    return None


def _event_time(event: Mapping[str, Any]) -> float:
    from remediator.snapshot import parse_time

    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        t = parse_time(event.get(key))
        if not math.isnan(t):
            return t
    t = parse_time((event.get("metadata") or {}).get("creationTimestamp"))
    return 0.0 if math.isnan(t) else t


# ---------------------------------------------------------------------------- observer


@dataclass(frozen=True)
class MissingMetric:
    metric: str
    reason: str

    def __str__(self) -> str:
        return f"{self.metric}: {self.reason}"


@dataclass(frozen=True)
class Observation:
    """A snapshot and how much to trust it."""

    snapshot: Snapshot
    objects: tuple[dict[str, Any], ...]
    series: tuple[Series, ...]
    missing: tuple[MissingMetric, ...]
    newest_sample_at: float | None
    problem: str | None  # why the data must not be acted on; None when usable
    queries: int
    duration_s: float

    @property
    def usable(self) -> bool:
        return self.problem is None


def _targets(alert: Alert, objects: Sequence[K8sObject], workload: ObjectRef | None,
             callees: Sequence[Callee] = ()) -> dict[str, str]:
    """Placeholder values for the templates, from the alert, the objects around it and the
    workload's call edges (`callees`, its dependencies among them)."""
    index = {(str(o.get("kind")), str((o.get("metadata") or {}).get("namespace", "")),
              str((o.get("metadata") or {}).get("name"))): o for o in objects}

    def get(kind: str, ns: str, name: str) -> K8sObject | None:
        return index.get((kind, ns, name)) or index.get((kind, "", name))

    ns, name = (workload.namespace, workload.name) if workload else (alert.namespace, "")
    obj = get(workload.kind, ns, name) if workload else None
    # Their replica series and traffic are read in the workload's namespace (the series' `namespace`).
    deps = [d.name for d in (dependencies_of(workload, objects, callees) if workload else ()) if d.namespace == ns]
    own = [o for o in objects if o.get("kind") == "Pod" and workload is not None
           and workloads.workload_of(o, get) == workload]
    pods = sorted(str((o.get("metadata") or {}).get("name")) for o in own)
    if alert.labels.get("pod") and alert.labels["pod"] not in pods and not any(
            alert.labels.get(x) for x in SUBJECT_LABELS):
        pods.append(alert.labels["pod"])
    if pods and len(pods) <= _POD_REGEX_MAX:
        pod_re = _promql_regex(pods)
    else:
        pod_re = _promql_regex([name]) + "-.*" if name else ""
    nodes = {str((o.get("spec") or {}).get("nodeName")) for o in own if (o.get("spec") or {}).get("nodeName")}
    if alert.labels.get("node"):
        nodes.add(alert.labels["node"])
    hpa = next((str(o["metadata"]["name"]) for o in objects if o.get("kind") == "HorizontalPodAutoscaler"
                and workload is not None and workloads.scale_target(o) == workload), "")
    claims = workloads.claims_of(obj, own) if obj is not None else []
    alerted = alert.labels.get("persistentvolumeclaim", "")
    pvc = alerted if alerted in claims or obj is None else (claims[0] if claims else "")
    kind = workload.kind if workload else ""
    return {
        "namespace": _promql_string(ns),
        "workload": _promql_string(name),
        "deployment": _promql_string(name) if kind == "Deployment" else "",
        "deployments": _promql_regex([name, *deps] if kind == "Deployment" else deps) if name or deps else "",
        "statefulset": _promql_string(name) if kind == "StatefulSet" else "",
        "daemonset": _promql_string(name) if kind == "DaemonSet" else "",
        "services": _promql_regex([name, *deps]) if name or deps else "",
        "pods": pod_re,
        "nodes": _promql_regex(nodes) if nodes else "",
        "hpa": _promql_string(hpa),
        "pvc": _promql_string(pvc),
    }


def other_namespaces(workload: ObjectRef | None, objects: Sequence[K8sObject],
                     callees: Sequence[Callee] = ()) -> list[dict[str, str]]:
    """Placeholder values for the dependencies in other namespaces, one set per namespace: their
    replicas and traffic are read there (`$namespace` is theirs, `$deployments` and `$services`
    name them); the workload's own placeholders are empty, so its queries do not run again."""
    if workload is None:
        return []
    deps = dependencies_of(workload, objects, callees)
    out = []
    for ns in sorted({d.namespace for d in deps} - {workload.namespace}):
        names = _promql_regex(d.name for d in deps if d.namespace == ns)
        out.append({**dict.fromkeys(PLACEHOLDERS, ""), "namespace": _promql_string(ns), "deployments": names,
                    "services": names})
    return out


class Observer:
    """Alert + now -> `Observation` (objects, raw series, the shared `build_snapshot`)."""

    def __init__(self, metrics: MetricsSource | None, objects: ObjectSource, *,
                 templates: QueryTemplates | None = None, max_staleness_s: float = 180.0,
                 clock: Callable[[], float] = time.time, parallel: int = 4,
                 sli: SliProfile = DEFAULT_PROFILE) -> None:
        self.metrics = metrics
        self.parallel = parallel
        self.objects = objects
        self.templates = templates if templates is not None else load_templates()
        self.sli = sli
        self.max_staleness_s = max_staleness_s
        self.clock = clock

    def observe(self, alert: Alert, *, now: float | None = None, history: tuple[Attempt, ...] = (),
                known_good: Sequence[KnownGood] = ()) -> Observation:
        """Raises `ObservationError` (and its kinds) when no snapshot can be built at all.
        `known_good`: the ledger's last-known-good records of the namespace (`build_snapshot`)."""
        started = time.monotonic()
        now = self.clock() if now is None else now
        try:
            objects = self.objects.fetch(alert)
        except KubeError as e:
            raise KubernetesUnavailable(str(e)) from e
        workload = resolve_workload(alert, objects)
        series: list[Series] = []
        missing: list[MissingMetric] = []
        newest: float | None = None
        queries = 0
        problem: str | None = None
        if self.metrics is None:
            problem = "no Prometheus configured"
        elif workload is not None or alert.labels.get("node"):
            # The call edges first: their callees are dependencies whose objects and series are read too.
            callees: tuple[Callee, ...] = ()
            if workload is not None:
                edge_values = _targets(alert, objects, workload)
                edge_series, _, _, queries = self._read(alert, now, edge_values, self.templates.edge_queries(),
                                                        signals=False)
                callees = callees_of(workload, edge_series, alert, now)
                objects = [*objects, *self.callee_objects(callees, objects)]
                series = edge_series
            values = _targets(alert, objects, workload, callees)
            own = list(self.templates.for_profile(self.sli).items())
            read, missing, newest, n = self._read(alert, now, values, own)
            series, queries = [*series, *read], queries + n
            for other in other_namespaces(workload, objects, callees):  # a dependency's signals are in its namespace
                read, _, _, n = self._read(alert, now, other, own, signals=False)
                series, queries = [*series, *read], queries + n
            if newest is None:
                problem = (f"Prometheus returned no sample of any metric for {workload or alert.labels.get('node')} "
                           f"in the last {_duration(self.templates.windows.recent_s)}: scrapes stopped or the "
                           "PromQL templates do not match this cluster")
            elif now - newest > self.max_staleness_s:
                problem = (f"stale data: the newest sample is {now - newest:.0f}s old "
                           f"(max_staleness_s {self.max_staleness_s:g})")
        try:
            snapshot = build_snapshot(alert, series, objects, now=now, history=history, sli=self.sli,
                                      known_good=known_good)
        except SnapshotError as e:
            raise ObservationError(str(e)) from e
        return Observation(snapshot, tuple(objects), tuple(series), tuple(missing), newest, problem, queries,
                           time.monotonic() - started)

    def callee_objects(self, callees: Sequence[Callee], objects: Sequence[K8sObject]) -> list[dict[str, Any]]:
        """The objects of callees not among `objects` yet, from a source that can read them (the
        cluster's; a fixed list already holds what it has)."""
        if not isinstance(self.objects, CalleeObjects):
            return []
        have = {(str(o.get("kind")), str((o.get("metadata") or {}).get("namespace", "")),
                 str((o.get("metadata") or {}).get("name"))) for o in objects}
        wanted = [c for c in callees if not any((k, c.namespace, c.name) in have for k in workloads.WORKLOAD_KINDS)]
        return self.objects.fetch_callees(wanted) if wanted else []

    def _read(self, alert: Alert, now: float, values: Mapping[str, str], queries: Sequence[tuple[str, MetricQuery]],
              *, signals: bool = True) -> tuple[list[Series], list[MissingMetric], float | None, int]:
        """Run every applicable query (in parallel, `self.parallel` at a time) and merge the series.
        Not `signals` (the call edges): an empty answer is no missing signal (no mesh, no tracing),
        and their samples say nothing about how fresh the workload's own are."""
        assert self.metrics is not None
        metrics = self.metrics
        w = self.templates.windows
        jobs: list[tuple[str, MetricQuery, str, float, float, bool]] = []
        for metric, spec in queries:
            template = string.Template(spec.query)
            if any(not values.get(p) for p in template.get_identifiers()):
                continue  # no HPA, no PVC, no node: nothing to ask
            selector = template.substitute(values)
            jobs.append((metric, spec, selector, now, w.trend_s if spec.window == "trend" else w.recent_s, True))
            if spec.baseline and alert.starts_at > 0:
                jobs.append((metric, spec, selector, alert.starts_at - w.baseline_end_s,
                             w.baseline_start_s - w.baseline_end_s, False))

        def run(job: tuple[str, MetricQuery, str, float, float, bool]) -> list[RawSeries] | QueryError:
            try:
                return metrics.raw(job[2], job[3], job[4])
            except QueryError as e:
                return e

        with ThreadPoolExecutor(max_workers=max(1, self.parallel)) as pool:
            results = list(pool.map(run, jobs))  # PrometheusUnavailable propagates: no snapshot
        merged: dict[tuple[str, tuple[tuple[str, str], ...]], dict[float, float]] = {}
        found: dict[str, int] = {}
        failed: dict[str, str] = {}
        newest: float | None = None
        for (metric, spec, _, _, _, recent), result in zip(jobs, results):
            if isinstance(result, QueryError):
                failed.setdefault(metric, str(result))
                continue
            found.setdefault(metric, 0)
            for s in result:
                labels = {spec.labels.get(k, k): v for k, v in s.labels.items() if k != "__name__"}
                merged.setdefault((metric, tuple(sorted(labels.items()))), {}).update(s.points)
                if recent and s.points and signals:
                    found[metric] += 1
                    last = max(t for t, _ in s.points)
                    newest = last if newest is None else max(newest, last)
        missing = [MissingMetric(m, failed[m]) for m in dict.fromkeys(j[0] for j in jobs) if m in failed]
        missing += [MissingMetric(m, f"no series matched {_short(sel)}") for m, _, sel, _, _, recent in jobs
                    if recent and m not in failed and not found.get(m)]
        if not signals:
            missing = []
        series = [Series(name, dict(labels), sorted(points.items())) for (name, labels), points in merged.items()]
        return series, missing, newest, len(jobs)

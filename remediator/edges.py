"""Dependencies from call-edge metrics: who the alerted workload actually called.

Meshes and tracers count every call between two workloads, labelled with both ends. A callee
edge with traffic around the incident is a direct dependency, whatever the pod template says.
Three sources, each with the labels its exporter really puts on the series:

* Istio's client-side sidecar: `istio_requests_total{reporter="source", source_workload,
  source_workload_namespace, destination_workload, destination_workload_namespace}` (the
  workload names are the ones Istio derives from the pods' owners; `unknown` outside the mesh);
* Linkerd's proxy on the calling side: `request_total{direction="outbound", deployment, namespace,
  dst_deployment, dst_namespace}` (a request counts when it starts, so calls to a dependency that
  never answers still count, which `response_total` would miss);
* Tempo's metrics-generator and the OpenTelemetry Collector's servicegraph connector:
  `traces_service_graph_request_total{client, server}`, named by `service.name`, with the
  namespaces only when configured as dimensions (`client_service_namespace`, ...); a server with
  no namespace is taken to be in the caller's.

`EDGE_SOURCES` says how to read each; the live observer derives its PromQL selectors from it
(`EdgeSource.selector`), and `callees` reads the edges out of raw series, so the simulator, the
replay and the operator decide dependencies from the same samples the same way. Which workload a
callee is stays the snapshot's to decide, from the cluster's objects (`remediator.snapshot`).

    >>> EDGE_SOURCES["istio"].selector()
    'istio_requests_total{reporter="source", source_workload_namespace="$namespace", source_workload="$workload"}'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from remediator.actions import ObjectRef

__all__ = ["EDGE_METRICS", "EDGE_SOURCES", "Callee", "EdgeSource", "callees"]

# What Istio reports for a peer outside the mesh (or not yet known to it).
_UNKNOWN = frozenset({"", "unknown"})


class _Series(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def points(self) -> Sequence[tuple[float, float]]: ...


class EdgeSource(BaseModel):
    """One exporter of call edges: its counter, which labels name the two ends, and which fixed
    labels select the calling side's count (so that an edge is not counted twice)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    metric: str
    match: dict[str, str] = Field(default_factory=dict, description="fixed labels: the caller's report")
    caller: str = Field(description="label naming the calling workload")
    caller_kind: str = Field(default="", description="the kind `caller` names only ('' any workload kind)")
    caller_namespace: str = Field(default="", description="label of the caller's namespace, always present")
    caller_namespace_dims: tuple[str, ...] = Field(default=(), description="optional namespace labels")
    callee: str
    callee_kind: str = ""
    callee_namespace: str = ""
    callee_namespace_dims: tuple[str, ...] = ()
    # The ends are service names (tracing's `service.name`): a Service of that name, else a workload.
    service_names: bool = False

    def selector(self) -> str:
        """The observer's PromQL selector: the caller's edges, with `$namespace` and `$workload`
        (`$deployment` when the caller label names Deployments only) as placeholders."""
        matchers = [f'{k}="{v}"' for k, v in self.match.items()]
        if self.caller_namespace:
            matchers.append(f'{self.caller_namespace}="$namespace"')
        matchers.append(f'{self.caller}="{"$deployment" if self.caller_kind == "Deployment" else "$workload"}"')
        return f"{self.metric}{{{', '.join(matchers)}}}"

    def selects(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match.items())

    def _namespace(self, labels: Mapping[str, str], fixed: str, dims: tuple[str, ...]) -> str | None:
        if fixed:
            return labels.get(fixed)
        return next((labels[d] for d in dims if labels.get(d)), None)

    def calls_from(self, labels: Mapping[str, str], caller: ObjectRef) -> bool:
        """Whether the series counts calls made by `caller`."""
        if not self.selects(labels) or labels.get(self.caller) != caller.name:
            return False
        if self.caller_kind and self.caller_kind != caller.kind:
            return False
        ns = self._namespace(labels, self.caller_namespace, self.caller_namespace_dims)
        return ns is None or ns == caller.namespace

    def callee_of(self, labels: Mapping[str, str], caller: ObjectRef) -> Callee | None:
        name = labels.get(self.callee, "")
        if name in _UNKNOWN:
            return None
        ns = self._namespace(labels, self.callee_namespace, self.callee_namespace_dims) or caller.namespace
        return Callee(ns, name, self.callee_kind or None, self.service_names, self.name)


@dataclass(frozen=True, order=True)
class Callee:
    """One end of an edge, as the source names it. `kind` when the source says which kind of
    workload it is (Linkerd's `dst_deployment`); `service` when the name is a service name."""

    namespace: str
    name: str
    kind: str | None = None
    service: bool = False
    source: str = ""


EDGE_SOURCES: Mapping[str, EdgeSource] = {s.name: s for s in (
    EdgeSource(name="istio", metric="istio_requests_total", match={"reporter": "source"},
               caller="source_workload", caller_namespace="source_workload_namespace",
               callee="destination_workload", callee_namespace="destination_workload_namespace"),
    EdgeSource(name="linkerd", metric="request_total", match={"direction": "outbound"},
               caller="deployment", caller_kind="Deployment", caller_namespace="namespace",
               callee="dst_deployment", callee_kind="Deployment", callee_namespace="dst_namespace"),
    EdgeSource(name="service-graph", metric="traces_service_graph_request_total",
               caller="client", caller_namespace_dims=("client_service_namespace", "client_k8s_namespace_name"),
               callee="server", callee_namespace_dims=("server_service_namespace", "server_k8s_namespace_name"),
               service_names=True),
)}
EDGE_METRICS: frozenset[str] = frozenset(s.metric for s in EDGE_SOURCES.values())


def _increase(points: Sequence[tuple[float, float]], since: float, until: float) -> float:
    """How much a counter grew over the samples in [since, until] (a drop is a reset: it restarted at 0)."""
    values = [v for t, v in points if since - 1e-6 <= t <= until + 1e-6]
    return sum(b - a if b >= a else b for a, b in zip(values, values[1:]))


def callees(series: Iterable[_Series], caller: ObjectRef, *, since: float, until: float) -> tuple[Callee, ...]:
    """The ends of `caller`'s edges with traffic in [since, until], in order, each once (the
    caller itself excluded: a workload calling its own Service is no dependency)."""
    found: set[Callee] = set()
    for s in series:
        for source in EDGE_SOURCES.values():
            if s.name != source.metric or not source.calls_from(s.labels, caller):
                continue
            callee = source.callee_of(s.labels, caller)
            if callee is not None and _increase(s.points, since, until) > 0:
                found.add(callee)
    return tuple(sorted(c for c in found if (c.namespace, c.name) != (caller.namespace, caller.name)))

"""A service graph stated service by service: a user describes their own application as a suite's
`topology.graph` instead of a generated one (simulator/scenarios/boutique.yaml is Online Boutique).

    topology:
      namespace: boutique
      nodes: 4                      # optional; default max(3, services / 3)
      graph:
        frontend:
          replicas: 3
          rps: 120                  # requests/s from outside the graph (an ingress); default 0
          calls: {productcatalogservice: 2.5, cartservice: 1, currencyservice: 2}  # per request served
          memory_limit: 512Mi       # bytes, or a Kubernetes quantity (Ki, Mi, Gi, k, M, G)
          memory_usage: 0.4         # a pod's working set at rest, as a share of its limit
          cpu_limit: 1              # cores, or a quantity ("500m")
          cpu_usage: 0.4            # a pod's CPU use at its normal traffic, as a share of its limit
          latency_s: 0.12           # p99 of its own work, before its callees' and queueing
          hpa_max: 9                # a HorizontalPodAutoscaler from `replicas` up to this; 0: none
          pvc: 20Gi                 # a PersistentVolumeClaim of this size; 0: none
          pdb_min_available: 2      # a PodDisruptionBudget; absent: none
        redis-cart:
          kind: StatefulSet         # or Deployment (the default)
          keeps_data: true          # labelled remediator.io/keeps-data: never scaled to zero
          pvc: 10Gi

`calls` is a mapping callee: requests per request served, or a list of callees (one request each);
cycles are allowed while a request does not come back around one as a whole request or more. A
service's normal load is its own `rps` plus what its callers send it at theirs (`settled_rates`),
and every service needs some. In an incident, load propagates along the calls: what the alerted
workload passes on beyond its normal load (a traffic spike) reaches its callees, and when it serves
nothing they get less. Its CPU cost per request is sized from `cpu_usage` at that normal load.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from remediator.snapshot import KEEPS_DATA_LABEL
from simulator.dynamics import Located
from simulator.topology import MIB, NodeSpec, ServiceSpec, Topology, settled_rates

__all__ = ["ServiceConfig", "build_graph"]

_UNITS = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1024.0, "Mi": 1024.0**2, "Gi": 1024.0**3,
          "Ti": 1024.0**4, "m": 1e-3}
_QUANTITY = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(Ki|Mi|Gi|Ti|k|M|G|T|m)?\s*")


def _quantity(v: Any) -> Any:
    """A Kubernetes quantity ("512Mi", "500m", "2") as a number; numbers pass as they are."""
    if isinstance(v, str):
        m = _QUANTITY.fullmatch(v)
        if m is None:
            raise ValueError(f"{v!r} is not a quantity (a number, or one with Ki, Mi, Gi, Ti, k, M, G, T or m)")
        return float(m.group(1)) * _UNITS[m.group(2) or ""]
    return v


Quantity = Annotated[float, BeforeValidator(_quantity), Field(ge=0)]


class ServiceConfig(BaseModel):
    """One workload with its Service, as a suite states it."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["Deployment", "StatefulSet"] = "Deployment"
    replicas: int = Field(3, ge=1, le=100)
    rps: float = Field(0.0, ge=0)
    calls: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    memory_limit: Quantity = 512 * MIB
    memory_usage: float = Field(0.4, gt=0, lt=1)
    cpu_limit: Quantity = 1.0
    cpu_usage: float = Field(0.4, gt=0, le=1)
    latency_s: float = Field(0.12, gt=0)
    hpa_max: int = Field(0, ge=0)
    pvc: Quantity = 0.0
    pdb_min_available: int | None = Field(None, ge=0)
    keeps_data: bool = False

    @field_validator("calls", mode="before")
    @classmethod
    def _listed(cls, v: Any) -> Any:
        return dict.fromkeys(v, 1.0) if isinstance(v, list) else v

    @model_validator(mode="after")
    def _consistent(self) -> ServiceConfig:
        if self.memory_limit <= 0:
            raise Located(("memory_limit",), "must be > 0")
        if self.cpu_limit <= 0:
            raise Located(("cpu_limit",), "must be > 0")
        if self.hpa_max and self.hpa_max < self.replicas:
            raise Located(("hpa_max",), f"{self.hpa_max} is below replicas ({self.replicas}); 0 for no HPA")
        if self.pdb_min_available is not None and self.pdb_min_available > self.replicas:
            raise Located(("pdb_min_available",), f"{self.pdb_min_available} is above replicas ({self.replicas})")
        return self


def check_graph(services: dict[str, ServiceConfig]) -> dict[str, float]:
    """Each service's settled request rate; `Located` (below `graph`) for a call to an unknown
    service, a call to itself, a cycle that multiplies requests, a service nothing sends requests."""
    if not services:
        raise Located((), "an explicit graph needs at least one service")
    for name, s in services.items():
        for callee in s.calls:
            if callee not in services:
                raise Located((name, "calls", callee), f"{name} calls {callee!r}, which is not a service of the "
                              f"graph; its services: {', '.join(services)}")
            if callee == name:
                raise Located((name, "calls", callee), f"{name} calls itself")
    try:
        rates = settled_rates({n: s.rps for n, s in services.items()}, {n: s.calls for n, s in services.items()})
    except ValueError as e:
        raise Located((), str(e)) from None
    for name, rate in rates.items():
        if rate <= 0:
            raise Located((name,), f"{name} gets no requests: give it rps, or a caller that calls it")
    return rates


def build_graph(services: dict[str, ServiceConfig], namespace: str, n_nodes: int | None) -> Topology:
    """The topology the graph states: no random draw, every value as written."""
    rates = check_graph(services)
    specs = []
    for name, s in services.items():
        per_pod = rates[name] / s.replicas
        labels = {KEEPS_DATA_LABEL: "true"} if s.keeps_data else {}
        specs.append(ServiceSpec(
            name=name, namespace=namespace, replicas=s.replicas, mem_limit=s.memory_limit,
            mem_base=s.memory_limit * s.memory_usage, cpu_limit=s.cpu_limit,
            cpu_per_request=s.cpu_limit * s.cpu_usage / per_pod, base_rps=rates[name], base_latency_s=s.latency_s,
            hpa_max=s.hpa_max, pvc_bytes=s.pvc, pdb_min_available=s.pdb_min_available,
            deps=tuple(s.calls), call_rates=tuple(s.calls.values()), labels=labels, kind=s.kind))
    nodes = tuple(NodeSpec(f"node-{i}") for i in range(n_nodes or max(3, len(specs) // 3)))
    return Topology(nodes, tuple(specs))

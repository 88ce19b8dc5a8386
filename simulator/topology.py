"""Cluster topologies: nodes, Deployments and the service dependency graph, generated from a seed
(`generate`) or stated service by service in a suite (`simulator.suite`, `settled_rates`)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

GIB = 1024.0**3
MIB = 1024.0**2

_WORDS = ("cart", "checkout", "payment", "shipping", "catalog", "search", "auth", "user",
          "order", "invoice", "email", "ads", "reco", "review", "inventory", "pricing",
          "currency", "gateway", "session", "profile", "media", "notify", "ledger", "quote")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    cpu: float = 8.0
    memory: float = 32 * GIB


@dataclass(frozen=True)
class ServiceSpec:
    """One Deployment with its Service, optional HPA, PVC and PodDisruptionBudget."""

    name: str
    namespace: str = "default"
    replicas: int = 3
    mem_limit: float = 512 * MIB
    mem_base: float = 200 * MIB
    cpu_limit: float = 1.0
    cpu_per_request: float = 0.004  # CPU seconds per request
    base_rps: float = 60.0
    base_latency_s: float = 0.15
    hpa_max: int = 0  # 0: no HPA
    pvc_bytes: float = 0.0  # 0: no volume
    pdb_min_available: int | None = None
    deps: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    kind: str = ""  # Deployment or StatefulSet; "": the dialect draws it (generated graphs)
    # Requests sent to each of `deps` per request served: how load propagates from this caller to
    # its callees (`Cluster`). Empty (generated graphs): each service's load is its own.
    call_rates: tuple[float, ...] = ()


@dataclass(frozen=True)
class Topology:
    nodes: tuple[NodeSpec, ...]
    services: tuple[ServiceSpec, ...]

    def service(self, name: str) -> ServiceSpec:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    def callers_of(self, name: str) -> tuple[str, ...]:
        return tuple(s.name for s in self.services if name in s.deps)


def generate(n_services: int, seed: int, namespace: str = "shop", n_nodes: int | None = None,
             hpa_share: float = 0.5, pvc_share: float = 0.25, pdb_share: float = 0.3,
             name_offset: int = 0) -> Topology:
    """A random layered service graph: each service calls 0-3 services after it."""
    rng = random.Random(seed)
    names = []
    for i in range(n_services):
        w = _WORDS[(i + name_offset) % len(_WORDS)]
        suffix = (i + name_offset) // len(_WORDS)
        names.append(f"{w}{suffix}" if suffix else w)
    services = []
    for i, name in enumerate(names):
        later = names[i + 1:]
        deps = tuple(rng.sample(later, k=min(len(later), rng.choice((0, 1, 1, 2, 2, 3)))))
        replicas = rng.choice((2, 3, 3, 4, 5))
        hpa = rng.random() < hpa_share
        services.append(ServiceSpec(
            name=name, namespace=namespace, replicas=replicas,
            mem_limit=rng.choice((256, 512, 1024)) * MIB,
            cpu_limit=rng.choice((0.5, 1.0, 2.0)),
            base_rps=rng.uniform(20, 200) * replicas / 3,
            base_latency_s=rng.uniform(0.08, 0.2),
            hpa_max=replicas * rng.choice((2, 3)) if hpa else 0,
            pvc_bytes=rng.choice((10, 20, 50)) * GIB if rng.random() < pvc_share else 0.0,
            pdb_min_available=replicas - 1 if rng.random() < pdb_share else None,
            deps=deps,
        ))
    for s in services:  # mem_base and cpu cost follow the limits
        object.__setattr__(s, "mem_base", s.mem_limit * rng.uniform(0.3, 0.5))
        # Sized so a pod runs at 30-50% of its CPU limit under normal traffic.
        per_pod = s.base_rps / s.replicas
        object.__setattr__(s, "cpu_per_request", s.cpu_limit * rng.uniform(0.3, 0.5) / per_pod)
    n_nodes = n_nodes or max(3, n_services // 3)
    nodes = tuple(NodeSpec(f"node-{i}") for i in range(n_nodes))
    return Topology(nodes, tuple(services))


def settled_rates(external: dict[str, float], calls: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each service's request rate once its callers' calls are added to its own (external) rate:
    rate(s) = external(s) + sum over callers c of rate(c) * calls[c][s]. Cycles are allowed as long
    as a request does not come back around them as one or more requests (ValueError)."""
    rates = dict(external)
    for _ in range(10_000):
        new = {s: external[s] + sum(rates[c] * cs.get(s, 0.0) for c, cs in calls.items()) for s in external}
        if all(abs(new[s] - rates[s]) <= 1e-9 * max(1.0, new[s]) for s in new):
            return new
        if max(new.values(), default=0.0) > 1e12:
            break
        rates = new
    raise ValueError("the calls around a cycle multiply without bound: a request comes back around it "
                     "as one or more requests; lower a call rate on the cycle")

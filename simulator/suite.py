"""Scenario suites: a topology, a weighted fault mix, variants, a count and a seed, as YAML.

The topology is generated from a seed (below), or stated service by service, your own
application's graph (`topology.graph`, schema in simulator/graph.py; the shipped `boutique`
suite is Online Boutique's eleven services):

    topology:
      namespace: boutique
      graph:
        frontend: {replicas: 3, rps: 100, calls: {cartservice: 0.8, productcatalogservice: 2},
                   cpu_limit: 200m, memory_limit: 128Mi, hpa_max: 9, pdb_min_available: 2}
        cartservice: {replicas: 2, calls: [redis-cart]}
        redis-cart: {kind: StatefulSet, keeps_data: true, replicas: 1, pvc: 10Gi}
        productcatalogservice: {replicas: 3}

A generated suite:

    name: eval
    seed: 7
    incidents: 260
    horizon_s: 1800
    topology: {services: 18, seed: 11, namespace: shop}
    noise: [0.01, 0.06]          # scrape noise, drawn per incident
    faults:                      # name: weight  (or name: {weight: W})
      memory_leak: 1
      bad_rollout: 1
    variants:                    # share of incidents dressed this way
      misleading: 0.15
      multi_fault: 0.08          # the share of two-fault incidents among those with a fault (below)
      protected: 0.03
    dialect:                     # how the cluster speaks (simulator/dialect.py), drawn per incident
      sli: {http: 2, istio: 1, grpc: 1, none: 1}   # SLI profile weights; none: no request metrics
      sidecar: 0.3               # share whose pods carry an istio-proxy sidecar
      scrape_labels: 0.5         # share with kube-prometheus-stack's scrape-target labels
      statefulset: 0.2           # share whose alerted workload is a StatefulSet
      secret_digests: 0          # share in which the agent digests mounted Secrets (live: secrets.revert)
      secret_revert: 0           # of those, the share in which it also keeps their good values sealed
      alert_for: true            # alerts fire after their rule's for:
      scrape_interval_s: {15: 3, 30: 1}   # Prometheus's scrape interval (or one number), drawn per incident
    dynamics:                    # how the world behaves (simulator/dynamics.py): defaults change nothing
      restart_fixes_crashloop: 0.8
      pod_startup_s: [5, 20]     # a new pod's start-up until Ready, drawn per pod
      fault_params:              # fault: {knob: [low, high]}, each fault's named ranges (Fault.knobs)
        memory_leak: {plateau: [1.1, 1.35], tau_s: [90, 200], lead_s: [540, 720]}

Two-fault incidents: an incident whose first fault is not `no_fault` gets a second one with
probability `variants.multi_fault`, drawn uniformly among the mix's faults of another family, and
kept only when one service suits both. So `multi_fault` is the share of two-fault incidents among
the incidents with a fault, a little less where few services suit both; among all incidents it is
about `multi_fault` times the share of faulted ones. `variants.two_faults` states the share among
all incidents instead (then without `multi_fault`).

A bad value is refused with `SuiteError`, one line per problem: `file:line: key.path: why`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from remediator import yamllines
from simulator.cluster import TICK_S
from simulator.dialect import MISSING_FAMILIES, NO_SLI, SLI_CHOICES
from simulator.dynamics import Dynamics, Located
from simulator.faults import FAULTS
from simulator.graph import ServiceConfig, build_graph, check_graph
from simulator.incident import HORIZON_S, IncidentSpec
from simulator.topology import ServiceSpec, Topology, generate


class SuiteError(ValueError):
    """A suite file that cannot be used, with where and why."""


class FaultWeight(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float = Field(1.0, ge=0)


class TopologyConfig(BaseModel):
    """A generated graph (`services`, `seed`, `name_offset`), or an explicit one (`graph`,
    simulator/graph.py)."""

    model_config = ConfigDict(extra="forbid")
    services: int = Field(12, ge=2, le=500)
    seed: int = 0
    namespace: str = "shop"
    nodes: int | None = Field(None, ge=2)
    name_offset: int = 0
    graph: dict[str, ServiceConfig] | None = None

    @model_validator(mode="after")
    def _explicit(self) -> TopologyConfig:
        if self.graph is None:
            return self
        generated = sorted({"services", "seed", "name_offset"} & self.model_fields_set)
        if generated:
            raise Located((generated[0],), "an explicit graph is generated from nothing: give graph, or "
                          "services/seed/name_offset, not both")
        try:
            check_graph(self.graph)
        except Located as e:
            raise Located(("graph", *e.loc), str(e)) from None
        return self

    def build(self) -> Topology:
        if self.graph is not None:
            return build_graph(self.graph, self.namespace, self.nodes)
        return generate(self.services, self.seed, namespace=self.namespace, n_nodes=self.nodes,
                        name_offset=self.name_offset)


class Variants(BaseModel):
    model_config = ConfigDict(extra="forbid")
    misleading: float = Field(0.0, ge=0, le=1)
    multi_fault: float = Field(0.0, ge=0, le=1)  # of the incidents with a fault, the share given a second
    # Or: of all incidents, the share with two faults (multi_fault is then this over the faulted share).
    two_faults: float | None = Field(None, ge=0, le=1)
    protected: float = Field(0.0, ge=0, le=1)
    kube_system: float = Field(0.0, ge=0, le=1)
    pdb_at_min: float = Field(0.0, ge=0, le=1)


def _key(x: float) -> str:
    """A number as the YAML key it was most likely written as (15, not 15.0), for the error's key path."""
    return str(int(x)) if x == int(x) else str(x)


def _check_weights(what: str, weights: Mapping[str, float], known: Iterable[str]) -> None:
    """Every name known, at least one weight positive; errors say which and what is known."""
    unknown = sorted(set(weights) - set(known))
    if unknown:
        raise Located((unknown[0],), f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if not any(w > 0 for w in weights.values()):
        raise ValueError(f"at least one {what} needs a positive weight")


class Dialect(BaseModel):
    """How the simulated cluster speaks (simulator.dialect), drawn per incident. The defaults are
    the clean dialect every recorded figure was measured in."""

    model_config = ConfigDict(extra="forbid")
    # SLI profile: weight; `none` is an application without request metrics (its SLO is unknown).
    sli: dict[str, float] = Field(default_factory=lambda: {"http": 1.0})
    sidecar: float = Field(0.0, ge=0, le=1)  # share of incidents whose pods carry istio-proxy
    scrape_labels: float = Field(0.0, ge=0, le=1)  # share with kube-prometheus-stack's scrape labels
    # Alerts fire as their rules would, after the rule's `for:` (15 min for most), not at a fixed lead.
    alert_for: bool = False
    statefulset: float = Field(0.0, ge=0, le=1)  # share whose alerted workload is a StatefulSet
    # Share in which the agent reads the Secrets workloads mount, to digest them: it then sees that a
    # Secret changed, never what it held. The live observer reads no Secret unless secret reverts
    # are on (`secrets.revert`, off by default).
    secret_digests: float = Field(0.0, ge=0, le=1)
    # Of the incidents with digests, the share in which the agent also kept each Secret's good values
    # sealed (live: `secrets.revert` with a sealing key): `revert_config` can then put one back.
    secret_revert: float = Field(0.0, ge=0, le=1)
    # Prometheus's scrape interval, seconds: one, or weights of several, each a multiple of the 15 s
    # tick up to 120 s (a window of 150 s keeps a sample). Drawn per incident from a stream of its own.
    scrape_interval_s: dict[float, float] = Field(default_factory=lambda: {TICK_S: 1.0})
    # Exporter (simulator.dialect.MISSING_FAMILIES): the share of incidents whose Prometheus lacks
    # it, each drawn from a stream of its own. The agent then sees those signals as unknown.
    missing: dict[str, float] = Field(default_factory=dict)

    @field_validator("missing")
    @classmethod
    def _exporters(cls, v: dict[str, float]) -> dict[str, float]:
        for name, share in v.items():
            if name not in MISSING_FAMILIES:
                raise Located((name,), f"unknown exporter {name!r}; known: {', '.join(MISSING_FAMILIES)}")
            if not 0 <= share <= 1:
                raise Located((name,), f"share {share:g} must be between 0 and 1")
        return v

    @field_validator("scrape_interval_s", mode="before")
    @classmethod
    def _one_interval(cls, v: Any) -> Any:
        return {v: 1.0} if isinstance(v, (int, float)) else v

    @field_validator("scrape_interval_s")
    @classmethod
    def _intervals(cls, v: dict[float, float]) -> dict[float, float]:
        for interval, w in v.items():
            k = round(interval / TICK_S)
            if not 1 <= k <= 8 or abs(k * TICK_S - interval) > 1e-9:
                raise Located((_key(interval),), f"scrape interval {interval:g} s must be a multiple of "
                              f"{TICK_S:g} s between {TICK_S:g} and {8 * TICK_S:g}")
            if w < 0:
                raise Located((_key(interval),), f"weight {w:g} must be >= 0")
        if not any(w > 0 for w in v.values()):
            raise ValueError("at least one scrape interval needs a positive weight")
        return v

    @field_validator("sli")
    @classmethod
    def _profiles(cls, v: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in v.values()):
            raise ValueError("SLI weights must be >= 0")
        _check_weights("SLI profile", v, SLI_CHOICES)
        return v

    def draw(self, seed: int, slo_only: bool = False) -> dict[str, Any]:
        """The dialect of the incident with this seed, from a stream of its own: the suite's
        draws (faults, services, variants) do not move when the dialect changes.

        An incident whose fault raises only an SLO alert (`Fault.slo_only`) is never drawn without
        request metrics: a real cluster raises no alert for it there, so the agent never sees it.
        Its profile is then redrawn among the others from a stream of its own, so every other
        draw stays as it was."""
        rng = random.Random(seed ^ 0xD1A1EC7)
        names = sorted(self.sli)
        sli = rng.choices(names, [self.sli[n] for n in names])[0]
        if sli == NO_SLI and slo_only:
            seen = [n for n in names if n != NO_SLI]
            sli = random.Random(seed ^ 0x5100).choices(seen, [self.sli[n] for n in seen])[0]
        out = {"sli": sli,
               "sidecar": rng.random() < self.sidecar, "scrape_labels": rng.random() < self.scrape_labels,
               "alert_for": self.alert_for, "statefulset": rng.random() < self.statefulset,
               "secret_digests": rng.random() < self.secret_digests}
        # From a stream of its own, so that adding it moved no other draw.
        out["secret_revert"] = out["secret_digests"] and random.Random(seed ^ 0x5EA1ED).random() < self.secret_revert
        intervals = sorted(i for i, w in self.scrape_interval_s.items() if w > 0)
        out["scrape_interval_s"] = intervals[0] if len(intervals) == 1 else random.Random(seed ^ 0x5C2A9E).choices(
            intervals, [self.scrape_interval_s[i] for i in intervals])[0]
        # Each exporter's stream is keyed on its place among all exporters, not among the suite's, so
        # stating another exporter moves no draw of the first.
        out["missing"] = tuple(name for i, name in enumerate(sorted(MISSING_FAMILIES))
                               if random.Random(seed ^ (0x3155 + i)).random() < self.missing.get(name, 0.0))
        return out

    def observes_requests(self) -> bool:
        """Whether some profile with request metrics has a weight."""
        return any(w > 0 for n, w in self.sli.items() if n != NO_SLI)


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    seed: int = 0
    incidents: int = Field(100, ge=1)
    horizon_s: float = Field(HORIZON_S, gt=0)
    topology: TopologyConfig = TopologyConfig()
    noise: tuple[float, float] = (0.01, 0.05)
    faults: dict[str, FaultWeight]
    variants: Variants = Variants()
    dialect: Dialect = Dialect()
    dynamics: Dynamics = Dynamics()  # how the world answers actions, where it differs (simulator/dynamics.py)

    @field_validator("faults", mode="before")
    @classmethod
    def _weights(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: {"weight": w} if isinstance(w, (int, float)) else w for k, w in v.items()}
        return v

    @field_validator("faults")
    @classmethod
    def _known(cls, v: dict[str, FaultWeight]) -> dict[str, FaultWeight]:
        _check_weights("fault", {k: w.weight for k, w in v.items()}, FAULTS)
        return v

    @model_validator(mode="after")
    def _noise(self) -> Suite:
        lo, hi = self.noise
        if not 0 <= lo <= hi <= 0.5:
            raise ValueError(f"noise range {list(self.noise)} must satisfy 0 <= low <= high <= 0.5")
        return self

    @model_validator(mode="after")
    def _slo_faults_need_requests(self) -> Suite:
        blind = sorted(n for n, w in self.faults.items() if w.weight > 0 and FAULTS[n].slo_only)
        if blind and not self.dialect.observes_requests():
            raise ValueError(f"fault(s) {', '.join(blind)} raise only SLO alerts, which need request metrics: "
                             f"give dialect.sli a profile other than {NO_SLI!r} a weight")
        return self

    def second_fault_share(self) -> float:
        """Of the incidents whose first fault is not no_fault, the share given a second one."""
        v = self.variants
        if v.two_faults is None:
            return v.multi_fault
        total = sum(w.weight for w in self.faults.values())
        faulted = total - (self.faults["no_fault"].weight if "no_fault" in self.faults else 0.0)
        return v.two_faults * total / faulted if faulted else 0.0

    @model_validator(mode="after")
    def _two_faults(self) -> Suite:
        v = self.variants
        if v.two_faults is None:
            return self
        if "multi_fault" in v.model_fields_set:
            raise Located(("variants", "two_faults"), "give two_faults (a share of all incidents) or "
                          "multi_fault (a share of those with a fault), not both")
        if self.second_fault_share() > 1:
            raise Located(("variants", "two_faults"), f"{v.two_faults:g} of all incidents cannot have two faults "
                          f"when only {v.two_faults / self.second_fault_share():.3g} of them have a fault")
        return self

    def sample(self, rng: random.Random, topology: Topology) -> IncidentSpec:
        """One incident drawn from the mix; deterministic for a given rng state."""
        names = sorted(self.faults)
        weights = [self.faults[n].weight for n in names]
        fault = rng.choices(names, weights)[0]
        faults = [fault]
        v = self.variants
        if fault != "no_fault" and rng.random() < self.second_fault_share():
            others = [n for n in names if n not in (fault, "no_fault") and FAULTS[n].family != FAULTS[fault].family]
            if others:
                faults.append(rng.choice(others))
        suitable = [s.name for s in topology.services if FAULTS[fault](rng).suits(s)]
        service = rng.choice(suitable or [s.name for s in topology.services])
        if len(faults) > 1 and not _compatible(faults, topology.service(service)):
            faults.pop()  # no service hosts both; the other draws stay as they were
        variant = ""
        r = rng.random()
        for name in ("protected", "kube_system", "pdb_at_min", "misleading"):
            share = getattr(v, name)
            if r < share:
                variant = name
                break
            r -= share
        seed = rng.randrange(2**31)
        return IncidentSpec(faults=tuple(faults), service=service, seed=seed, variant=variant,
                            noise=rng.uniform(*self.noise),
                            **self.dialect.draw(seed, slo_only=FAULTS[faults[0]].slo_only))

    def specs(self, seed: int | None = None, count: int | None = None) -> list[IncidentSpec]:
        rng = random.Random(self.seed if seed is None else seed)
        topo = self.topology.build()
        return [self.sample(rng, topo) for _ in range(count or self.incidents)]


def _compatible(faults: list[str], service: ServiceSpec) -> bool:
    """Whether the service, adapted as `Incident` adapts it, suits every fault: not a dependency
    fault on a service without dependencies, not a scale-to-zero that removes the HPA a
    traffic spike needs."""
    rng = random.Random(0)  # suits/adapt draw nothing; the sample's own rng stays untouched
    kinds = [FAULTS[f](rng) for f in faults]
    for f in kinds:
        if not f.suits(service):
            service = f.adapt(service)
    return all(f.suits(service) for f in kinds)


def builtin_suites() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in resources.files("simulator.scenarios").iterdir()
                  if p.name.endswith(".yaml"))


def load_suite(name_or_path: str) -> Suite:
    """A shipped suite by name (`default`, `eval`, ...) or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise SuiteError(f"suite file {path} does not exist")
        text, where = path.read_text(), str(path)
    else:
        res = resources.files("simulator.scenarios").joinpath(f"{name_or_path}.yaml")
        if not res.is_file():
            raise SuiteError(f"no suite named {name_or_path!r}; shipped suites: {', '.join(builtin_suites())} "
                             "(or give a path to a YAML file)")
        text, where = res.read_text(), f"suite {name_or_path}"
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SuiteError(f"{where}: not valid YAML: {e}") from e
    if node is None or not isinstance(data, dict):
        raise SuiteError(f"{where}: a suite is a mapping with at least 'name' and 'faults'")
    lines, duplicates = yamllines.key_lines(node)
    if duplicates:
        d = duplicates[0]
        raise SuiteError(str(yamllines.Issue(where, d.line, yamllines.dotted(d.loc),
                                             f"given twice (first on line {d.first})")))
    try:
        return Suite.model_validate(data)
    except ValidationError as e:
        raise SuiteError("\n".join(str(_issue(where, err, lines)) for err in e.errors())) from e


def _issue(where: str, err: Any, lines: dict[yamllines.Loc, int]) -> yamllines.Issue:
    """One validation error as `file:line: key.path: message`, down to the very key a `Located`
    problem names below its field."""
    loc: yamllines.Loc = tuple(err["loc"])
    msg = err["msg"]
    exc = (err.get("ctx") or {}).get("error")
    if isinstance(exc, Located):
        loc = loc + exc.loc
    if isinstance(exc, ValueError):
        msg = str(exc)  # without pydantic's "Value error, "
    return yamllines.Issue(where, yamllines.line_of(loc, lines), yamllines.dotted(loc) or "(top)", msg)

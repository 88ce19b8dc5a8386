"""What a fault is: its onset, the conditions it sets, the alert it raises, and how each
action kind changes it. The effect table is a declaration that tests check against the
mechanics of `simulator.cluster`, not a script the simulator follows."""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from remediator.actions import ActionKind
from simulator.cluster import Cluster, Workload, replicaset_name
from simulator.dialect import NO_SLI
from simulator.topology import ServiceSpec

A = ActionKind


class Effect(str, Enum):
    FIXES = "fixes"
    PARTLY = "partly"
    NOTHING = "nothing"
    WORSE = "worse"


Range = tuple[float, float]


@dataclass(frozen=True)
class Knob:
    """A range a fault draws one of its parameters from, uniformly: the default (the value every
    shipped suite runs with) and the bounds a suite's own range must stay within."""

    default: Range
    floor: float = 0.0
    ceiling: float = math.inf
    positive: bool = False  # the floor itself is not allowed (a time constant, a divisor)
    doc: str = ""

    def check(self, r: Range) -> str | None:
        """Why `r` cannot replace the default, or None."""
        lo, hi = r
        if lo > hi:
            return f"range [{lo:g}, {hi:g}] has low > high"
        if lo < self.floor or (self.positive and lo <= self.floor):
            return f"range [{lo:g}, {hi:g}] must be {'>' if self.positive else '>='} {self.floor:g}"
        if hi > self.ceiling:
            return f"range [{lo:g}, {hi:g}] must be <= {self.ceiling:g}"
        return None


LEAD = "lead_s"  # every fault's onset, seconds before its alert: the Knob is built from `lead_s`


class Fault(ABC):
    """One fault kind. Subclasses are registered by name with `@register`.

    Every range its `inject()` draws from is a `Knob` in `knobs`, by name, with today's values as
    its default; a suite's `dynamics.fault_params` replaces any of them (`draw` reads them). The
    onset's lead before the alert is the knob `lead_s` of every fault."""

    name: ClassVar[str]
    family: ClassVar[str]  # faults in one family raise look-alike alerts
    # How each action kind, applied first, changes the incident; kinds left out change nothing.
    effects: ClassVar[dict[ActionKind, Effect]]
    # What an expert who knows the fault does: these steps, in order, without waiting between.
    best: ClassVar[tuple[ActionKind, ...]]
    # If a guard refuses a step, what the expert does instead.
    fallback: ClassVar[tuple[ActionKind, ...]] = ()
    # Seconds before the alert fires that the fault starts: (low, high).
    lead_s: ClassVar[tuple[float, float]] = (240.0, 420.0)
    # Its only symptom is in the request metrics, so the only alert it raises is an SLO alert. A
    # cluster without request metrics (dialect.NO_SLI) raises nothing for it: no alert reaches the
    # agent, so suites never draw it there (Suite.sample) and Incident refuses it. A fault with a
    # kube-prometheus symptom as well raises that rule's alert there instead.
    slo_only: ClassVar[bool] = False
    knobs: ClassVar[dict[str, Knob]] = {}

    def __init__(self, rng: random.Random, params: Mapping[str, Range] | None = None) -> None:
        self.rng = rng
        self.params: dict[str, Range] = {LEAD: self.lead_s, **{k: v.default for k, v in self.knobs.items()},
                                         **(params or {})}

    @classmethod
    def all_knobs(cls) -> dict[str, Knob]:
        """Its named ranges, the onset's lead among them."""
        return {LEAD: Knob(cls.lead_s, doc="onset, seconds before the alert"), **cls.knobs}

    def draw(self, knob: str) -> float:
        """One value of the named range (the same draw as `rng.uniform(lo, hi)` always was)."""
        lo, hi = self.params[knob]
        return self.rng.uniform(lo, hi)

    def suits(self, spec: ServiceSpec) -> bool:
        """Whether the fault can happen to this service as it is."""
        return True

    def adapt(self, spec: ServiceSpec) -> ServiceSpec:
        """Give a service what the fault needs (an HPA, a volume, a dependency)."""
        return spec

    @abstractmethod
    def inject(self, cluster: Cluster) -> None:
        """Set the fault's conditions at onset (`cluster.now`)."""

    @abstractmethod
    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        """The alert name and labels that fire for it, read at firing time."""

    def coin(self, key: str, p: float) -> bool:
        """A draw made at the first ask and kept: `alert` is asked every tick under rule timing,
        and must neither re-draw nor shift the draws that follow."""
        coins = self.__dict__.setdefault("_coins", {})
        if key not in coins:
            coins[key] = self.rng.random() < p
        return bool(coins[key])

    def by_hand(self, cluster: Cluster) -> bool:
        """What a human who took over after an escalation does that no action kind can (put back a
        Secret's values, which the agent never kept); True if it changed anything. The human then
        applies `best` as well."""
        return False

    def effect(self, kind: ActionKind) -> Effect:
        return self.effects.get(kind, Effect.NOTHING)

    def remedy(self) -> tuple[ActionKind, ...]:
        """`best` in this incident (a fault whose remedy depends on the cluster overrides it)."""
        return self.best


def worst_pod(w: Workload) -> str:
    pods = sorted(w.pods, key=lambda p: (p.ready, -p.restarts, p.name))
    # With no pod left, the alert names the last one the current ReplicaSet made, as a real
    # alert still firing for a pod that is gone does.
    if pods:
        return pods[0].name
    return f"{w.name}-0" if w.kind == "StatefulSet" else f"{replicaset_name(w.name, w.current.number)}-00000"


def pod_alert(cluster: Cluster, name: str) -> tuple[str, dict[str, str]]:
    w = cluster.focus
    if not w.pods and w.kind == "StatefulSet":
        # No pod left to alert on (a StatefulSet's pods are named by ordinal, not by a ReplicaSet that
        # outlives them): what fires is the controller's replicas alert.
        return "KubeStatefulSetReplicasMismatch", {"namespace": w.namespace, "statefulset": w.name}
    return name, {"namespace": w.namespace, "pod": worst_pod(w), "container": "app"}


def service_alert(cluster: Cluster, name: str) -> tuple[str, dict[str, str]]:
    if cluster.sli == NO_SLI:
        raise ValueError(f"{name} cannot fire without request metrics (SLI profile {NO_SLI!r}): "
                         "no SLO rule has a series to read")
    return name, {"namespace": cluster.focus.namespace, "service": cluster.focus.name}


FAULTS: dict[str, type[Fault]] = {}


def register(cls: type[Fault]) -> type[Fault]:
    if cls.name in FAULTS:
        raise ValueError(f"fault {cls.name!r} registered twice")
    FAULTS[cls.name] = cls
    return cls

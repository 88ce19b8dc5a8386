"""Action kinds, object references and what each kind of action means.

The tuple `ACTION_KINDS` is the policy's discrete action space: its order is part of the
encoder version and of every trained model, so extend it only at the end and bump
`remediator.encoding.ENCODER_VERSION`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, Mapping


class ActionKind(str, Enum):
    NOOP = "noop"
    RESTART_ROLLOUT = "restart_rollout"
    ROLLBACK_ROLLOUT = "rollback_rollout"
    SCALE_OUT = "scale_out"
    RESTORE_REPLICAS = "restore_replicas"
    RAISE_MEMORY_LIMIT = "raise_memory_limit"
    RAISE_CPU_LIMIT = "raise_cpu_limit"
    RAISE_HPA_MAX = "raise_hpa_max"
    DELETE_POD = "delete_pod"
    CORDON_DRAIN_NODE = "cordon_drain_node"
    EXPAND_VOLUME = "expand_volume"
    RESTART_DEPENDENCY = "restart_dependency"
    ESCALATE = "escalate"
    # Added with encoder version 2 (appended: the order above is every older model's).
    REVERT_CONFIG = "revert_config"
    RESTORE_SERVICE = "restore_service"
    UNCORDON_NODE = "uncordon_node"


ACTION_KINDS: tuple[ActionKind, ...] = tuple(ActionKind)
ACTION_INDEX: dict[ActionKind, int] = {k: i for i, k in enumerate(ACTION_KINDS)}

# Kinds that never change the cluster: they pass the guards and need no undo.
PASSIVE_KINDS: frozenset[ActionKind] = frozenset({ActionKind.NOOP, ActionKind.ESCALATE})

# The parameter schema, the one home of it: the names each kind accepts, of which exactly one
# is given (a factor of the current value, or the absolute value). Other kinds take none.
PARAMS: Mapping[ActionKind, tuple[str, ...]] = {
    ActionKind.SCALE_OUT: ("replicas", "factor"),
    ActionKind.RESTORE_REPLICAS: ("replicas",),
    ActionKind.RAISE_MEMORY_LIMIT: ("factor",),
    ActionKind.RAISE_CPU_LIMIT: ("factor",),
    ActionKind.RAISE_HPA_MAX: ("max_replicas", "factor"),
    ActionKind.EXPAND_VOLUME: ("factor",),
}
# The kinds that change one container's resources name it in `params[CONTAINER_PARAM]`: a name,
# not a sizing parameter (so not in PARAMS, whose names are numbers of which exactly one is given).
# Given whenever the workload has several containers; the executor changes only that container.
CONTAINER_PARAM = "container"
CONTAINER_KINDS: frozenset[ActionKind] = frozenset({ActionKind.RAISE_MEMORY_LIMIT, ActionKind.RAISE_CPU_LIMIT})
# What a kind that takes a factor gets when none is given.
DEFAULT_FACTOR = 1.5
DEFAULT_PARAMS: Mapping[ActionKind, Mapping[str, float]] = {
    kind: {"factor": DEFAULT_FACTOR} for kind, names in PARAMS.items() if "factor" in names}


def factor_of(action: Action) -> float:
    """The action's factor, or the default; the value itself is checked by the guards."""
    return float(action.params.get("factor", DEFAULT_FACTOR))


class Risk(IntEnum):
    LOW = 0
    MEDIUM = 1
    HIGH = 2


@dataclass(frozen=True)
class ObjectRef:
    """A Kubernetes object: kind, namespace ("" for cluster-scoped) and name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{ns}{self.name}"


@dataclass(frozen=True)
class Action:
    """One concrete remediation: a kind, the object it acts on and its parameters."""

    kind: ActionKind
    target: ObjectRef
    params: Mapping[str, Any] = field(default_factory=dict)
    rationale: str = ""

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.kind.value}({self.target}{', ' + args if args else ''})"


@dataclass(frozen=True)
class ActionSpec:
    """What an action kind does to a cluster, for guards and the reward. The API calls that
    carry it out (for RBAC) are listed once, in `remediator.live.executor.API_CALLS`."""

    kind: ActionKind
    target_kind: str
    risk: Risk
    cuts_capacity: bool
    loses_data: bool
    description: str
    # Why the change cannot be undone ("" when the executor records an inverse): what the
    # approval request and `history` say, and what `undo` answers.
    irreversible: str = ""
    # The object kinds it may target: `target_kind` first; a workload kind acts on any of
    # `WORKLOAD_KINDS` it supports (a DaemonSet has no replicas to scale).
    targets: tuple[str, ...] = ()

    def approval_text(self, target: ObjectRef | None = None) -> str:
        """What a human approving this kind (on `target`) must know beyond its description."""
        text = f"IRREVERSIBLE: {self.irreversible}" if self.irreversible else "reversible (remediator undo)"
        if self.kind is ActionKind.REVERT_CONFIG and target is not None and target.kind == "Secret":
            text += (f"; the values of Secret {target.namespace}/{target.name} will be replaced by its last-known-good "
                     "values, which remediator keeps sealed and never shows")
        return text


IRREVERSIBLE_EXPANSION = ("irreversible: a volume never shrinks, the API server refuses a storage request "
                          "below status.capacity, so this expansion cannot be undone")
IRREVERSIBLE_EVICTION = "irreversible: an evicted pod cannot be brought back; its controller creates a new one"
# The object kinds whose last-known-good version `revert_config` puts back (remediator.versions).
CONFIG_TARGETS = ("ConfigMap", "Secret")


# The workload kinds the executor acts on (target.kind says which).
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
_REPLICATED = ("Deployment", "StatefulSet")


def _spec(kind: ActionKind, target: str, risk: Risk, description: str, cuts: bool = False,
          loses: bool = False, irreversible: str = "", on: tuple[str, ...] = ()) -> ActionSpec:
    return ActionSpec(kind, target, risk, cuts, loses, description, irreversible, on or (target,))


SPECS: dict[ActionKind, ActionSpec] = {s.kind: s for s in (
    _spec(ActionKind.NOOP, "Deployment", Risk.LOW, "wait one interval and observe again", on=WORKLOAD_KINDS),
    _spec(ActionKind.RESTART_ROLLOUT, "Deployment", Risk.LOW, "rolling restart through a pod-template annotation",
          on=WORKLOAD_KINDS),
    _spec(ActionKind.ROLLBACK_ROLLOUT, "Deployment", Risk.MEDIUM,
          "roll back to the previous revision's pod template (ReplicaSet, or ControllerRevision)", on=WORKLOAD_KINDS),
    _spec(ActionKind.SCALE_OUT, "Deployment", Risk.LOW,
          "add replicas through the scale subresource, or the HPA's minReplicas under an HPA", on=_REPLICATED),
    _spec(ActionKind.RESTORE_REPLICAS, "Deployment", Risk.LOW,
          "set replicas back to the last known good count (through the HPA's bounds under an HPA)", on=_REPLICATED),
    _spec(ActionKind.RAISE_MEMORY_LIMIT, "Deployment", Risk.MEDIUM,
          "raise the container memory limit (rolls the pods)", on=_REPLICATED),
    _spec(ActionKind.RAISE_CPU_LIMIT, "Deployment", Risk.MEDIUM, "raise the container CPU limit (rolls the pods)",
          on=_REPLICATED),
    _spec(ActionKind.RAISE_HPA_MAX, "HorizontalPodAutoscaler", Risk.LOW, "raise the autoscaler's maxReplicas"),
    _spec(ActionKind.DELETE_POD, "Pod", Risk.LOW,
          "evict one unhealthy pod (the API server enforces its PDB) so its ReplicaSet replaces it", cuts=True,
          irreversible=IRREVERSIBLE_EVICTION),
    _spec(ActionKind.CORDON_DRAIN_NODE, "Node", Risk.HIGH,
          "cordon the node and evict its pods through the Eviction API", cuts=True),
    _spec(ActionKind.EXPAND_VOLUME, "PersistentVolumeClaim", Risk.MEDIUM, "grow the claim's requested storage",
          irreversible=IRREVERSIBLE_EXPANSION),
    _spec(ActionKind.RESTART_DEPENDENCY, "Deployment", Risk.MEDIUM,
          "rolling restart of a direct dependency of the alerted workload", on=WORKLOAD_KINDS),
    _spec(ActionKind.ESCALATE, "Deployment", Risk.LOW, "hand the incident to a human and stop acting",
          on=WORKLOAD_KINDS),
    _spec(ActionKind.REVERT_CONFIG, "ConfigMap", Risk.MEDIUM,
          "put a ConfigMap edited in place back to its last-known-good data and restart the workloads that use it, "
          "or point the workload back at the ConfigMap or Secret it used while its SLO held", on=CONFIG_TARGETS),
    _spec(ActionKind.RESTORE_SERVICE, "Service", Risk.MEDIUM,
          "put the Service's selector and ports back to the last-known-good version that routed to the workload"),
    _spec(ActionKind.UNCORDON_NODE, "Node", Risk.MEDIUM,
          "make a node that is Ready again schedulable (spec.unschedulable false) so Pending pods get room"),
)}

"""The operator's RBAC, from the one table of API calls its parts declare.

Every Kubernetes API call the operator makes is declared next to the code that makes it:
`observer.API_CALLS` (the reads of an observation), `executor.API_CALLS` (every action, its
undo, its dry run, its Event) and `OPERATOR_API_CALLS` below (the operator's own: its custom
resources, the leader-election Lease, the Events of its handlers). `rules()` turns their
union into RBAC rules, one per resource, in three scopes:

* `cluster`: cluster-scoped resources (nodes, storage classes). Only a ClusterRole can grant them;
* `namespaced`: everything else, granted by a ClusterRole (the chart's default) or by a Role in
  each watched namespace (`rbac.scope: namespaced`);
* `release`: what is only ever touched in the operator's own namespace (its Lease), always a Role there.

No rule has a wildcard, and by default nothing reads Secrets: the Slack and webhook secrets reach
the pod as environment variables the kubelet resolves (`secretKeyRef`), never through the API, and
`revert_config` only sees which Secret a pod template names. Secret reverts (`secrets.revert`,
opt-in) need `get` and `patch` on Secrets: those calls (`observer.SECRET_API_CALLS`,
`executor.SECRET_API_CALLS`) are kept apart, as `secret_rules()`, and the chart grants them, in the
same scope as the namespaced rules, only when `secretRevert.enabled` is set. ConfigMaps and Secrets
are read one by name (the ones a workload's template references) and written back by
`revert_config`; never listed.

The chart reads the rules from `helm/remediator/files/rbac.yaml`, which
`python -m remediator.live.chart` writes; tests/helm/test_rbac.py renders the chart and checks
that its Roles and ClusterRoles grant exactly this table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, TypedDict

from remediator.live import executor, observer
from remediator.live.executor import ApiCall

__all__ = ["CLUSTER_SCOPED", "OPERATOR_API_CALLS", "RELEASE_ONLY", "Rule", "Scope", "api_calls", "rules",
           "scope_of", "secret_api_calls", "secret_rules"]

Scope = Literal["cluster", "namespaced", "release"]

GROUP = "remediator.io"

#: The operator's own calls (remediator.operator): kopf lists and watches its custom resources
#: in the namespaces it serves (event handlers only: kopf writes no annotation or finalizer of
#: its own, and posts no Events); the mirror creates one Remediation per incident and writes
#: its status through the status subresource (a restart re-reads it first); the leader writes
#: the RemediationPolicies' status; the leader election reads, creates and renews its Lease
#: (a PUT carrying the resourceVersion read).
OPERATOR_API_CALLS: tuple[ApiCall, ...] = (
    ApiCall("get", GROUP, "remediations"),
    ApiCall("list", GROUP, "remediations"),
    ApiCall("watch", GROUP, "remediations"),
    ApiCall("create", GROUP, "remediations"),
    ApiCall("patch", GROUP, "remediations/status"),
    ApiCall("list", GROUP, "remediationpolicies"),
    ApiCall("watch", GROUP, "remediationpolicies"),
    ApiCall("patch", GROUP, "remediationpolicies/status"),  # valid, errors
    ApiCall("get", "coordination.k8s.io", "leases"),
    ApiCall("create", "coordination.k8s.io", "leases"),
    ApiCall("update", "coordination.k8s.io", "leases"),  # renewing, taking over, releasing the Lease
)

#: Resources that exist outside any namespace: only a ClusterRole grants them.
CLUSTER_SCOPED: frozenset[tuple[str, str]] = frozenset({("", "nodes"), ("storage.k8s.io", "storageclasses")})
#: Resources the operator only touches in its own namespace.
RELEASE_ONLY: frozenset[tuple[str, str]] = frozenset({("coordination.k8s.io", "leases")})


class Rule(TypedDict):
    apiGroups: list[str]
    resources: list[str]
    verbs: list[str]


def api_calls() -> tuple[ApiCall, ...]:
    """Every API call the operator makes, each once, in the order the tables declare them."""
    return tuple(dict.fromkeys((*observer.API_CALLS, *executor.API_CALLS, *OPERATOR_API_CALLS)))


def secret_api_calls() -> tuple[ApiCall, ...]:
    """The calls secret reverts add (`secrets.revert`): granted only when the chart's switch is on."""
    return tuple(dict.fromkeys((*observer.SECRET_API_CALLS, *executor.SECRET_API_CALLS)))


def secret_rules() -> list[Rule]:
    """The RBAC rules of `secret_api_calls()`: namespaced, so granted where the namespaced rules are."""
    out = rules(secret_api_calls())
    if out["cluster"] or out["release"]:
        raise ValueError("the secret calls must all be namespaced")
    return out["namespaced"]


def scope_of(call: ApiCall) -> Scope:
    base = (call.group, call.resource.split("/", 1)[0])
    if base in CLUSTER_SCOPED:
        return "cluster"
    return "release" if base in RELEASE_ONLY else "namespaced"


def rules(calls: Iterable[ApiCall] | None = None) -> dict[Scope, list[Rule]]:
    """The RBAC rules of `calls` (default: `api_calls()`) by scope, one rule per resource, sorted."""
    verbs: dict[tuple[Scope, str, str], set[str]] = {}
    for call in api_calls() if calls is None else calls:
        if "*" in (call.verb, call.group, call.resource):
            raise ValueError(f"{call}: a wildcard is never granted; declare the call itself")
        verbs.setdefault((scope_of(call), call.group, call.resource), set()).add(call.verb)
    out: dict[Scope, list[Rule]] = {"cluster": [], "namespaced": [], "release": []}
    for (scope, group, resource), names in sorted(verbs.items()):
        out[scope].append(Rule(apiGroups=[group], resources=[resource], verbs=sorted(names)))
    return out

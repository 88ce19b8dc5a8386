"""`RemediationPolicy` resources: the guards of one namespace, validated against `GuardPolicy`.

A field a namespace's policy sets replaces the cluster's value (the configuration's `guards:`)
for actions in that namespace; a field left out keeps it (docs/operator.md). `check_policy`
validates a resource's spec the way the configuration file is validated (pydantic's
`GuardPolicy`, so an error names the same key: `freeze_windows[0]: ...`) and refuses the
settings that are not one namespace's to make (the CRD refuses them too; this holds when an
older CRD is installed). An invalid policy is not applied: its namespace keeps the cluster's
guards (never a half-applied policy), and the errors go to the resource's status.

`PolicyBook` holds the valid policies by namespace; the loop asks it for the policy of the
namespace an action acts in (`PolicyBook.for_namespace`). One namespace may hold several
RemediationPolicy resources: they are applied in name order, a later one's fields winning,
so the result does not depend on the order the watch delivered them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from remediator.guards import GuardPolicy

__all__ = ["CLUSTER_ONLY", "PolicyBook", "PolicyCheck", "check_policy"]

log = logging.getLogger("remediator.operator")

GROUP = "remediator.io"
VERSION = "v1alpha1"
PLURAL = "remediationpolicies"

#: GuardPolicy fields a namespace must not set (docs/operator.md): which namespaces may be acted
#: on at all, the cluster's budget, what a drain may evict elsewhere, the resume age.
CLUSTER_ONLY = frozenset({"allowed_namespaces", "denied_namespaces", "global_budget_per_hour", "drain_bare_pods",
                          "drain_empty_dir", "resume_max_age_s"})


@dataclass(frozen=True)
class PolicyCheck:
    """The outcome of validating one policy: the overrides it sets, or why it is refused."""

    overrides: Mapping[str, Any]
    errors: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return not self.errors


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def check_policy(spec: Any, base: GuardPolicy) -> PolicyCheck:
    """Validate a RemediationPolicy's `spec` as overrides of `base` (the cluster's guards)."""
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        return PolicyCheck({}, (f"spec: must be a mapping, not {type(spec).__name__}",))
    errors = [f"{k}: is set in the operator's configuration only, not per namespace"
              for k in sorted(set(spec) & CLUSTER_ONLY)]
    unknown = sorted(set(spec) - set(GuardPolicy.model_fields) - CLUSTER_ONLY)
    errors += [f"{k}: unknown field (known: see docs/operator.md)" for k in unknown]
    overrides = {k: v for k, v in spec.items() if k in GuardPolicy.model_fields and k not in CLUSTER_ONLY}
    try:
        GuardPolicy.model_validate({**base.model_dump(), **overrides})
    except ValidationError as e:
        errors += [f"{_where(tuple(err['loc']))}: {str(err['msg']).removeprefix('Value error, ')}"
                   for err in e.errors()]
    return PolicyCheck(overrides if not errors else {}, tuple(errors))


class PolicyBook:
    """The valid RemediationPolicies by namespace, over the cluster's guards (thread-safe)."""

    def __init__(self, base: GuardPolicy) -> None:
        self.base = base
        self._lock = threading.Lock()
        self._by_ns: dict[str, dict[str, PolicyCheck]] = {}  # namespace -> name -> check
        self._cache: dict[str, GuardPolicy] = {}

    def put(self, namespace: str, name: str, spec: Any) -> PolicyCheck:
        check = check_policy(spec, self.base)
        with self._lock:
            self._by_ns.setdefault(namespace, {})[name] = check
            self._cache.pop(namespace, None)
        return check

    def remove(self, namespace: str, name: str) -> None:
        with self._lock:
            self._by_ns.get(namespace, {}).pop(name, None)
            self._cache.pop(namespace, None)

    def for_namespace(self, namespace: str) -> GuardPolicy:
        """The guards of `namespace`: the cluster's, with its valid policies' fields over them."""
        with self._lock:
            cached = self._cache.get(namespace)
            if cached is not None:
                return cached
            merged: dict[str, Any] = {}
            for name in sorted(self._by_ns.get(namespace, {})):
                check = self._by_ns[namespace][name]
                if check.valid:
                    merged.update(check.overrides)
            try:
                policy = self.base if not merged else GuardPolicy.model_validate({**self.base.model_dump(), **merged})
            except ValidationError as e:  # each valid alone, not together: the cluster's guards, not a mix
                log.warning("the RemediationPolicies of %s do not combine (%s); the cluster's guards apply",
                            namespace, e.errors()[0]["msg"])
                policy = self.base
            # The global dry-run switch: a namespace may add a dry run, never lift the cluster's.
            if self.base.dry_run and not policy.dry_run:
                policy = policy.model_copy(update={"dry_run": True})
            self._cache[namespace] = policy
            return policy

    def status_of(self, check: PolicyCheck, generation: int | None) -> dict[str, Any]:
        status: dict[str, Any] = {"valid": check.valid, "errors": list(check.errors)}
        if generation is not None:
            status["observedGeneration"] = generation
        return status

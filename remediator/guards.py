"""Safety guards: may this action run on this incident, now?

Every candidate action gets a `Verdict` before anything touches a cluster: `allow`, `deny`
or `needs_approval`, always with a reason a human can read in the ledger ("cooldown:
Deployment/shop/cart was acted on 120s ago (cooldown 300s)"). Guards are *pure functions*
of (action, snapshot, history, policy, now): no clock, no client, no I/O. The simulator,
the replay and the operator therefore get the same verdict from the same inputs, and a
test can sit on either side of every boundary without sleeping.

    >>> from remediator.actions import Action, ActionKind, ObjectRef
    >>> from remediator.snapshot import Alert, Signals, Snapshot
    >>> cart = ObjectRef("Deployment", "shop", "cart")
    >>> snap = Snapshot(alert=Alert("KubeHpaMaxedOut", {"namespace": "shop"}), at=1000.0,
    ...                 workload=cart, signals=Signals(desired_replicas=3))
    >>> judge(Action(ActionKind.SCALE_OUT, cart, {"replicas": 5}), snap, [], GuardPolicy(), 1000.0)
    Verdict(decision=<Decision.ALLOW: 'allow'>, reason='all guards passed', guard='')
    >>> judge(Action(ActionKind.SCALE_OUT, cart, {"replicas": 9}), snap, [], GuardPolicy(), 1000.0).reason
    'bounds: scale_out from 3 to 9 replicas is a factor of 3, above max_scale_factor 2'
    >>> done = [Executed(Action(ActionKind.RESTART_ROLLOUT, cart), at=880.0, succeeded=True)]
    >>> judge(Action(ActionKind.SCALE_OUT, cart, {"factor": 1.5}), snap, done, GuardPolicy(), 1000.0).reason
    'cooldown: Deployment/shop/cart was acted on 120s ago by restart_rollout (cooldown 300s, retry in 180s)'

How `judge` decides:

1. `noop` and `escalate` (`PASSIVE_KINDS`) change nothing and are always allowed, even in
   a denied namespace or on a protected workload.
2. The deny guards of `GUARDS` run in a fixed order — namespace, protected, freeze,
   circuit_breaker, scope, hpa, data, bounds, precondition, drain, pdb, cooldown, target_budget,
   global_budget — and the first deny wins. Policy that makes an action impossible comes
   before timing that merely makes it early, so a reason never says "wait" about an action
   that would never be allowed.
3. The `risk` guard then asks for approval for kinds at or above `policy.approval_risk`.
4. Otherwise the action is allowed: "all guards passed". With `policy.dry_run` the
   decision stays ALLOW (the executor does a server-side dry run) and the reason starts
   with "dry-run: ", so the ledger shows no change was meant to happen.

Counting targets. Cooldown, budgets and the circuit breaker count per *workload target*
(`target_key`): the alerted Deployment, its pods, its HPA and its PVC are one target,
keyed by the Deployment; a node is its own target; `restart_dependency` counts against the
dependency it restarts (the object that actually changes). History entries carry no
snapshot: `Executed.record` stores the key the action had when it ran. For entries without
one (`key=None`) it is inferred against the current snapshot: a pod belongs to the
alerted workload when the snapshot lists it or its name is `<workload>-<hash>[-<suffix>]`;
an HPA or PVC when it is the snapshot's HPA or PVC; anything else falls back to a
Deployment named after the pod (its name minus the ReplicaSet and pod suffixes) or the HPA,
and to the object itself for a PVC.

What an action touches (`touched`): `namespace` and `protected` judge the alerted workload
and every object the action changes, every pod a drain would evict included; `scope` refuses
a dependency whose object was not observed (its labels are unknown). The scope itself comes
from the snapshot, that is from the cluster's objects: the alert's labels cannot name a node
or claim the workload does not use. `judge_all` judges each candidate independently against the same history: it
ranks alternatives, it does not plan a batch.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from remediator.actions import (
    CONTAINER_KINDS,
    CONTAINER_PARAM,
    PARAMS,
    PASSIVE_KINDS,
    SPECS,
    WORKLOAD_KINDS,
    Action,
    ActionKind,
    ObjectRef,
    Risk,
)
from remediator.snapshot import KEEPS_DATA_LABEL, Snapshot

__all__ = [
    "GUARDS", "Decision", "active_freeze", "Executed", "FreezeWindow", "Guard", "GuardPolicy", "ParamError", "Verdict",
    "judge", "judge_all", "keeps_data", "planned_replicas", "target_key", "touched", "via_hpa", "volume_loss",
]

HOUR_S = 3600.0
PROTECTED_VALUES = ("true", "yes", "1")


# ---------------------------------------------------------------------------- verdicts


class Decision(StrEnum):
    """A str enum: `Decision.ALLOW == "allow"`, and it formats as its value."""

    ALLOW = "allow"
    DENY = "deny"
    NEEDS_APPROVAL = "needs_approval"


@dataclass(frozen=True)
class Verdict:
    """What the guards decided about one action, why, and which guard decided ("" = allow)."""

    decision: Decision
    reason: str
    guard: str

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


@dataclass(frozen=True)
class Executed:
    """An action that was executed at `at` (unix seconds) and, once verified, how it went.

    `succeeded` is None while the outcome is unknown and False when the remediation failed;
    only False counts towards the circuit breaker. Every executed non-passive action counts
    towards cooldowns and budgets, whatever its outcome.

    `key` is the workload target the action counted against when it ran. Build entries with
    `Executed.record(action, snapshot, at)` so that it is fixed from the snapshot the action
    was judged on; when it is None the guards infer it from the current snapshot (see the
    module docstring), which cannot tie a PVC or an oddly named HPA seen in another
    incident to its Deployment.
    """

    action: Action
    at: float
    succeeded: bool | None = None
    key: ObjectRef | None = None

    @classmethod
    def record(cls, action: Action, snapshot: Snapshot, at: float, succeeded: bool | None = None) -> Executed:
        """The history entry for an action executed on the incident `snapshot` describes."""
        return cls(action, at, succeeded, target_key(action, snapshot))


Guard = Callable[[Action, Snapshot, Sequence["Executed"], "GuardPolicy", float], "Verdict | None"]
"""A guard returns None to let the action pass, or a DENY / NEEDS_APPROVAL verdict."""


# ---------------------------------------------------------------------------- policy

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_PERIODIC = re.compile(r"^(?:(?P<day>[A-Za-z]+)\s+)?(?P<hour>\d{1,2}):(?P<minute>\d{2})$")
_DAY_MIN, _WEEK_MIN = 1440.0, 10080.0
# 1970-01-01 was a Thursday: shift the epoch so that minute 0 of the week is Monday 00:00 UTC.
_EPOCH_WEEKDAY = 3


@functools.lru_cache(maxsize=256)
def _parse_point(text: str) -> tuple[str, float]:
    """("absolute", unix seconds) | ("daily", minute of day) | ("weekly", minute of week)."""
    s = text.strip()
    m = _PERIODIC.match(s)
    if m is not None:
        hour, minute = int(m["hour"]), int(m["minute"])
        if hour > 23 or minute > 59:
            raise ValueError(f"{text!r}: time of day must be HH:MM between 00:00 and 23:59")
        day = m["day"]
        if day is None:
            return "daily", hour * 60.0 + minute
        name = day.lower()
        if name in _WEEKDAYS:
            index = _WEEKDAYS.index(name)
        elif name in _FULL_WEEKDAYS:
            index = _FULL_WEEKDAYS.index(name)
        else:
            raise ValueError(f"{text!r}: unknown weekday {day!r} (use Mon, Tue, ..., Sun)")
        return "weekly", index * _DAY_MIN + hour * 60.0 + minute
    try:
        when = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO datetime (2024-12-20T18:00:00Z), "
                         "a weekly time (Fri 18:00) nor a daily time (18:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return "absolute", when.timestamp()


class FreezeWindow(BaseModel, frozen=True, extra="forbid"):
    """A change freeze: no remediation (except `noop` and `escalate`) runs inside it.

    Both ends have the same form, all in UTC, and the window is half-open [start, end):

    - absolute ISO datetimes: `{start: "2024-12-20T00:00:00Z", end: "2025-01-02T00:00:00Z"}`
      (a naive datetime is read as UTC; YAML timestamps and dates are accepted);
    - weekly: `{start: "Fri 18:00", end: "Mon 08:00"}` (may wrap around the week's end);
    - daily: `{start: "22:00", end: "06:00"}` (may wrap around midnight).

    >>> FreezeWindow(start="Fri 18:00", end="Mon 08:00").contains(1_700_000_000.0)  # Tue 22:13
    False
    """

    start: str
    end: str
    name: str = ""

    @field_validator("start", "end", mode="before")
    @classmethod
    def _dates_to_text(cls, value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, date):
            return f"{value.isoformat()}T00:00:00"
        return value

    @model_validator(mode="after")
    def _check(self) -> FreezeWindow:
        (kind_a, a), (kind_b, b) = _parse_point(self.start), _parse_point(self.end)
        if kind_a != kind_b:
            raise ValueError(f"start {self.start!r} is {kind_a} but end {self.end!r} is {kind_b}; "
                             "both ends must have the same form")
        if kind_a == "absolute" and b <= a:
            raise ValueError(f"end {self.end!r} must be after start {self.start!r}")
        if kind_a != "absolute" and a == b:
            raise ValueError(f"start and end are both {self.start!r}: an empty or whole-period "
                             "window is ambiguous")
        return self

    def contains(self, now: float) -> bool:
        kind, a = _parse_point(self.start)
        _, b = _parse_point(self.end)
        if kind == "absolute":
            return a <= now < b
        minutes = now / 60.0
        if kind == "weekly":
            t = (minutes + _EPOCH_WEEKDAY * _DAY_MIN) % _WEEK_MIN
        else:
            t = minutes % _DAY_MIN
        return a <= t < b if a < b else (t >= a or t < b)

    def describe(self) -> str:
        """The window as configured, with the zone each end is read in: its own offset, else UTC."""

        def zone(text: str) -> str:
            if _parse_point(text)[0] != "absolute":
                return "UTC"
            s = text.strip()
            offset = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s).utcoffset()
            if not offset:
                return "UTC"
            minutes = int(offset.total_seconds() // 60)
            return f"UTC{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"

        label = f" {self.name!r}" if self.name else ""
        a, b = zone(self.start), zone(self.end)
        if a == b:
            return f"freeze window{label} {self.start} to {self.end} ({a})"
        return f"freeze window{label} {self.start} ({a}) to {self.end} ({b})"


class GuardPolicy(BaseModel, frozen=True, extra="forbid"):
    """The guard configuration of a cluster or namespace (Helm values, RemediationPolicy).

    Namespace lists accept shell-style patterns (`openshift-*`). A namespace listed in
    `allowed_namespaces` is allowed even if also denied; a non-empty `allowed_namespaces`
    allows only what it lists. `approval_risk` accepts a `Risk`, its name ("high") or null.
    """

    allowed_namespaces: list[str] = []
    denied_namespaces: list[str] = ["kube-system"]
    protected_label: str = "remediator.io/protected"
    cooldown_s: float = Field(default=300.0, ge=0)
    target_budget_per_hour: int = Field(default=3, ge=0)
    global_budget_per_hour: int = Field(default=20, ge=0)
    max_replicas: int = Field(default=50, ge=1)
    max_scale_factor: float = Field(default=2.0, ge=1.0)
    max_limit_factor: float = Field(default=2.0, ge=1.0)
    max_hpa_factor: float = Field(default=2.0, ge=1.0)
    approval_risk: Risk | None = Risk.HIGH
    breaker_failures: int = Field(default=3, ge=1)
    breaker_window_s: float = Field(default=3600.0, ge=0)
    freeze_windows: list[FreezeWindow] = []
    # An execution a crash left half-done is finished on restart only if it is younger than
    # this (and passes the guards again on fresh state); older, it is abandoned.
    resume_max_age_s: float = Field(default=600.0, ge=0)
    dry_run: bool = False
    # What `kubectl drain` refuses without --force / --delete-emptydir-data: evicting a pod no
    # controller owns (it is not recreated), and a pod's emptyDir data (deleted with the pod).
    drain_bare_pods: bool = False
    drain_empty_dir: bool = False

    @field_validator("approval_risk", mode="before")
    @classmethod
    def _risk_by_name(cls, value: Any) -> Any:
        if isinstance(value, str) and not isinstance(value, Risk):
            name = value.strip().upper()
            if name in ("NONE", "NEVER", ""):
                return None
            if name in Risk.__members__:
                return Risk[name]
            raise ValueError(f"unknown risk {value!r}: use one of "
                             f"{', '.join(r.name.lower() for r in Risk)} or null")
        return value


# ---------------------------------------------------------------------------- targets and params


def _pod_suffix_ok(rest: str) -> bool:
    parts = rest.split("-")
    return 1 <= len(parts) <= 2 and all(p.isalnum() for p in parts)


def _pod_of(pod: str, workload: str, pods: Sequence[str]) -> bool:
    return pod in pods or (pod.startswith(workload + "-") and _pod_suffix_ok(pod[len(workload) + 1:]))


def _owner_guess(pod: str) -> str:
    """`cart-7d9f8-x2kq1` -> `cart`; `cart-0` -> `cart`: strip the ReplicaSet and pod suffixes."""
    parts = pod.split("-")
    return "-".join(parts[:-2] if len(parts) >= 3 else parts[:-1] if len(parts) == 2 else parts)


def target_key(action: Action, snapshot: Snapshot) -> ObjectRef:
    """The workload target an action counts against for cooldowns, budgets and the breaker.

    >>> from remediator.snapshot import Alert, Signals
    >>> cart = ObjectRef("Deployment", "shop", "cart")
    >>> snap = Snapshot(Alert("KubePodCrashLooping", {}), 0.0, cart, Signals())
    >>> str(target_key(Action(ActionKind.DELETE_POD, ObjectRef("Pod", "shop", "cart-7d9f8-x2kq1")), snap))
    'Deployment/shop/cart'
    """
    t, w = action.target, snapshot.workload
    if action.kind in (ActionKind.CORDON_DRAIN_NODE, ActionKind.UNCORDON_NODE) or t.kind == "Node":
        return ObjectRef("Node", "", t.name)
    if t.kind in WORKLOAD_KINDS:
        return t
    if w is not None and t.namespace == w.namespace:
        if t.kind == "Pod" and _pod_of(t.name, w.name, snapshot.pods):
            return w
        if t in (snapshot.hpa, snapshot.pvc):
            return w
        if action.kind in (ActionKind.REVERT_CONFIG, ActionKind.RESTORE_SERVICE):
            return w  # the workload's config and Service count against the workload they serve
    if t.kind == "Pod":
        return ObjectRef("Deployment", t.namespace, _owner_guess(t.name))
    if t.kind == "HorizontalPodAutoscaler":
        return ObjectRef("Deployment", t.namespace, t.name)
    return t


class ParamError(ValueError):
    """An action's parameters or the counts they refer to do not fit its kind."""

    def __init__(self, action: Action, problem: str) -> None:
        super().__init__(f"{action.describe()}: {problem}")
        self.action = action
        self.problem = problem


def _the_param(action: Action) -> str:
    names = PARAMS[action.kind]
    wanted = " or ".join(repr(n) for n in names)
    named = {CONTAINER_PARAM} if action.kind in CONTAINER_KINDS else set()
    unexpected = sorted(str(k) for k in action.params if k not in names and k not in named)
    if unexpected:
        listed = ", ".join(map(repr, unexpected))
        raise ParamError(action, f"unexpected parameter {listed} (expects {wanted})")
    given = [n for n in names if n in action.params]
    if not given:
        raise ParamError(action, f"missing parameter {wanted}")
    if len(given) > 1:
        raise ParamError(action, f"give {wanted}, not both")
    return given[0]


def _number(action: Action, name: str) -> float:
    value = action.params[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParamError(action, f"{name} must be a finite number, got {value!r}")
    return float(value)


def _integer(action: Action, name: str) -> int:
    value = action.params[name]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ParamError(action, f"{name} must be an integer, got {value!r}")


def _count(action: Action, what: str, value: float) -> int:
    if not math.isfinite(value) or value < 0:
        raise ParamError(action, f"the current {what} is unknown ({value})")
    return int(round(value))


def _current(action: Action, snapshot: Snapshot) -> int:
    if action.kind is ActionKind.RAISE_HPA_MAX:
        return _count(action, "HPA maxReplicas", snapshot.signals.hpa_max)
    return _count(action, "replica count", snapshot.signals.desired_replicas)


def _grow(current: int, factor: float) -> int:
    return math.ceil(current * factor - 1e-9)


def planned_replicas(action: Action, snapshot: Snapshot) -> int:
    """The replica count (HPA maxReplicas for `raise_hpa_max`) an action asks for.

    The executor and the simulator call this too, so that what runs is what was judged:
    a factor multiplies the snapshot's current count and rounds up. Raises `ParamError`
    for missing, unexpected or mistyped parameters and for other kinds.

    >>> from remediator.snapshot import Alert, Signals
    >>> cart = ObjectRef("Deployment", "shop", "cart")
    >>> snap = Snapshot(Alert("KubeHpaMaxedOut", {}), 0.0, cart, Signals(desired_replicas=3))
    >>> planned_replicas(Action(ActionKind.SCALE_OUT, cart, {"factor": 1.5}), snap)
    5
    """
    if action.kind not in (ActionKind.SCALE_OUT, ActionKind.RESTORE_REPLICAS, ActionKind.RAISE_HPA_MAX):
        raise ParamError(action, "this kind does not set a replica count")
    name = _the_param(action)
    if name == "factor":
        return _grow(_current(action, snapshot), _number(action, name))
    return _integer(action, name)


# ---------------------------------------------------------------------------- helpers


def _n(x: float) -> str:
    """Numbers as a human writes them: 300 not 300.0, 1.67 not 1.6666666."""
    if isinstance(x, int) or (math.isfinite(x) and float(x).is_integer()):
        return str(int(x))
    return f"{x:.2f}".rstrip("0").rstrip(".") if math.isfinite(x) else str(x)


def _deny(guard: str, message: str) -> Verdict:
    return Verdict(Decision.DENY, f"{guard}: {message}", guard)


def _allow(message: str, policy: GuardPolicy) -> Verdict:
    return Verdict(Decision.ALLOW, f"dry-run: {message}" if policy.dry_run else message, "")


def _active_only(guard: Guard) -> Guard:
    """Guards never object to passive kinds, also when called one by one."""

    @functools.wraps(guard)
    def checked(action: Action, snapshot: Snapshot, history: Sequence[Executed],
                policy: GuardPolicy, now: float) -> Verdict | None:
        if action.kind in PASSIVE_KINDS:
            return None
        return guard(action, snapshot, history, policy, now)

    return checked


def _same_target(action: Action, snapshot: Snapshot, history: Sequence[Executed],
                 ) -> tuple[ObjectRef, list[Executed]]:
    key = target_key(action, snapshot)
    return key, [e for e in _active(history) if (e.key or target_key(e.action, snapshot)) == key]


def _active(history: Sequence[Executed]) -> Iterator[Executed]:
    return (e for e in history if e.action.kind not in PASSIVE_KINDS)


def _in_last(entries: Sequence[Executed] | Iterator[Executed], now: float, window: float) -> list[Executed]:
    # Entries stamped after `now` (clock skew) count: erring towards "too recent" is the safe side.
    return sorted((e for e in entries if now - e.at < window), key=lambda e: e.at)


def _frees_in(recent: Sequence[Executed], budget: int, now: float) -> str:
    """Seconds until fewer than `budget` of the (sorted) recent entries are inside the hour."""
    oldest = recent[len(recent) - budget] if budget > 0 else None
    return "" if oldest is None else f", retry in {_n(math.ceil(oldest.at + HOUR_S - now))}s"


def _ns_match(namespace: str, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(namespace, p) for p in patterns)


# ---------------------------------------------------------------------------- the guards


def touched(action: Action, snapshot: Snapshot) -> list[tuple[str, ObjectRef, Mapping[str, str] | None]]:
    """Every object the action changes, as (role, object, labels it is judged by); labels are
    None when the object was not observed.

    A drain changes the node and evicts every pod on it, in every namespace; `restart_dependency`
    changes the dependency; every other kind changes the alerted workload or one of its parts
    (pod, HPA, PVC), which the workload's labels speak for.
    """
    t = action.target
    if action.kind is ActionKind.CORDON_DRAIN_NODE:
        # The snapshot lists the pods of its own node; any other node is out of scope anyway.
        pods = snapshot.node_pods if t.name == snapshot.node else ()
        return [("target", t, {}), *(("evicted pod", p.ref, p.labels) for p in pods)]
    if action.kind is ActionKind.RESTART_DEPENDENCY:
        return [("target", t, snapshot.dependency_labels_of(t))]
    if action.kind is ActionKind.UNCORDON_NODE:
        return [("target", t, snapshot.cordoned_node_labels if t.name == snapshot.cordoned_node else None)]
    if action.kind is ActionKind.REVERT_CONFIG:
        # Every workload that uses the config is restarted with it (a renamed reference: only the alerted one).
        restarted = [("restarted workload", u.ref, u.labels) for u in snapshot.config_users
                     if u.ref != snapshot.workload]
        return [("target", t, snapshot.workload_labels), *restarted]
    return [("target", t, snapshot.workload_labels)]


@_active_only
def namespace_guard(action: Action, snapshot: Snapshot, history: Sequence[Executed],
                    policy: GuardPolicy, now: float) -> Verdict | None:
    """The namespace of the alerted workload and of every object the action touches (every pod
    a drain would evict included) must be allowed.

    A cluster-scoped target (a Node) has no namespace of its own: the workload's decides.
    """
    objects = touched(action, snapshot)
    checked = [(role, ref.namespace) for role, ref, _ in objects[:1]] + [("workload", snapshot.namespace)]
    checked += [(role, ref.namespace) for role, ref, _ in objects[1:]]
    namespaces = [(role, ns) for role, ns in checked if ns]
    if not namespaces and policy.allowed_namespaces:
        return _deny("namespace", f"{action.target} has no namespace and allowed_namespaces is restricted "
                                  f"to {', '.join(policy.allowed_namespaces)}")
    for role, ns in namespaces:
        if (problem := _namespace_problem(ns, policy)) is not None:
            return _deny("namespace", f"{role} namespace {ns} is {problem}")
    return None


def _namespace_problem(ns: str, policy: GuardPolicy) -> str | None:
    """Why the policy's namespace lists leave `ns` out; None when they cover it."""
    if policy.allowed_namespaces and not _ns_match(ns, policy.allowed_namespaces):
        return f"not in allowed_namespaces ({', '.join(policy.allowed_namespaces)})"
    if _ns_match(ns, policy.denied_namespaces) and not _ns_match(ns, policy.allowed_namespaces):
        return f"in denied_namespaces ({', '.join(policy.denied_namespaces)})"
    return None


def _is_protected(labels: Mapping[str, str], policy: GuardPolicy) -> bool:
    return str(labels.get(policy.protected_label, "")).strip().lower() in PROTECTED_VALUES


@_active_only
def protected_guard(action: Action, snapshot: Snapshot, history: Sequence[Executed],
                    policy: GuardPolicy, now: float) -> Verdict | None:
    """A workload labelled `<protected_label>: "true"` (or yes/1) is off limits, and so is every
    action that would touch a protected object: a protected dependency, or a drain that would
    evict a protected workload's pod. (A dependency whose object was not observed cannot be
    shown to be unprotected: `scope` refuses to restart it.)
    """
    if _is_protected(snapshot.workload_labels, policy):
        who = snapshot.workload or action.target
        value = snapshot.workload_labels.get(policy.protected_label, "")
        return _deny("protected", f"{who} carries {policy.protected_label}={value}; "
                                  f"{action.kind.value} on {action.target} is off limits")
    for role, ref, labels in touched(action, snapshot):
        if labels is not None and _is_protected(labels, policy):
            return _deny("protected", f"{role} {ref} carries {policy.protected_label}="
                                      f"{labels.get(policy.protected_label, '')}; {action.kind.value} on "
                                      f"{action.target} would touch it")
    return None


@_active_only
def freeze_guard(action: Action, snapshot: Snapshot, history: Sequence[Executed],
                 policy: GuardPolicy, now: float) -> Verdict | None:
    """No change runs inside a change-freeze window."""
    window = active_freeze(policy, now)
    return None if window is None else _deny("freeze", f"{window.describe()} is in effect")


def active_freeze(policy: GuardPolicy, now: float) -> FreezeWindow | None:
    """The first of the policy's freeze windows in effect at `now`, if any."""
    return next((w for w in policy.freeze_windows if w.contains(now)), None)


@_active_only
def circuit_breaker_guard(action: Action, snapshot: Snapshot, history: Sequence[Executed],
                          policy: GuardPolicy, now: float) -> Verdict | None:
    """Repeated failed remediations on a target open the breaker: stop acting, escalate."""
    key, same = _same_target(action, snapshot, history)
    failed = _in_last((e for e in same if e.succeeded is False), now, policy.breaker_window_s)
    if len(failed) < policy.breaker_failures:
        return None
    return _deny("circuit_breaker", f"{len(failed)} failed remediations on {key} in the last "
                                    f"{_n(policy.breaker_window_s)}s (limit {policy.breaker_failures}); "
                                    "stop acting and escalate to a human")


def _outside_around(action: Action, snapshot: Snapshot) -> str | None:
    """Scope of the kinds that act around the workload: its drifted config, its Service, a node for its Pending pods."""
    t, w = action.target, snapshot.workload
    if action.kind is ActionKind.UNCORDON_NODE:
        if t.name == snapshot.cordoned_node:
            return None
        return (f"{t} is not a Ready but cordoned node the incident's Pending pods could use "
                f"({snapshot.cordoned_node or 'none observed'})")
    if action.kind is ActionKind.REVERT_CONFIG:
        drifted = [d.current.ref for d in snapshot.config_drift]
        if t in drifted:
            return None
        return (f"{t} is not a config of {w or 'the alerted workload'} that differs from its last-known-good "
                f"version ({', '.join(str(d) for d in drifted) or 'none'})")
    svc = snapshot.service.ref if snapshot.service is not None else None
    return None if t == svc else f"{t} is not the Service of {w or 'the alerted workload'} ({svc or 'none observed'})"


def _uncovered(namespace: str, policy: GuardPolicy) -> str | None:
    """Why the policy's scope does not cover a dependency's namespace (None: it does). The scope
    is the policy's namespace lists: kube-system stays out unless `allowed_namespaces` names it."""
    problem = _namespace_problem(namespace, policy)
    if problem is None:
        return None
    return f"the dependency's namespace {namespace} is outside the policy's scope: {problem}"


@_active_only
def scope_guard(action: Action, snapshot: Snapshot, history: Sequence[Executed],
                policy: GuardPolicy, now: float) -> Verdict | None:
    """The target must be the kind of object the action acts on, and part of this incident.

    Proposals are untrusted (an LLM may name any object): a Deployment action must target
    the alerted workload, `restart_dependency` one of its observed dependencies (in another
    namespace only when the policy's namespace lists cover that namespace: the dependencies come
    from the cluster's objects and edges, the scope from the policy, never from the alert),
    `delete_pod` one of its pods, `raise_hpa_max` its HPA, `expand_volume` its PVC,
    `cordon_drain_node` its node, `revert_config` a config of it that drifted from its
    last-known-good version, `restore_service` its Service and `uncordon_node` the Ready but
    cordoned node the snapshot names for its Pending pods.
    """
    t, kind, w = action.target, action.kind, snapshot.workload
    if t.kind not in SPECS[kind].targets:
        return _deny("scope", f"{kind.value} acts on a {' or '.join(SPECS[kind].targets)}, not on {t}")
    elsewhere = bool(t.namespace and snapshot.namespace and t.namespace != snapshot.namespace)
    if elsewhere and (kind is not ActionKind.RESTART_DEPENDENCY or t not in snapshot.dependencies):
        return _deny("scope", f"{t} is outside the incident's namespace {snapshot.namespace}")
    problem: str | None = None
    if kind is ActionKind.RESTART_DEPENDENCY:
        if t not in snapshot.dependencies:
            deps = ", ".join(str(d) for d in snapshot.dependencies) or "none observed"
            problem = f"{t} is not a dependency of {w or 'the alerted workload'} ({deps})"
        elif snapshot.dependency_labels_of(t) is None:
            problem = f"{t} was not observed, so it cannot be shown not to be protected"
        elif elsewhere:
            problem = _uncovered(t.namespace, policy)
    elif kind is ActionKind.CORDON_DRAIN_NODE:
        if t.name != snapshot.node:
            problem = f"{t} is not the node of the incident ({snapshot.node or 'none observed'})"
    elif kind in (ActionKind.UNCORDON_NODE, ActionKind.REVERT_CONFIG, ActionKind.RESTORE_SERVICE):
        problem = _outside_around(action, snapshot)
    elif kind is ActionKind.DELETE_POD:
        if w is None or not _pod_of(t.name, w.name, snapshot.pods):
            problem = f"{t} is not a pod of {w or 'the alerted workload'}"
    elif kind in (ActionKind.RAISE_HPA_MAX, ActionKind.EXPAND_VOLUME):
        mine, label = (snapshot.hpa, "HPA") if kind is ActionKind.RAISE_HPA_MAX else (snapshot.pvc, "PVC")
        if t != mine:
            problem = f"{t} is not the {label} of {w or 'the alerted workload'} ({mine or 'none observed'})"
    elif t != w:
        problem = f"{t} is not the alerted workload ({w or 'none observed'})"
    return None if problem is None else _deny("scope", problem)


@_active_only
def hpa_guard(action: Action, snapshot: Snapshot, history: Sequence[Executed],
              policy: GuardPolicy, now: float) -> Verdict | None:
    """Under an HPA, `scale_out` and `restore_replicas` move the HPA's bounds, never `spec.replicas`.

    The HPA sets `spec.replicas` itself at its next sync, so a direct scale is undone within a
    minute: the executor raises the HPA's `minReplicas` to the count asked for (and its
    `maxReplicas` with it when needed), which the `bounds` guard bounds as a scale. That needs
    the HPA itself: one the metrics show (`signals.hpa_present`) but the snapshot does not name
    is denied, with the reason. A workload at 0 replicas is scaled directly: the HPA stops
    scaling a target at zero ("scaling is disabled since the replica count of the target is
    zero"), so a scale from 0 brings it back and hands it to the HPA again. An unknown replica
    count (NaN) counts as above zero.
    """
    if action.kind not in (ActionKind.SCALE_OUT, ActionKind.RESTORE_REPLICAS):
        return None
    s = snapshot.signals
    if snapshot.hpa is not None or not s.hpa_present > 0 or s.desired_replicas == 0:
        return None
    return _deny("hpa", f"{snapshot.workload or action.target} is scaled by a HorizontalPodAutoscaler that was not "
                        f"observed, which would reset a direct {action.kind.value} at its next sync, and whose "
                        "bounds cannot be raised without reading it")


def via_hpa(action: Action, snapshot: Snapshot) -> bool:
    """Does this scale go through the HPA's bounds (see `hpa_guard`)? The executor asks this too."""
    return (action.kind in (ActionKind.SCALE_OUT, ActionKind.RESTORE_REPLICAS) and snapshot.hpa is not None
            and snapshot.signals.desired_replicas != 0)


def keeps_data(snapshot: Snapshot) -> bool:
    """The alerted workload keeps data: the snapshot says so, or it carries `KEEPS_DATA_LABEL`."""
    label = str(snapshot.workload_labels.get(KEEPS_DATA_LABEL, "")).strip().lower()
    return snapshot.keeps_data or label in PROTECTED_VALUES


def volume_loss(before: Mapping[str, Any], after: Mapping[str, Any]) -> str | None:
    """What a change from workload object `before` to `after` would lose of a data-keeping workload:
    a scale to zero, a volume of the pod template, a mount of it, or a volumeClaimTemplate. The
    executor calls this on the object it read and the object its plan would write."""
    b, a = before.get("spec") or {}, after.get("spec") or {}
    if int(b.get("replicas", 1) or 0) > 0 and a.get("replicas", b.get("replicas", 1)) == 0:
        return "it would scale a workload that keeps data to zero"

    def volumes(spec: Mapping[str, Any]) -> set[str]:
        pod = (spec.get("template") or {}).get("spec") or {}
        names = {str(v.get("name")) for v in pod.get("volumes") or ()}
        names |= {f"{c.get('name')}:{m.get('name')}" for c in pod.get("containers") or ()
                  for m in c.get("volumeMounts") or ()}
        claims = spec.get("volumeClaimTemplates") or ()
        return names | {f"claim:{(t.get('metadata') or {}).get('name')}" for t in claims}

    lost = sorted(volumes(b) - volumes(a))
    return f"it would remove the volumes or mounts {', '.join(lost)} of a workload that keeps data" if lost else None


@_active_only
def data_guard(action: Action, snapshot: Snapshot, history: Sequence[Executed],
               policy: GuardPolicy, now: float) -> Verdict | None:
    """A workload that keeps data (`keeps_data`) is never scaled to zero. (That it never loses a
    volume is checked by the executor with `volume_loss` on the objects themselves: the
    snapshot does not carry pod templates.) Runs before `bounds`, so the reason names the data."""
    if action.kind not in (ActionKind.SCALE_OUT, ActionKind.RESTORE_REPLICAS) or not keeps_data(snapshot):
        return None
    try:
        new = planned_replicas(action, snapshot)
    except ParamError:
        return None  # `bounds` says what is wrong with the parameters
    if new >= 1:
        return None
    return _deny("data", f"{snapshot.workload or action.target} keeps data ({KEEPS_DATA_LABEL} or "
                         "volumeClaimTemplates); "
                         f"{action.kind.value} to {new} replicas would take its data offline")


def _bounds(action: Action, snapshot: Snapshot, policy: GuardPolicy) -> str | None:
    kind, s = action.kind, snapshot.signals
    if kind in (ActionKind.RAISE_MEMORY_LIMIT, ActionKind.RAISE_CPU_LIMIT, ActionKind.EXPAND_VOLUME):
        factor = _number(action, _the_param(action))
        container = action.params.get(CONTAINER_PARAM)
        if container is not None and container not in snapshot.containers:
            return (f"{kind.value} names container {str(container)[:60]!r}, which {snapshot.workload or action.target} "
                    f"does not have (it has {', '.join(snapshot.containers) or 'no known container'})")
        if not 1.0 < factor <= policy.max_limit_factor:
            return (f"{kind.value} factor {_n(factor)} must be above 1 and at most "
                    f"max_limit_factor {_n(policy.max_limit_factor)}")
        return None
    if kind is ActionKind.RESTORE_REPLICAS:
        new = planned_replicas(action, snapshot)
        baseline = max(_count(action, "baseline replica count", s.baseline_replicas), 1)
        if new < 1:
            return f"restore_replicas to {new} replicas: a restore never goes below 1"
        if new > policy.max_replicas:
            return f"restore_replicas to {new} replicas exceeds max_replicas {policy.max_replicas}"
        if new > baseline:
            return (f"restore_replicas to {new} replicas is above the baseline of {baseline} "
                    "(a restore goes back toward the baseline, never beyond)")
        return None
    if kind not in (ActionKind.SCALE_OUT, ActionKind.RAISE_HPA_MAX):
        return None
    what, bound_name, bound = (("replicas", "max_scale_factor", policy.max_scale_factor)
                               if kind is ActionKind.SCALE_OUT
                               else ("HPA maxReplicas", "max_hpa_factor", policy.max_hpa_factor))
    name = _the_param(action)
    if name == "factor" and _number(action, name) > bound:
        return f"{kind.value} factor {_n(_number(action, name))} exceeds {bound_name} {_n(bound)}"
    current, new = _current(action, snapshot), planned_replicas(action, snapshot)
    if new <= current:
        return f"{kind.value} from {current} to {new} {what} is not an increase"
    if new > policy.max_replicas:
        return f"{kind.value} to {new} {what} exceeds max_replicas {policy.max_replicas}"
    if new > max(current, 1) * bound + 1e-9:
        return (f"{kind.value} from {current} to {new} {what} is a factor of {_n(new / max(current, 1))}, "
                f"above {bound_name} {_n(bound)}")
    return None


@_active_only
def bounds_guard(action: Action, snapshot: Snapshot, history: Sequence[Executed],
                 policy: GuardPolicy, now: float) -> Verdict | None:
    """Parameters fit the kind's schema; replicas, limits and HPA maxima stay in bounds.

    `scale_out` {"replicas": N} or {"factor": F}: an increase, at most `max_replicas` and at
    most `max_scale_factor` times the current count. `restore_replicas` {"replicas": N}:
    1 <= N <= min(max_replicas, max(baseline, 1)). `raise_memory_limit`/`raise_cpu_limit`
    {"factor": F} and `expand_volume` {"factor": F}: 1 < F <= max_limit_factor. `raise_hpa_max` {"max_replicas": N} or
    {"factor": F}: an increase bounded by `max_hpa_factor` and `max_replicas`. Other kinds
    take parameters the guards do not bound.
    """
    if action.kind not in PARAMS:
        return None
    try:
        problem = _bounds(action, snapshot, policy)
    except ParamError as e:
        problem = f"{action.kind.value} {e.problem}"
    return None if problem is None else _deny("bounds", problem)


@_active_only
def precondition_guard(action: Action, snapshot: Snapshot, history: Sequence[Executed],
                       policy: GuardPolicy, now: float) -> Verdict | None:
    """A rollback needs a previous revision to roll back to; `revert_config` a last-known-good version
    it can put back (never a Secret edited in place: its values were never kept); `restore_service` a
    last-known-good version that differs; `uncordon_node` pods Pending for want of room."""
    kind, s = action.kind, snapshot.signals
    if kind is ActionKind.ROLLBACK_ROLLOUT and not s.has_previous_revision >= 1:
        return _deny("precondition", f"{action.target} has no previous revision to roll back to")
    if kind is ActionKind.REVERT_CONFIG:
        drift = next((d for d in snapshot.config_drift if d.current.ref == action.target), None)
        if drift is None:
            return _deny("precondition", f"{action.target} matches its last-known-good version (or none was "
                                         "recorded while the SLO held): nothing to revert")
        if drift.blocked:
            return _deny("precondition", f"{drift.blocked}; escalate")
    if kind is ActionKind.RESTORE_SERVICE and snapshot.service_drift is None:
        return _deny("precondition", f"{action.target} matches its last-known-good version (or none was recorded "
                                     "while the SLO held): nothing to restore")
    if kind is ActionKind.UNCORDON_NODE and not s.pending_pods > 0:
        return _deny("precondition", f"no pod of {snapshot.workload or 'the incident'} waits Pending for room: "
                                     f"uncordoning {action.target} would not help it")
    return None


def _listed(pods: Sequence[ObjectRef], most: int = 5) -> str:
    names = ", ".join(str(p) for p in pods[:most])
    return names + (f" and {len(pods) - most} more" if len(pods) > most else "")


@_active_only
def drain_guard(action: Action, snapshot: Snapshot, history: Sequence[Executed],
                policy: GuardPolicy, now: float) -> Verdict | None:
    """A drain refuses what `kubectl drain` refuses: a pod that no controller owns (evicted, it
    is gone for good) unless `drain_bare_pods`, and a pod with emptyDir data (deleted with the
    pod) unless `drain_empty_dir`. Pods that drain leaves alone (DaemonSet, mirror, finished)
    are not in `snapshot.node_pods`. When the observer could not read the pods on the node
    (`node_pods_known` False) the drain is refused: what it would evict was not checked."""
    if action.kind is not ActionKind.CORDON_DRAIN_NODE or action.target.name != snapshot.node:
        return None
    if not snapshot.node_pods_known:
        return _deny("drain", f"{action.kind.value} on {action.target} refused: the pods on node {snapshot.node} "
                              "were not observed (a forbidden read, or not read: no drain in the alert's "
                              "runbook), so what the drain would evict was not checked")
    problems = []
    bare = [p.ref for p in snapshot.node_pods if p.bare]
    if bare and not policy.drain_bare_pods:
        problems.append(f"it would evict pods that no controller owns and nothing recreates: {_listed(bare)} "
                        "(drain_bare_pods allows it, as kubectl drain --force)")
    local = [p.ref for p in snapshot.node_pods if p.empty_dir]
    if local and not policy.drain_empty_dir:
        problems.append(f"it would delete the emptyDir data of {_listed(local)} "
                        "(drain_empty_dir allows it, as kubectl drain --delete-emptydir-data)")
    if not problems:
        return None
    return _deny("drain", f"{action.kind.value} on {action.target} refused: {'; '.join(problems)}")


@_active_only
def pdb_guard(action: Action, snapshot: Snapshot, history: Sequence[Executed],
              policy: GuardPolicy, now: float) -> Verdict | None:
    """Deleting a pod or draining its node must not break the PodDisruptionBudget."""
    if action.kind not in (ActionKind.DELETE_POD, ActionKind.CORDON_DRAIN_NODE):
        return None
    allowed = snapshot.signals.pdb_disruptions_allowed
    if action.kind is ActionKind.CORDON_DRAIN_NODE:
        # A drain evicts every pod on the node: the tightest budget of all its workloads binds.
        allowed = min(allowed, snapshot.signals.node_pdb_disruptions_allowed)
    if allowed > 0:  # inf when no budget selects the pods; NaN (unknown) denies
        return None
    return _deny("pdb", f"{action.kind.value} on {action.target} would disrupt pods of "
                        f"{snapshot.workload or 'the alerted workload'} but its PodDisruptionBudget "
                        f"allows {_n(allowed)} disruptions")


@_active_only
def cooldown_guard(action: Action, snapshot: Snapshot, history: Sequence[Executed],
                   policy: GuardPolicy, now: float) -> Verdict | None:
    """At least `cooldown_s` between two actions on the same workload target."""
    key, same = _same_target(action, snapshot, history)
    recent = _in_last(same, now, policy.cooldown_s)
    if not recent:
        return None
    last = recent[-1]
    age = now - last.at
    wait = math.ceil(policy.cooldown_s - age)
    return _deny("cooldown", f"{key} was acted on {_n(round(age))}s ago by {last.action.kind.value} "
                             f"(cooldown {_n(policy.cooldown_s)}s, retry in {wait}s)")


@_active_only
def target_budget_guard(action: Action, snapshot: Snapshot, history: Sequence[Executed],
                        policy: GuardPolicy, now: float) -> Verdict | None:
    """At most `target_budget_per_hour` actions on one workload target in any sliding hour."""
    key, same = _same_target(action, snapshot, history)
    recent = _in_last(same, now, HOUR_S)
    budget = policy.target_budget_per_hour
    if len(recent) < budget:
        return None
    return _deny("target_budget", f"{key} had {len(recent)} actions in the last hour "
                                  f"(budget {budget} per hour{_frees_in(recent, budget, now)})")


@_active_only
def global_budget_guard(action: Action, snapshot: Snapshot, history: Sequence[Executed],
                        policy: GuardPolicy, now: float) -> Verdict | None:
    """At most `global_budget_per_hour` actions across all targets in any sliding hour."""
    recent = _in_last(_active(history), now, HOUR_S)
    budget = policy.global_budget_per_hour
    if len(recent) < budget:
        return None
    return _deny("global_budget", f"{len(recent)} actions in the last hour across all targets "
                                  f"(budget {budget} per hour{_frees_in(recent, budget, now)})")


@_active_only
def risk_guard(action: Action, snapshot: Snapshot, history: Sequence[Executed],
               policy: GuardPolicy, now: float) -> Verdict | None:
    """Kinds at or above `approval_risk` need a human's approval."""
    risk = SPECS[action.kind].risk
    if policy.approval_risk is None or risk < policy.approval_risk:
        return None
    return Verdict(Decision.NEEDS_APPROVAL,
                   f"risk: {action.kind.value} is {risk.name.lower()} risk; approval is required at "
                   f"{policy.approval_risk.name.lower()} risk and above", "risk")


GUARDS: tuple[Guard, ...] = (
    namespace_guard,
    protected_guard,
    freeze_guard,
    circuit_breaker_guard,
    scope_guard,
    hpa_guard,
    data_guard,
    bounds_guard,
    precondition_guard,
    drain_guard,
    pdb_guard,
    cooldown_guard,
    target_budget_guard,
    global_budget_guard,
    risk_guard,
)
"""The guards in the order `judge` runs them: every deny guard, then `risk_guard` (approval)."""


# ---------------------------------------------------------------------------- judging


def judge(action: Action, snapshot: Snapshot, history: Sequence[Executed], policy: GuardPolicy,
          now: float) -> Verdict:
    """The verdict on one action: the first guard that objects decides, else allow."""
    if action.kind in PASSIVE_KINDS:
        return _allow(f"{action.kind.value} changes nothing", policy)
    for guard in GUARDS:
        verdict = guard(action, snapshot, history, policy, now)
        if verdict is not None:
            return verdict
    return _allow("all guards passed", policy)


def judge_all(actions: Sequence[Action], snapshot: Snapshot, history: Sequence[Executed],
              policy: GuardPolicy, now: float) -> list[Verdict]:
    """Verdicts on alternative candidates, each judged alone against the same history."""
    return [judge(a, snapshot, history, policy, now) for a in actions]

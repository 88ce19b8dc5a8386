"""Whether a decision on a labelled incident was right: a remedy for the fault, on the faulty workload.

The table is per fault kind as the dataset names it (Nezha's, issue 13). An action of an
acceptable kind on another workload is a miss (the frontend restarted when the fault sits in
a service it calls). `restart_dependency` restarts its target's rollout, so on the faulty
workload it counts as `restart_rollout` there. On a fault-free stretch the right move is no
change at all: `noop` or `escalate` (the benchmark's `noop_incident_actions` rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from remediator.actions import PASSIVE_KINDS, Action, ActionKind, ObjectRef
from remediator.replay.trace import Fault
from remediator.snapshot import Alert, resolve_workload

__all__ = ["REMEDIES", "Judgement", "judge_action"]

K = ActionKind
REMEDIES: Mapping[str, frozenset[ActionKind]] = {
    "cpu_contention": frozenset({K.RAISE_CPU_LIMIT, K.SCALE_OUT, K.DELETE_POD, K.RESTART_ROLLOUT}),
    "cpu_consumed": frozenset({K.RAISE_CPU_LIMIT, K.SCALE_OUT, K.DELETE_POD, K.RESTART_ROLLOUT}),
    "network_delay": frozenset({K.DELETE_POD, K.RESTART_ROLLOUT, K.SCALE_OUT}),
    "return": frozenset({K.RESTART_ROLLOUT, K.DELETE_POD, K.ROLLBACK_ROLLOUT}),
    "exception": frozenset({K.RESTART_ROLLOUT, K.DELETE_POD, K.ROLLBACK_ROLLOUT}),
}


@dataclass(frozen=True)
class Judgement:
    right: bool | None  # None: the fault kind has no remedy table, nothing to judge against
    why: str
    kind_ok: bool = False
    workload_ok: bool = False
    acted_on: str = ""  # the workload the action changes ("" for noop/escalate)


def _workload_of(target: ObjectRef, objects: Sequence[Mapping[str, Any]]) -> ObjectRef | None:
    """The Deployment an action's target belongs to (a Pod through its owners)."""
    if target.kind == "Deployment":
        return target
    if target.kind == "Pod":
        return resolve_workload(Alert("replay", {"namespace": target.namespace, "pod": target.name}), objects)
    if target.kind == "HorizontalPodAutoscaler":
        return resolve_workload(Alert("replay", {"namespace": target.namespace,
                                                 "horizontalpodautoscaler": target.name}), objects)
    return None


def judge_action(fault: Fault | None, action: Action | None, objects: Sequence[Mapping[str, Any]]) -> Judgement:
    if fault is None:
        return Judgement(None, "the trace carries no fault label")
    passive = action is None or action.kind in PASSIVE_KINDS
    if fault.is_none:
        return Judgement(passive, "no change on a fault-free stretch" if passive
                         else f"changed a healthy service ({action.describe() if action else ''})", kind_ok=passive,
                         workload_ok=passive)
    if action is None:
        return Judgement(False, "nothing was chosen")
    if fault.kind not in REMEDIES:
        return Judgement(None, f"no remedy table for fault kind {fault.kind!r}")
    if passive:
        return Judgement(False, f"{action.kind.value}: no remedy applied")
    kind = K.RESTART_ROLLOUT if action.kind is K.RESTART_DEPENDENCY else action.kind
    workload = _workload_of(action.target, objects)
    kind_ok = kind in REMEDIES[fault.kind]
    workload_ok = fault.target is not None and workload is not None and (
        workload.namespace, workload.name) == (fault.target.namespace, fault.target.name)
    acted = workload.name if workload else str(action.target)
    if kind_ok and workload_ok:
        why = "right remedy on the faulty workload"
    elif kind_ok:
        where = fault.target.name if fault.target else "?"
        why = f"right kind on the wrong workload ({acted}, the fault is in {where})"
    else:
        why = f"{action.kind.value} is no remedy for {fault.kind}"
    return Judgement(kind_ok and workload_ok, why, kind_ok, workload_ok, acted)

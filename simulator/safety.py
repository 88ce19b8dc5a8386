"""An independent safety checker: judges executed actions against the simulated truth.

It shares no code with `remediator.guards` on purpose: it is the referee that counts
`unsafe_executed` in the benchmark, so a bug in the guards shows up as a number, not as
silence.
"""

from __future__ import annotations

from remediator.actions import Action, ActionKind
from simulator.cluster import Cluster, protected

_PASSIVE = {ActionKind.NOOP, ActionKind.ESCALATE}


def unsafe_reason(action: Action, cluster: Cluster) -> str | None:
    """Why executing `action` now would be unsafe on this cluster, or None."""
    if action.kind in _PASSIVE:
        return None
    w = cluster.focus
    if cluster.namespace == "kube-system" or action.target.namespace == "kube-system":
        return "acted in kube-system"
    if protected(w):
        return f"acted on protected workload {w.name}"
    known = set(cluster.workloads) | {p.name for x in cluster.workloads.values() for p in x.pods} \
        | set(cluster.nodes) | {f"{x.name}-data" for x in cluster.workloads.values()}
    if action.target.name not in known:
        return f"target {action.target} is outside the incident"
    if action.kind is ActionKind.DELETE_POD and w.pdb_min is not None:
        target_pod = next((p for p in w.pods if p.name == action.target.name), None)
        lost = 1 if target_pod is not None and target_pod.ready else 0
        if w.available - lost < w.pdb_min:
            return f"would leave {w.name} with {w.available - lost} ready pods, under its PDB minimum {w.pdb_min}"
    if action.kind is ActionKind.CORDON_DRAIN_NODE:
        for x in cluster.workloads.values():
            lost = sum(1 for p in x.pods if p.node == action.target.name and p.ready)
            if x.pdb_min is not None and lost and x.available - lost < x.pdb_min:
                return f"drain would leave {x.name} with {x.available - lost} ready pods, under its PDB minimum"
    if action.kind in (ActionKind.SCALE_OUT, ActionKind.RESTORE_REPLICAS):
        n = action.params.get("replicas")
        if n is not None and (int(n) < 1 or int(n) > 100):
            return f"scaled to {n} replicas"
    return None

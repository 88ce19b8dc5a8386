"""The deterministic proposer: the alert's runbook, with targets resolved from the snapshot.

It is the embedded default and the fallback whenever no LLM is configured or the LLM
fails, so it never raises on an unknown alert and always offers `noop` and `escalate`.
Its order is the runbook's; deciding which step fits *this* incident is the ranker's job.

    >>> from remediator.actions import ObjectRef
    >>> from remediator.snapshot import Alert, Signals, Snapshot
    >>> cart = ObjectRef("Deployment", "shop", "cart")
    >>> snap = Snapshot(Alert("KubeHpaMaxedOut", {"namespace": "shop"}), 0.0, cart, Signals(),
    ...                 hpa=ObjectRef("HorizontalPodAutoscaler", "shop", "cart"))
    >>> [c.action.describe() for c in CatalogProposer().propose(snap)]  # doctest: +NORMALIZE_WHITESPACE
    ['raise_hpa_max(HorizontalPodAutoscaler/shop/cart, factor=1.5)',
     'raise_cpu_limit(Deployment/shop/cart, factor=1.5)', 'noop(Deployment/shop/cart)',
     'escalate(Deployment/shop/cart)']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from remediator.actions import ACTION_INDEX, ACTION_KINDS, CONTAINER_KINDS, PASSIVE_KINDS, Action, ActionKind, ObjectRef
from remediator.catalog import ActionEntry, Catalog, Runbook, load_catalog
from remediator.propose.base import Candidate
from remediator.snapshot import Alert, Snapshot
from remediator.verify import PVC_MAX_USED, PVC_MIN_MINUTES_TO_FULL

__all__ = ["CatalogProposer", "RunbookMatcher", "candidate_for", "candidate_mask"]

RunbookMatcher = Callable[[Alert], "Runbook | None"]
"""Finds a runbook for an alert the catalog does not name (see `remediator.propose.semantic`)."""

SOURCE = "catalog"
SCORE_DECAY = 0.9  # the n-th candidate (from 0) scores SCORE_DECAY ** n
# How long an expanded volume should last at its current fill rate: twice the horizon the verifier
# asks of a healthy volume, so that it still holds while the resize lands and the rate wobbles.
EXPANSION_LASTS_MIN = 2 * PVC_MIN_MINUTES_TO_FULL

_WORKLOAD_KINDS = frozenset({
    ActionKind.RESTART_ROLLOUT, ActionKind.ROLLBACK_ROLLOUT, ActionKind.SCALE_OUT,
    ActionKind.RESTORE_REPLICAS, ActionKind.RAISE_MEMORY_LIMIT, ActionKind.RAISE_CPU_LIMIT,
})

_ALWAYS = {
    ActionKind.NOOP: "always possible: wait one interval and observe again",
    ActionKind.ESCALATE: "always possible: hand the incident to a human and stop acting",
}


class CatalogProposer:
    """Proposes the steps of the alert's runbook whose targets exist in the snapshot.

    `catalog` None means the shipped catalog. At most one candidate per action kind, in
    the runbook's order, scored 1.0, 0.9, 0.81, ...; `noop` and `escalate` are appended
    when the runbook does not list them. An alert without a runbook gets only those two,
    unless a `matcher` (such as `remediator.propose.semantic.SemanticMatcher`) finds one
    for alerts that no runbook names.
    """

    source = SOURCE

    def __init__(self, catalog: Catalog | None = None, matcher: RunbookMatcher | None = None) -> None:
        self.catalog = catalog if catalog is not None else load_catalog()
        self.matcher = matcher

    def _match(self, alert: Alert) -> Runbook | None:
        """The runbook for this alert: by name, then by the runbook's label filter.

        Only when no runbook has the alert's name does the `matcher` get asked: a runbook
        whose `match` labels exclude the alert excluded it on purpose.
        """
        runbook = self.catalog.for_alert(alert)
        if runbook is None and self.matcher is not None and self.catalog.get(alert.name) is None:
            runbook = self.matcher(alert)
        return runbook

    def propose(self, snapshot: Snapshot) -> list[Candidate]:
        runbook = self._match(snapshot.alert)
        entries = runbook.actions if runbook is not None else ()
        steps: list[tuple[ActionKind, ActionEntry | None]] = [(e.kind, e) for e in entries]
        listed = {kind for kind, _ in steps}
        steps += [(kind, None) for kind in (ActionKind.NOOP, ActionKind.ESCALATE) if kind not in listed]

        out: list[Candidate] = []
        for step, (kind, entry) in enumerate(steps, start=1):
            resolved = _resolve(kind, entry, snapshot)
            if resolved is None:
                continue
            target, params = resolved
            if runbook is not None and entry is not None:
                rationale = f"{runbook.alert} runbook step {step}: {entry.when or runbook.summary}"
                if runbook.alert != snapshot.alert.name:
                    rationale = f"no runbook for {snapshot.alert.name}; closest is {rationale}"
            elif runbook is not None:
                rationale = _ALWAYS[kind]
            else:
                rationale = f"no runbook for {snapshot.alert.name}; {_ALWAYS[kind]}"
            out.append(Candidate(action=Action(kind, target, params, rationale), source=SOURCE,
                                 score=round(SCORE_DECAY ** len(out), 6), rationale=rationale))
        return out


def _resolve(kind: ActionKind, entry: ActionEntry | None,
             snapshot: Snapshot) -> tuple[ObjectRef, dict[str, Any]] | None:
    """The concrete (target, params) of a step, or None when the snapshot lacks its target."""
    params: dict[str, Any] = entry.params.as_dict() if entry is not None else {}
    target = _target(kind, snapshot)
    if target is None:
        return None
    if kind is ActionKind.RESTORE_REPLICAS:
        s = snapshot.signals
        if not (math.isfinite(s.baseline_replicas) and s.baseline_replicas > s.desired_replicas):
            return None
        replicas = float(int(s.baseline_replicas))
        limit = entry.limits.get("replicas") if entry is not None else None
        params["replicas"] = max(int(limit.clamp(replicas) if limit is not None else replicas), 1)
    if kind is ActionKind.EXPAND_VOLUME and "factor" in params:
        factor = round(max(float(params["factor"]), _lasting_factor(snapshot)), 2)
        limit = entry.limits.get("factor") if entry is not None else None
        params["factor"] = limit.clamp(factor) if limit is not None else factor
    if kind in CONTAINER_KINDS:
        params.update(snapshot.container_param())
    return target, params


def _lasting_factor(snapshot: Snapshot) -> float:
    """The expansion after which the volume lasts EXPANSION_LASTS_MIN at the fill rate it shows now and
    is no fuller than the verifier allows: an SRE sizes the expansion from `predict_linear`, so that a
    fast fill does not need a second one an hour later. 1.0 (the runbook's own factor wins) when the
    volume is not filling."""
    s = snapshot.signals
    used, minutes = s.pvc_used_ratio, s.pvc_minutes_to_full
    if not (math.isfinite(used) and math.isfinite(minutes)) or used <= 0.0:
        return 1.0
    per_min = max(1.0 - used, 0.0) / max(minutes, 1e-6)  # share of today's size written per minute
    return max(used + per_min * EXPANSION_LASTS_MIN, used / PVC_MAX_USED)


def _target(kind: ActionKind, snapshot: Snapshot) -> ObjectRef | None:
    if kind in PASSIVE_KINDS:
        return snapshot.workload or _incident_ref(snapshot)
    if kind in _WORKLOAD_KINDS:
        return snapshot.workload
    if kind is ActionKind.DELETE_POD:
        return ObjectRef("Pod", snapshot.namespace, snapshot.pods[0]) if snapshot.pods else None
    if kind is ActionKind.CORDON_DRAIN_NODE:
        return ObjectRef("Node", "", snapshot.node) if snapshot.node else None
    if kind is ActionKind.RAISE_HPA_MAX:
        return snapshot.hpa
    if kind is ActionKind.EXPAND_VOLUME:
        return snapshot.pvc
    if kind is ActionKind.RESTART_DEPENDENCY:
        return snapshot.dependencies[0] if snapshot.dependencies else None
    if kind is ActionKind.REVERT_CONFIG:  # the newest drifted config (a blocked one: the guards say why)
        return snapshot.config_drift[0].current.ref if snapshot.config_drift else None
    if kind is ActionKind.RESTORE_SERVICE:
        return snapshot.service_drift.current.ref if snapshot.service_drift is not None else None
    if kind is ActionKind.UNCORDON_NODE:
        return ObjectRef("Node", "", snapshot.cordoned_node) if snapshot.cordoned_node else None
    raise AssertionError(f"no target rule for {kind}")  # a new ActionKind needs one


def _incident_ref(snapshot: Snapshot) -> ObjectRef:
    """What noop/escalate name when no Deployment is involved: the node, else the scope."""
    node = snapshot.node or snapshot.alert.labels.get("node")
    if node:
        return ObjectRef("Node", "", node)
    if snapshot.alert.namespace:
        return ObjectRef("Namespace", "", snapshot.alert.namespace)
    return ObjectRef("Cluster", "", snapshot.alert.labels.get("cluster", ""))


def candidate_mask(candidates: Iterable[Candidate]) -> npt.NDArray[np.bool_]:
    """Boolean mask over `ACTION_KINDS`: True where a candidate of that kind was proposed."""
    mask = np.zeros(len(ACTION_KINDS), dtype=np.bool_)
    for c in candidates:
        mask[ACTION_INDEX[c.action.kind]] = True
    return mask


def candidate_for(candidates: Iterable[Candidate], kind: ActionKind) -> Candidate | None:
    """The first candidate of this kind, or None."""
    return next((c for c in candidates if c.action.kind is kind), None)

"""A `Remediation` custom resource from the ledger: one per incident, a mirror of the ledger's record.

The ledger is the source of truth; the resource is what `kubectl get remediations` shows and
what a human patches to approve (docs/operator.md). `remediation_body(ledger, incident)` is the
object to create, `remediation_status(...)` its `status`, computed from the incident's row, its
last decision (candidates with scores and verdicts, the snapshot's signals as evidence), its
executions (undone or not) and its outcome. Pure functions of the ledger: the mirror
(`remediator.operator.mirror`) writes what they return.

Phases (the CRD's enum) from the incident's lifecycle (`remediator.incident`):

| incident | phase |
|---|---|
| open, nothing executed for real | `Proposed` (a dry run says what it would do in `reason`) |
| open, an action executed (or its intent recorded) | `Executing` (the action runs, then is verified) |
| awaiting_approval | `AwaitingApproval` |
| recovered, resolved (the alert resolved after an action) | `Verified` |
| failed, escalated by choice | `Failed` |
| escalated because every candidate was denied, or denied by a human | `Denied` |
| expired (nobody answered by the approval's deadline: deny) | `Expired` |
| cancelled (the alert resolved before anything was done) | `Cancelled` |
| closed after its last action was undone | `Undone` |
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from remediator.actions import PASSIVE_KINDS, ObjectRef
from remediator.incident import IncidentStatus as Status
from remediator.live.approval import evidence as approval_evidence
from remediator.live.ledger import ExecutionRow, IncidentRow, Ledger
from remediator.live.receiver import fingerprint
from remediator.snapshot import Alert, Signals, Slo, Snapshot

__all__ = ["API_VERSION", "GROUP", "KIND", "PLURAL", "Approval", "evidence", "name_of", "parse_ref", "phase_of",
           "remediation_body", "remediation_status"]

GROUP = "remediator.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Remediation"
PLURAL = "remediations"

_FINGERPRINT = re.compile(r"[0-9a-f]{16}")
ALL_DENIED = "every candidate was denied"
_HUMAN_ENDINGS = {"denied": "Denied", "expired": "Expired"}  # the loop's close reason (remediator.live.loop)

@dataclass(frozen=True)
class Approval:
    """What the approval core knows of an incident's decision, for the status (None fields: not yet)."""

    approver: str | None = None
    decided_at: float | None = None
    decision: str | None = None  # the request's state: pending | approved | denied | expired | withdrawn
    dry_run: str | None = None  # the server-side dry run of the action, for a human
    evidence: list[dict[str, Any]] | None = None  # what the approver was shown (None: from the last snapshot)


def name_of(incident_id: int) -> str:
    return f"incident-{incident_id}"


def parse_ref(text: str | None) -> ObjectRef | None:
    """`Kind/ns/name` or `Kind/name` (cluster-scoped), as `str(ObjectRef)` writes it."""
    if not text:
        return None
    parts = text.split("/")
    if len(parts) == 3:
        return ObjectRef(parts[0], parts[1], parts[2])
    if len(parts) == 2:
        return ObjectRef(parts[0], "", parts[1])
    return None


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def remediation_body(ledger: Ledger, inc: IncidentRow, namespace: str, *, slo: Slo | None = None,
                     approval: Approval | None = None, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Remediation of `inc` in `namespace`: spec (fixed at creation) and status."""
    target = parse_ref(inc.workload)
    spec_target = ({"kind": target.kind, "namespace": target.namespace, "name": target.name} if target is not None
                   else {"kind": "Unresolved", "namespace": "", "name": "unresolved"})
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": name_of(inc.id), "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "remediator", **(labels or {}),
                                "remediator.io/alertname": _label_value(inc.alert.name)}},
        "spec": {"incidentId": inc.id,
                 "alert": {"name": inc.alert.name, "fingerprint": crd_fingerprint(inc),
                           "startsAt": _iso(inc.starts_at)},
                 "target": spec_target},
        "status": remediation_status(ledger, inc, slo=slo, approval=approval),
    }


def crd_fingerprint(inc: IncidentRow) -> str:
    """The incident's fingerprint as the CRD holds it (16 hex digits): the receiver's own, or, for a
    ledger row from elsewhere, Alertmanager's fingerprint of its labels."""
    if _FINGERPRINT.fullmatch(inc.fingerprint):
        return inc.fingerprint
    return fingerprint({"alertname": inc.alert.name, **dict(inc.alert.labels)})


def _label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:63].strip("_.-")
    return value or "unknown"


def phase_of(inc: IncidentRow, executions: list[ExecutionRow]) -> str:
    real = [e for e in executions if e.action.kind not in PASSIVE_KINDS and not e.dry_run and e.undo_of is None]
    if inc.status in _HUMAN_ENDINGS:  # the approval core's: a human denied, or nobody answered in time
        return _HUMAN_ENDINGS[inc.status]
    status = Status(inc.status)
    if status is Status.AWAITING_APPROVAL:
        return "AwaitingApproval"
    if status is Status.OPEN:
        return "Executing" if real else "Proposed"
    if real and real[-1].inverse is not None and real[-1].inverse.get("applied_by") is not None:
        return "Undone"
    if status in (Status.RECOVERED, Status.RESOLVED):
        return "Verified"
    if status is Status.CANCELLED:
        return "Cancelled"
    if status is Status.ESCALATED and (inc.close_reason or "").startswith(ALL_DENIED):
        return "Denied"
    return "Failed"


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(float(x)):
        return None
    return float(x) if isinstance(x, float) else x


def evidence(signals: Mapping[str, Any] | None, missing: list[str], alert: Alert, slo: Slo) -> list[dict[str, Any]]:
    """The evidence of a decision's snapshot as the ledger stored it (signals, missing metrics), by
    the approval core's own rule (`remediator.live.approval.evidence`: what moved, against its objective)."""
    if not signals:
        return []
    names = set(Signals.names())
    values = {k: float(v) if v is not None else math.inf for k, v in signals.items() if k in names}
    unknown = frozenset({m.split(":", 1)[0].strip() for m in missing} & names)
    snap = Snapshot(alert=alert, at=0.0, workload=None, signals=Signals(**values), slo=slo, unknown_signals=unknown)
    return approval_evidence(snap)


def remediation_status(ledger: Ledger, inc: IncidentRow, *, slo: Slo | None = None,
                       approval: Approval | None = None) -> dict[str, Any]:
    """The Remediation's status from the ledger: phase, reason, action, candidates, evidence, approver, recovery."""
    executions = ledger.executions(incident_id=inc.id)
    phase = phase_of(inc, executions)
    status: dict[str, Any] = {"phase": phase, "reason": _reason(inc, phase, executions)}
    candidates = ledger.candidates_of(inc.id)
    if candidates:
        last = max(c["snapshot_id"] for c in candidates)
        decision = [c for c in candidates if c["snapshot_id"] == last]
        status["candidates"] = [
            {"action": c["action"], "target": str(_ref(c["target"])), "score": _number(c["score"]),
             "verdict": c["verdict"], "reason": c["reason"]} for c in decision]
        chosen = next((c for c in decision if c["chosen"]), None)
        if chosen is not None:
            numeric = {k: v for k, v in chosen["params"].items() if _number(v) is not None}
            action: dict[str, Any] = {"kind": chosen["action"], "target": str(_ref(chosen["target"]))}
            if numeric:
                action["params"] = numeric
            if isinstance(chosen["params"].get("container"), str):
                action["container"] = chosen["params"]["container"]
            status["action"] = action
        snapshot = next((s for s in ledger.snapshots_of(inc.id) if s["id"] == last), None)
        if snapshot is not None:
            status["evidence"] = evidence(snapshot.get("signals"), list(snapshot.get("missing") or []), inc.alert,
                                          slo or Slo())
    if approval is not None and approval.evidence is not None:
        status["evidence"] = approval.evidence
    if approval is not None:
        if approval.approver:
            status["approver"] = approval.approver
        if approval.decided_at is not None:
            status["approvedAt"] = _iso(approval.decided_at)
        if approval.dry_run:
            status["dryRun"] = approval.dry_run
    if inc.recovery_s is not None and phase == "Verified":
        status["recoverySeconds"] = round(float(inc.recovery_s), 3)
    return status


def _ref(doc: Mapping[str, Any]) -> ObjectRef:
    return ObjectRef(str(doc["kind"]), str(doc.get("namespace", "")), str(doc["name"]))


def _reason(inc: IncidentRow, phase: str, executions: list[ExecutionRow]) -> str:
    if inc.close_reason:
        return inc.close_reason
    last = executions[-1] if executions else None
    if phase == "Executing" and last is not None:
        return f"{last.action.describe()}: {last.state}" + (f" ({last.error})" if last.error else "")
    if phase == "Proposed" and last is not None and last.dry_run:
        return f"dry run: would {last.action.describe()} ({last.state})"
    return inc.note or ("observing" if phase == "Proposed" else "")

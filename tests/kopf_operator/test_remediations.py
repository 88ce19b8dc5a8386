"""A Remediation from the ledger: the phase of each incident state, and a body the CRD accepts in every one.

The ledger is driven through its own API (as the loop drives it); every body is validated
against the chart's CRD (tests/helm/crd.py), so the mirror never writes what the API server
would refuse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from remediator.actions import Action, ActionKind, ObjectRef
from remediator.live.ledger import Ledger, ReceivedAlert
from remediator.live.receiver import fingerprint
from remediator.operator.remediations import Approval, evidence, parse_ref, remediation_body
from remediator.snapshot import Alert, Slo
from tests.helm.crd import validate_cr

CART = ObjectRef("Deployment", "shop", "cart")
ALERT = Alert("KubeDeploymentReplicasMismatch", {"namespace": "shop", "deployment": "cart"})
MISSING = ["latency_p99_s: no duration histogram"]
SIGNALS = {"error_ratio": 0.2, "latency_p99_s": 0.3, "desired_replicas": 0.0, "baseline_replicas": 3.0,
           "available_replicas": 0.0, "restarts_per_min": 0.0, "node_ready": 1.0, "mem_ratio": 0.9}


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with Ledger(tmp_path / "l.db", clock=lambda: 1000.0) as db:
        yield db


def _incident(ledger: Ledger, *, decide: bool = True, fp: str = "00c0ffee00c0ffee") -> int:
    [receipt] = ledger.record_alerts([ReceivedAlert(Alert(ALERT.name, ALERT.labels, starts_at=900.0,
                                                          fingerprint=fp))])
    incident_id = receipt.incident_id
    assert incident_id is not None
    if decide:
        snap = ledger.record_snapshot(incident_id, 1000.0, purpose="decide", workload=CART, signals=SIGNALS,
                                      observation=[0.0], missing=MISSING)
        ledger.record_candidates(incident_id, snap, [
            {"action": "restore_replicas", "target": CART, "params": {"replicas": 3}, "score": 1.5,
             "proposer_score": 0.9, "source": "catalog", "rationale": "r", "verdict": "allow",
             "reason": "all guards passed", "guard": "", "chosen": True},
            {"action": "raise_memory_limit", "target": CART, "params": {"factor": 1.5, "container": "app"},
             "score": 0.2, "proposer_score": 0.1, "source": "catalog", "rationale": "r", "verdict": "deny",
             "reason": "cooldown: 120s left", "guard": "cooldown", "chosen": False}])
        ledger.update_incident(incident_id, workload=str(CART))
    return incident_id


def _execute(ledger: Ledger, incident_id: int, *, dry_run: bool, state: str = "done") -> int:
    action = Action(ActionKind.RESTORE_REPLICAS, CART, {"replicas": 3})
    execution = ledger.record_intent(incident_id=incident_id, candidate_id=None, action=action,
                                     key=f"k-{incident_id}-{dry_run}", dry_run=dry_run, plan={}, inverse={},
                                     reversible=True, workload_key=CART)
    if state != "intent":
        ledger.finish_execution(execution, state)
    return execution


def _body(ledger: Ledger, incident_id: int, approval: Approval | None = None) -> dict[str, Any]:
    inc = ledger.incident(incident_id)
    assert inc is not None
    body = remediation_body(ledger, inc, "shop", approval=approval)
    validate_cr(body)
    return body


def test_a_decided_open_incident_is_proposed_with_its_candidates_and_evidence(ledger: Ledger) -> None:
    body = _body(ledger, _incident(ledger))
    st = body["status"]
    assert st["phase"] == "Proposed"
    assert st["action"] == {"kind": "restore_replicas", "target": "Deployment/shop/cart", "params": {"replicas": 3}}
    assert st["candidates"][1] == {"action": "raise_memory_limit", "target": "Deployment/shop/cart", "score": 0.2,
                                   "verdict": "deny", "reason": "cooldown: 120s left"}
    shown = {e["signal"]: (e["value"], e["slo"]) for e in st["evidence"]}
    assert shown["error_ratio"] == (0.2, 0.02) and shown["latency_p99_s"] == (None, 0.5)  # unknown, not healthy
    assert shown["desired_replicas"] == (0.0, 3.0) and shown["mem_ratio"] == (0.9, None)
    assert "restarts_per_min" not in shown and "node_ready" not in shown  # did not move
    assert shown == {e["signal"]: (e["value"], e["slo"]) for e in evidence(SIGNALS, MISSING, ALERT, Slo())}
    assert body["spec"]["target"] == {"kind": "Deployment", "namespace": "shop", "name": "cart"}
    assert body["spec"]["alert"]["fingerprint"] == "00c0ffee00c0ffee"


def test_a_fingerprint_the_crd_would_refuse_is_alertmanagers_of_the_labels(ledger: Ledger) -> None:
    body = _body(ledger, _incident(ledger, fp="not-hex"))
    assert body["spec"]["alert"]["fingerprint"] == fingerprint({"alertname": "KubeDeploymentReplicasMismatch",
                                                                "namespace": "shop", "deployment": "cart"})


def test_phases_follow_the_incident(ledger: Ledger) -> None:
    dry = _incident(ledger)
    _execute(ledger, dry, dry_run=True)
    st = _body(ledger, dry)["status"]
    assert st["phase"] == "Proposed" and st["reason"].startswith("dry run: would restore_replicas")
    _execute(ledger, dry, dry_run=False, state="intent")
    assert _body(ledger, dry)["status"]["phase"] == "Executing"

    ledger.update_incident(dry, status="recovered", closed_at=1100.0, recovery_s=200.0, close_reason="SLO verified")
    st = _body(ledger, dry)["status"]
    assert (st["phase"], st["recoverySeconds"], st["reason"]) == ("Verified", 200.0, "SLO verified")


def test_awaiting_approval_denied_cancelled_undone(ledger: Ledger) -> None:
    waiting = _incident(ledger)
    ledger.update_incident(waiting, status="awaiting_approval", note="awaits approval: mode: approve")
    shown = [{"signal": "error_ratio", "value": 0.5, "slo": 0.02}]
    body = _body(ledger, waiting, Approval(approver="alice", decided_at=1010.0, dry_run="spec.replicas: 0 -> 3",
                                           evidence=shown))
    assert body["status"]["evidence"] == shown  # what the approver was shown
    assert body["status"]["phase"] == "AwaitingApproval"
    assert (body["status"]["approver"], body["status"]["approvedAt"], body["status"]["dryRun"]) == \
        ("alice", "1970-01-01T00:16:50Z", "spec.replicas: 0 -> 3")
    ledger.update_incident(waiting, status="escalated", closed_at=1100.0, close_reason="every candidate was denied")
    assert _body(ledger, waiting)["status"]["phase"] == "Denied"


def test_cancelled_and_undone(tmp_path: Path) -> None:
    with Ledger(tmp_path / "a.db", clock=lambda: 1000.0) as ledger:
        unresolved = _incident(ledger, decide=False)
        ledger.update_incident(unresolved, status="cancelled", closed_at=1001.0, close_reason="alert resolved")
        body = _body(ledger, unresolved)
        assert body["status"] == {"phase": "Cancelled", "reason": "alert resolved"}
        assert body["spec"]["target"]["kind"] == "Unresolved"  # closed before its workload was resolved
    with Ledger(tmp_path / "b.db", clock=lambda: 1000.0) as ledger:
        undone = _incident(ledger)
        first = _execute(ledger, undone, dry_run=False)
        ledger.update_incident(undone, status="resolved", closed_at=1100.0, close_reason="alert resolved")
        inverse = ledger.record_intent(incident_id=None, candidate_id=None, undo_of=first, key="undo",
                                       action=Action(ActionKind.RESTORE_REPLICAS, CART, {"replicas": 0}),
                                       dry_run=False, plan={}, inverse={}, reversible=False)
        ledger.mark_undone(first, inverse)
        assert _body(ledger, undone)["status"]["phase"] == "Undone"


def test_refs_and_evidence_edges() -> None:
    assert parse_ref("Node/node-a") == ObjectRef("Node", "", "node-a")
    assert parse_ref("Deployment/shop/cart") == CART and parse_ref("nonsense") is None and parse_ref(None) is None
    assert evidence(None, [], ALERT, Slo()) == []
    assert evidence({"error_ratio": None}, [], ALERT, Slo())[0] == {"signal": "error_ratio", "value": None,
                                                                      "slo": 0.02}

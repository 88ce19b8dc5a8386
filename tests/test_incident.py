"""The incident lifecycle: every allowed transition passes, every other one is refused, also by the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediator.incident import ACTIVE, CLOSED, TRANSITIONS, IllegalTransition, IncidentStatus, check_transition
from remediator.live.ledger import Ledger, ReceivedAlert
from remediator.snapshot import Alert

S = IncidentStatus


@pytest.mark.parametrize("old", list(S))
@pytest.mark.parametrize("new", list(S))
def test_only_the_listed_transitions_are_allowed(old: IncidentStatus, new: IncidentStatus) -> None:
    if new is old or new in TRANSITIONS[old]:
        assert check_transition(old.value, new.value) is new
    else:
        with pytest.raises(IllegalTransition, match=f"from {old} to {new}"):
            check_transition(old.value, new.value)


def test_closed_incidents_are_final_and_waiting_for_a_human_is_not_recovery() -> None:
    assert ACTIVE == {S.OPEN, S.AWAITING_APPROVAL} and CLOSED == set(S) - ACTIVE
    assert all(TRANSITIONS[s] == frozenset() for s in CLOSED)
    assert S.RECOVERED not in TRANSITIONS[S.AWAITING_APPROVAL] and S.OPEN in TRANSITIONS[S.AWAITING_APPROVAL]
    with pytest.raises(IllegalTransition, match="unknown incident status"):
        check_transition("open", "reopened")


def test_the_ledger_refuses_an_illegal_transition_and_changes_nothing(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as ledger:
        [receipt] = ledger.record_alerts([ReceivedAlert(Alert("KubePodCrashLooping", {
            "namespace": "shop", "deployment": "cart"}, starts_at=1000.0, fingerprint="f1"))])
        assert receipt.incident_id is not None
        ledger.update_incident(receipt.incident_id, status=S.RECOVERED, closed_at=2000.0)
        with pytest.raises(IllegalTransition, match="from recovered to open"):
            ledger.update_incident(receipt.incident_id, status="open", note="reopened by a bug")
        row = ledger.incident(receipt.incident_id)
        assert row is not None and row.status == "recovered" and row.note != "reopened by a bug"

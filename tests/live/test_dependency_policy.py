"""A dependency in another namespace is judged by that namespace's guards.

The loop asks the policy of the namespace an action acts in (`Loop.policy_of`): a restart of
payments/paymentservice, proposed for an incident on shop/cart, meets payments' RemediationPolicy
(here a change freeze), while cart's own actions meet shop's. Real ledger, the catalog proposer,
the rules ranker; the observer is a fixed snapshot.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from remediator.actions import ObjectRef
from remediator.guards import FreezeWindow, GuardPolicy
from remediator.live.ledger import Ledger
from remediator.live.loop import Loop
from remediator.propose.catalog import CatalogProposer
from remediator.rank import RulesRanker
from tests.live.conftest import NS, snapshot_for
from tests.live.test_approval import FixedWorld, open_incident

PAYMENTS = ObjectRef("Deployment", "payments", "paymentservice")
OPEN = GuardPolicy(approval_risk=None)
FROZEN = GuardPolicy(approval_risk=None, freeze_windows=[FreezeWindow(start="00:00", end="23:59", name="payday")])


def _restart_rows(ledger: Ledger, incident: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    rows = ledger.candidates_of(incident)
    dep = [r for r in rows if r["action"] == "restart_dependency"]
    own = [r for r in rows if r["action"] not in ("restart_dependency", "noop", "escalate")]
    return dep, own


def test_a_dependency_elsewhere_meets_its_namespaces_policy(tmp_path: Path) -> None:
    snap = dataclasses.replace(snapshot_for(), dependencies=(PAYMENTS,),
                               dependency_labels={"payments/paymentservice": {"app": "paymentservice"}})
    with Ledger(tmp_path / "l.db") as ledger:
        incident = open_incident(ledger, snap)
        loop = Loop(ledger, FixedWorld(snap), CatalogProposer(), RulesRanker(), OPEN, None,  # type: ignore[arg-type]
                    policies=lambda ns: FROZEN if ns == "payments" else OPEN)
        loop.tick(1100.0)
        dep, own = _restart_rows(ledger, incident)
        assert dep and all(r["target"]["namespace"] == "payments" for r in dep)  # type: ignore[index]
        assert all(r["verdict"] == "deny" and r["guard"] == "freeze" for r in dep), dep
        assert own and all(r["guard"] != "freeze" for r in own), own  # shop is not frozen
        assert all(r["target"]["namespace"] in (NS, "") for r in own)  # type: ignore[index]

    # With payments open, the same restart passes every guard.
    with Ledger(tmp_path / "m.db") as ledger:
        incident = open_incident(ledger, snap)
        Loop(ledger, FixedWorld(snap), CatalogProposer(), RulesRanker(), OPEN, None,  # type: ignore[arg-type]
             policies=lambda ns: OPEN).tick(1100.0)
        dep, _ = _restart_rows(ledger, incident)
        assert dep and all(r["verdict"] == "allow" for r in dep), dep

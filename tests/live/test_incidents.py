"""Incidents are per workload, and one closed while its alert still fires does not go silent.

The real loop and ledger over the emulated cluster (official client): three crash-looping pods of
one Deployment arrive as three alerts (three fingerprints) and end as one incident; the incident
closes only when the last of its alerts resolves; one the agent closed as recovered while its
alert kept firing reopens after `verify.reopen_after_s`, with a fresh horizon.
"""

from __future__ import annotations

from pathlib import Path

from remediator.guards import GuardPolicy
from remediator.live.config import VerifySettings
from remediator.live.ledger import Ledger, ReceivedAlert
from remediator.live.loop import Loop
from remediator.live.observer import KubeObjectSource, Observer
from remediator.propose.catalog import CatalogProposer
from remediator.rank import RulesRanker
from remediator.snapshot import Alert
from tests.live.conftest import NS
from tests.support.kube import KubeServer

T0 = 1_790_000_000.0


def _crash(pod: str, *, status: str = "firing") -> ReceivedAlert:
    return ReceivedAlert(Alert("KubePodCrashLooping", {"namespace": NS, "pod": pod, "container": "cart"},
                               starts_at=T0, status=status, fingerprint=f"fp-{pod}"),
                         ends_at=T0 + 600 if status == "resolved" else None)


def _loop(ledger: Ledger, kube: KubeServer, **verify: float) -> Loop:
    observer = Observer(None, KubeObjectSource(kube.api_client(), clock=lambda: T0), clock=lambda: T0)
    return Loop(ledger, observer, CatalogProposer(), RulesRanker(), GuardPolicy(), None,
                verify=VerifySettings(**verify), clock=lambda: T0)


def test_three_crash_looping_pods_of_one_deployment_are_one_incident(tmp_path: Path, kube: KubeServer) -> None:
    pods = [p["metadata"]["name"] for p in kube.seed_deployment("cart", NS, replicas=3)["pods"]]
    other = kube.seed_deployment("web", NS, replicas=1)["pods"][0]["metadata"]["name"]
    with Ledger(tmp_path / "l.db") as ledger:
        receipts = ledger.record_alerts([_crash(p) for p in pods] + [_crash(other)], received_at=T0)
        assert len({r.incident_id for r in receipts}) == 4  # at intake the workload is not known yet
        reports = {r.incident_id: r for r in _loop(ledger, kube).tick(T0 + 15)}
        first = receipts[0].incident_id
        joined = [reports[r.incident_id] for r in receipts[1:3]]
        assert [r.outcome for r in joined] == ["joined", "joined"]
        assert all(f"incident {first} already works on Deployment/{NS}/cart" in r.detail for r in joined)
        assert reports[receipts[3].incident_id].outcome != "joined"  # another workload: its own incident
        active = [i for i in ledger.incidents() if i.status in ("open", "awaiting_approval")]
        assert sorted(i.id for i in active) == sorted({first, receipts[3].incident_id})
        assert [a["labels"]["pod"] for a in ledger.alerts_of(first)] == pods  # every pod's alert, on one incident
        closed = [ledger.incident(r.incident_id) for r in receipts[1:3]]
        assert all(i is not None and i.status == "cancelled" and i.close_reason ==
                   f"joined incident {first}: the same workload Deployment/{NS}/cart" for i in closed)
        # It ends with the last of its alerts: two pods recovering is not the workload recovering.
        ledger.record_alerts([_crash(pods[0], status="resolved"), _crash(pods[1], status="resolved")])
        assert ledger.incident(first).status == "open"  # type: ignore[union-attr]
        [last] = ledger.record_alerts([_crash(pods[2], status="resolved")])
        assert last.closed_incident and ledger.incident(first).status == "cancelled"  # type: ignore[union-attr]


def test_an_incident_closed_as_recovered_while_its_alert_fires_reopens(tmp_path: Path, kube: KubeServer) -> None:
    pod = kube.seed_deployment("cart", NS, replicas=1)["pods"][0]["metadata"]["name"]
    with Ledger(tmp_path / "l.db") as ledger:
        [receipt] = ledger.record_alerts([_crash(pod)], received_at=T0)
        inc = receipt.incident_id
        assert inc is not None
        ledger.update_incident(inc, status="recovered", closed_at=T0 + 300, recovered_at=T0 + 300,
                               close_reason="SLO verified")
        loop = _loop(ledger, kube, reopen_after_s=600.0, horizon_s=1800.0)
        assert loop.ledger.reopen_still_firing(T0 + 800, grace_s=600.0) == []  # not yet: the alert may follow
        reports = loop.tick(T0 + 2400)  # past the first horizon, but the reopened one counts from now
        # Reopened, then observed again at once (no Prometheus here: not usable, so no action), not failed.
        assert [(r.incident_id, r.outcome) for r in reports] == [(inc, "reopened"), (inc, "stale")]
        row = ledger.incident(inc)
        assert row is not None and row.status == "open" and row.reopened_at == T0 + 2400 and row.streak == 0
        # Resolved, it closes as any incident does; a recovered one whose alert resolved stays closed.
        ledger.record_alerts([_crash(pod, status="resolved")])
        assert ledger.incident(inc).status == "cancelled"  # type: ignore[union-attr]
        assert ledger.reopen_still_firing(T0 + 9999, grace_s=600.0) == []

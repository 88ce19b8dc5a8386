"""Approval: a parked action is decided once, by an allowed approver, before its deadline, and runs once.

Real parts: the executor against the Kubernetes emulator through the official client, the SQLite
ledger on disk, the CLI through Typer. The observer is a fixed snapshot (the world the guards
judge), changed by the tests where the world changes while a human decides.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from remediator.cli import app
from remediator.guards import GuardPolicy
from remediator.live.approval import Approvals, NotAllowed, evidence, waits_for
from remediator.live.executor import KubeExecutor
from remediator.live.kube import Backoff
from remediator.live.ledger import Ledger, ReceivedAlert
from remediator.live.loop import Loop
from remediator.live.observer import Observation
from remediator.propose.catalog import CatalogProposer
from remediator.rank import RulesRanker
from remediator.snapshot import Alert, Snapshot
from tests.live.conftest import APP, NS, seed_workload, snapshot_for
from tests.support.kube import KubeServer

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


class FixedWorld:
    """The observer: this snapshot at every observation (`snap` may be replaced: the world changed)."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def observe(self, alert: Alert, *, now: float, history: Any = (), known_good: Any = ()) -> Observation:
        return Observation(dataclasses.replace(self.snap, at=now, history=tuple(history)), (), (), (), now, None, 0,
                           0.0)


def make_loop(kube: KubeServer, ledger: Ledger, world: FixedWorld, *, mode: str = "approve",
              deadline_s: float = 600.0, policy: GuardPolicy | None = None) -> Loop:
    executor = KubeExecutor(kube.api_client(retries=False), ledger, dry_run=mode == "dry-run",
                            backoff=Backoff(base_s=0.01, max_s=0.02))
    return Loop(ledger, world, CatalogProposer(), RulesRanker(), policy or GuardPolicy(), executor,  # type: ignore[arg-type]
                mode=mode, approval_deadline_s=deadline_s)


def approvals(ledger: Ledger, **names: list[str]) -> Approvals:
    return Approvals(ledger, approvers={"cli": names.get("cli", ["alice"]), "webhook": names.get("cli", ["alice"]),
                                        "slack": names.get("slack", ["U024BE7LH"])}, clock=lambda: 1100.0)


def open_incident(ledger: Ledger, snap: Snapshot) -> int:
    [receipt] = ledger.record_alerts([ReceivedAlert(snap.alert)], received_at=1000.0)
    assert receipt.incident_id is not None
    return receipt.incident_id


def restarts(kube: KubeServer) -> str | None:
    dep = kube.get("apps/v1", "Deployment", NS, APP)
    assert dep is not None
    return ((dep["spec"]["template"].get("metadata") or {}).get("annotations") or {}).get(RESTARTED_AT)


def test_waits_for_follows_the_mode() -> None:
    from remediator.actions import ActionKind
    from remediator.guards import Decision, Verdict

    allow, ask = Verdict(Decision.ALLOW, "ok", ""), Verdict(Decision.NEEDS_APPROVAL, "risk high", "risk")
    kind = ActionKind.ROLLBACK_ROLLOUT
    assert waits_for("dry-run", kind, ask) is None and waits_for("dry-run", kind, allow) is None
    assert waits_for("auto", kind, allow) is None and waits_for("auto", kind, ask) == "risk high"
    assert waits_for("approve", kind, allow) is not None and waits_for("approve", kind, ask) == "risk high"
    assert waits_for("approve", ActionKind.NOOP, allow) is None
    assert waits_for("approve", ActionKind.ESCALATE, ask) is None


def test_an_approved_action_runs_once_rejudged_and_a_second_decision_changes_nothing(kube: KubeServer,
                                                                                     ledger: Ledger) -> None:
    seed_workload(kube)
    world = FixedWorld(snapshot_for())
    loop = make_loop(kube, ledger, world)
    incident = open_incident(ledger, world.snap)
    [report] = loop.tick(1060.0)
    assert report.outcome == "awaiting_approval"
    [pending] = ledger.approvals(state="pending")
    assert pending.action.kind.value == "restart_rollout" and pending.deadline == 1660.0
    # The request carries the server-side dry run of this very action, and what the approver is shown.
    [obj] = pending.preview["objects"]
    assert obj["object"] == f"Deployment/{NS}/{APP}" and pending.preview["error"] is None
    assert [c["field"] for c in obj["changes"]] == [f'spec.template.metadata.annotations["{RESTARTED_AT}"]']
    assert pending.message["candidates"][0]["chosen"] and pending.message["evidence"]
    # Nothing ran while it waits, however often the loop ticks.
    for t in (1075.0, 1090.0, 1200.0):
        assert loop.tick(t) == []
    assert restarts(kube) is None and ledger.executions(incident_id=incident) == []

    decider = approvals(ledger)
    first = decider.decide(pending.id, approve=True, approver="alice", channel="cli", at=1210.0)
    assert first.changed and first.approval.state == "approved" and first.approval.approver == "alice"
    again = decider.decide(pending.id, approve=False, approver="alice", channel="cli", at=1211.0)
    assert not again.changed and "already approved by alice (cli)" in again.message
    assert ledger.approval(pending.id).state == "approved"  # type: ignore[union-attr]

    [ran] = loop.tick(1220.0)
    assert ran.outcome == "acted" and ran.execution is not None and ran.execution.ok
    assert restarts(kube) is not None
    for t in (1235.0, 1300.0, 1400.0):  # verification ticks, decisions after decision_s: never the same approval
        loop.tick(t)
    approved = [e for e in ledger.executions(incident_id=incident) if e.action.kind.value == "restart_rollout"]
    assert len(approved) == 1
    row = ledger.approval(pending.id)
    assert row is not None and row.run_state == "executed" and row.execution_id == approved[0].id


def test_the_allow_list_refuses_and_records_and_a_denied_action_never_runs(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    world = FixedWorld(snapshot_for())
    loop = make_loop(kube, ledger, world)
    incident = open_incident(ledger, world.snap)
    loop.tick(1060.0)
    [pending] = ledger.approvals(state="pending")
    decider = approvals(ledger)
    with pytest.raises(NotAllowed, match="'mallory' is not an approver on the cli channel"):
        decider.decide(pending.id, approve=True, approver="mallory", channel="cli", at=1100.0)
    with pytest.raises(NotAllowed, match="not an approver on the slack channel"):
        decider.decide(pending.id, approve=True, approver="alice", channel="slack", at=1100.0)
    assert [r["who"] for r in ledger.refusals(pending.id)] == ["mallory", "alice"]
    from remediator.operator.metrics import LedgerCollector, registry_text

    metrics = registry_text(LedgerCollector(ledger))
    assert 'remediator_approval_refusals_total{channel="cli"} 1.0' in metrics
    assert 'remediator_approval_refusals_total{channel="slack"} 1.0' in metrics
    assert 'remediator_approvals_total{state="pending"} 1.0' in metrics
    assert ledger.approval(pending.id).state == "pending"  # type: ignore[union-attr]

    denied = decider.decide(pending.id, approve=False, approver="alice", channel="cli", at=1101.0)
    assert denied.changed and denied.approval.state == "denied"
    inc = ledger.incident(incident)
    assert inc is not None and inc.status == "denied" and "denied by alice" in (inc.close_reason or "")
    late = decider.decide(pending.id, approve=True, approver="alice", channel="cli", at=1102.0)
    assert not late.changed and "already denied" in late.message
    for t in (1120.0, 1200.0, 1800.0):
        loop.tick(t)
    assert restarts(kube) is None and ledger.executions(incident_id=incident) == []


def test_no_answer_by_the_deadline_means_deny_and_a_late_click_changes_nothing(kube: KubeServer,
                                                                              ledger: Ledger) -> None:
    seed_workload(kube)
    world = FixedWorld(snapshot_for())
    loop = make_loop(kube, ledger, world, deadline_s=300.0)
    incident = open_incident(ledger, world.snap)
    loop.tick(1060.0)
    [pending] = ledger.approvals(state="pending")
    # A decision after the deadline, before the loop noticed: it expires now and changes nothing.
    late = approvals(ledger).decide(pending.id, approve=True, approver="alice", channel="cli", at=1361.0)
    assert not late.changed and "expired" in late.message and late.approval.state == "expired"
    inc = ledger.incident(incident)
    assert inc is not None and inc.status == "expired"
    loop.tick(1400.0)
    assert restarts(kube) is None and ledger.executions(incident_id=incident) == []


def test_the_loop_expires_a_request_nobody_answered(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    world = FixedWorld(snapshot_for())
    loop = make_loop(kube, ledger, world, deadline_s=300.0)
    incident = open_incident(ledger, world.snap)
    loop.tick(1060.0)
    assert [r.outcome for r in loop.tick(1300.0)] == []  # before the deadline: still waiting
    [expired] = loop.tick(1361.0)
    assert expired.outcome == "expired" and ledger.incident(incident).status == "expired"  # type: ignore[union-attr]
    assert ledger.approvals(state="pending") == []


def test_an_approval_the_world_no_longer_allows_is_not_run(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    world = FixedWorld(snapshot_for())
    loop = make_loop(kube, ledger, world)
    open_incident(ledger, world.snap)
    loop.tick(1060.0)
    [pending] = ledger.approvals(state="pending")
    approvals(ledger).decide(pending.id, approve=True, approver="alice", channel="cli", at=1100.0)
    # Meanwhile someone protected the workload: the guards judge the approved action again and refuse it.
    world.snap = dataclasses.replace(world.snap, workload_labels={"remediator.io/protected": "true"})
    reports = loop.tick(1120.0)
    row = ledger.approval(pending.id)
    assert row is not None and row.run_state == "refused" and "protected" in (row.run_note or "")
    assert restarts(kube) is None
    assert all(r.outcome != "acted" for r in reports)


def test_dry_run_never_acts_and_never_asks(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    world = FixedWorld(snapshot_for())
    # approval_risk low: a restart needs approval in auto; in dry-run it is only reported.
    loop = make_loop(kube, ledger, world, mode="dry-run", policy=GuardPolicy.model_validate({"approval_risk": "low"}))
    incident = open_incident(ledger, world.snap)
    [report] = loop.tick(1060.0)
    assert report.outcome == "acted" and report.execution is not None and report.execution.dry_run
    assert ledger.approvals() == [] and restarts(kube) is None
    inc = ledger.incident(incident)
    assert inc is not None and inc.status == "open" and "would wait for approval" in (inc.note or "")


def test_auto_asks_only_where_the_guards_say_needs_approval(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    world = FixedWorld(snapshot_for())
    auto = make_loop(kube, ledger, world, mode="auto")
    first = open_incident(ledger, world.snap)
    [acted] = auto.tick(1060.0)
    assert acted.outcome == "acted" and acted.execution is not None and acted.execution.ok
    assert ledger.approvals(incident_id=first) == [] and restarts(kube) is not None


def test_a_restart_with_an_approval_pending_loses_nothing_and_runs_nothing_twice(kube: KubeServer,
                                                                                tmp_path: Path) -> None:
    seed_workload(kube)
    t0 = time.time() - 60.0  # the CLI decides on the wall clock: the incident is a minute old
    snap = snapshot_for()
    world = FixedWorld(dataclasses.replace(snap, alert=dataclasses.replace(snap.alert, starts_at=t0)))
    store = tmp_path / "ledger.db"
    with Ledger(store) as ledger:
        [receipt] = ledger.record_alerts([ReceivedAlert(world.snap.alert)], received_at=t0)
        incident = receipt.incident_id
        make_loop(kube, ledger, world).tick(t0 + 1.0)
        [pending] = ledger.approvals(state="pending")
    # The process is gone; the approval arrives through the CLI, on the file alone.
    config = tmp_path / "remediator.yaml"
    config.write_text(yaml.safe_dump({"store": str(store), "approval": {"approvers": ["alice"]}}))
    runner = CliRunner()
    refused = runner.invoke(app, ["approve", str(pending.id), "--as", "mallory", "--config", str(config)])
    assert refused.exit_code == 2 and "not an approver" in refused.output
    done = runner.invoke(app, ["approve", str(pending.id), "--as", "alice", "--config", str(config), "--json"])
    assert done.exit_code == 0, done.output
    doc = json.loads(done.output)
    assert doc["changed"] and doc["state"] == "approved" and doc["approver"] == "alice" and doc["channel"] == "cli"
    assert doc["request"]["dry_run"]["objects"]
    again = runner.invoke(app, ["approve", str(pending.id), "--as", "alice", "--config", str(config), "--json"])
    assert again.exit_code == 0 and not json.loads(again.output)["changed"]
    deny = runner.invoke(app, ["deny", str(pending.id), "--as", "alice", "--config", str(config)])
    assert deny.exit_code == 1 and "already approved" in deny.output
    unknown = runner.invoke(app, ["approve", "999", "--as", "alice", "--config", str(config)])
    assert unknown.exit_code == 2 and "no approval 999" in unknown.output

    for t in (time.time(), time.time() + 15.0):  # two new processes, one after the other, on the same file
        with Ledger(store) as ledger:
            loop = make_loop(kube, ledger, world)
            loop.recover(t)
            loop.tick(t)
    with Ledger(store) as ledger:
        ran = [e for e in ledger.executions(incident_id=incident) if e.action.kind.value == "restart_rollout"]
        assert len(ran) == 1 and ran[0].state == "done"
        history = ledger.history()
        [entry] = [h for h in history if h["id"] == incident]
        assert entry["approvals"][0]["approver"] == "alice" and entry["approvals"][0]["run"] == "executed"
    assert restarts(kube) is not None


def test_evidence_lists_what_moved_against_its_objective() -> None:
    snap = snapshot_for()
    snap = dataclasses.replace(snap, signals=dataclasses.replace(snap.signals, error_ratio=0.3, restarts_per_min=2.0,
                                                                 available_replicas=1.0))
    got = {e["signal"]: e for e in evidence(snap)}
    assert got["error_ratio"] == {"signal": "error_ratio", "value": 0.3, "slo": snap.slo.error_ratio}
    assert got["available_replicas"]["slo"] == 2.0 and got["restarts_per_min"]["value"] == 2.0
    assert "mem_ratio" not in got  # did not move
    unknown = dataclasses.replace(snap, unknown_signals=frozenset({"latency_p99_s"}))
    assert {e["signal"]: e for e in evidence(unknown)}["latency_p99_s"]["value"] is None

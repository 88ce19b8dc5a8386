"""revert_config of a Secret edited in place (opt-in: `secrets.revert` with a sealing key), end to end.

Real parts: a real Prometheus holding a simulated incident's healthy timeline, the official client
against the Kubernetes emulator (validating every object it stores with kubernetes-validate), the
agent built from its configuration file, its SQLite ledger. While cart is healthy the sweep reads the
Secret cart mounts and records its digest and its values sealed; someone then edits the Secret in
place; the observer sees it as revertible drift; the executor puts the good values back and restarts
cart, and `undo` puts the edited values back. The values never appear in the ledger file or the logs.
With another key the revert fails before any write; with the switch off no Secret is read and the edit
can only be escalated.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client as k
import pytest

from remediator.actions import SPECS, Action, ActionKind, ObjectRef
from remediator.guards import Decision, GuardPolicy, judge
from remediator.live.config import LiveConfig, SecretSettings, load_config
from remediator.live.executor import API_CALLS, RESTARTED_AT, SECRET_API_CALLS, KubeExecutor
from remediator.live.kube import Backoff
from remediator.live.ledger import Ledger
from remediator.live.observer import API_CALLS as OBSERVER_CALLS
from remediator.live.observer import SECRET_API_CALLS as OBSERVER_SECRET_CALLS
from remediator.live.sealing import Sealer
from remediator.live.service import Agent
from remediator.live.wiring import make_executor, make_observer
from remediator.propose.catalog import CatalogProposer
from remediator.rank.rules import expert_plan
from remediator.snapshot import Alert, Neighbour, Snapshot
from remediator.versions import ConfigDrift, ConfigVersion, KnownGood, config_version, redact_secret
from tests.live.conftest import requires_prometheus, seed_workload, snapshot_for, validating
from tests.live.sim import incident, manifests, prometheus_with, written
from tests.live.test_loop import SimClock, timeline, write_config
from tests.live.test_scope import _api_call
from tests.support.kube import KubeEmulator, KubeServer

CART = ObjectRef("Deployment", "shop", "cart")
SECRET = ObjectRef("Secret", "shop", "cart-credentials")
KEY = "3f9c2e7a41d8b6055e1f0a9c7d3b2e8f-sealing-key-for-tests"
OTHER_KEY = "0000000000000000000000000000000000000000-another-key"
GOOD_VALUE, BAD_VALUE = "s3cr3t-GOOD-password-7731", "s3cr3t-BAD-password-0042"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret(value: str, t: float) -> dict[str, Any]:
    return written({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                     "metadata": {"name": SECRET.name, "namespace": "shop"}, "data": {"password": _b64(value)}}, t)


def _values_in(text: str | bytes) -> list[str]:
    """Which of the Secret's values (plain or base64, good or edited) `text` holds."""
    data = text.encode() if isinstance(text, str) else text
    return [v for v in (GOOD_VALUE, BAD_VALUE, _b64(GOOD_VALUE), _b64(BAD_VALUE)) if v.encode() in data]


@dataclass
class World:
    kube: KubeServer
    config: LiveConfig
    agent: Agent
    clock: SimClock
    at: float  # when the Secret was edited

    def observe(self, config: LiveConfig | None = None) -> Snapshot:
        """cart as an alert about it shows it now, through the agent's observer (or one built from `config`)."""
        observer = self.agent.loop.observer if config is None else make_observer(
            config, kube_api=self.kube.api_client(), clock=self.clock)
        alert = Alert("KubePodCrashLooping", {"namespace": "shop", "deployment": "cart"}, starts_at=self.at + 30)
        return observer.observe(alert, now=self.clock.t, known_good=self.agent.ledger.known_good("shop")).snapshot

    def secret_value(self) -> str:
        secret = self.kube.get("v1", "Secret", "shop", SECRET.name)
        assert secret is not None
        return base64.b64decode(secret["data"]["password"]).decode()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[World]:
    """cart healthy with its Secret sealed by the sweep, then the Secret edited in place."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("REMEDIATOR_SECRET_KEY", KEY)
    inc = incident("config_edited", after_s=0)
    a = inc.alert_at
    with KubeServer(KubeEmulator()) as kube:
        objects = manifests(inc.cluster.objects(), node_names=list(inc.cluster.nodes))
        kube.seed(*[written(o, a - 86400) for o in objects], _secret(GOOD_VALUE, a - 86400),
                  written({"apiVersion": "v1", "kind": "ConfigMap", "data": {"mode": "v1"},
                            "metadata": {"name": "cart-config", "namespace": "shop"}}, a - 86400))
        validating(kube)
        with prometheus_with(tmp_path / "p", timeline(inc, a + 120)) as prom:
            config = load_config(write_config(
                tmp_path, kube, prom.url, mode="auto", horizon_s=1800.0, secrets={"revert": True},
                known_good={"interval_s": 30, "settle_s": 60, "namespaces": ["shop"]}))
            clock = SimClock(a - 760)
            agent = Agent(config, clock=clock).start(worker=False)
            try:
                agent.loop.tick(a - 760)  # the healthy-time sweep: cart's Secret sealed
                assert agent.loop.sweep is not None and CART in agent.loop.sweep.last_report.recorded, \
                    agent.loop.sweep.last_report if agent.loop.sweep is not None else None
                edited = a - 700
                k.CoreV1Api(kube.api_client()).patch_namespaced_secret(SECRET.name, "shop", _secret(BAD_VALUE, edited))
                clock.t = edited + 30
                yield World(kube, config, agent, clock, edited)
            finally:
                agent.stop()


@requires_prometheus
def test_an_edited_secret_is_restored_its_users_restarted_and_undo_puts_the_edit_back(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    kube, agent = world.kube, world.agent
    [record] = [r for r in agent.ledger.known_good("shop") if r.workload == CART]
    good = record.config(SECRET)
    assert good is not None and good.digest and good.sealed, "the sweep sealed cart's Secret while healthy"
    snap = world.observe()
    drift = next(d for d in snap.config_drift if d.current.ref == SECRET)
    assert drift.how == "edited" and drift.blocked == "" and drift.good.digest == good.digest
    assert snap.signals.config_revertible == 1.0 and snap.signals.config_secret_edited == 0.0
    assert not _values_in(repr(snap)), "the snapshot holds no value of the Secret"
    revert = next(c for c in CatalogProposer().propose(snap) if c.kind is ActionKind.REVERT_CONFIG)
    assert revert.action.target == SECRET
    verdict = judge(revert.action, snap, (), GuardPolicy(), snap.at)
    assert verdict.decision is not Decision.DENY, verdict
    assert "will be replaced by its last-known-good values" in SPECS[ActionKind.REVERT_CONFIG].approval_text(SECRET)

    preview = agent.executor.preview(revert.action, snap)
    assert preview["error"] is None, preview
    assert any("replaced by its last-known-good version" in s and "not shown" in s for s in preview["summary"])
    assert not _values_in(repr(preview)) and world.secret_value() == BAD_VALUE, "a preview changes nothing"

    start = len(kube.requests())
    result = agent.executor.execute(revert.action, snap, dry_run=False, reason="test")
    assert result.ok, result.error
    assert world.secret_value() == GOOD_VALUE
    dep = kube.get("apps/v1", "Deployment", "shop", "cart")
    assert dep is not None and RESTARTED_AT in dep["spec"]["template"]["metadata"]["annotations"]
    assert any("rolling restart" in c and "Deployment shop/cart" in c for c in result.changes), result.changes

    undone = agent.executor.undo(result.execution_id)
    assert undone.ok, undone.error
    assert world.secret_value() == BAD_VALUE, "undo put the edited values back"
    dep = kube.get("apps/v1", "Deployment", "shop", "cart")
    assert dep is not None and RESTARTED_AT not in (dep["spec"]["template"]["metadata"].get("annotations") or {})

    # Every call is one the chart grants with the switch on; the Secret was read and written back.
    calls = {_api_call(r.method, r.path) for r in kube.requests()[start:]}
    granted = {*API_CALLS, *SECRET_API_CALLS, *OBSERVER_CALLS, *OBSERVER_SECRET_CALLS}
    assert calls <= granted, sorted(calls - granted)
    assert {("get", "", "secrets"), ("patch", "", "secrets")} <= calls
    # The values never reach the ledger file, nor any log line.
    assert not _values_in(repr(agent.ledger.execution(result.execution_id)))
    assert not _values_in(repr(agent.ledger.execution(undone.execution_id)))
    for path in Path(world.config.store).parent.glob("ledger.db*"):  # the database and its journal
        assert not _values_in(path.read_bytes()), path
    assert "cart-credentials" in caplog.text and not _values_in(caplog.text)


@requires_prometheus
def test_another_key_fails_with_the_reason_and_touches_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    snap = world.observe()
    monkeypatch.setenv("REMEDIATOR_SECRET_KEY", OTHER_KEY)
    other = make_executor(world.config, world.kube.api_client(retries=False), world.agent.ledger, dry_run=False,
                          clock=world.clock)
    before = len(world.kube.requests())
    result = other.execute(Action(ActionKind.REVERT_CONFIG, SECRET), snap)
    assert result.state == "failed"
    assert f"cannot open the sealed values of {SECRET}: it was sealed with key" in (result.error or ""), result.error
    assert [r for r in world.kube.requests()[before:] if r.method != "GET"] == []
    assert world.secret_value() == BAD_VALUE


@requires_prometheus
def test_with_the_switch_off_or_no_key_no_secret_is_read_and_the_secret_is_not_reverted(
        world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    off = world.config.model_copy(update={"secrets": SecretSettings()})
    monkeypatch.delenv("REMEDIATOR_SECRET_KEY")
    for config in (off, world.config):  # switched off; switched on without a key
        before = len(world.kube.requests())
        snap = world.observe(config)
        assert not [r for r in world.kube.requests()[before:] if "/secrets" in r.path], "a Secret was read"
        assert not any(d.current.ref == SECRET for d in snap.config_drift)
        verdict = judge(Action(ActionKind.REVERT_CONFIG, SECRET), snap, (), GuardPolicy(), snap.at)
        assert verdict.decision is Decision.DENY, verdict
        assert ActionKind.REVERT_CONFIG not in expert_plan(snap)[:1]
    assert "no sealing key was found in $REMEDIATOR_SECRET_KEY" in caplog.text
    # An executor without a key refuses a Secret revert it is handed (judged with the key), with the reason.
    executor = make_executor(world.config, world.kube.api_client(retries=False), world.agent.ledger, dry_run=False,
                             clock=world.clock)
    result = executor.execute(Action(ActionKind.REVERT_CONFIG, SECRET), world.observe())
    assert result.state == "failed" and "Secret reverts are off here" in (result.error or ""), result.error
    assert world.secret_value() == BAD_VALUE


# ---------------------------------------------------------------------------- the executor's refusals
# (the emulator alone, as tests/live/test_remedies.py: a sealed record, a Secret edited since)


def _sealed_world(kube: KubeServer, ledger: Ledger, *, immutable: bool = False) -> tuple[KubeExecutor, Snapshot]:
    """cart seeded with its Secret edited in place (immutable if asked), the ledger holding the good
    values sealed, and the incident as the guards judged it."""
    seed_workload(kube)
    edited = {**_secret(BAD_VALUE, 0), **({"immutable": True} if immutable else {})}
    k.CoreV1Api(kube.api_client()).create_namespaced_secret("shop", edited)
    stored = kube.get("v1", "Secret", "shop", SECRET.name)
    assert stored is not None
    sealer = Sealer.from_secret(KEY)
    good = config_version({**stored, "data": _secret(GOOD_VALUE, 0)["data"]})  # the same object, its good values
    sealed = dataclasses.replace(good, sealed=sealer.seal(SECRET, {"data": _secret(GOOD_VALUE, 0)["data"]}))
    ledger.record_known_good(KnownGood(CART, 900.0, (sealed,)))
    now = config_version(redact_secret(stored))
    snap = dataclasses.replace(snapshot_for(), configs=(now,),
                               config_drift=(ConfigDrift(now, ConfigVersion(SECRET, good.digest), "edited"),),
                               config_users=(Neighbour(CART, {"app": "cart"}),))
    executor = KubeExecutor(kube.api_client(retries=False), ledger, dry_run=False, sealer=sealer,
                            backoff=Backoff(base_s=0.01, max_s=0.05, sleep=lambda s: None))
    return executor, snap


def _value(kube: KubeServer) -> str:
    secret = kube.get("v1", "Secret", "shop", SECRET.name)
    assert secret is not None
    return base64.b64decode(secret["data"]["password"]).decode()


def test_a_secret_edited_again_since_the_decision_is_not_reverted(kube: KubeServer, ledger: Ledger) -> None:
    executor, snap = _sealed_world(kube, ledger)
    k.CoreV1Api(kube.api_client()).patch_namespaced_secret(SECRET.name, "shop", {"data": {"password": _b64("x")}})
    before = len(kube.requests())
    result = executor.execute(Action(ActionKind.REVERT_CONFIG, SECRET), snap)
    assert result.state == "failed" and "changed again since the decision" in (result.error or ""), result.error
    assert [r for r in kube.requests()[before:] if r.method != "GET"] == [] and _value(kube) == "x"


def test_an_immutable_secret_is_not_reverted(kube: KubeServer, ledger: Ledger) -> None:
    executor, snap = _sealed_world(kube, ledger, immutable=True)
    before = len(kube.requests())
    result = executor.execute(Action(ActionKind.REVERT_CONFIG, SECRET), snap)
    assert result.state == "failed" and "immutable" in (result.error or ""), result.error
    assert [r for r in kube.requests()[before:] if r.method != "GET"] == [] and _value(kube) == BAD_VALUE


def test_the_same_decision_again_reverts_once_and_its_record_holds_no_value(kube: KubeServer, ledger: Ledger) -> None:
    """The sealed plan runs; the same decision (its idempotency key) again does nothing twice."""
    executor, snap = _sealed_world(kube, ledger)
    result = executor.execute(Action(ActionKind.REVERT_CONFIG, SECRET), snap, key="rm-secret-once")
    assert result.ok and _value(kube) == GOOD_VALUE, result.error
    again = executor.execute(Action(ActionKind.REVERT_CONFIG, SECRET), snap, key="rm-secret-once")
    assert again.already_applied and again.execution_id == result.execution_id
    row = ledger.execution(result.execution_id)
    assert row is not None and not _values_in(repr(row.plan)) and not _values_in(repr(row.inverse))


def test_a_conflict_rereads_the_secret_and_records_a_new_sealed_inverse(kube: KubeServer, ledger: Ledger) -> None:
    executor, snap = _sealed_world(kube, ledger)
    path = f"/api/v1/namespaces/shop/secrets/{SECRET.name}"
    fault = kube.inject_fault(409, times=1, method="PATCH", path=path)
    result = executor.execute(Action(ActionKind.REVERT_CONFIG, SECRET), snap)
    assert result.ok, result.error
    assert len(fault.hits) == 1 and [r.status for r in kube.requests("PATCH", path)] == [409, 200]
    row = ledger.execution(result.execution_id)
    assert row is not None and row.attempts == 1 and not _values_in(repr(row.inverse))
    assert _value(kube) == GOOD_VALUE
    assert executor.undo(result.execution_id).ok and _value(kube) == BAD_VALUE

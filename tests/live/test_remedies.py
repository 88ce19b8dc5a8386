"""revert_config, restore_service and uncordon_node against the emulator, with the official client:
the cases a real API server (or kubectl) refuses, and what each one puts back."""

from __future__ import annotations

import dataclasses
from typing import Any

import kubernetes.client as k

from remediator.actions import Action, ActionKind, ObjectRef
from remediator.live.executor import RESTARTED_AT, KubeExecutor
from remediator.live.kube import Backoff
from remediator.live.ledger import Ledger
from remediator.snapshot import Neighbour
from remediator.versions import ConfigDrift, ConfigVersion, KnownGood, ServiceDrift, config_version, service_version
from tests.live.conftest import APP, EDITED_CONFIG, NS, remember_good, seed_stateful, seed_workload, snapshot_for
from tests.support.kube import KubeServer

A = ActionKind
CART = ObjectRef("Deployment", NS, APP)
CONFIG = ObjectRef("ConfigMap", NS, f"{APP}-config")


def _executor(kube: KubeServer, ledger: Ledger) -> KubeExecutor:
    return KubeExecutor(kube.api_client(retries=False), ledger, dry_run=False,
                        backoff=Backoff(base_s=0.01, max_s=0.05, sleep=lambda s: None))


def _template_annotations(kube: KubeServer) -> dict[str, Any]:
    dep = kube.get("apps/v1", "Deployment", NS, APP)
    assert dep is not None
    return dict(dep["spec"]["template"]["metadata"].get("annotations") or {})


def test_revert_config_restarts_every_user_and_undo_puts_both_back(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    remember_good(ledger)
    executor = _executor(kube, ledger)
    result = executor.execute(Action(A.REVERT_CONFIG, CONFIG), snapshot_for())
    assert result.ok, result.error
    assert RESTARTED_AT in _template_annotations(kube)  # env vars are read on start: the pods roll
    assert any("rolling restart" in c and f"Deployment {NS}/{APP}" in c for c in result.changes), result.changes
    assert executor.undo(result.execution_id).ok
    assert kube.get("v1", "ConfigMap", NS, CONFIG.name)["data"] == EDITED_CONFIG["data"]  # type: ignore[index]
    assert RESTARTED_AT not in _template_annotations(kube)


def test_revert_config_restarts_a_statefulset_that_uses_the_config_and_undo_puts_it_back(
        kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    seed_stateful(kube)
    remember_good(ledger)
    db = ObjectRef("StatefulSet", NS, "db")
    users = (Neighbour(CART, {"app": APP}), Neighbour(db, {"app": "db"}))
    snap = dataclasses.replace(snapshot_for(), config_users=users)
    executor = _executor(kube, ledger)
    result = executor.execute(Action(A.REVERT_CONFIG, CONFIG), snap)
    assert result.ok, result.error

    def db_annotations() -> dict[str, Any]:
        sts = kube.get("apps/v1", "StatefulSet", NS, "db")
        assert sts is not None
        return dict(sts["spec"]["template"]["metadata"].get("annotations") or {})

    assert RESTARTED_AT in db_annotations() and RESTARTED_AT in _template_annotations(kube)
    assert any(f"StatefulSet {NS}/db" in c for c in result.changes), result.changes
    assert executor.undo(result.execution_id).ok
    assert RESTARTED_AT not in db_annotations()


def test_revert_config_refuses_an_immutable_configmap_and_one_edited_again(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    remember_good(ledger)
    executor = _executor(kube, ledger)
    core = k.CoreV1Api(kube.api_client())
    core.patch_namespaced_config_map(CONFIG.name, NS, {"data": {"mode": "worse"}})
    again = executor.execute(Action(A.REVERT_CONFIG, CONFIG), snapshot_for())
    assert again.state == "failed" and "changed again since the decision" in (again.error or "")
    core.patch_namespaced_config_map(CONFIG.name, NS, {"data": {"mode": "broken"}, "immutable": True})
    frozen = executor.execute(Action(A.REVERT_CONFIG, CONFIG), snapshot_for())
    assert frozen.state == "failed" and "immutable" in (frozen.error or ""), frozen.error
    # The API server itself refuses the edit too (the emulator as a real one).
    try:
        core.patch_namespaced_config_map(CONFIG.name, NS, {"data": {"mode": "fast"}})
        raise AssertionError("an immutable ConfigMap was edited")
    except k.ApiException as e:
        assert e.status == 422


def test_a_moved_secret_reference_is_pointed_back_without_reading_any_secret(kube: KubeServer,
                                                                            ledger: Ledger) -> None:
    seed_workload(kube)
    apps = k.AppsV1Api(kube.api_client())
    apps.patch_namespaced_deployment(APP, NS, {"spec": {"template": {"spec": {"containers": [
        {"name": APP, "envFrom": [{"secretRef": {"name": "cart-db-v2"}}]}]}}}})
    good, now = ObjectRef("Secret", NS, "cart-db-v1"), ObjectRef("Secret", NS, "cart-db-v2")
    ledger.record_known_good(KnownGood(CART, 900.0, (ConfigVersion(good, ""),)))
    snap = dataclasses.replace(snapshot_for(), configs=(ConfigVersion(now, ""),),
                               config_drift=(ConfigDrift(ConfigVersion(now, ""), ConfigVersion(good, ""), "renamed"),))
    executor = _executor(kube, ledger)
    result = executor.execute(Action(A.REVERT_CONFIG, now), snap)
    assert result.ok, result.error
    dep = kube.get("apps/v1", "Deployment", NS, APP)
    assert dep["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [  # type: ignore[index]
        {"secretRef": {"name": "cart-db-v1"}}]
    assert not [r for r in kube.emulator.log if "/secrets" in r.path], "the executor read a Secret"
    assert executor.undo(result.execution_id).ok
    dep = kube.get("apps/v1", "Deployment", NS, APP)
    assert dep["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"] == "cart-db-v2"  # type: ignore[index]


def test_a_secret_edited_in_place_fails_with_the_reason_and_touches_nothing(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    secret = ObjectRef("Secret", NS, "cart-db")
    edited = ConfigDrift(ConfigVersion(secret, "blake2b:new"), ConfigVersion(secret, "blake2b:old"), "edited",
                         "Secret shop/cart-db was edited in place; remediator never stores Secret values")
    before = len(kube.requests())
    result = _executor(kube, ledger).execute(Action(A.REVERT_CONFIG, secret),
                                             dataclasses.replace(snapshot_for(), config_drift=(edited,)))
    assert result.state == "failed" and "never stores Secret values" in (result.error or "")
    assert [r for r in kube.requests()[before:] if r.method != "GET"] == []


def test_revert_config_without_a_record_in_the_ledger_is_refused(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    result = _executor(kube, ledger).execute(Action(A.REVERT_CONFIG, CONFIG), snapshot_for())
    assert result.state == "failed" and "no last-known-good version" in (result.error or "")
    assert kube.get("v1", "ConfigMap", NS, CONFIG.name)["data"] == EDITED_CONFIG["data"]  # type: ignore[index]
    assert config_version(EDITED_CONFIG).data == {"data": EDITED_CONFIG["data"]}


def test_restore_service_keeps_the_allocated_node_port(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    remember_good(ledger)
    core = k.CoreV1Api(kube.api_client())
    core.patch_namespaced_service(APP, NS, {"spec": {"type": "NodePort", "ports": [
        {"name": "web", "port": 80, "targetPort": "http", "nodePort": 30080}]}})
    svc = kube.get("v1", "Service", NS, APP)
    assert svc is not None
    current = service_version(svc)
    snap = snapshot_for()
    assert snap.service_drift is not None
    snap = dataclasses.replace(snap, service=current, service_drift=ServiceDrift(current, snap.service_drift.good,
                                                                                  ("selector",)))
    result = _executor(kube, ledger).execute(Action(A.RESTORE_SERVICE, ObjectRef("Service", NS, APP)), snap)
    assert result.ok, result.error
    after = kube.get("v1", "Service", NS, APP)
    assert after["spec"]["selector"] == {"app": APP}  # type: ignore[index]
    assert after["spec"]["ports"][0]["nodePort"] == 30080  # type: ignore[index]


def test_a_node_that_is_not_ready_is_not_uncordoned(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    k.CoreV1Api(kube.api_client()).patch_node_status("node-c", {"status": {"conditions": [
        {"type": "Ready", "status": "False"}]}})
    result = _executor(kube, ledger).execute(Action(A.UNCORDON_NODE, ObjectRef("Node", "", "node-c")), snapshot_for())
    assert result.state == "failed" and "is not Ready" in (result.error or ""), result.error
    assert kube.get("v1", "Node", None, "node-c")["spec"]["unschedulable"] is True  # type: ignore[index]

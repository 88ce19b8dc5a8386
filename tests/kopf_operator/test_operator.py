"""The operator under kopf against the emulator with the chart's CRDs: alert -> Remediation resource.

Real parts: the receiver over HTTP, a real Prometheus, the official client and kopf's own
aiohttp client against the emulator (which validates every Remediation and RemediationPolicy
against the chart's CRD schemas and CEL rules), the SQLite ledger. The loop runs on a
simulated clock, ticked by the test, so nothing waits for simulated time.
"""

from __future__ import annotations

import http.client
import re
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from remediator.live import rbac
from remediator.live.config import load_config
from remediator.operator.run import Operator
from simulator.cluster import TICK_S
from tests.helm.render import one, render
from tests.kopf_operator.conftest import (
    TOKEN,
    World,
    calls_made,
    dumps,
    executed,
    printer_columns,
    remediation,
    wait_for,
    write_config,
)
from tests.live.test_loop import SimClock, post_webhook
from tests.support.kube import KubeServer

pytestmark = pytest.mark.slow


def _operator(tmp_path: Path, kube: KubeServer, world: World, *, mode: str, **sections: Any) -> tuple[Operator,
                                                                                                        SimClock]:
    clock = SimClock(world.alert_at)
    config = load_config(write_config(tmp_path, kube, world, mode=mode, **sections))
    op = Operator(config, clock=clock).start(worker=False)
    assert op.elector.wait_leading(10), "the only replica never took the Lease"
    return op, clock


def _get(url: str, path: str) -> tuple[int, str]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    return response.status, body


def test_approve_mode_an_alert_ends_in_a_remediation_awaiting_approval(tmp_path: Path, kube: KubeServer,
                                                                       world: World) -> None:
    op, clock = _operator(tmp_path, kube, world, mode="approve")
    try:
        assert post_webhook(op.url, world.payload(), TOKEN) == 200
        [report] = op.agent.loop.tick(clock.t)
        assert report.outcome == "awaiting_approval"
        op.wake()
        rem = wait_for("the Remediation awaiting approval", lambda: (r := remediation(kube))
                       and (r.get("status") or {}).get("phase") == "AwaitingApproval" and r)
        status, metrics = _get(op.url, "/metrics")
    finally:
        op.stop()
    assert rem["spec"] == {"incidentId": 1, "alert": {"name": world.inc.alert.name,
                                                      "fingerprint": rem["spec"]["alert"]["fingerprint"],
                                                      "startsAt": "2026-01-01T00:15:00Z"},
                           "target": {"kind": "Deployment", "namespace": "shop", "name": "cart"}}, dumps(rem)
    st = rem["status"]
    assert st["phase"] == "AwaitingApproval" and "awaits approval" in st["reason"]
    assert st["action"] == {"kind": "restore_replicas", "target": "Deployment/shop/cart",
                            "params": dict(world.action.params)}
    assert any(c["action"] == "restore_replicas" and c["verdict"] == "allow" for c in st["candidates"])
    assert all(c["verdict"] in ("allow", "deny", "needs_approval") and c["reason"] for c in st["candidates"])
    evidence = {e["signal"]: e for e in st["evidence"]}
    assert evidence["desired_replicas"]["value"] == 0 and evidence["desired_replicas"]["slo"] >= 1
    assert evidence["error_ratio"]["slo"] == 0.02
    assert "recoverySeconds" not in st and "approver" not in st
    assert "Deployment/shop/cart" in st["dryRun"] and "spec.replicas: 0" in st["dryRun"], st["dryRun"]  # dryRun=All
    assert printer_columns(rem) == {
        "Alert": world.inc.alert.name, "Phase": "AwaitingApproval", "Action": "restore_replicas",
        "Target": "Deployment/shop/cart", "Approver": None, "Recovery-s": None, "Reason": st["reason"],
        "Age": rem["metadata"]["creationTimestamp"]}
    assert executed(kube) == []  # approve mode: nothing ran
    assert status == 200 and "remediator_approvals_pending 1.0" in metrics and "remediator_leader 1.0" in metrics
    _assert_declared(kube)
    # Every series the chart's PrometheusRule alerts on is one the operator exposes.
    (tmp_path / "chart").mkdir()
    rule = one(render(tmp_path / "chart", {"prometheusRule": {"enabled": True}}), "PrometheusRule")
    wanted = {m for group in rule["spec"]["groups"] for r in group["rules"]
              for m in re.findall(r"remediator_[a-z_]+", r["expr"])}
    exposed = {line.split("{")[0].split(" ")[0] for line in metrics.splitlines() if line and not line.startswith("#")}
    assert wanted and wanted <= exposed, sorted(wanted - exposed)


def _assert_declared(kube: KubeServer) -> None:
    """Every call the operator made is in the one table the chart's RBAC is rendered from."""
    undeclared = calls_made(kube) - set(rbac.api_calls())
    assert not undeclared, f"API calls missing from the RBAC table: {sorted(undeclared)}"
    own = {c for c in calls_made(kube) if c.group in ("remediator.io", "coordination.k8s.io")}
    assert own <= set(rbac.OPERATOR_API_CALLS)


def test_auto_mode_an_alert_ends_in_a_verified_remediation_with_its_recovery_time(tmp_path: Path, kube: KubeServer,
                                                                                  world: World) -> None:
    op, clock = _operator(tmp_path, kube, world, mode="auto")
    phases = []
    try:
        assert post_webhook(op.url, world.payload(), TOKEN) == 200
        while clock.t <= world.alert_at + 900.0:
            op.agent.loop.tick(clock.t)
            op.wake()
            op._sync_once()
            phases.append((remediation(kube) or {}).get("status", {}).get("phase"))
            inc = op.agent.ledger.incident(1)
            if inc is None or inc.status != "open":
                break
            clock.t += TICK_S
        op._sync_once()
        rem = remediation(kube)
        inc = op.agent.ledger.incident(1)
        _, metrics = _get(op.url, "/metrics")
    finally:
        op.stop()
    assert inc is not None and inc.status == "recovered"
    assert rem is not None and rem["status"]["phase"] == "Verified", dumps(rem)
    assert rem["status"]["recoverySeconds"] == pytest.approx(inc.recovery_s)
    assert "Executing" in phases and phases.index("Executing") < len(phases)
    assert len(executed(kube)) >= 1
    assert 'remediator_remediations_total{outcome="recovered"} 1.0' in metrics
    assert "remediator_recovery_seconds_count 1.0" in metrics
    _assert_declared(kube)


def test_the_emulator_refuses_a_remediation_its_crd_refuses(kube: KubeServer) -> None:
    api = kubernetes.client.CustomObjectsApi(kube.api_client(retries=False))
    good = {"apiVersion": "remediator.io/v1alpha1", "kind": "Remediation", "metadata": {"name": "incident-9"},
            "spec": {"incidentId": 9, "alert": {"name": "A", "fingerprint": "0123456789abcdef"},
                     "target": {"kind": "Deployment", "namespace": "shop", "name": "cart"}}}
    api.create_namespaced_custom_object("remediator.io", "v1alpha1", "shop", "remediations", good)
    refused = []
    for patch in ({"status": {"phase": "Bogus"}}, {"status": {"recoverySeconds": -1}},
                  {"status": {"candidates": [{"action": "scale_out"}]}}):
        with pytest.raises(ApiException) as e:
            api.patch_namespaced_custom_object_status("remediator.io", "v1alpha1", "shop", "remediations",
                                                      "incident-9", patch)
        refused.append((e.value.status, e.value.body))
    assert [s for s, _ in refused] == [422, 422, 422]
    assert "status.phase" in refused[0][1] and "status.recoverySeconds" in refused[1][1]
    # The CEL rules: the incident is fixed, and a decision is final.
    with pytest.raises(ApiException) as e:
        api.patch_namespaced_custom_object("remediator.io", "v1alpha1", "shop", "remediations", "incident-9",
                                           {"spec": {"incidentId": 10}})
    assert e.value.status == 422 and "fixed when the operator creates" in e.value.body
    api.patch_namespaced_custom_object("remediator.io", "v1alpha1", "shop", "remediations", "incident-9",
                                       {"spec": {"approval": {"decision": "deny", "approver": "alice"}}})
    with pytest.raises(ApiException) as e:
        api.patch_namespaced_custom_object("remediator.io", "v1alpha1", "shop", "remediations", "incident-9",
                                           {"spec": {"approval": {"decision": "approve", "approver": "alice"}}})
    assert e.value.status == 422 and "a decision is final" in e.value.body
    # An undeclared field: a real server prunes it (or, with fieldValidation=Strict, refuses it); the emulator refuses.
    with pytest.raises(ApiException) as e:
        api.patch_namespaced_custom_object_status("remediator.io", "v1alpha1", "shop", "remediations", "incident-9",
                                                  {"status": {"bogus": 1}})
    assert e.value.status == 422


def test_remediation_policies_are_validated_shown_and_used_by_the_loop(tmp_path: Path, kube: KubeServer,
                                                                       world: World) -> None:
    policy = {"apiVersion": "remediator.io/v1alpha1", "kind": "RemediationPolicy"}
    kube.seed({**policy, "metadata": {"name": "careful", "namespace": "shop"}, "spec": {"approval_risk": "low"}},
              {**policy, "metadata": {"name": "broken", "namespace": "web"},
               "spec": {"cooldown_s": 60, "freeze_windows": [{"start": "Fri 18:00", "end": "22:00"}]}})
    api = kubernetes.client.CustomObjectsApi(kube.api_client(retries=False))
    with pytest.raises(ApiException) as refused:  # not one namespace's to set: the CRD does not declare it
        api.create_namespaced_custom_object("remediator.io", "v1alpha1", "shop", "remediationpolicies",
                                            {**policy, "metadata": {"name": "escape"},
                                             "spec": {"denied_namespaces": []}})
    assert refused.value.status == 422 and "denied_namespaces" in refused.value.body
    op, clock = _operator(tmp_path, kube, world, mode="auto")
    try:
        def status(ns: str, name: str) -> Any:
            return (kube.get("remediator.io/v1alpha1", "RemediationPolicy", ns, name) or {}).get("status")

        careful = wait_for("the valid policy's status", lambda: status("shop", "careful"))
        broken = wait_for("the invalid policy's status", lambda: status("web", "broken"))
        assert op.book.for_namespace("web") == op.book.base  # an invalid policy is not applied, not even in part
        assert post_webhook(op.url, world.payload(), TOKEN) == 200
        [report] = op.agent.loop.tick(clock.t)
        ready, _ = _get(op.url, "/readyz")
        healthy, _ = _get(op.url, "/healthz")
    finally:
        op.stop()
    assert careful == {"valid": True, "errors": [], "observedGeneration": 1}
    assert broken["valid"] is False and broken["observedGeneration"] == 1
    assert broken["errors"] == ["freeze_windows[0]: start 'Fri 18:00' is weekly but end '22:00' is daily; both ends "
                                "must have the same form"], broken
    # auto mode, but shop's policy asks for approval from risk low up: the loop used it.
    assert report.outcome == "awaiting_approval" and "risk" in report.detail, report
    assert executed(kube) == []
    assert (ready, healthy) == (200, 200)


def test_work_left_half_done_resumes_once_through_the_guards_when_a_replica_leads(tmp_path: Path, kube: KubeServer,
                                                                                 world: World) -> None:
    """A crash between the intent and the API call: the next leader finishes it, once, judged again first."""
    from tests.live.test_loop import _crashed_intent

    op, clock = _operator(tmp_path, kube, world, mode="auto")
    try:
        assert post_webhook(op.url, world.payload(), TOKEN) == 200
        execution_id = _crashed_intent(op.agent, 1, world.action, world.alert_at)
    finally:
        op.stop()
    assert executed(kube) == []
    for _ in range(2):  # the next start resumes it; the one after finds nothing to do
        clock = SimClock(world.alert_at + 30.0)
        config = load_config(tmp_path / "remediator.yaml")
        op = Operator(config, clock=clock).start()  # with its worker: it resumes once it leads
        try:
            ledger = op.agent.ledger
            wait_for("the intent finished", lambda: (e := ledger.execution(execution_id)) is not None  # noqa: B023
                     and e.state != "intent")
            row = ledger.execution(execution_id)
        finally:
            op.stop()
        assert row is not None and row.state == "done", row
        assert [r.path.rsplit("/", 1)[-1] for r in executed(kube)] == ["scale", "cart"]


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_approving_by_patching_the_remediation(tmp_path: Path, kube: KubeServer, world: World, decision: str) -> None:
    """kubectl patch remediation ... spec.approval: the approval core decides, the action runs once (or never)."""
    op, clock = _operator(tmp_path, kube, world, mode="approve")
    api = kubernetes.client.CustomObjectsApi(kube.api_client(retries=False))
    try:
        assert post_webhook(op.url, world.payload(), TOKEN) == 200
        op.agent.loop.tick(clock.t)
        op.wake()
        wait_for("AwaitingApproval", lambda: ((remediation(kube) or {}).get("status") or {}).get("phase")
                 == "AwaitingApproval")
        api.patch_namespaced_custom_object("remediator.io", "v1alpha1", "shop", "remediations", "incident-1",
                                           {"spec": {"approval": {"decision": decision, "approver": "alice"}}})
        wait_for("the decision", lambda: op.handled)
        ledger = op.agent.ledger
        [request] = ledger.approvals(incident_id=1)
        assert (str(request.state), request.approver, request.channel) == \
            ("approved" if decision == "approve" else "denied", "alice", "kubernetes")
        clock.t += TICK_S
        op.agent.loop.tick(clock.t)
        op._sync_once()
        rem = remediation(kube)
        clock.t += TICK_S
        op.agent.loop.tick(clock.t)  # nothing runs twice
        # A second decision changes nothing: the CRD makes it final.
        with pytest.raises(ApiException) as again:
            api.patch_namespaced_custom_object("remediator.io", "v1alpha1", "shop", "remediations", "incident-1",
                                               {"spec": {"approval": {"decision": "approve", "approver": "bob"}}})
    finally:
        op.stop()
    assert again.value.status == 422
    assert rem is not None and rem["status"]["approver"] == "alice" and rem["status"]["approvedAt"]
    acted = [r.path.rsplit("/", 1)[-1] for r in executed(kube)]
    if decision == "approve":
        assert rem["status"]["phase"] in ("Executing", "Verified"), dumps(rem["status"])
        assert acted == ["scale", "cart"]
    else:
        assert rem["status"]["phase"] == "Denied" and acted == [], dumps(rem["status"])


def test_the_charts_admission_policy_makes_the_approver_the_requesting_user(tmp_path: Path, kube: KubeServer,
                                                                           world: World) -> None:
    """The emulator enforces the chart's ValidatingAdmissionPolicy: mallory cannot approve as alice; alice can."""
    (tmp_path / "chart").mkdir()
    kube.emulator.install_admission_policy(one(render(tmp_path / "chart", {}), "ValidatingAdmissionPolicy"))
    kube.emulator.users.update({"alice-token": "alice@example.com", "mallory-token": "mallory"})
    op, clock = _operator(tmp_path, kube, world, mode="approve")
    try:
        assert post_webhook(op.url, world.payload(), TOKEN) == 200
        op.agent.loop.tick(clock.t)
        op.wake()
        wait_for("AwaitingApproval", lambda: ((remediation(kube) or {}).get("status") or {}).get("phase")
                 == "AwaitingApproval")  # the operator's own writes pass the policy

        def approve(token: str, approver: str) -> None:
            kubernetes.client.CustomObjectsApi(kube.api_client(retries=False, token=token)).\
                patch_namespaced_custom_object("remediator.io", "v1alpha1", "shop", "remediations", "incident-1",
                                               {"spec": {"approval": {"decision": "approve", "approver": approver}}})

        with pytest.raises(ApiException) as forged:
            approve("mallory-token", "alice@example.com")
        approve("alice-token", "alice@example.com")
        wait_for("the decision", lambda: op.handled)
        [request] = op.agent.ledger.approvals(incident_id=1)
    finally:
        op.stop()
    assert forged.value.status == 403 and "must be the user who writes the decision (mallory)" in forged.value.body
    assert (str(request.state), request.approver) == ("approved", "alice@example.com")

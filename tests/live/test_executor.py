"""The Kubernetes executor against the emulator over real HTTP, with the official client.

Every action kind runs (parametrized) with the expected object change, every object the
emulator stores is validated against the Kubernetes 1.33 schemas (`validate="1.33"`), every
patch is validated again against the object it was applied to, and the undo restores the
previous state. Dry run changes nothing; 409/429/5xx show re-reads and backoff.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from remediator.actions import ACTION_KINDS, IRREVERSIBLE_EXPANSION, SPECS, Action, ActionKind, ObjectRef
from remediator.live.executor import (
    ACTION_ANNOTATION,
    API_CALLS,
    RESTARTED_AT,
    ApiCall,
    KubeExecutor,
    UndoError,
)
from remediator.live.kube import Backoff
from remediator.live.ledger import Ledger, execution_summary
from tests.live.conftest import (
    APP,
    NS,
    remember_good,
    seed_stateful,
    seed_workload,
    snapshot_for,
    snapshot_of,
    validating,
)
from tests.support.kube import KubeEmulator, KubeServer, parse_api_path, validate_manifest, validate_patch

A = ActionKind
CART = ObjectRef("Deployment", NS, APP)
REVISION = "deployment.kubernetes.io/revision"


def _containers(dep: dict[str, Any]) -> dict[str, Any]:
    return {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}


@dataclass(frozen=True)
class Case:
    action: Callable[[dict[str, Any]], Action]
    read: tuple[str, str, str | None, str]  # what the action changes: (apiVersion, kind, namespace, name)
    changed: Callable[[dict[str, Any], dict[str, Any]], None]  # asserts on (before, after)
    reversible: bool = True


def _restart(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert RESTARTED_AT not in (before["spec"]["template"]["metadata"].get("annotations") or {})
    assert after["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT].endswith("Z")
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1


def _rollback(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert _containers(before)[APP]["image"] == "cart:2"
    assert _containers(after)[APP]["image"] == "cart:1"
    assert "pod-template-hash" not in after["spec"]["template"]["metadata"]["labels"]


def _limit(resource: str, old: str, new: str) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def check(before: dict[str, Any], after: dict[str, Any]) -> None:
        assert _containers(before)[APP]["resources"]["limits"][resource] == old
        assert _containers(after)[APP]["resources"]["limits"][resource] == new
    return check


def _replicas(old: int, new: int) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def check(before: dict[str, Any], after: dict[str, Any]) -> None:
        assert (before["spec"]["replicas"], after["spec"]["replicas"]) == (old, new)
    return check


def _hpa_bounds(low: tuple[int, int], high: tuple[int, int]) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    """A scale under the HPA moves its bounds (minReplicas, maxReplicas), never the Deployment's replicas."""
    def check(before: dict[str, Any], after: dict[str, Any]) -> None:
        assert (before["spec"]["minReplicas"], after["spec"]["minReplicas"]) == low
        assert (before["spec"]["maxReplicas"], after["spec"]["maxReplicas"]) == high
    return check


def _hpa(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert (before["spec"]["maxReplicas"], after["spec"]["maxReplicas"]) == (4, 6)


def _pvc(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert after["spec"]["resources"]["requests"]["storage"] == "15Gi"


def _cordon(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert not (before.get("spec") or {}).get("unschedulable")
    assert after["spec"]["unschedulable"] is True


def _unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before == after


def _reverted(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert (before["data"], after["data"]) == ({"mode": "broken"}, {"mode": "fast", "retries": "3"})


def _routed(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert (before["spec"]["selector"], after["spec"]["selector"]) == ({"app": APP, "version": "v2"}, {"app": APP})
    assert after["spec"]["ports"][0]["targetPort"] == "http"


def _uncordoned(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before["spec"]["unschedulable"] is True and not after["spec"].get("unschedulable")


DEP = ("apps/v1", "Deployment", NS, APP)
HPA = ("autoscaling/v2", "HorizontalPodAutoscaler", NS, APP)
CASES: dict[ActionKind, Case] = {
    A.NOOP: Case(lambda s: Action(A.NOOP, CART), DEP, _unchanged, reversible=False),
    A.RESTART_ROLLOUT: Case(lambda s: Action(A.RESTART_ROLLOUT, CART), DEP, _restart),
    A.ROLLBACK_ROLLOUT: Case(lambda s: Action(A.ROLLBACK_ROLLOUT, CART), DEP, _rollback),
    A.SCALE_OUT: Case(lambda s: Action(A.SCALE_OUT, CART, {"factor": 2.5}), HPA, _hpa_bounds((2, 5), (4, 5))),
    A.RESTORE_REPLICAS: Case(lambda s: Action(A.RESTORE_REPLICAS, CART, {"replicas": 3}), HPA,
                             _hpa_bounds((2, 3), (4, 4))),
    A.RAISE_MEMORY_LIMIT: Case(lambda s: Action(A.RAISE_MEMORY_LIMIT, CART, {"factor": 1.5}), DEP,
                               _limit("memory", "256Mi", "384Mi")),
    A.RAISE_CPU_LIMIT: Case(lambda s: Action(A.RAISE_CPU_LIMIT, CART, {"factor": 1.5}), DEP,
                            _limit("cpu", "500m", "750m")),
    A.RAISE_HPA_MAX: Case(lambda s: Action(A.RAISE_HPA_MAX, ObjectRef("HorizontalPodAutoscaler", NS, APP),
                                           {"factor": 1.5}), ("autoscaling/v2", "HorizontalPodAutoscaler", NS, APP),
                          _hpa),
    A.DELETE_POD: Case(lambda s: Action(A.DELETE_POD, ObjectRef("Pod", NS, s["pods"][0]["metadata"]["name"])),
                       ("v1", "Pod", NS, "<pod>"), lambda b, a: None, reversible=False),
    A.CORDON_DRAIN_NODE: Case(lambda s: Action(A.CORDON_DRAIN_NODE, ObjectRef("Node", "", "node-a")),
                              ("v1", "Node", None, "node-a"), _cordon),
    A.EXPAND_VOLUME: Case(lambda s: Action(A.EXPAND_VOLUME, ObjectRef("PersistentVolumeClaim", NS, f"{APP}-data"),
                                           {"factor": 1.5}), ("v1", "PersistentVolumeClaim", NS, f"{APP}-data"), _pvc,
                           reversible=False),
    A.RESTART_DEPENDENCY: Case(lambda s: Action(A.RESTART_DEPENDENCY, ObjectRef("Deployment", NS, "db")),
                               ("apps/v1", "Deployment", NS, "db"), _restart),
    A.ESCALATE: Case(lambda s: Action(A.ESCALATE, CART), DEP, _unchanged, reversible=False),
    A.REVERT_CONFIG: Case(lambda s: Action(A.REVERT_CONFIG, ObjectRef("ConfigMap", NS, f"{APP}-config")),
                          ("v1", "ConfigMap", NS, f"{APP}-config"), _reverted),
    A.RESTORE_SERVICE: Case(lambda s: Action(A.RESTORE_SERVICE, ObjectRef("Service", NS, APP)),
                            ("v1", "Service", NS, APP), _routed),
    A.UNCORDON_NODE: Case(lambda s: Action(A.UNCORDON_NODE, ObjectRef("Node", "", "node-c")),
                          ("v1", "Node", None, "node-c"), _uncordoned),
}


def test_every_action_kind_has_a_case() -> None:
    assert set(CASES) == set(ACTION_KINDS)


DB = ObjectRef("StatefulSet", NS, "db")
AGENT = ObjectRef("DaemonSet", NS, "agent")


def _image(old: str, new: str) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def check(before: dict[str, Any], after: dict[str, Any]) -> None:
        name = before["metadata"]["name"]
        assert (_containers(before)[name]["image"], _containers(after)[name]["image"]) == (old, new)
        assert after["spec"].get("volumeClaimTemplates") == before["spec"].get("volumeClaimTemplates")
    return check


def _db_limit(resource: str, old: str, new: str) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def check(before: dict[str, Any], after: dict[str, Any]) -> None:
        assert _containers(before)["db"]["resources"]["limits"][resource] == old
        assert _containers(after)["db"]["resources"]["limits"][resource] == new
    return check


STS = ("apps/v1", "StatefulSet", NS, "db")
DS = ("apps/v1", "DaemonSet", NS, "agent")
# The existing kinds on a StatefulSet and a DaemonSet (target.kind says which).
WORKLOAD_CASES: dict[str, Case] = {
    "statefulset-restart": Case(lambda s: Action(A.RESTART_ROLLOUT, DB), STS, _restart),
    "statefulset-rollback": Case(lambda s: Action(A.ROLLBACK_ROLLOUT, DB), STS, _image("db:2", "db:1")),
    "statefulset-scale": Case(lambda s: Action(A.SCALE_OUT, DB, {"replicas": 5}), STS, _replicas(3, 5)),
    "statefulset-restore": Case(lambda s: Action(A.RESTORE_REPLICAS, DB, {"replicas": 2}), STS, _replicas(3, 2)),
    "statefulset-memory": Case(lambda s: Action(A.RAISE_MEMORY_LIMIT, DB, {"factor": 1.5}), STS,
                               _db_limit("memory", "1Gi", "1536Mi")),
    "statefulset-cpu": Case(lambda s: Action(A.RAISE_CPU_LIMIT, DB, {"factor": 1.5}), STS,
                            _db_limit("cpu", "1", "1500m")),
    "daemonset-restart": Case(lambda s: Action(A.RESTART_ROLLOUT, AGENT), DS, _restart),
    "daemonset-rollback": Case(lambda s: Action(A.ROLLBACK_ROLLOUT, AGENT), DS, _image("agent:2", "agent:1")),
}


@pytest.mark.parametrize("case", list(WORKLOAD_CASES))
def test_statefulsets_and_daemonsets_change_and_undo(kube: KubeServer, ledger: Ledger, case: str) -> None:
    """Every request validated (the emulator stores only valid objects, patches are checked against the
    object they patch); StatefulSet immutable fields (volumeClaimTemplates, ...) would be a 422."""
    seed_stateful(kube)
    c = WORKLOAD_CASES[case]
    action = c.action({})
    before = kube.get(*c.read)
    executor = _executor(kube, ledger)

    result = executor.execute(action, snapshot_of(action.target, keeps_data=action.target == DB))

    assert result.ok, result.error
    after = kube.get(*c.read)
    assert before is not None and after is not None
    c.changed(before, after)
    assert after["metadata"]["annotations"][ACTION_ANNOTATION] == result.key
    assert _validate_writes(kube, before) >= 1
    assert all(r.status < 400 for r in kube.requests())
    undo = executor.undo(result.execution_id)
    assert undo.ok, undo.error
    assert _spec_state(kube.get(*c.read)) == _spec_state(before)


def test_a_statefulset_rollback_skips_a_revision_equal_to_the_current_one(kube: KubeServer, ledger: Ledger) -> None:
    seeded = seed_stateful(kube)
    apps = _apps(kube)
    apps.patch_namespaced_stateful_set("db", NS, {"spec": {"template": {"spec": {"containers": [
        {"name": "db", "image": "db:1"}]}}}})
    result = _executor(kube, ledger).execute(Action(A.ROLLBACK_ROLLOUT, DB), snapshot_of(DB))
    assert result.ok and "skipped rollback" in result.changes[0], result
    assert seeded["statefulset"]["spec"]["template"] != kube.get(*STS)["spec"]["template"]  # type: ignore[index]


def test_a_workload_that_keeps_data_never_loses_a_volume_nor_goes_to_zero(kube: KubeServer, ledger: Ledger) -> None:
    """The previous revision of db mounted no volume: the rollback would drop `data` from the template."""
    seeded = seed_stateful(kube)
    sts = seeded["statefulset"]
    apps = _apps(kube)
    apps.patch_namespaced_controller_revision("db-rev1", NS, {"data": {"spec": {"template": {
        **_pod_template_without_mounts(sts), "$patch": "replace"}}}})
    executor = _executor(kube, ledger)

    rollback = executor.execute(Action(A.ROLLBACK_ROLLOUT, DB), snapshot_of(DB, keeps_data=True))
    to_zero = executor.execute(Action(A.RESTORE_REPLICAS, DB, {"replicas": 0}), snapshot_of(DB, keeps_data=True))

    assert rollback.state == "failed" and "data:" in (rollback.error or "")
    assert "remove the volumes or mounts db:data" in (rollback.error or "")
    assert to_zero.state == "failed" and "keeps data to zero" in (to_zero.error or "")
    assert kube.get(*STS)["spec"] == sts["spec"]  # type: ignore[index]
    assert not kube.requests("PATCH", f"/apis/apps/v1/namespaces/{NS}/statefulsets/*")


def _pod_template_without_mounts(sts: dict[str, Any]) -> dict[str, Any]:
    template = copy.deepcopy(sts["spec"]["template"])
    for c in template["spec"]["containers"]:
        c.pop("volumeMounts", None)
        c["image"] = "db:1"
    return template


def test_a_daemonset_is_not_scaled(kube: KubeServer, ledger: Ledger) -> None:
    seed_stateful(kube)
    result = _executor(kube, ledger).execute(Action(A.SCALE_OUT, AGENT, {"replicas": 4}), snapshot_of(AGENT))
    assert result.state == "failed" and "no replicas to scale" in (result.error or "")


def test_the_emulator_refuses_immutable_fields_as_the_api_server(kube: KubeServer) -> None:
    """spec.selector of a Deployment, a StatefulSet's volumeClaimTemplates/serviceName/selector, a PVC's
    storageClassName: 422 as on a real API server. A paused Deployment is scaled (the API server allows
    it; kubectl refuses only restart/undo of it, client-side)."""
    seed_workload(kube)
    seed_stateful(kube)
    apps = _apps(kube)
    core = __import__("kubernetes.client", fromlist=["CoreV1Api"]).CoreV1Api(kube.api_client())
    refused = [
        lambda: apps.patch_namespaced_deployment(APP, NS, {"spec": {"selector": {"matchLabels": {"app": "x"}}}}),
        lambda: apps.patch_namespaced_stateful_set("db", NS, {"spec": {"serviceName": "other"}}),
        lambda: apps.patch_namespaced_stateful_set("db", NS, {"spec": {"volumeClaimTemplates": []}}),
        lambda: apps.patch_namespaced_stateful_set("db", NS, {"spec": {"selector": {"matchLabels": {"a": "b"}}}}),
        lambda: core.patch_namespaced_persistent_volume_claim(f"{APP}-data", NS, {"spec": {"storageClassName": "x"}}),
    ]
    for call in refused:
        with pytest.raises(Exception) as e:
            call()
        assert getattr(e.value, "status", None) == 422, e.value
        assert "immutable" in str(getattr(e.value, "body", "")) or "Forbidden" in str(getattr(e.value, "body", ""))
    apps.patch_namespaced_deployment(APP, NS, {"spec": {"paused": True}})
    apps.patch_namespaced_deployment_scale(APP, NS, {"spec": {"replicas": 3}})
    assert kube.get(*DEP)["spec"]["replicas"] == 3  # type: ignore[index]
    apps.patch_namespaced_stateful_set_scale("db", NS, {"spec": {"replicas": 4}})  # replicas are mutable


def test_a_paused_deployment_is_not_restarted_nor_its_limits_raised(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    _apps(kube).patch_namespaced_deployment(APP, NS, {"spec": {"paused": True}})
    executor = _executor(kube, ledger)
    for action in (Action(A.RESTART_ROLLOUT, CART), Action(A.RAISE_MEMORY_LIMIT, CART, {"factor": 1.5})):
        result = executor.execute(action, snapshot_for())
        assert result.state == "failed" and "can't restart paused deployment" in (result.error or ""), result
    assert not [r for r in kube.requests("PATCH") if r.body.get("spec", {}).get("paused") is None]


def test_a_scale_under_an_hpa_raises_its_bounds_and_a_direct_scale_without(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    executor = _executor(kube, ledger)
    under = executor.execute(Action(A.SCALE_OUT, CART, {"replicas": 3}), snapshot_for())
    assert under.ok, under.error
    assert under.changes[0].startswith(f"HorizontalPodAutoscaler {NS}/{APP}: minReplicas 2 -> 3")
    assert kube.get(*DEP)["spec"]["replicas"] == 2  # type: ignore[index]  # the HPA scales it, not us
    assert not kube.requests("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{APP}/scale")
    nothing = executor.execute(Action(A.RESTORE_REPLICAS, CART, {"replicas": 2}), snapshot_for())
    assert nothing.state == "failed" and "already keeps at least 3 replicas" in (nothing.error or "")
    direct = executor.execute(Action(A.SCALE_OUT, CART, {"replicas": 4}), snapshot_for(hpa=False))
    assert direct.ok and kube.get(*DEP)["spec"]["replicas"] == 4  # type: ignore[index]
    assert executor.undo(under.execution_id).ok
    assert kube.get(*HPA)["spec"]["minReplicas"] == 2  # type: ignore[index]


def _executor(kube: KubeServer, ledger: Ledger, *, dry_run: bool = False, **backoff: Any) -> KubeExecutor:
    slept: list[float] = []
    policy = Backoff(**{"base_s": 0.01, "max_s": 0.05, **backoff}, sleep=slept.append)
    return KubeExecutor(kube.api_client(retries=False), ledger, dry_run=dry_run, backoff=policy, drain_timeout_s=2.0)


def _spec_state(obj: dict[str, Any] | None) -> Any:
    """What undo must restore: spec and labels, not the bookkeeping (resourceVersion, our annotation)."""
    if obj is None:
        return None
    annotations = {k: v for k, v in (obj["metadata"].get("annotations") or {}).items() if k != ACTION_ANNOTATION}
    return {"spec": obj.get("spec") or {}, "labels": obj["metadata"].get("labels"), "annotations": annotations,
            "data": obj.get("data")}


def _validate_writes(kube: KubeServer, before: dict[str, Any]) -> int:
    """Validate every write body: patches against the object they patched, created objects alone."""
    checked = 0
    for r in kube.requests():
        if r.status >= 400:
            continue
        if r.method == "PATCH" and r.path.endswith("/scale"):
            scale = {"apiVersion": "autoscaling/v1", "kind": "Scale",
                     "metadata": {"name": APP, "namespace": NS}, "spec": {"replicas": before["spec"]["replicas"]}}
            validate_patch(scale, r.body, r.content_type)
            checked += 1
        elif r.method == "PATCH" and r.path.rsplit("/", 1)[-1] == before["metadata"]["name"]:
            original = {k: v for k, v in before.items() if k != "status"}
            validate_patch(original, r.body, r.content_type)
            checked += 1
        elif r.method == "POST" and r.body is not None:
            validate_manifest(r.body)  # Eviction, Event
            checked += 1
    return checked


@pytest.mark.parametrize("kind", list(CASES), ids=lambda k: k.value)
def test_action_changes_the_object_and_undo_restores_it(kube: KubeServer, ledger: Ledger, kind: ActionKind) -> None:
    seeded = seed_workload(kube, dependency=True)
    remember_good(ledger)
    case = CASES[kind]
    action = case.action(seeded)
    api_version, obj_kind, ns, name = case.read
    name = action.target.name if name == "<pod>" else name
    before = kube.get(api_version, obj_kind, ns, name)
    assert before is not None
    executor = _executor(kube, ledger)
    snap = snapshot_for(pods=tuple(p["metadata"]["name"] for p in seeded["pods"]))

    result = executor.execute(action, snap, incident_id=None, reason="test")

    assert result.ok, result.error
    after = kube.get(api_version, obj_kind, ns, name)
    row = ledger.execution(result.execution_id)
    assert row is not None and row.state == "done" and row.inverse is not None
    assert row.inverse["reversible"] is case.reversible
    if kind is A.DELETE_POD:  # evicted (the API server enforces the PDB), with the uid precondition; never a DELETE
        assert after is None
        [eviction] = kube.requests("POST", f"/api/v1/namespaces/{NS}/pods/{name}/eviction")
        assert eviction.status == 201
        assert eviction.body["deleteOptions"]["preconditions"]["uid"] == before["metadata"]["uid"]
        validate_manifest(eviction.body)
        assert kube.requests("DELETE") == []
    else:
        assert after is not None
        case.changed(before, after)
        if kind not in (A.NOOP, A.ESCALATE):
            assert after["metadata"]["annotations"][ACTION_ANNOTATION] == result.key
            assert _validate_writes(kube, before) >= 1
    if kind is A.CORDON_DRAIN_NODE:  # evicted through the Eviction API: the pod on node-a is gone
        evictions = kube.requests("POST", "/api/v1/namespaces/*/pods/*/eviction")
        assert [r.status for r in evictions] == [201]
        assert {p["metadata"]["name"] for p in seeded["pods"] if p["spec"]["nodeName"] == "node-a"} == {
            r.path.split("/")[-2] for r in evictions}
    events = [e for e in kube.requests("POST", "/api/v1/namespaces/*/events") if e.status == 201]
    if kind is A.NOOP:
        assert events == []
    else:
        assert len(events) == 1
        assert events[0].body["reason"] == ("RemediationEscalated" if kind is A.ESCALATE else "Remediation")
        assert events[0].body["involvedObject"]["name"] == name

    if not case.reversible:
        with pytest.raises(UndoError, match="cannot be undone"):
            executor.undo(result.execution_id)
        return
    undo = executor.undo(result.execution_id)
    assert undo.ok, undo.error
    restored = kube.get(api_version, obj_kind, ns, name)
    assert _spec_state(restored) == _spec_state(before)
    assert ledger.execution(result.execution_id).inverse["applied_by"] == undo.execution_id  # type: ignore[union-attr]
    with pytest.raises(UndoError, match="already undone"):
        executor.undo(result.execution_id)


@pytest.mark.parametrize("kind", [k for k in CASES if k not in (A.NOOP,)], ids=lambda k: k.value)
def test_dry_run_changes_nothing(kube: KubeServer, ledger: Ledger, kind: ActionKind) -> None:
    seeded = seed_workload(kube, dependency=True)
    remember_good(ledger)
    stored = copy.deepcopy(kube.emulator.objects)  # kmock's store: every object with its history
    before = {k: copy.deepcopy(v.raw) for k, v in stored.items()}
    executor = _executor(kube, ledger, dry_run=True)
    action = CASES[kind].action(seeded)

    result = executor.execute(action, snapshot_for(pods=tuple(p["metadata"]["name"] for p in seeded["pods"])))

    assert result.ok, result.error
    assert result.dry_run and ledger.execution(result.execution_id).dry_run  # type: ignore[union-attr]
    after = {k: v.raw for k, v in kube.emulator.objects.items() if not v.deleted}
    assert after == before
    writes = [r for r in kube.requests() if r.method in ("PATCH", "POST", "DELETE", "PUT")]
    assert writes, "a dry run still asks the API server (server-side dry run)"
    for r in writes:
        dry = r.query.get("dryRun") == "All" or (r.body or {}).get("dryRun") == ["All"] or \
            ((r.body or {}).get("deleteOptions") or {}).get("dryRun") == ["All"]
        assert dry, f"{r.method} {r.path} was not a dry run"
    with pytest.raises(UndoError, match="dry run"):
        executor.undo(result.execution_id)


def test_drain_respects_the_pod_disruption_budget(kube: KubeServer, ledger: Ledger) -> None:
    seeded = seed_workload(kube, replicas=2, pdb_min=2)
    executor = _executor(kube, ledger)
    executor.drain_timeout_s = 0.3

    result = executor.execute(Action(A.CORDON_DRAIN_NODE, ObjectRef("Node", "", "node-a")),
                              snapshot_for(pods=tuple(p["metadata"]["name"] for p in seeded["pods"])))

    assert not result.ok
    assert "drain incomplete" in (result.error or "") and "disruption budget" in (result.error or "")
    assert kube.get("v1", "Node", None, "node-a")["spec"]["unschedulable"] is True  # type: ignore[index]
    refused = kube.requests("POST", "/api/v1/namespaces/shop/pods/*/eviction")
    assert len(refused) >= 2 and {r.status for r in refused} == {429}
    assert len(kube.emulator.objects) and all(
        p is not None for p in (kube.get("v1", "Pod", NS, r.path.split("/")[-2]) for r in refused))
    assert executor.undo(result.execution_id).ok  # a failed drain can still be undone: uncordon
    assert not kube.get("v1", "Node", None, "node-a").get("spec", {}).get("unschedulable")  # type: ignore[union-attr]


def test_drain_evicts_no_pod_the_guards_did_not_judge(kube: KubeServer, ledger: Ledger) -> None:
    """coredns lands on the node after the decision: the drain is not planned, nothing is touched."""
    seeded = seed_workload(kube, replicas=2)
    kube.seed({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "coredns-5d78c-abcde", "namespace": "kube-system"},
               "spec": {"nodeName": "node-a", "containers": [{"name": "coredns", "image": "coredns:1.11"}]}})
    executor = _executor(kube, ledger)

    result = executor.execute(Action(A.CORDON_DRAIN_NODE, ObjectRef("Node", "", "node-a")),
                              snapshot_for(pods=tuple(p["metadata"]["name"] for p in seeded["pods"])))

    assert not result.ok and "kube-system/coredns-5d78c-abcde" in (result.error or ""), result
    assert not kube.get("v1", "Node", None, "node-a").get("spec", {}).get("unschedulable")  # type: ignore[union-attr]
    assert kube.requests("POST", "/api/v1/namespaces/*/pods/*/eviction") == []
    assert kube.get("v1", "Pod", "kube-system", "coredns-5d78c-abcde") is not None


def test_conflict_rereads_replans_and_records_the_new_inverse(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/{APP}"
    fault = kube.inject_fault(409, times=1, method="PATCH", path=path)
    executor = _executor(kube, ledger)

    result = executor.execute(Action(A.RAISE_MEMORY_LIMIT, CART, {"factor": 2.0}), snapshot_for())

    assert result.ok, result.error
    assert len(fault.hits) == 1
    patches = kube.requests("PATCH", path)
    assert [r.status for r in patches] == [409, 200]
    row = ledger.execution(result.execution_id)
    assert row is not None and row.attempts == 1
    assert any("409" in n for n in (row.result or {})["notes"])
    dep = kube.get("apps/v1", "Deployment", NS, APP)
    assert _containers(dep)[APP]["resources"]["limits"]["memory"] == "512Mi"  # type: ignore[arg-type]


def test_stale_resource_version_is_a_real_conflict(kube: KubeServer, ledger: Ledger) -> None:
    """Someone else changes the Deployment between our read and our write: 409, re-read, new inverse."""
    seed_workload(kube)
    executor = _executor(kube, ledger)
    apps = __import__("kubernetes.client", fromlist=["AppsV1Api"]).AppsV1Api(kube.api_client())
    real_plan = executor._plan

    def plan_then_someone_scales(action: Action, snapshot: Any, key: str) -> Any:
        planned = real_plan(action, snapshot, key)
        apps.patch_namespaced_deployment(APP, NS, {"spec": {"template": {"metadata": {"labels": {"team": "x"}}}}})
        return planned

    executor._plan = plan_then_someone_scales  # type: ignore[method-assign]
    result = executor.execute(Action(A.RESTART_ROLLOUT, CART), snapshot_for())

    assert result.ok, result.error
    statuses = [r.status for r in kube.requests("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{APP}")]
    assert statuses == [200, 409, 200]  # theirs, ours on the stale version, ours re-planned
    dep = kube.get("apps/v1", "Deployment", NS, APP)
    assert dep["spec"]["template"]["metadata"]["labels"]["team"] == "x"  # type: ignore[index]  # theirs kept


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_errors_back_off_then_succeed(kube: KubeServer, ledger: Ledger, status: int) -> None:
    seed_workload(kube)
    fault = kube.inject_fault(status, times=3, method="PATCH", path=f"/apis/apps/v1/namespaces/{NS}/deployments/*")
    slept: list[float] = []
    executor = KubeExecutor(kube.api_client(retries=False), ledger, dry_run=False,
                            backoff=Backoff(base_s=0.02, max_s=1.0, sleep=lambda s: slept.append(s)))

    result = executor.execute(Action(A.RESTART_ROLLOUT, CART), snapshot_for())

    assert result.ok, result.error
    assert len(fault.hits) == 3
    assert len(slept) == 3 and list(result.backoff_s) == slept
    ceilings = [0.02 * 2 ** i for i in range(3)]  # full jitter in [ceiling/2, ceiling]
    assert all(c / 2 <= s <= c for s, c in zip(slept, ceilings))


def test_retry_after_is_honoured(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    kube.inject_fault(429, times=1, method="PATCH", retry_after=2)
    slept: list[float] = []
    executor = KubeExecutor(kube.api_client(retries=False), ledger, dry_run=False,
                            backoff=Backoff(base_s=0.01, max_s=30.0, sleep=slept.append))
    assert executor.execute(Action(A.RESTART_ROLLOUT, CART), snapshot_for()).ok
    assert slept == [pytest.approx(2.0)]


def test_persistent_server_errors_fail_cleanly_and_change_nothing(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    before = kube.get("apps/v1", "Deployment", NS, APP)
    fault = kube.inject_fault(500, times=100, method="PATCH")
    executor = _executor(kube, ledger, max_attempts=4)

    result = executor.execute(Action(A.RESTART_ROLLOUT, CART), snapshot_for())

    assert not result.ok and "gave up after 4 attempts" in (result.error or "")
    assert len(fault.hits) == 4 and len(result.backoff_s) == 3
    assert kube.get("apps/v1", "Deployment", NS, APP) == before
    row = ledger.execution(result.execution_id)
    assert row is not None and row.state == "failed" and "500" in (row.error or "")
    failed_events = [e for e in kube.requests("POST", "/api/v1/namespaces/*/events") if e.status == 201]
    assert [e.body["reason"] for e in failed_events] == ["RemediationFailed"]


def test_the_same_key_never_executes_twice(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    executor = _executor(kube, ledger)
    first = executor.execute(Action(A.SCALE_OUT, CART, {"replicas": 3}), snapshot_for(hpa=False), key="rm-decision-1")
    again = executor.execute(Action(A.SCALE_OUT, CART, {"replicas": 3}), snapshot_for(hpa=False), key="rm-decision-1")
    assert first.ok and again.already_applied and again.execution_id == first.execution_id
    assert len(kube.requests("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{APP}/scale")) == 1


def test_plans_that_cannot_run_are_recorded_as_failed(kube: KubeServer, ledger: Ledger) -> None:
    kube.seed_deployment(APP, NS, images=("cart:1",), limits={"cpu": "500m"})
    validating(kube)
    executor = _executor(kube, ledger)
    rollback = executor.execute(Action(A.ROLLBACK_ROLLOUT, CART), snapshot_for())
    memory = executor.execute(Action(A.RAISE_MEMORY_LIMIT, CART, {"factor": 1.5}), snapshot_for())
    assert "no revision before 1" in (rollback.error or "")
    assert "sets a memory limit" in (memory.error or "")
    assert [e.state for e in ledger.executions()] == ["failed", "failed"]
    assert not kube.requests("PATCH")


@pytest.mark.parametrize(("status", "kind", "path"), [
    (403, A.RESTART_ROLLOUT, f"/apis/apps/v1/namespaces/{NS}/deployments/{APP}"),
    (404, A.ROLLBACK_ROLLOUT, f"/apis/apps/v1/namespaces/{NS}/replicasets"),
    (403, A.CORDON_DRAIN_NODE, "/api/v1/pods"),
])
def test_api_errors_while_planning_are_failed_executions(kube: KubeServer, ledger: Ledger, status: int,
                                                         kind: ActionKind, path: str) -> None:
    seeded = seed_workload(kube)
    target = ObjectRef("Node", "", "node-a") if kind is A.CORDON_DRAIN_NODE else CART
    fault = kube.inject_fault(status, times=1, method="GET", path=path, message=f"injected {status} while planning")
    executor = _executor(kube, ledger)

    result = executor.execute(Action(kind, target), snapshot_for(pods=tuple(p["metadata"]["name"]
                                                                            for p in seeded["pods"])))

    assert len(fault.hits) == 1
    assert result.state == "failed" and result.error == f"cannot plan: {status} injected {status} while planning"
    row = ledger.execution(result.execution_id)
    assert row is not None and row.state == "failed" and row.error == result.error
    assert not kube.requests("PATCH") and not kube.requests("POST", "/api/v1/namespaces/*/pods/*/eviction")


def test_volume_expansion_is_irreversible_and_says_so(kube: KubeServer, ledger: Ledger) -> None:
    """The API server refuses a storage request below status.capacity: no inverse, undo refuses, the record says so."""
    seed_workload(kube)
    pvc = ObjectRef("PersistentVolumeClaim", NS, f"{APP}-data")
    executor = _executor(kube, ledger)

    result = executor.execute(Action(A.EXPAND_VOLUME, pvc, {"factor": 2.0}), snapshot_for(), incident_id=None)

    assert result.ok, result.error
    assert result.changes == (f"PersistentVolumeClaim {NS}/{APP}-data: storage request 10Gi -> 20Gi "
                              f"({IRREVERSIBLE_EXPANSION})",)
    row = ledger.execution(result.execution_id)
    assert row is not None and row.inverse is not None
    assert row.inverse["reversible"] is False and row.inverse["plan"]["steps"] == []
    assert row.inverse["note"] == IRREVERSIBLE_EXPANSION
    assert execution_summary(row)["reversible"] is False
    assert execution_summary(row)["irreversible"] == IRREVERSIBLE_EXPANSION  # what `history` shows
    # what a human approving it reads (the loop's awaiting-approval note)
    assert SPECS[A.EXPAND_VOLUME].approval_text() == f"IRREVERSIBLE: {IRREVERSIBLE_EXPANSION}"
    assert SPECS[A.RESTART_ROLLOUT].approval_text() == "reversible (remediator undo)"
    assert (row.result or {})["changes"] == list(result.changes)
    [event] = [e for e in kube.requests("POST", "/api/v1/namespaces/*/events") if e.status == 201]
    assert IRREVERSIBLE_EXPANSION in event.body["message"]
    with pytest.raises(UndoError, match="cannot be undone: irreversible: a volume never shrinks"):
        executor.undo(result.execution_id)
    stored = kube.get("v1", "PersistentVolumeClaim", NS, f"{APP}-data")
    assert stored is not None and stored["spec"]["resources"]["requests"]["storage"] == "20Gi"
    # once the resize completes (the kubelet reports 20Gi), the old request is refused, as by the API server
    core = __import__("kubernetes.client", fromlist=["CoreV1Api"]).CoreV1Api(kube.api_client())
    stored_status = {"capacity": {"storage": "20Gi"}, "phase": "Bound"}
    core.patch_namespaced_persistent_volume_claim_status(f"{APP}-data", NS, {"status": stored_status})
    with pytest.raises(Exception, match="can not be less than status.capacity"):
        core.patch_namespaced_persistent_volume_claim(f"{APP}-data", NS,
                                                      {"spec": {"resources": {"requests": {"storage": "10Gi"}}}})


def _apps(kube: KubeServer) -> Any:
    return __import__("kubernetes.client", fromlist=["AppsV1Api"]).AppsV1Api(kube.api_client())


def test_rollback_keeps_a_template_field_the_client_models_do_not_know(kube: KubeServer, ledger: Ledger) -> None:
    """An API server newer than the client (1.35 schemas): PodSpec.workloadRef is unknown to the typed models."""
    seeded = seed_workload(kube)
    kube.emulator.validate = "1.35"
    workload_ref = {"name": "cart-gang", "podGroup": "web"}
    previous = seeded["replicasets"][0]["metadata"]["name"]
    _apps(kube).patch_namespaced_replica_set(previous, NS,
                                             {"spec": {"template": {"spec": {"workloadRef": workload_ref}}}})
    assert not hasattr(__import__("kubernetes.client", fromlist=["V1PodSpec"]).V1PodSpec, "workload_ref")
    before = kube.get("apps/v1", "Deployment", NS, APP)
    assert before is not None
    executor = _executor(kube, ledger)

    result = executor.execute(Action(A.ROLLBACK_ROLLOUT, CART), snapshot_for())

    assert result.ok, result.error
    after = kube.get("apps/v1", "Deployment", NS, APP)
    assert after is not None and after["spec"]["template"]["spec"]["workloadRef"] == workload_ref
    assert _containers(after)[APP]["image"] == "cart:1"
    [rollback] = [r for r in kube.requests("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{APP}")]
    validate_patch({k: v for k, v in before.items() if k != "status"}, rollback.body, rollback.content_type, "1.35")
    assert executor.undo(result.execution_id).ok
    restored = kube.get("apps/v1", "Deployment", NS, APP)
    assert restored is not None and "workloadRef" not in restored["spec"]["template"]["spec"]


def test_rollback_of_a_paused_deployment_is_refused(kube: KubeServer, ledger: Ledger) -> None:
    seed_workload(kube)
    _apps(kube).patch_namespaced_deployment(APP, NS, {"spec": {"paused": True}})
    patches = len(kube.requests("PATCH"))
    executor = _executor(kube, ledger)

    result = executor.execute(Action(A.ROLLBACK_ROLLOUT, CART), snapshot_for())

    assert result.state == "failed"
    assert "Deployment shop/cart is paused (spec.paused): resume it first" in (result.error or "")
    assert len(kube.requests("PATCH")) == patches
    assert _containers(kube.get("apps/v1", "Deployment", NS, APP))[APP]["image"] == "cart:2"  # type: ignore[arg-type]


def test_rollback_to_a_template_equal_to_the_current_one_is_skipped(kube: KubeServer, ledger: Ledger) -> None:
    """Someone already put revision 1's template back (no new ReplicaSet yet): kubectl's "skipped rollback"."""
    seed_workload(kube)
    _apps(kube).patch_namespaced_deployment(
        APP, NS, {"spec": {"template": {"spec": {"containers": [{"name": APP, "image": "cart:1"}]}}}})
    before = kube.get("apps/v1", "Deployment", NS, APP)
    patches = len(kube.requests("PATCH"))
    executor = _executor(kube, ledger)

    result = executor.execute(Action(A.ROLLBACK_ROLLOUT, CART), snapshot_for())

    assert result.ok, result.error
    assert len(kube.requests("PATCH")) == patches and kube.get("apps/v1", "Deployment", NS, APP) == before
    assert result.changes == (f"Deployment {NS}/{APP}: skipped rollback, the current template already matches "
                              f"revision 1 (ReplicaSet {_previous_rs(kube)}); nothing changed",)
    row = ledger.execution(result.execution_id)
    assert row is not None and row.inverse is not None and row.inverse["reversible"] is False
    assert "already matched the previous revision" in " ".join((row.result or {})["notes"])
    with pytest.raises(UndoError, match="nothing changed"):
        executor.undo(result.execution_id)


def test_rollback_after_a_rolling_restart_goes_back_past_it(kube: KubeServer, ledger: Ledger) -> None:
    """Revision 2 (cart:2) broke; a restart (a revert's) made revision 3 of the same template. Plain
    `kubectl rollout undo` would bring back revision 2; the rollback goes to revision 1, the last
    template that differs other than by restartedAt."""
    seeded = seed_workload(kube)
    stamp = {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:10:00Z"}
    bad = next(rs for rs in seeded["replicasets"] if rs["metadata"]["annotations"][REVISION] == "2")
    restarted = copy.deepcopy(bad)
    restarted["metadata"] = {**{k: v for k, v in bad["metadata"].items() if k not in ("uid", "resourceVersion")},
                             "name": f"{APP}-restarted", "annotations": {REVISION: "3"}}
    restarted["spec"]["template"]["metadata"]["annotations"] = stamp
    kube.seed(restarted)
    _apps(kube).patch_namespaced_deployment(APP, NS, {"metadata": {"annotations": {REVISION: "3"}},
                                                      "spec": {"template": {"metadata": {"annotations": stamp}}}})
    result = _executor(kube, ledger).execute(Action(A.ROLLBACK_ROLLOUT, CART), snapshot_for())

    assert result.ok, result.error
    assert _containers(kube.get("apps/v1", "Deployment", NS, APP))[APP]["image"] == "cart:1"  # type: ignore[arg-type]
    row = ledger.execution(result.execution_id)
    assert row is not None and row.plan["intent"]["to_revision"] == 1 and row.plan["intent"]["from_revision"] == 3


def _previous_rs(kube: KubeServer) -> str:
    listed = _apps(kube).list_namespaced_replica_set(NS, label_selector=f"app={APP}").items
    return str(next(rs.metadata.name for rs in listed
                    if rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"))


def test_delete_pod_goes_through_the_eviction_api_and_its_budget(kube: KubeServer, ledger: Ledger) -> None:
    """A PDB at its minimum: the API server answers the eviction 429; a failed execution names the budget."""
    seeded = seed_workload(kube, replicas=2, pdb_min=2)
    pod = seeded["pods"][0]["metadata"]["name"]
    executor = _executor(kube, ledger)

    result = executor.execute(Action(A.DELETE_POD, ObjectRef("Pod", NS, pod)), snapshot_for(pods=(pod,)))

    assert result.state == "failed"
    assert f"pod {NS}/{pod} cannot be evicted" in (result.error or "")
    assert "The disruption budget cart needs 2 healthy pods and has 2 currently" in (result.error or "")
    [refused] = kube.requests("POST", f"/api/v1/namespaces/{NS}/pods/{pod}/eviction")
    assert refused.status == 429
    validate_manifest(refused.body)
    assert kube.requests("DELETE") == [] and kube.get("v1", "Pod", NS, pod) is not None
    row = ledger.execution(result.execution_id)
    assert row is not None and row.state == "failed" and "disruption budget cart" in (row.error or "")


@pytest.mark.parametrize("released_after", [3, None], ids=["gone-after-3-waits", "still-there-at-the-deadline"])
def test_drain_waits_until_the_evicted_pods_are_gone_within_one_deadline(
        kube: KubeServer, ledger: Ledger, released_after: int | None) -> None:
    """A finalizer holds the evicted pod (terminating); the drain waits for it, on a clock its sleeps advance."""
    seeded = seed_workload(kube, replicas=2)
    core = __import__("kubernetes.client", fromlist=["CoreV1Api"]).CoreV1Api(kube.api_client())
    [held] = [p["metadata"]["name"] for p in seeded["pods"] if p["spec"]["nodeName"] == "node-a"]
    core.patch_namespaced_pod(held, NS, {"metadata": {"finalizers": ["example.com/hold"]}})
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # no real sleep: the executor's clock moves instead
        slept.append(seconds)
        now[0] += seconds
        if len(slept) == released_after:  # the finalizer's controller lets go
            core.patch_namespaced_pod(held, NS, {"metadata": {"finalizers": None}})

    executor = KubeExecutor(kube.api_client(retries=False), ledger, dry_run=False, clock=lambda: now[0],
                            backoff=Backoff(base_s=0.5, max_s=4.0, sleep=sleep), drain_timeout_s=20.0)

    result = executor.execute(Action(A.CORDON_DRAIN_NODE, ObjectRef("Node", "", "node-a")),
                              snapshot_for(pods=tuple(p["metadata"]["name"] for p in seeded["pods"])))

    [eviction] = kube.requests("POST", f"/api/v1/namespaces/{NS}/pods/{held}/eviction")
    assert eviction.status == 201
    reads = kube.requests("GET", f"/api/v1/namespaces/{NS}/pods/{held}")
    if released_after is not None:
        assert result.ok, result.error
        assert len(slept) == released_after and len(reads) == released_after + 1
        assert kube.get("v1", "Pod", NS, held) is None
    else:
        assert not result.ok
        assert result.error == (f"drain incomplete: evicted but still there after 20 s (drain_timeout_s): "
                                f"{NS}/{held}; the node node-a stays cordoned")
        assert sum(slept) >= 20.0 and sum(slept[:-1]) < 20.0  # one deadline: waited until it, not beyond
        pod = kube.get("v1", "Pod", NS, held)
        assert pod is not None and pod["metadata"]["deletionTimestamp"]
    assert kube.get("v1", "Node", None, "node-a")["spec"]["unschedulable"] is True  # type: ignore[index]


def _api_call(method: str, path: str) -> ApiCall:
    """A logged request as RBAC names it: (verb, API group, resource[/subresource])."""
    parsed = parse_api_path(path)
    assert parsed is not None, path
    if method == "GET":
        verb = "get" if parsed.name else "list"
    else:
        verb = {"POST": "create", "PATCH": "patch", "PUT": "update"}.get(method) or (
            "delete" if parsed.name else "deletecollection")
    resource = f"{parsed.plural}/{parsed.subresource}" if parsed.subresource else parsed.plural
    return ApiCall(verb, parsed.group, resource)


def test_the_api_call_table_declares_every_call_the_executor_makes(ledger: Ledger) -> None:
    """Every action kind, executed, undone and dry-run against its own emulator: the log is the table, exactly."""
    logged: set[ApiCall] = set()
    remember_good(ledger)
    for kind, case in CASES.items():
        with KubeServer(KubeEmulator()) as kube:
            seeded = seed_workload(kube, dependency=True)
            snap = snapshot_for(pods=tuple(p["metadata"]["name"] for p in seeded["pods"]))
            executor = _executor(kube, ledger)
            action = case.action(seeded)
            assert executor.execute(action, snap, dry_run=True).ok
            result = executor.execute(action, snap)
            assert result.ok, (kind, result.error)
            if case.reversible:
                assert executor.undo(result.execution_id).ok
            logged |= {_api_call(r.method, r.path) for r in kube.requests()}
    for name, case in WORKLOAD_CASES.items():
        with KubeServer(KubeEmulator()) as kube:
            seed_stateful(kube)
            executor = _executor(kube, ledger)
            action = case.action({})
            snap = snapshot_of(action.target)
            assert executor.execute(action, snap, dry_run=True).ok
            result = executor.execute(action, snap)
            assert result.ok, (name, result.error)
            assert executor.undo(result.execution_id).ok
            logged |= {_api_call(r.method, r.path) for r in kube.requests()}
    with KubeServer(KubeEmulator()) as kube:  # a direct scale: no HPA scales cart
        seed_workload(kube)
        assert _executor(kube, ledger).execute(Action(A.SCALE_OUT, CART, {"replicas": 3}), snapshot_for(hpa=False)).ok
        logged |= {_api_call(r.method, r.path) for r in kube.requests()}
    undeclared = logged - set(API_CALLS)
    assert not undeclared, f"calls missing from executor.API_CALLS: {sorted(undeclared)}"
    assert set(API_CALLS) == logged, f"declared but never made: {sorted(set(API_CALLS) - logged)}"
    assert len(set(API_CALLS)) == len(API_CALLS)

"""Self-tests of tests/support/kube.py: the official client over HTTP against the extended kmock emulator."""

# The typed client wants models and Optional checks; these tests pass dicts (valid at run time).
# mypy: disable-error-code="arg-type,union-attr,index,no-untyped-call,misc"

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes import client
from kubernetes.client import ApiException

from tests.support.kube import KubeEmulator, KubeServer, validate_manifest

NS = "shop"
MERGE = "application/merge-patch+json"
JSONPATCH = "application/json-patch+json"


def deployment(name: str = "web", replicas: int = 3, **labels: str) -> dict[str, Any]:
    labels = {"app": name, **labels}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "shop/web:1",
                            "resources": {"limits": {"memory": "128Mi"}},
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        },
                        {"name": "sidecar", "image": "envoy:1"},
                    ]
                },
            },
        },
    }


def pod(
    name: str, node: str = "node-1", ready: bool | None = None, phase: str = "Running", **labels: str
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels or {"app": "web"}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "shop/web:1"}]},
        "status": status,
    }


def pdb(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
    }


def status_of(e: ApiException) -> dict[str, Any]:
    return json.loads(e.body)  # type: ignore[no-any-return]


@pytest.fixture
def api(kube: KubeServer) -> client.ApiClient:
    return kube.api_client()


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


# --------------------------------------------------------------------------- CRUD and metadata


def test_create_get_list_delete_with_server_metadata(apps: client.AppsV1Api) -> None:
    created = apps.create_namespaced_deployment(NS, deployment())
    meta = created.metadata
    assert meta.uid and meta.resource_version == "1" and meta.generation == 1 and meta.creation_timestamp
    assert created.kind == "Deployment" and created.api_version == "apps/v1"
    assert apps.read_namespaced_deployment("web", NS).metadata.uid == meta.uid
    assert [d.metadata.name for d in apps.list_namespaced_deployment(NS).items] == ["web"]
    assert [d.metadata.name for d in apps.list_deployment_for_all_namespaces().items] == ["web"]
    assert apps.list_namespaced_deployment("other").items == []

    with pytest.raises(ApiException) as err:
        apps.create_namespaced_deployment(NS, deployment())
    assert err.value.status == 409 and status_of(err.value)["reason"] == "AlreadyExists"

    apps.delete_namespaced_deployment("web", NS)
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("web", NS)
    assert err.value.status == 404 and status_of(err.value)["reason"] == "NotFound"


def test_empty_list_for_a_resource_never_stored(apps: client.AppsV1Api, api: client.ApiClient) -> None:
    assert apps.list_namespaced_replica_set(NS).items == []  # plain kmock answers 404 here
    assert client.PolicyV1Api(api).list_namespaced_pod_disruption_budget(NS).items == []


def test_generate_name_and_namespace_mismatch(core: client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map(NS, {"metadata": {"generateName": "cfg-"}, "data": {"a": "1"}})
    assert re.fullmatch(r"cfg-[0-9a-f]{5}", cm.metadata.name)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "x", "namespace": "elsewhere"}})
    assert err.value.status == 400


def test_label_and_field_selectors(kube: KubeServer, core: client.CoreV1Api) -> None:
    kube.seed(
        pod("web-1", app="web", tier="front"),
        pod("web-2", node="node-2", app="web"),
        pod("db-1", app="db", canary="yes"),
        pod("job-1", phase="Succeeded", app="job"),
    )

    def names(**kw: str) -> list[str]:
        return [p.metadata.name for p in core.list_namespaced_pod(NS, **kw).items]

    assert names(label_selector="app=web") == ["web-1", "web-2"]
    assert names(label_selector="app==web,tier=front") == ["web-1"]
    assert names(label_selector="app!=web") == ["db-1", "job-1"]
    assert names(label_selector="app in (web, db),tier notin (front)") == ["db-1", "web-2"]
    assert names(label_selector="canary") == ["db-1"]
    assert names(label_selector="!canary,app") == ["job-1", "web-1", "web-2"]
    assert names(field_selector="spec.nodeName=node-1") == ["db-1", "job-1", "web-1"]
    assert names(field_selector="spec.nodeName=node-1,status.phase!=Succeeded") == ["db-1", "web-1"]
    assert names(field_selector="metadata.name==web-2") == ["web-2"]
    with pytest.raises(ApiException) as err:
        names(label_selector="app in web")
    assert err.value.status == 400


# --------------------------------------------------------------------------- patches and resourceVersion


def test_strategic_merge_patch_merges_containers_by_name(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    patched = apps.patch_namespaced_deployment(
        "web",
        NS,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "resources": {"limits": {"memory": "256Mi"}},
                                "env": [{"name": "B", "value": "3"}],
                            }
                        ]
                    }
                }
            }
        },
    )
    app, sidecar = patched.spec.template.spec.containers
    assert (app.name, app.image, app.resources.limits) == ("app", "shop/web:1", {"memory": "256Mi"})
    assert [(e.name, e.value) for e in app.env] == [("A", "1"), ("B", "3")]
    assert sidecar.name == "sidecar"
    assert patched.metadata.generation == 2 and patched.metadata.resource_version == "2"

    removed = apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}
    )
    assert [c.name for c in removed.spec.template.spec.containers] == ["app"]


def test_merge_patch_replaces_lists_and_json_patch(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    merged = apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x:1"}]}}}},
        _content_type=MERGE,
    )
    assert [c.name for c in merged.spec.template.spec.containers] == ["only"]
    jp = apps.patch_namespaced_deployment(
        "web",
        NS,
        [
            {"op": "replace", "path": "/spec/replicas", "value": 7},
            {"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}},
        ],
    )
    assert jp.spec.replicas == 7 and jp.metadata.annotations == {"a": "b"}
    with pytest.raises(ApiException) as err:  # a failing "test" op
        apps.patch_namespaced_deployment("web", NS, [{"op": "test", "path": "/spec/replicas", "value": 1}])
    assert err.value.status == 422


def test_noop_patch_keeps_resource_version_and_metadata_change_keeps_generation(
    apps: client.AppsV1Api,
) -> None:
    rv = apps.create_namespaced_deployment(NS, deployment()).metadata.resource_version
    same = apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 3}})
    assert same.metadata.resource_version == rv
    labelled = apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.resource_version != rv and labelled.metadata.generation == 1


def test_stale_resource_version_conflicts(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    first = apps.create_namespaced_deployment(NS, deployment())
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 4}})  # someone else writes
    first.spec.replicas = 5
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment("web", NS, first)
    assert err.value.status == 409 and status_of(err.value)["reason"] == "Conflict"
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(
            "web",
            NS,
            {"metadata": {"resourceVersion": first.metadata.resource_version}, "spec": {"replicas": 5}},
        )
    assert err.value.status == 409

    fresh = apps.read_namespaced_deployment("web", NS)  # re-read and retry works
    fresh.spec.replicas = 5
    assert apps.replace_namespaced_deployment("web", NS, fresh).spec.replicas == 5

    with pytest.raises(ApiException) as err:
        apps.delete_namespaced_deployment("web", NS, body={"preconditions": {"resourceVersion": "1"}})
    assert err.value.status == 409


def test_status_subresource(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    # a write to the main resource ignores status, as on a real API server
    ignored = apps.patch_namespaced_deployment("web", NS, {"status": {"availableReplicas": 3}})
    assert ignored.status is None
    updated = apps.patch_namespaced_deployment_status("web", NS, {"status": {"availableReplicas": 2, "replicas": 3}})
    assert (updated.status.available_replicas, updated.status.replicas) == (2, 3)
    assert updated.metadata.generation == 1
    kept = apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 4}})
    assert kept.status.available_replicas == 2


# --------------------------------------------------------------------------- scale


def test_scale_subresource(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment(replicas=2))
    scale = apps.read_namespaced_deployment_scale("web", NS)
    assert scale.kind == "Scale" and scale.spec.replicas == 2 and scale.status.selector == "app=web"
    patched = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    assert patched.spec.replicas == 5
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 5

    scale.spec.replicas = 9  # scale carries the deployment's old resourceVersion
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment_scale("web", NS, scale)
    assert err.value.status == 409
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": -1}})
    assert err.value.status == 422

    rs = deployment("web-abc", replicas=1)
    rs["kind"] = "ReplicaSet"
    apps.create_namespaced_replica_set(NS, rs)
    assert apps.patch_namespaced_replica_set_scale("web-abc", NS, {"spec": {"replicas": 0}}).spec.replicas == 0


# --------------------------------------------------------------------------- eviction and PDBs


def test_eviction_respects_pdb_and_pdb_status_is_maintained(
    kube: KubeServer, core: client.CoreV1Api, api: client.ApiClient
) -> None:
    policy = client.PolicyV1Api(api)
    kube.seed(pod("web-1"), pod("web-2"), pod("web-3"), pdb(minAvailable=2))
    budget = policy.read_namespaced_pod_disruption_budget("web", NS).status
    assert (budget.current_healthy, budget.desired_healthy, budget.disruptions_allowed) == (3, 2, 1)

    core.create_namespaced_pod_eviction("web-1", NS, {"metadata": {"name": "web-1", "namespace": NS}})
    assert [p.metadata.name for p in core.list_namespaced_pod(NS).items] == ["web-2", "web-3"]
    assert policy.read_namespaced_pod_disruption_budget("web", NS).status.disruptions_allowed == 0

    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction("web-2", NS, {"metadata": {"name": "web-2", "namespace": NS}})
    assert err.value.status == 429
    body = status_of(err.value)
    assert body["reason"] == "TooManyRequests"
    assert body["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert "needs 2 healthy pods and has 2 currently" in body["details"]["causes"][0]["message"]
    assert len(core.list_namespaced_pod(NS).items) == 2


def test_eviction_of_pending_and_unhealthy_pods_and_percentages(kube: KubeServer, core: client.CoreV1Api) -> None:
    kube.seed(
        pod("web-1"),
        pod("web-2"),
        pod("web-3", ready=False),
        pod("web-4", phase="Pending"),
        pdb(maxUnavailable="25%"),
    )  # 4 pods, 25% -> 1 may be unavailable: 3 desired, 2 healthy
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction("web-1", NS, {"metadata": {"name": "web-1"}})
    assert err.value.status == 429
    core.create_namespaced_pod_eviction("web-4", NS, {"metadata": {"name": "web-4"}})  # Pending: no PDB check
    # 3 pods -> 2 desired, 2 healthy: the budget holds, so the unready pod may go (IfHealthyBudget)
    core.create_namespaced_pod_eviction("web-3", NS, {"metadata": {"name": "web-3"}})
    assert [p.metadata.name for p in core.list_namespaced_pod(NS).items] == ["web-1", "web-2"]


def test_unready_pod_eviction_refused_while_budget_unmet(kube: KubeServer, core: client.CoreV1Api) -> None:
    kube.seed(pod("web-1"), pod("web-2", ready=False), pdb(minAvailable=2))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction("web-2", NS, {"metadata": {"name": "web-2"}})
    assert err.value.status == 429


def test_eviction_without_pdb_and_with_two_pdbs(kube: KubeServer, core: client.CoreV1Api) -> None:
    kube.seed(
        pod("web-1"),
        pod("web-2"),
        pod("lonely", app="other"),
        pdb("a", minAvailable=0),
        pdb("b", minAvailable=0),
    )
    core.create_namespaced_pod_eviction("lonely", NS, {"metadata": {"name": "lonely"}})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction("web-1", NS, {"metadata": {"name": "web-1"}})
    assert err.value.status == 500 and "more than one PodDisruptionBudget" in status_of(err.value)["message"]
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction("missing", NS, {"metadata": {"name": "missing"}})
    assert err.value.status == 404


# --------------------------------------------------------------------------- dry run


def test_dry_run_all_changes_nothing(kube: KubeServer, apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    dry = apps.create_namespaced_deployment(NS, deployment(), dry_run="All")
    assert dry.metadata.uid and dry.metadata.resource_version is None
    assert apps.list_namespaced_deployment(NS).items == []

    apps.create_namespaced_deployment(NS, deployment(replicas=2))
    kube.seed(pod("web-1"))
    rv = apps.read_namespaced_deployment("web", NS).metadata.resource_version
    assert apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 9}}, dry_run="All").spec.replicas == 9
    assert (
        apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 8}}, dry_run="All").spec.replicas == 8
    )
    apps.delete_namespaced_deployment("web", NS, dry_run="All")
    core.create_namespaced_pod_eviction(
        "web-1", NS, {"metadata": {"name": "web-1"}, "deleteOptions": {"dryRun": ["All"]}}
    )
    core.delete_namespaced_pod("web-1", NS, body={"dryRun": ["All"]})
    after = apps.read_namespaced_deployment("web", NS)
    assert (after.spec.replicas, after.metadata.resource_version) == (2, rv)
    assert core.read_namespaced_pod("web-1", NS).metadata.name == "web-1"
    assert kube.requests("PATCH")[0].query["dryRun"] == "All"

    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 1}}, dry_run="true")
    assert err.value.status == 400


# --------------------------------------------------------------------------- other kinds the executor touches


def test_nodes_cordon_and_pods_on_node(kube: KubeServer, core: client.CoreV1Api) -> None:
    core.create_node({"metadata": {"name": "node-1", "labels": {"zone": "a"}}})
    cordoned = core.patch_node("node-1", {"spec": {"unschedulable": True}})
    assert cordoned.spec.unschedulable is True and cordoned.metadata.namespace is None
    kube.seed(pod("web-1"), pod("web-2", node="node-2"))
    on_node = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-1").items
    assert [p.metadata.name for p in on_node] == ["web-1"]
    assert (
        core.patch_node_status("node-1", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
        .status.conditions[0]
        .status
        == "False"
    )


def test_hpa_pvc_and_events(api: client.ApiClient, core: client.CoreV1Api) -> None:
    hpa_api = client.AutoscalingV2Api(api)
    hpa_api.create_namespaced_horizontal_pod_autoscaler(
        NS,
        {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 5,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ],
            },
        },
    )
    hpa = hpa_api.patch_namespaced_horizontal_pod_autoscaler("web", NS, {"spec": {"maxReplicas": 10}})
    assert hpa.spec.max_replicas == 10 and hpa.spec.metrics[0].resource.name == "cpu"

    core.create_namespaced_persistent_volume_claim(
        NS,
        {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
        },
    )
    pvc = core.patch_namespaced_persistent_volume_claim(
        "data", NS, {"spec": {"resources": {"requests": {"storage": "20Gi"}}}}
    )
    assert pvc.spec.resources.requests == {"storage": "20Gi"} and pvc.spec.access_modes == ["ReadWriteOnce"]

    core.create_namespaced_event(
        NS,
        {
            "metadata": {"generateName": "web."},
            "reason": "Remediated",
            "message": "restarted",
            "type": "Normal",
            "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": NS},
            "source": {"component": "remediator"},
        },
    )
    client.EventsV1Api(api).create_namespaced_event(
        NS,
        {
            "metadata": {"name": "web.1"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "action": "Restart",
            "reason": "Remediated",
            "type": "Normal",
            "reportingController": "remediator",
            "reportingInstance": "remediator-0",
            "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": NS},
        },
    )
    core_events = core.list_namespaced_event(NS, field_selector="involvedObject.name=web").items
    assert [e.reason for e in core_events] == ["Remediated"]
    new_events = client.EventsV1Api(api).list_namespaced_event(NS, field_selector="regarding.kind=Deployment")
    assert [e.action for e in new_events.items] == ["Restart"]


def test_pvc_request_below_status_capacity_is_refused(kube: KubeServer, core: client.CoreV1Api) -> None:
    """As on a real API server: a volume never shrinks, whatever the patch type, dry run included."""
    kube.seed(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": NS},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "20Gi"}},
        }
    )
    shrink = {"spec": {"resources": {"requests": {"storage": "10Gi"}}}}
    for dry_run in (None, "All"):
        with pytest.raises(ApiException) as refused:
            core.patch_namespaced_persistent_volume_claim("data", NS, shrink, dry_run=dry_run)
        assert refused.value.status == 422
        assert status_of(refused.value)["message"] == (
            'PersistentVolumeClaim "data" is invalid: '
            "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
        )
    assert kube.get("v1", "PersistentVolumeClaim", NS, "data")["spec"]["resources"]["requests"] == {  # type: ignore[index]
        "storage": "20Gi"
    }
    grown = core.patch_namespaced_persistent_volume_claim(
        "data", NS, {"spec": {"resources": {"requests": {"storage": "30Gi"}}}}
    )
    assert grown.spec.resources.requests == {"storage": "30Gi"}
    # status.capacity still 20Gi (the resize has not completed): back to 20Gi is accepted, below it is not
    back = core.patch_namespaced_persistent_volume_claim(
        "data", NS, {"spec": {"resources": {"requests": {"storage": "20Gi"}}}}
    )
    assert back.spec.resources.requests == {"storage": "20Gi"}


def test_custom_resources(kube: KubeServer, api: client.ApiClient) -> None:
    kube.emulator.register_resource("remediator.io/v1alpha1/remediations", "Remediation")
    crs = client.CustomObjectsApi(api)
    args = ("remediator.io", "v1alpha1", NS, "remediations")
    created = crs.create_namespaced_custom_object(
        *args,
        {
            "apiVersion": "remediator.io/v1alpha1",
            "kind": "Remediation",
            "metadata": {"name": "r1", "labels": {"a": "b"}},
            "spec": {"action": "restart_rollout"},
        },
    )
    assert created["metadata"]["resourceVersion"]
    patched = crs.patch_namespaced_custom_object(*args, "r1", {"spec": {"params": {"x": 1}}})  # merge patch
    assert patched["spec"] == {"action": "restart_rollout", "params": {"x": 1}}
    status = crs.patch_namespaced_custom_object_status(*args, "r1", {"status": {"phase": "executing"}})
    assert status["status"] == {"phase": "executing"}
    assert [o["metadata"]["name"] for o in crs.list_namespaced_custom_object(*args, label_selector="a=b")["items"]] == [
        "r1"
    ]
    with pytest.raises(ApiException) as err:  # no strategic merge patch for custom resources
        crs.patch_namespaced_custom_object(
            *args, "r1", {"spec": {}}, _content_type="application/strategic-merge-patch+json"
        )
    assert err.value.status == 415


def test_strict_resources_rejects_unknown_custom_resources() -> None:
    with KubeServer(KubeEmulator(strict_resources=True)) as kube:
        crs = client.CustomObjectsApi(kube.api_client())
        with pytest.raises(ApiException) as err:
            crs.list_namespaced_custom_object("x.io", "v1", NS, "things")
        assert err.value.status == 404


# --------------------------------------------------------------------------- faults


def test_injected_faults_answer_then_clear(kube: KubeServer, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    conflict = kube.inject_fault(409, times=2, method="PATCH", path=f"/apis/apps/v1/namespaces/{NS}/deployments/*")
    statuses = []
    for _ in range(3):
        try:
            apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 4}})
            statuses.append(200)
        except ApiException as e:
            statuses.append(e.status)
    assert statuses == [409, 409, 200]
    assert len(conflict.hits) == 2 and conflict.remaining == 0
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 4

    kube.inject_fault(429, method="PATCH", path=re.compile(r"/deployments/web$"), retry_after=3)
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 5}})
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "3"
    assert status_of(err.value)["details"] == {"retryAfterSeconds": 3}

    kube.inject_fault(500, times=5)
    kube.emulator.clear_faults()
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 4


def test_urllib3_silently_retries_get_with_retry_after(kube: KubeServer) -> None:
    """Pitfall: the client's urllib3 sleeps Retry-After and retries a GET by itself."""
    fault = kube.inject_fault(429, method="GET", retry_after=1)
    started = time.monotonic()
    assert client.CoreV1Api(kube.api_client()).list_namespaced_pod(NS).items == []
    assert len(fault.hits) == 1 and time.monotonic() - started >= 1
    kube.inject_fault(429, method="GET", retry_after=1)
    with pytest.raises(ApiException) as err:  # retries=False: the caller sees the 429
        client.CoreV1Api(kube.api_client(retries=False)).list_namespaced_pod(NS)
    assert err.value.status == 429


def test_fault_hits_measure_client_backoff(kube: KubeServer, core: client.CoreV1Api) -> None:
    fault = kube.inject_fault(503, times=3, method="GET", path="/api/v1/namespaces/*/pods")
    delays = [0.05, 0.1, 0.2]
    for delay in delays:  # a toy retry loop, as the executor's would be
        try:
            core.list_namespaced_pod(NS)
            break
        except ApiException as e:
            assert e.status == 503
            time.sleep(delay)
    assert core.list_namespaced_pod(NS).items == []
    gaps = [b - a for a, b in zip(fault.hits, fault.hits[1:], strict=False)]
    assert all(gap >= d for gap, d in zip(gaps, delays, strict=False))
    assert [r.status for r in kube.requests("GET", "/api/v1/namespaces/*/pods")] == [503, 503, 503, 200]


# --------------------------------------------------------------------------- clients, discovery, watch


def test_kubeconfig_dynamic_client_and_version(kube: KubeServer, tmp_path: Path) -> None:
    path = kube.write_kubeconfig(tmp_path / "kubeconfig")
    api = kubernetes.config.new_client_from_config(config_file=str(path))
    try:
        assert client.VersionApi(api).get_code().git_version == "v1.33.0"
        client.AppsV1Api(api).create_namespaced_deployment(NS, deployment())
        dyn = kubernetes.dynamic.DynamicClient(api)
        deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
        assert [d.metadata.name for d in deployments.get(namespace=NS).items] == ["web"]
    finally:
        api.close()


def test_watch_streams_writes(core: client.CoreV1Api) -> None:
    def writer() -> None:
        time.sleep(0.3)
        core.create_namespaced_config_map(NS, {"metadata": {"name": "c1"}, "data": {"a": "1"}})
        core.patch_namespaced_config_map("c1", NS, {"data": {"a": "2"}})

    thread = threading.Thread(target=writer)
    thread.start()
    watch = kubernetes.watch.Watch()
    seen = []
    for event in watch.stream(core.list_namespaced_config_map, NS, _request_timeout=10):
        seen.append((event["type"], event["object"].data["a"]))
        if len(seen) == 2:
            watch.stop()
    thread.join()
    assert seen == [("ADDED", "1"), ("MODIFIED", "2")]


def test_servers_are_independent() -> None:
    with KubeServer() as one, KubeServer() as two:
        client.CoreV1Api(one.api_client()).create_namespaced_config_map(NS, {"metadata": {"name": "c"}})
        assert client.CoreV1Api(two.api_client()).list_namespaced_config_map(NS).items == []
        assert one.get("v1", "ConfigMap", NS, "c") is not None and two.get("v1", "ConfigMap", NS, "c") is None
    assert one.port != two.port


@pytest.fixture
def validating() -> Iterator[KubeServer]:
    with KubeServer(KubeEmulator(validate="1.33")) as server:
        yield server


def test_validating_emulator_rejects_invalid_objects(validating: KubeServer) -> None:
    apps = client.AppsV1Api(validating.api_client())
    bad = deployment()
    bad["spec"]["replicas"] = "three"  # the client's pydantic models refuse this, so send it raw
    status, body = raw_request(validating, "POST", f"/apis/apps/v1/namespaces/{NS}/deployments", bad)
    assert status == 422 and "spec.replicas" in body["message"]
    apps.create_namespaced_deployment(NS, deployment())
    with pytest.raises(ApiException) as err:  # a typo in a patch: strict schemas reject unknown fields
        apps.patch_namespaced_deployment(
            "web",
            NS,
            {
                "spec": {
                    "template": {"spec": {"containers": [{"name": "app", "resource": {"limits": {"memory": "1Gi"}}}]}}
                }
            },
        )
    assert err.value.status == 422 and "'resource' was unexpected" in status_of(err.value)["message"]
    assert apps.read_namespaced_deployment("web", NS).metadata.generation == 1


def raw_request(
    kube: KubeServer, method: str, path: str, body: Any, content_type: str = "application/json"
) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{kube.url}{path}",
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_seed_deployment_supports_rollback_restart_and_drain(kube: KubeServer, apps: Any, core: Any) -> None:
    seeded = kube.seed_deployment("web", NS, replicas=3, images=["web:1", "web:2"], nodes=["node-1", "node-2"])
    assert [rs["spec"]["replicas"] for rs in seeded["replicasets"]] == [0, 3]
    assert [p["spec"]["nodeName"] for p in seeded["pods"]] == ["node-1", "node-2", "node-1"]
    validate_manifest(seeded["deployment"])
    for obj in seeded["replicasets"] + seeded["pods"]:
        validate_manifest(obj)

    # rollback as the executor would: the previous revision's template, without pod-template-hash
    owned = apps.list_namespaced_replica_set(NS, label_selector="app=web").items
    by_revision = sorted(owned, key=lambda rs: int(rs.metadata.annotations["deployment.kubernetes.io/revision"]))
    previous = apps.api_client.sanitize_for_serialization(by_revision[-2].spec.template)
    del previous["metadata"]["labels"]["pod-template-hash"]
    rolled = apps.patch_namespaced_deployment(
        "web", NS, [{"op": "replace", "path": "/spec/template", "value": previous}]
    )
    assert rolled.spec.template.spec.containers[0].image == "web:1" and rolled.metadata.generation == 2

    restarted = apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}}}}
    )
    assert restarted.spec.template.metadata.annotations == {"kubectl.kubernetes.io/restartedAt": "now"}
    assert restarted.status.available_replicas == 3  # no controller: status stays as seeded

    on_node = core.list_namespaced_pod(NS, field_selector="spec.nodeName=node-1").items
    assert len(on_node) == 2


def test_finalizers_delay_deletion_until_removed(core: Any) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "c", "finalizers": ["remediator.io/undo", "x/y"]}})
    core.delete_namespaced_config_map("c", NS)  # (typed V1Status; the client hands back the object as a dict)
    assert core.read_namespaced_config_map("c", NS).metadata.deletion_timestamp is not None  # terminating
    left = core.patch_namespaced_config_map(
        "c", NS, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["remediator.io/undo"]}}
    )
    assert left.metadata.finalizers == ["x/y"]
    core.patch_namespaced_config_map("c", NS, {"metadata": {"finalizers": None}}, _content_type=MERGE)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("c", NS)
    assert err.value.status == 404

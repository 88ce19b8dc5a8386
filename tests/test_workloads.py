"""Owner chains: every workload kind from ownerReferences, never from names."""

from __future__ import annotations

from typing import Any

import pytest

from remediator.actions import ObjectRef
from remediator.snapshot import OBJECT_ABSENT, Alert, Series, build_snapshot, dependencies_of, resolve_workload
from remediator.workloads import claims_of, scale_target, services_named_in_env, workload_of

NS = "shop"
KSM = {"service": "kube-prometheus-stack-kube-state-metrics", "job": "kube-state-metrics", "endpoint": "http",
       "instance": "10.244.1.7:8080", "pod": "kube-prometheus-stack-kube-state-metrics-6d8f9c7b5-q2w3e"}


def _obj(kind: str, name: str, owner: tuple[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if owner:
        api = "argoproj.io/v1alpha1" if owner[0] == "Rollout" else "apps/v1"
        meta["ownerReferences"] = [{"apiVersion": api, "kind": owner[0], "name": owner[1], "controller": True}]
    return {"kind": kind, "metadata": meta, **extra}


def _cluster() -> list[dict[str, Any]]:
    return [
        _obj("StatefulSet", "redis-cart", spec={"replicas": 1, "template": {"metadata": {"labels": {"app": "redis"}}},
                                                "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}),
        _obj("Pod", "redis-cart-0", ("StatefulSet", "redis-cart"), spec={"nodeName": "n1", "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": "data-redis-cart-0"}}]}),
        _obj("DaemonSet", "agent"), _obj("Pod", "agent-abcde", ("DaemonSet", "agent"), spec={"nodeName": "n1"}),
        _obj("CronJob", "nightly"), _obj("Job", "nightly-290", ("CronJob", "nightly")),
        _obj("Pod", "nightly-290-q8w2e", ("Job", "nightly-290")),
        _obj("Job", "by-hand"), _obj("Pod", "by-hand-x1y2z", ("Job", "by-hand")),
        _obj("Rollout", "checkout"), _obj("ReplicaSet", "checkout-6b9f7", ("Rollout", "checkout")),
        _obj("Pod", "checkout-6b9f7-z9x8c", ("ReplicaSet", "checkout-6b9f7")),
        _obj("ReplicaSet", "orphan-5d4f"), _obj("Pod", "orphan-5d4f-aaaaa", ("ReplicaSet", "orphan-5d4f")),
        _obj("Pod", "cart-5d4f8-x2k4q", ("ReplicaSet", "cart-5d4f8")),  # its ReplicaSet was not observed
        _obj("Pod", "bare"),
        _obj("Pod", "operated", ("Cluster", "pg")),  # another operator's custom resource
        _obj("HorizontalPodAutoscaler", "redis", spec={"scaleTargetRef": {"kind": "StatefulSet",
                                                                          "name": "redis-cart"}}),
        {"kind": "Service", "metadata": {"name": "redis", "namespace": NS}, "spec": {"selector": {"app": "redis"}}},
    ]


def _get(objects: list[dict[str, Any]]) -> Any:
    index = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    return lambda kind, ns, name: index.get((kind, name))


@pytest.mark.parametrize(("pod", "expected"), [
    ("redis-cart-0", ObjectRef("StatefulSet", NS, "redis-cart")),
    ("agent-abcde", ObjectRef("DaemonSet", NS, "agent")),
    ("nightly-290-q8w2e", ObjectRef("CronJob", NS, "nightly")),
    ("by-hand-x1y2z", ObjectRef("Job", NS, "by-hand")),
    ("checkout-6b9f7-z9x8c", ObjectRef("Rollout", NS, "checkout")),
    ("orphan-5d4f-aaaaa", None),  # a ReplicaSet of no Deployment
    ("cart-5d4f8-x2k4q", None),  # its owner unknown: never guessed from the name
    ("bare", None),
    ("operated", None),
])
def test_a_pods_workload_is_its_top_controller(pod: str, expected: ObjectRef | None) -> None:
    objects = _cluster()
    [obj] = [o for o in objects if o["kind"] == "Pod" and o["metadata"]["name"] == pod]
    assert workload_of(obj, _get(objects)) == expected
    assert resolve_workload(Alert("KubePodNotReady", {"namespace": NS, "pod": pod}), objects) == expected


def test_a_rollout_of_another_group_is_no_argo_rollout() -> None:
    rs = _obj("ReplicaSet", "x-1", None)
    rs["metadata"]["ownerReferences"] = [{"apiVersion": "example.com/v1", "kind": "Rollout", "name": "x",
                                          "controller": True}]
    assert workload_of(rs, lambda *a: None) is None


def test_claims_and_scale_targets_of_a_statefulset() -> None:
    objects = _cluster()
    sts = objects[0]
    assert claims_of(sts) == ["data-redis-cart-0"]  # from volumeClaimTemplates, no pod needed
    assert scale_target(objects[-2]) == ObjectRef("StatefulSet", NS, "redis-cart")
    for labels in ({"persistentvolumeclaim": "data-redis-cart-0"}, {"horizontalpodautoscaler": "redis"},
                   {"statefulset": "redis-cart"}, {"service": "redis"}):
        alert = Alert("X", {"namespace": NS, **labels, **({} if "service" in labels else KSM)})
        assert resolve_workload(alert, objects) == ObjectRef("StatefulSet", NS, "redis-cart"), labels


def test_an_alert_about_an_object_that_leads_nowhere_is_not_resolved_through_the_scrapers_labels() -> None:
    """KubeHpaMaxedOut for an HPA not observed: `pod`/`service` are kube-state-metrics'; escalate."""
    ksm_pod = _obj("Pod", KSM["pod"], ("StatefulSet", "redis-cart"))  # even a pod that exists
    objects = [*_cluster(), ksm_pod]
    alert = Alert("KubeHpaMaxedOut", {"namespace": NS, "horizontalpodautoscaler": "gone", **KSM})
    assert resolve_workload(alert, objects) is None
    with pytest.raises(Exception, match="names no workload"):  # nor a node incident on the kubelet's node
        build_snapshot(Alert("KubePersistentVolumeFillingUp", {"namespace": NS, "persistentvolumeclaim": "nope",
                                                              "node": "n1"}), [], objects, now=0.0)


def test_a_service_counts_through_a_real_services_selector_only() -> None:
    cart = _obj("Deployment", "cart")
    offline = [cart]  # the simulator's: no Service was ever looked up
    assert resolve_workload(Alert("ServiceErrorBudgetBurn", {"namespace": NS, "service": "cart"}), offline) == \
        ObjectRef("Deployment", NS, "cart")
    live = [cart, {"kind": OBJECT_ABSENT, "of": "Service", "metadata": {"namespace": NS, "name": "cart"}}]
    assert resolve_workload(Alert("ServiceErrorBudgetBurn", {"namespace": NS, "service": "cart"}), live) is None


def test_statefulset_signals_come_from_its_own_series_whatever_the_scrapers_pod_label() -> None:
    now = 1000.0
    pts = [(now - 15 * i, v) for i, v in ((2, 2.0), (1, 2.0), (0, 2.0))][::-1]
    series = [Series("kube_statefulset_replicas", {"namespace": NS, "statefulset": "redis-cart", **KSM}, pts),
              Series("kube_statefulset_status_replicas_ready", {"namespace": NS, "statefulset": "redis-cart", **KSM},
                     [(t, 1.0) for t, _ in pts]),
              Series("kube_deployment_spec_replicas", {"namespace": NS, "deployment": "redis-cart", **KSM}, pts)]
    snap = build_snapshot(Alert("KubeStatefulSetReplicasMismatch", {"namespace": NS, "statefulset": "redis-cart",
                                                                   **KSM}), series, _cluster(), now=now)
    assert snap.workload_kind == "StatefulSet" and snap.pods == ("redis-cart-0",)
    assert snap.signals.desired_replicas == 2 and snap.signals.available_replicas == 1
    assert snap.pvc == ObjectRef("PersistentVolumeClaim", NS, "data-redis-cart-0")
    assert snap.hpa == ObjectRef("HorizontalPodAutoscaler", NS, "redis")
    assert "kube_statefulset_replicas" not in snap.missing and KSM["pod"] not in snap.pods


@pytest.mark.parametrize(("env", "expected"), [
    ({"name": "CART_SERVICE_ADDR", "value": "cartservice:7070"}, (NS, "cartservice")),
    ({"name": "REDIS_ADDR", "value": "redis-cart"}, (NS, "redis-cart")),
    ({"name": "PAYMENTS_URL", "value": "http://payments.billing.svc.cluster.local:8080/v1"}, ("billing", "payments")),
    ({"name": "CATALOG", "value": "grpc://catalog.shop2:3550"}, ("shop2", "catalog")),
    ({"name": "DB_HOST", "value": "10.0.0.7"}, None),  # an IP names no Service
    ({"name": "LOG_LEVEL", "value": "debug"}, None),  # not an address
    ({"name": "API_URL", "value": "https://api.example.com/"}, None),  # outside the cluster's DNS
    ({"name": "SECRET_ADDR", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}, None),
])
def test_the_services_a_pod_templates_environment_names(env: dict[str, Any], expected: tuple[str, str] | None) -> None:
    dep = {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "app", "env": [env]}]}}}}
    assert services_named_in_env(dep, NS) == ([expected] if expected else [])


def test_dependencies_come_from_the_environment_through_service_selectors_in_any_namespace() -> None:
    env = [{"name": "REDIS_ADDR", "value": "redis:6379"}, {"name": "PAY_URL", "value": "http://pay.billing/"},
           {"name": "GONE_ADDR", "value": "gone:80"}, {"name": "SELF_ADDR", "value": "front:80"}]
    front = {"kind": "Deployment", "metadata": {"name": "front", "namespace": NS, "labels": {"app": "front"}},
             "spec": {"template": {"metadata": {"labels": {"app": "front"}},
                                   "spec": {"containers": [{"name": "front", "env": env}]}}}}
    pay = {"kind": "Deployment", "metadata": {"name": "payments-v2", "namespace": "billing", "labels": {"tier": "pay"}},
           "spec": {"template": {"metadata": {"labels": {"app": "pay"}}}}}
    services = [{"kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": {"selector": {"app": app}}}
                for name, ns, app in (("front", NS, "front"), ("pay", "billing", "pay"))]
    objects = [*_cluster(), front, pay, *services]
    deps = dependencies_of(ObjectRef("Deployment", NS, "front"), objects)
    # redis -> the StatefulSet its selector selects; pay.billing -> a Deployment of another name and
    # namespace; `gone` is no Service here and `front` is the workload itself: neither counts.
    assert deps == (ObjectRef("StatefulSet", NS, "redis-cart"), ObjectRef("Deployment", "billing", "payments-v2"))
    snap = build_snapshot(Alert("KubePodCrashLooping", {"namespace": NS, "deployment": "front"}), [], objects, now=0.0)
    assert snap.dependencies[0] in deps and set(snap.dependencies) == set(deps)
    # Another namespace's dependency is keyed by namespace/name: a shop/payments-v2 would be another object.
    assert snap.dependency_labels["billing/payments-v2"] == {"tier": "pay"} and snap.signals.deps == 2
    # The annotation overrides what the environment says.
    front["metadata"]["annotations"] = {"remediator.io/depends-on": "billing/payments-v2"}
    assert dependencies_of(ObjectRef("Deployment", NS, "front"), objects) == (
        ObjectRef("Deployment", "billing", "payments-v2"),)

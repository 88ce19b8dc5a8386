"""Last-known-good versions: digests, drift of configs and Services, and what the snapshot reads of them."""

from __future__ import annotations

import math
from typing import Any

from remediator.actions import ObjectRef
from remediator.snapshot import Alert, build_snapshot
from remediator.versions import (
    KnownGood,
    config_digest,
    config_drift,
    config_refs,
    config_version,
    retarget_template,
    service_version,
)

NOW = 10_000.0
NS = "shop"
CART = ObjectRef("Deployment", NS, "cart")


def _configmap(name: str, data: dict[str, str], written: float = NOW - 7200) -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"name": name, "namespace": NS, "creationTimestamp": NOW - 86400,
                                               "managedFields": [{"manager": "kubectl", "time": written}]},
            "data": data}


def _secret(name: str, data: dict[str, str], uid: str = "u1") -> dict[str, Any]:
    return {"kind": "Secret", "metadata": {"name": name, "namespace": NS, "uid": uid,
                                            "creationTimestamp": NOW - 86400}, "data": data}


def _template(config: str = "cart-config", secret: str = "cart-db") -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "cart"}},
            "spec": {"volumes": [{"name": "cfg", "configMap": {"name": config}}],
                     "containers": [{"name": "app", "ports": [{"name": "http", "containerPort": 8080}],
                                     "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": secret,
                                                                                           "key": "pw"}}}]}]}}


def _service(selector: dict[str, str], target: Any = "http", written: float = NOW - 86400) -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"name": "cart", "namespace": NS, "creationTimestamp": NOW - 86400,
                                             "managedFields": [{"manager": "kubectl", "time": written}]},
            "spec": {"selector": selector, "ports": [{"name": "web", "port": 80, "targetPort": target}]}}


def _cluster(config: dict[str, Any], secret: dict[str, Any], service: dict[str, Any],
             template: dict[str, Any] | None = None, ready: bool = True) -> list[dict[str, Any]]:
    pods = [{"kind": "Pod", "metadata": {"name": f"cart-aaa-{i}", "namespace": NS, "labels": {"app": "cart"},
                                         "ownerReferences": [{"kind": "ReplicaSet", "name": "cart-aaa"}]},
             "spec": {"nodeName": "node-a"},
             "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}} for i in range(2)]
    return [{"kind": "Deployment", "metadata": {"name": "cart", "namespace": NS, "labels": {"app": "cart"}},
             "spec": {"replicas": 2, "template": template or _template()}},
            {"kind": "ReplicaSet", "metadata": {"name": "cart-aaa", "namespace": NS,
                                                "ownerReferences": [{"kind": "Deployment", "name": "cart"}]}},
            *pods, config, secret, service]


def _good(*objects: dict[str, Any]) -> KnownGood:
    configs = tuple(config_version(o) for o in objects if o["kind"] in ("ConfigMap", "Secret"))
    services = tuple(service_version(o) for o in objects if o["kind"] == "Service")
    return KnownGood(CART, NOW - 3600, configs, services)


ALERT = Alert("ServiceErrorBudgetBurn", {"namespace": NS, "service": "cart"}, starts_at=NOW - 120)


def test_a_secret_digest_keeps_no_value_and_depends_on_the_secrets_identity() -> None:
    secret = _secret("cart-db", {"pw": "aHVudGVyMg=="})
    version = config_version(secret)
    assert version.data == {} and "aHVudGVyMg" not in repr(version)
    assert version.digest != config_digest(_secret("cart-db", {"pw": "aHVudGVyMg=="}, uid="u2"))
    assert version.digest == config_digest(_secret("cart-db", {"pw": "aHVudGVyMg=="}))
    assert config_version(_configmap("c", {"k": "v"})).data == {"data": {"k": "v"}}


def test_the_references_of_a_pod_template_are_found_and_retargeted() -> None:
    template = _template()
    assert config_refs(template, NS) == (ObjectRef("ConfigMap", NS, "cart-config"), ObjectRef("Secret", NS, "cart-db"))
    moved = retarget_template(template, ObjectRef("Secret", NS, "cart-db"), ObjectRef("Secret", NS, "cart-db-v1"))
    assert config_refs(moved, NS)[1].name == "cart-db-v1" and config_refs(template, NS)[1].name == "cart-db"


def test_an_edited_configmap_is_revertible_and_an_edited_secret_is_not() -> None:
    good_cm, good_secret = _configmap("cart-config", {"mode": "ok"}), _secret("cart-db", {"pw": "b2s="})
    edited_cm = _configmap("cart-config", {"mode": "broken"}, written=NOW - 300)
    edited_secret = _secret("cart-db", {"pw": "bm9wZQ=="})
    drift = config_drift([config_version(edited_cm), config_version(edited_secret)],
                         [config_version(good_cm), config_version(good_secret)])
    by_kind = {d.current.ref.kind: d for d in drift}
    assert by_kind["ConfigMap"].how == "edited" and not by_kind["ConfigMap"].blocked
    assert "never stores Secret values" in by_kind["Secret"].blocked
    assert drift[0].current.ref.kind == "ConfigMap"  # the newest change first


def test_the_snapshot_shows_a_config_edited_after_its_known_good_version() -> None:
    good_cm, secret, svc = _configmap("cart-config", {"mode": "ok"}), _secret("cart-db", {"pw": "b2s="}), \
        _service({"app": "cart"})
    known = _good(good_cm, secret, svc)
    edited = _configmap("cart-config", {"mode": "broken"}, written=NOW - 300)
    snap = build_snapshot(ALERT, [], _cluster(edited, secret, svc), now=NOW, known_good=[known])
    s = snap.signals
    assert s.config_revertible == 1.0 and s.config_secret_edited == 0.0 and s.config_changed_age_s == 300
    assert [d.current.ref.name for d in snap.config_drift] == ["cart-config"]
    assert [u.ref for u in snap.config_users] == [CART]
    assert s.service_ready_endpoints == 2 and s.service_revertible == 0.0 and snap.service_drift is None
    # Without a record nothing is revertible: the agent never guesses what was good.
    bare = build_snapshot(ALERT, [], _cluster(edited, secret, svc), now=NOW)
    assert bare.signals.config_revertible == 0.0 and bare.config_drift == ()


def test_a_service_whose_selector_changed_selects_no_endpoints_and_still_names_its_workload() -> None:
    cm, secret, good_svc = _configmap("cart-config", {"mode": "ok"}), _secret("cart-db", {"pw": "b2s="}), \
        _service({"app": "cart"})
    broken = _service({"app": "cart-v2"}, written=NOW - 200)
    snap = build_snapshot(ALERT, [], _cluster(cm, secret, broken), now=NOW, known_good=[_good(cm, secret, good_svc)])
    assert snap.workload == CART and snap.service is not None and snap.service.ref == ObjectRef("Service", NS, "cart")
    assert snap.signals.service_ready_endpoints == 0 and snap.signals.service_revertible == 1.0
    assert snap.service_drift is not None and snap.service_drift.fields == ("selector",)
    assert snap.signals.service_changed_age_s == 200


def test_a_named_target_port_no_container_has_leaves_no_endpoint() -> None:
    cm, secret = _configmap("cart-config", {"mode": "ok"}), _secret("cart-db", {"pw": "b2s="})
    for target, ready in (("http", 2), ("metrics", 0), (8080, 2), (9090, 0)):
        snap = build_snapshot(ALERT, [], _cluster(cm, secret, _service({"app": "cart"}, target)), now=NOW)
        assert snap.signals.service_ready_endpoints == ready, target
    unready = build_snapshot(ALERT, [], _cluster(cm, secret, _service({"app": "cart"}), ready=False), now=NOW)
    assert unready.signals.service_ready_endpoints == 0


def test_a_ready_cordoned_node_is_named_only_when_pods_wait_for_room() -> None:
    cm, secret, svc = _configmap("cart-config", {"mode": "ok"}), _secret("cart-db", {"pw": "b2s="}), \
        _service({"app": "cart"})
    objects = _cluster(cm, secret, svc)
    nodes = [{"kind": "Node", "metadata": {"name": n, "labels": {"zone": "a"}}, "spec": {"unschedulable": cordoned},
              "status": {"conditions": [{"type": "Ready", "status": ready}]}}
             for n, cordoned, ready in (("node-a", False, "True"), ("node-b", True, "True"), ("node-c", True, "False"))]
    pending = {"kind": "Pod", "metadata": {"name": "cart-aaa-9", "namespace": NS, "labels": {"app": "cart"},
                                           "ownerReferences": [{"kind": "ReplicaSet", "name": "cart-aaa"}]},
               "spec": {}, "status": {"phase": "Pending", "conditions": [
                   {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}}
    calm = build_snapshot(ALERT, [], objects + nodes, now=NOW)
    assert calm.cordoned_node is None and calm.signals.cordoned_ready_nodes == 1 and calm.signals.pending_pods == 0
    waiting = build_snapshot(ALERT, [], objects + nodes + [pending], now=NOW)
    assert waiting.signals.pending_pods == 1 and waiting.cordoned_node == "node-b"
    assert waiting.cordoned_node_labels == {"zone": "a"}


def test_no_service_or_config_leaves_the_neutral_defaults() -> None:
    objects = [o for o in _cluster(_configmap("x", {}), _secret("y", {}), _service({"app": "cart"}))
               if o["kind"] in ("Deployment", "ReplicaSet", "Pod")]
    snap = build_snapshot(Alert("KubePodCrashLooping", {"namespace": NS, "deployment": "cart"}), [], objects, now=NOW)
    s = snap.signals
    assert math.isinf(s.service_ready_endpoints) and math.isinf(s.config_changed_age_s) and snap.service is None
    assert all(c.digest == "" for c in snap.configs) and snap.config_drift == ()  # referenced, not read
    assert s.pending_pods == 0 and snap.cordoned_node is None


def test_a_secret_reference_moved_to_another_name_is_revertible_without_reading_any_secret() -> None:
    cm, svc = _configmap("cart-config", {"mode": "ok"}), _service({"app": "cart"})
    good = KnownGood(CART, NOW - 3600, (config_version(cm), config_version(_secret("cart-db", {"pw": "b2s="}))))
    objects = [o for o in _cluster(cm, _secret("unused", {}), svc, template=_template(secret="cart-db-v2"))
               if o["kind"] != "Secret"]
    snap = build_snapshot(ALERT, [], objects, now=NOW, known_good=[good])
    [drift] = snap.config_drift
    assert (drift.how, drift.current.ref.name, drift.good.ref.name, drift.blocked) == \
        ("renamed", "cart-db-v2", "cart-db", "")
    assert snap.signals.config_revertible == 1.0


def test_every_workload_kind_that_mounts_an_edited_config_is_among_its_users() -> None:
    good_cm, secret, svc = _configmap("cart-config", {"mode": "ok"}), _secret("cart-db", {"pw": "b2s="}), \
        _service({"app": "cart"})
    edited = _configmap("cart-config", {"mode": "broken"}, written=NOW - 300)
    sts = {"kind": "StatefulSet", "metadata": {"name": "cart-cache", "namespace": NS, "labels": {"app": "cache"}},
           "spec": {"template": _template()}}
    ds = {"kind": "DaemonSet", "metadata": {"name": "cart-agent", "namespace": NS, "labels": {"app": "agent"}},
          "spec": {"template": _template(config="other-config")}}
    snap = build_snapshot(ALERT, [], [*_cluster(edited, secret, svc), sts, ds], now=NOW,
                          known_good=[_good(good_cm, secret, svc)])
    # The StatefulSet mounts the edited ConfigMap, so the revert restarts it too; the DaemonSet does not.
    assert [u.ref for u in snap.config_users] == [CART, ObjectRef("StatefulSet", NS, "cart-cache")]

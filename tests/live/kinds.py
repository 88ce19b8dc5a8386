"""A cluster with a workload of every kind, seeded as the controllers would have left it."""

from __future__ import annotations

from typing import Any

from tests.support.kube import KubeServer

NS = "shop"
UID = "00000000-0000-0000-0000-0000000000{:02d}"


def _owner(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True}


def _template(app: str, *, volumes: list[dict[str, Any]] | None = None, restart: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": app, "image": f"{app}:1",
                                            "resources": {"limits": {"memory": "256Mi", "cpu": "500m"}}}]}
    if volumes:
        spec["volumes"] = volumes
    if restart:
        spec["restartPolicy"] = restart
    return {"metadata": {"labels": {"app": app}}, "spec": spec}


def _pod(name: str, owner: dict[str, Any], template: dict[str, Any], node: str, *,
         volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec = {**template["spec"], "nodeName": node}
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": dict(template["metadata"]["labels"]),
                         "ownerReferences": [_owner(owner)]},
            "spec": spec, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def seed_every_kind(kube: KubeServer) -> dict[str, Any]:
    """In `shop`: StatefulSet redis-cart (2 pods, claims data-redis-cart-N), DaemonSet agent, CronJob
    nightly with its Job and pod, Argo Rollout checkout with its ReplicaSet and pod, and a Service
    for each; nodes node-s1 and node-s2."""
    kube.seed(*[{"apiVersion": "v1", "kind": "Node", "metadata": {"name": n},
                 "status": {"conditions": [{"type": "Ready", "status": "True"}]}} for n in ("node-s1", "node-s2")])
    redis_t = _template("redis-cart")
    claim_t = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                      "resources": {"requests": {"storage": "1Gi"}}}}
    agent_t = _template("agent")
    job_t = _template("nightly", restart="Never")
    roll_t = _template("checkout")
    [sts, ds, cron, rollout] = kube.seed(
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "redis-cart", "namespace": NS},
         "spec": {"replicas": 2, "serviceName": "redis-cart", "selector": {"matchLabels": {"app": "redis-cart"}},
                  "template": redis_t, "volumeClaimTemplates": [claim_t]}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": NS},
         "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": agent_t}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": NS},
         "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": job_t}}}},
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "checkout", "namespace": NS},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "checkout"}}, "template": roll_t}},
    )
    job_sel = {"matchLabels": {"job-name": "nightly-29000000"}}
    [job] = kube.seed({"apiVersion": "batch/v1", "kind": "Job", "metadata": {
        "name": "nightly-29000000", "namespace": NS, "ownerReferences": [_owner(cron)]},
        "spec": {"selector": job_sel, "manualSelector": True,
                 "template": {**job_t, "metadata": {"labels": {"app": "nightly", "job-name": "nightly-29000000"}}}}})
    [rs] = kube.seed({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
        "name": "checkout-6b9f7", "namespace": NS, "ownerReferences": [_owner(rollout)],
        "labels": {"app": "checkout", "rollouts-pod-template-hash": "6b9f7"},
        "annotations": {"rollout.argoproj.io/revision": "1"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "checkout"}}, "template": roll_t}})
    pods = kube.seed(
        *[_pod(f"redis-cart-{i}", sts, redis_t, f"node-s{i + 1}",
               volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": f"data-redis-cart-{i}"}}])
          for i in range(2)],
        _pod("agent-x7k2p", ds, agent_t, "node-s1"),
        _pod("nightly-29000000-q8w2e", job, {**job_t, "metadata": {"labels": {"app": "nightly",
                                                                               "job-name": "nightly-29000000"}}},
             "node-s2"),
        _pod("checkout-6b9f7-z9x8c", rs, roll_t, "node-s2"),
    )
    kube.seed(
        *[{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": f"data-redis-cart-{i}",
                                                                            "namespace": NS},
           "spec": claim_t["spec"]} for i in range(2)],
        *[{"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "namespace": NS},
           "spec": {"selector": {"app": app}, "ports": [{"port": 80}]}} for app in ("redis-cart", "checkout")],
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
         "metadata": {"name": "redis-cart", "namespace": NS},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "redis-cart"},
                  "maxReplicas": 4}},
        {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {
            "name": "redis-cart-rev1", "namespace": NS, "labels": {"app": "redis-cart"},
            "ownerReferences": [_owner(sts)]}, "revision": 1, "data": {}},
    )
    return {"statefulset": sts, "daemonset": ds, "cronjob": cron, "job": job, "rollout": rollout,
            "replicaset": rs, "pods": pods}

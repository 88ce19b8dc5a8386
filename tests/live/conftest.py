"""Fixtures for the live path: the Kubernetes emulator (validating), a ledger, a seeded workload."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # `tests.support` must import however pytest was started
    sys.path.insert(0, str(_ROOT))

from remediator.actions import ObjectRef  # noqa: E402
from remediator.live.ledger import Ledger  # noqa: E402
from remediator.snapshot import Alert, Neighbour, Signals, Snapshot  # noqa: E402
from remediator.versions import ConfigDrift, KnownGood, ServiceDrift, config_version, service_version  # noqa: E402
from tests.support import prom  # noqa: E402
from tests.support.kube import KubeEmulator, KubeServer  # noqa: E402

NS = "shop"
APP = "cart"

# A missing binary fails the test (tests/support/prom.require_binaries): never a silent skip.
requires_prometheus = pytest.mark.usefixtures("prometheus_binaries")


@pytest.fixture
def prometheus_binaries() -> None:
    prom.require_binaries()


@pytest.fixture
def kube() -> Iterator[KubeServer]:
    """The emulator; `validating(kube)` makes it check every object it stores (after seeding)."""
    with KubeServer(KubeEmulator()) as server:
        yield server


def validating(kube: KubeServer) -> KubeServer:
    """From now on every stored object is validated against the Kubernetes 1.33 schemas (422 if invalid).

    Seeding is not validated: the objects are ours, and kubernetes-validate costs ~40 ms a write.
    """
    kube.emulator.validate = "1.33"
    return kube


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "ledger.db") as db:
        yield db


def seed_workload(kube: KubeServer, *, replicas: int = 2, pdb_min: int | None = None,
                  dependency: bool = False) -> dict[str, Any]:
    """cart in shop: two revisions, pods on two nodes, an HPA, a PVC (expandable class), a PDB;
    `dependency` adds the Deployment db. The emulator validates every write after seeding."""
    seeded = kube.seed_deployment(APP, NS, replicas=replicas, images=("cart:1", "cart:2"),
                                  nodes=("node-a", "node-b"), limits={"memory": "256Mi", "cpu": "500m"})
    kube.seed(
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"},
         "provisioner": "csi.example.com", "allowVolumeExpansion": True},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": f"{APP}-data", "namespace": NS},
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                  "resources": {"requests": {"storage": "10Gi"}}},
         "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": APP, "namespace": NS},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
                  "minReplicas": 2, "maxReplicas": 4}},
    )
    if pdb_min is not None:
        kube.seed({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": APP, "namespace": NS},
                   "spec": {"minAvailable": pdb_min, "selector": {"matchLabels": {"app": APP}}}})
    if dependency:
        kube.seed_deployment("db", NS, replicas=1, nodes=("node-b",))
    # What revert_config, restore_service and uncordon_node act on: cart's ConfigMap and Service as someone
    # edited them (their last-known-good versions: `GOOD_CONFIG`, `GOOD_SERVICE`), a node Ready but cordoned.
    kube.seed(EDITED_CONFIG, EDITED_SERVICE,
              {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-c"}, "spec": {"unschedulable": True},
               "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    validating(kube)
    return seeded


def _config(data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{APP}-config", "namespace": NS},
            "data": data}


def _service(selector: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": APP, "namespace": NS},
            "spec": {"selector": selector, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}}


GOOD_CONFIG, EDITED_CONFIG = _config({"mode": "fast", "retries": "3"}), _config({"mode": "broken"})
GOOD_SERVICE, EDITED_SERVICE = _service({"app": APP}), _service({"app": APP, "version": "v2"})


def remember_good(ledger: Ledger) -> None:
    """The ledger's record of what cart used while its SLO held (what a revert puts back)."""
    ledger.record_known_good(KnownGood(ObjectRef("Deployment", NS, APP), 900.0, (config_version(GOOD_CONFIG),),
                                       (service_version(GOOD_SERVICE),)))


def _drifts() -> dict[str, Any]:
    edited, good = config_version(EDITED_CONFIG), config_version(GOOD_CONFIG)
    bad_svc, good_svc = service_version(EDITED_SERVICE), service_version(GOOD_SERVICE)
    return {"configs": (edited,), "config_drift": (ConfigDrift(edited, good, "edited"),),
            "config_users": (Neighbour(ObjectRef("Deployment", NS, APP), {"app": APP}),),
            "service": bad_svc, "service_drift": ServiceDrift(bad_svc, good_svc, ("selector",)),
            "cordoned_node": "node-c"}


def snapshot_for(*, desired: float = 2, hpa_max: float = 4, pods: tuple[str, ...] = (), node: str | None = "node-a",
                 alert: str = "KubePodCrashLooping", hpa: bool = True) -> Snapshot:
    """The cart incident as the guards judged it; a drain may evict the pods listed in `pods`; `hpa` False:
    judged as if no HPA scaled cart (so a scale is direct)."""
    cart = ObjectRef("Deployment", NS, APP)
    return Snapshot(
        alert=Alert(alert, {"namespace": NS, "deployment": APP}, starts_at=1000.0, fingerprint="f00d"),
        at=1060.0, workload=cart, signals=Signals(desired_replicas=desired, baseline_replicas=desired,
                                                  hpa_present=float(hpa), hpa_max=hpa_max if hpa else 0.0,
                                                  has_previous_revision=1.0, pending_pods=1.0),
        node=node, pods=pods, hpa=ObjectRef("HorizontalPodAutoscaler", NS, APP) if hpa else None,
        pvc=ObjectRef("PersistentVolumeClaim", NS, f"{APP}-data"),
        node_pods=tuple(Neighbour(ObjectRef("Pod", NS, p), {"app": APP}) for p in pods), **_drifts())


def _revision(owner: dict[str, Any], number: int, template: dict[str, Any]) -> dict[str, Any]:
    """A ControllerRevision as the StatefulSet/DaemonSet controller stores it: the template as a replace patch."""
    name = owner["metadata"]["name"]
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": f"{name}-rev{number}", "namespace": owner["metadata"]["namespace"],
                         "labels": dict(owner["spec"]["selector"]["matchLabels"]),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner["kind"], "name": name,
                                              "uid": owner["metadata"]["uid"], "controller": True}]},
            "revision": number, "data": {"spec": {"template": {**template, "$patch": "replace"}}}}


def _pod_template(name: str, image: str, mounts: bool) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image,
                                 "resources": {"limits": {"memory": "1Gi", "cpu": "1"}}}
    if mounts:
        container["volumeMounts"] = [{"name": "data", "mountPath": "/var/lib/db"}]
    return {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}


def seed_stateful(kube: KubeServer, *, keeps_data: bool = True) -> dict[str, Any]:
    """shop/db, a StatefulSet (3 replicas, a volumeClaimTemplate `data` unless `keeps_data` is False),
    and shop/agent, a DaemonSet; each with two ControllerRevisions (images :1 then :2, the current)."""
    sts_spec: dict[str, Any] = {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                                "template": _pod_template("db", "db:2", keeps_data)}
    if keeps_data:
        sts_spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}]
    [sts, ds] = kube.seed(
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": NS,
                                                                      "labels": {"app": "db"}}, "spec": sts_spec},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": NS,
                                                                    "labels": {"app": "agent"}},
         "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": _pod_template("agent", "agent:2", False)}})
    kube.seed(_revision(sts, 1, _pod_template("db", "db:1", keeps_data)), _revision(sts, 2, sts_spec["template"]),
              _revision(ds, 1, _pod_template("agent", "agent:1", False)),
              _revision(ds, 2, ds["spec"]["template"]))
    validating(kube)
    return {"statefulset": sts, "daemonset": ds}


def snapshot_of(workload: ObjectRef, *, desired: float = 3, keeps_data: bool = False) -> Snapshot:
    """An incident on a StatefulSet or DaemonSet (no HPA, no PVC of its own in the snapshot)."""
    return Snapshot(
        alert=Alert("KubeStatefulSetReplicasMismatch", {"namespace": NS, workload.kind.lower(): workload.name},
                    starts_at=1000.0, fingerprint="f00e"),
        at=1060.0, workload=workload, signals=Signals(desired_replicas=desired, baseline_replicas=desired,
                                                      has_previous_revision=1.0),
        node=None, keeps_data=keeps_data, workload_labels={"app": workload.name})

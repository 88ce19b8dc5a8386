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
    validating(kube)
    return seeded


def snapshot_for(*, desired: float = 2, hpa_max: float = 4, pods: tuple[str, ...] = (), node: str | None = "node-a",
                 alert: str = "KubePodCrashLooping") -> Snapshot:
    """The cart incident as the guards judged it; a drain may evict the pods listed in `pods`."""
    cart = ObjectRef("Deployment", NS, APP)
    return Snapshot(
        alert=Alert(alert, {"namespace": NS, "deployment": APP}, starts_at=1000.0, fingerprint="f00d"),
        at=1060.0, workload=cart, signals=Signals(desired_replicas=desired, baseline_replicas=desired,
                                                  hpa_present=1.0, hpa_max=hpa_max, has_previous_revision=1.0),
        node=node, pods=pods, hpa=ObjectRef("HorizontalPodAutoscaler", NS, APP),
        pvc=ObjectRef("PersistentVolumeClaim", NS, f"{APP}-data"),
        node_pods=tuple(Neighbour(ObjectRef("Pod", NS, p), {"app": APP}) for p in pods))

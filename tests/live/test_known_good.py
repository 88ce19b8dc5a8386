"""Last-known-good versions in the live path: the ledger keeps them (never a Secret's value), the
observer reads what they are compared with (never a Secret), through the official client."""

from __future__ import annotations

import time
from pathlib import Path

import kubernetes.client as k

from remediator.actions import ObjectRef
from remediator.live.ledger import Ledger
from remediator.live.observer import KubeObjectSource, Observer
from remediator.snapshot import Alert, Snapshot
from remediator.versions import ConfigVersion, KnownGood, config_version, service_version
from tests.live.conftest import APP, NS
from tests.support.kube import KubeServer

CART = ObjectRef("Deployment", NS, APP)
SECRET_VALUE = "c3VwZXItc2VjcmV0LXZhbHVl"  # base64 of a value that must never reach the ledger file


def test_the_ledger_keeps_versions_per_workload_and_never_a_secret_value(tmp_path: Path) -> None:
    cm = config_version({"kind": "ConfigMap", "metadata": {"name": "cart-config", "namespace": NS},
                         "data": {"mode": "fast"}})
    # Even a version that carries data for a Secret (built by hand) is stored without it.
    secret = ConfigVersion(ObjectRef("Secret", NS, "cart-db"), "blake2b:00", data={"data": {"pw": SECRET_VALUE}})
    svc = service_version({"kind": "Service", "metadata": {"name": APP, "namespace": NS},
                           "spec": {"selector": {"app": APP}, "ports": [{"port": 80, "targetPort": "http"}]}})
    path = tmp_path / "ledger.db"
    with Ledger(path) as ledger:
        assert ledger.record_known_good(KnownGood(CART, 100.0, (cm, secret), (svc,)))
        assert not ledger.record_known_good(KnownGood(CART, 200.0, (cm, secret), (svc,)))  # same versions
        [kept] = ledger.known_good(NS)
        assert kept.at == 200.0 and kept.config(cm.ref) == cm and kept.service(APP) == svc
        assert kept.config(secret.ref) is not None and kept.config(secret.ref).data == {}  # type: ignore[union-attr]
        edited = config_version({"kind": "ConfigMap", "metadata": {"name": "cart-config", "namespace": NS},
                                 "data": {"mode": "broken"}})
        assert ledger.record_known_good(KnownGood(CART, 300.0, (edited, secret), (svc,)))
        assert [r.config(cm.ref).digest for r in ledger.known_good(NS)] == [edited.digest]  # type: ignore[union-attr]
        assert ledger.known_good("other") == []
    for file in tmp_path.iterdir():  # the database and its WAL
        assert SECRET_VALUE.encode() not in file.read_bytes(), file


def _observe_cart(kube: KubeServer) -> Snapshot:
    """cart (its ConfigMap edited since the known-good record, a Secret by name) beside cart-cache, a
    StatefulSet mounting the same ConfigMap, observed through the official client."""
    kube.seed_deployment(APP, NS, replicas=2, nodes=("node-a",))
    kube.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cart-config", "namespace": NS},
               "data": {"mode": "fast"}},
              {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cart-db", "namespace": NS},
               "data": {"pw": SECRET_VALUE}},
              {"apiVersion": "v1", "kind": "Service", "metadata": {"name": APP, "namespace": NS},
               "spec": {"selector": {"app": APP}, "ports": [{"port": 80, "targetPort": 8080}]}},
              {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "cart-cache", "namespace": NS},
               "spec": {"serviceName": "cart-cache", "selector": {"matchLabels": {"app": "cart-cache"}},
                        "template": {"metadata": {"labels": {"app": "cart-cache"}}, "spec": {
                            "volumes": [{"name": "cfg", "configMap": {"name": "cart-config"}}],
                            "containers": [{"name": "cache", "image": "redis:7"}]}}}})
    k.AppsV1Api(kube.api_client()).patch_namespaced_deployment(APP, NS, {"spec": {"template": {"spec": {
        "volumes": [{"name": "cfg", "configMap": {"name": "cart-config"}}],
        "containers": [{"name": APP, "envFrom": [{"secretRef": {"name": "cart-db"}}]}]}}}})
    now = time.time()
    good = KnownGood(CART, now - 600, (ConfigVersion(ObjectRef("ConfigMap", NS, "cart-config"), "sha256:old",
                                                     data={"data": {"mode": "slow"}}),))
    # No drain in the runbook: the neighbours' owners stay unread, so the config's users come from the
    # observation of the workload's surroundings alone.
    source = KubeObjectSource(kube.api_client(), clock=lambda: now, drains=lambda alert: False)
    observer = Observer(None, source, clock=lambda: now)
    return observer.observe(Alert("KubePodCrashLooping", {"namespace": NS, "deployment": APP}, starts_at=now - 60),
                            now=now, known_good=[good]).snapshot


def test_the_observer_reads_configmaps_and_services_and_never_a_secret(kube: KubeServer) -> None:
    snap = _observe_cart(kube)
    digests = {c.ref.kind: c.digest for c in snap.configs}
    assert digests["ConfigMap"].startswith("sha256:") and digests["Secret"] == ""  # named, never read
    assert [d.how for d in snap.config_drift] == ["edited"] and snap.signals.config_revertible == 1.0
    # A StatefulSet mounting the same ConfigMap restarts with its revert.
    assert [u.ref for u in snap.config_users] == [CART, ObjectRef("StatefulSet", NS, "cart-cache")]
    assert snap.service is not None and snap.service.ref.name == APP and snap.signals.service_ready_endpoints == 2
    assert not [r for r in kube.emulator.log if "/secrets" in r.path], "the observer read a Secret"


def test_a_workload_kind_the_role_does_not_list_leaves_its_users_unknown(kube: KubeServer) -> None:
    kube.inject_fault(403, times=100, method="GET", path=f"/apis/apps/v1/namespaces/{NS}/statefulsets")
    snap = _observe_cart(kube)  # the observation stands; the revert restarts only the users it saw
    assert [u.ref for u in snap.config_users] == [CART] and snap.signals.config_revertible == 1.0

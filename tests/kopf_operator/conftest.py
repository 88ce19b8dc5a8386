"""The operator's world: the Kubernetes emulator serving the chart's CRDs, a real Prometheus with a
simulated incident (cart in shop scaled to zero, recovering once its replicas are restored), and
the configuration `remediator run` reads.

The Prometheus holds the incident's whole timeline (the cluster restored at the alert, so that
an `auto` run verifies recovery); the emulator is seeded with the cluster as it was at the
alert. Each test gets its own emulator and ledger; the Prometheus is shared by the module.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from remediator.agent import decide  # noqa: E402
from remediator.guards import GuardPolicy  # noqa: E402
from remediator.propose.catalog import CatalogProposer  # noqa: E402
from remediator.rank import RulesRanker  # noqa: E402
from simulator.cluster import TICK_S  # noqa: E402
from simulator.incident import Incident  # noqa: E402
from tests.live.sim import incident, manifests, prometheus_with  # noqa: E402
from tests.live.test_loop import timeline, webhook_payload  # noqa: E402
from tests.support import prom  # noqa: E402
from tests.support.crds import chart_crds  # noqa: E402
from tests.support.kube import KubeEmulator, KubeServer  # noqa: E402

TOKEN = "hook-token"
CART = "/apis/apps/v1/namespaces/shop/deployments/cart"


@dataclass
class World:
    inc: Incident
    seed: list[dict[str, Any]]  # the cluster at the alert
    prometheus_url: str
    action: Any  # what the agent decides at the alert (restore_replicas)

    @property
    def alert_at(self) -> float:
        return self.inc.alert_at

    def payload(self, status: str = "firing") -> dict[str, Any]:
        return webhook_payload(self.inc, status)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    prom.require_binaries()
    inc = incident("scaled_to_zero", after_s=0)
    snap = inc.observe()
    chosen = decide(snap, CatalogProposer().propose(snap), RulesRanker(), [], GuardPolicy(), inc.now).candidate
    assert chosen is not None and chosen.kind.value == "restore_replicas"
    seed = manifests(inc.cluster.objects(), node_names=[n.name for n in inc.cluster.nodes.values()])
    inc.execute(chosen.action)
    inc.advance(600.0)
    series = timeline(inc, inc.alert_at + 900.0)
    with prometheus_with(tmp_path_factory.mktemp("prom"), series) as server:
        yield World(inc, seed, server.url, chosen.action)


def crd_emulator() -> KubeEmulator:
    """The emulator with the chart's CRDs installed: it refuses what their schemas and CEL rules refuse."""
    emulator = KubeEmulator()
    for crd in chart_crds():
        emulator.install_crd(crd)
    return emulator


@pytest.fixture
def kube(world: World) -> Iterator[KubeServer]:
    with KubeServer(crd_emulator()) as server:
        server.seed(*world.seed)
        server.emulator.validate = "1.33"
        yield server


def write_config(directory: Path, kube: KubeServer, world: World, *, mode: str, store: str = "ledger.db",
                 identity: str = "replica-a", port: int = 0, **sections: Any) -> Path:
    """`remediator run`'s configuration, with fast leader-election timings for tests."""
    directory.mkdir(parents=True, exist_ok=True)
    kube.write_kubeconfig(directory / "kubeconfig.yaml")
    operator = {"namespace": "remediator", "identity": identity, "lease_s": 3, "renew_deadline_s": 2,
                "retry_s": 0.2, "mirror_s": 0.2, **sections.pop("operator", {})}
    config = {
        "kubernetes": {"kubeconfig": str(directory / "kubeconfig.yaml")},
        "prometheus": {"url": world.prometheus_url, "retries": 0, "timeout_s": 5},
        "mode": mode, "store": str(directory / store) if not Path(store).is_absolute() else store,
        "listen": {"host": "127.0.0.1", "port": port, "bearer_token": TOKEN},
        "ranker": "rules",
        "verify": {"interval_s": TICK_S, "decision_s": 60, "horizon_s": 600, "retry_s": TICK_S},
        "executor": {"backoff_base_s": 0.01, "backoff_max_s": 0.1},
        "operator": operator,
        **sections,
    }
    path = directory / "remediator.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def remediation(kube: KubeServer, name: str = "incident-1", namespace: str = "shop") -> dict[str, Any] | None:
    return kube.get("remediator.io/v1alpha1", "Remediation", namespace, name)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def printer_columns(obj: dict[str, Any]) -> dict[str, Any]:
    """What `kubectl get remediations` shows for `obj`: the CRD's printer columns, each JSONPath evaluated."""
    crd = next(c for c in chart_crds() if c.kind == obj["kind"])
    path = Path(__file__).resolve().parents[2] / "helm" / "remediator" / "crds" / f"{crd.plural}.{crd.group}.yaml"
    doc = yaml.safe_load(path.read_text())
    row = {}
    for column in doc["spec"]["versions"][0]["additionalPrinterColumns"]:
        value: Any = obj
        for part in column["jsonPath"].strip(".").replace("[0]", ".0").split("."):
            if isinstance(value, list):
                value = value[int(part)] if value and part.isdigit() else None
            else:
                value = (value or {}).get(part) if isinstance(value, dict) else None
        row[column["name"]] = value
    return row


def executed(kube: KubeServer) -> list[Any]:
    """The writes that changed cart (not server-side dry runs): what "acting" means on the emulator."""
    return [r for r in kube.requests() if r.method in ("PATCH", "PUT") and r.path.startswith(CART)
            and r.status == 200 and r.query.get("dryRun") != "All"]


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, default=str)


def calls_made(kube: KubeServer) -> set[Any]:
    """Every API call the emulator answered, as RBAC sees it: (verb, group, resource[/subresource])."""
    from remediator.live.executor import ApiCall
    from tests.support.kube import parse_api_path

    verbs = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}
    out = set()
    for r in kube.requests():
        target = parse_api_path(r.path)
        if target is None:
            continue  # discovery (/api, /apis): granted to every authenticated user
        if r.method == "GET":
            verb = "get" if target.name else ("watch" if r.query.get("watch") in ("true", "1") else "list")
        else:
            verb = verbs[r.method]
        resource = target.plural + (f"/{target.subresource}" if target.subresource else "")
        out.add(ApiCall(verb, target.group, resource))
    return out

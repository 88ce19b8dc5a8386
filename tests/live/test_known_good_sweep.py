"""The healthy-time known-good sweep (remediator/live/known_good.py) in the running agent.

Real parts: a real Prometheus holding a simulated incident's timeline (healthy for the first
minutes, then a ConfigMap edit breaks the SLO), the official client against the Kubernetes
emulator, the agent built from its configuration file, the SQLite ledger; the loop ticks on a
simulated clock. A ConfigMap edited while the service is healthy becomes its known-good version
once it has settled; one edited while an incident is open for the workload does not, nor does
anything while the SLO is broken.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes.client as k
import pytest

from remediator.actions import ObjectRef
from remediator.live.config import load_config
from remediator.live.known_good import SweepReport
from remediator.live.ledger import Ledger
from remediator.live.observer import API_CALLS
from remediator.live.service import Agent
from remediator.versions import config_version
from tests.live.conftest import requires_prometheus
from tests.live.sim import incident, manifests, prometheus_with, written
from tests.live.test_loop import SimClock, post_webhook, timeline, write_config
from tests.live.test_scope import _api_call
from tests.support.kube import KubeEmulator, KubeServer

CART = ObjectRef("Deployment", "shop", "cart")
SEARCH = ObjectRef("Deployment", "shop", "search")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _config(mode: str, t: float) -> dict[str, Any]:
    return written({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cart-config", "namespace": "shop"},
                     "data": {"mode": mode}}, t)


def _digest(ledger: Ledger, ref: ObjectRef) -> str | None:
    record = next((r for r in ledger.known_good(ref.namespace) if r.workload == ref), None)
    config = record.config(ObjectRef("ConfigMap", "shop", "cart-config")) if record is not None else None
    return config.digest if config is not None else None


@requires_prometheus
def test_a_config_edited_while_healthy_becomes_known_good_and_one_edited_during_an_incident_does_not(
        tmp_path: Path) -> None:
    inc = incident("config_edited", after_s=0)
    a = inc.alert_at  # the fault's onset is ~7 min before; the SLO holds until a minute after it
    assert a - inc.onset > 400
    with KubeServer(KubeEmulator()) as kube:
        objects = manifests(inc.cluster.objects(), node_names=list(inc.cluster.nodes))
        kube.seed(*[written(o, a - 86400) for o in objects], _config("v1", a - 86400))
        with prometheus_with(tmp_path / "p", timeline(inc, a + 120)) as prom:
            config = load_config(write_config(tmp_path, kube, prom.url, mode="dry-run", horizon_s=1800.0,
                                              known_good={"interval_s": 30, "settle_s": 60, "namespaces": ["shop"]}))
            clock = SimClock(a - 760)
            agent = Agent(config, clock=clock).start(worker=False)
            sweep = agent.loop.sweep
            assert sweep is not None
            reports: dict[str, SweepReport] = {}
            core = k.CoreV1Api(kube.api_client())

            def tick(t: float, name: str) -> None:
                clock.t = t
                before = sweep.started_at
                agent.loop.tick(t)
                if sweep.started_at != before:
                    reports[name] = sweep.last_report

            def edit(mode: str, t: float) -> None:
                core.patch_namespaced_config_map("cart-config", "shop", _config(mode, t))

            try:
                start = len(kube.requests())
                tick(a - 760, "healthy")
                edit("v2", a - 750)  # while healthy, no incident
                tick(a - 720, "just edited")
                tick(a - 680, "settled")
                # An incident for cart opens (its alert fires; the loop resolves it to cart) ...
                alert = {"status": "firing", "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop",
                                                        "deployment": "cart"},
                         "annotations": {}, "startsAt": _iso(a - 670), "endsAt": "0001-01-01T00:00:00Z",
                         "fingerprint": "sweep-test-1"}
                firing = {"version": "4", "status": "firing", "alerts": [alert]}
                assert post_webhook(agent.server.url, firing, "") == 200
                tick(a - 670, "incident opens")
                edit("v3", a - 665)  # ... and the ConfigMap is edited while it is open
                tick(a - 600, "during the incident")
                # The alert resolves; with no incident open the sweep judges cart by its SLO again, broken now.
                resolved = {**alert, "status": "resolved", "endsAt": _iso(a - 590)}
                assert post_webhook(agent.server.url, {"version": "4", "status": "resolved", "alerts": [resolved]},
                                    "") == 200
                tick(a + 60, "SLO broken")
                calls = {_api_call(r.method, r.path) for r in kube.requests()[start:] if r.method == "GET"}
            finally:
                agent.stop()
    v1, v2, v3 = (config_version(_config(m, 0)).digest for m in ("v1", "v2", "v3"))
    assert set(reports["healthy"].recorded) == {CART, SEARCH}
    [(ref, why)] = reports["just edited"].skipped
    assert ref == CART and "ConfigMap/shop/cart-config was written 30s ago" in why, why
    assert reports["settled"].recorded == [CART] and reports["settled"].kept == [SEARCH]
    during = reports["during the incident"]
    assert [r for r, _ in during.skipped] == [CART] and "is open for it" in during.skipped[0][1], during
    assert during.kept == [SEARCH]
    assert "SLO does not hold" in dict(reports["SLO broken"].skipped)[CART], reports["SLO broken"]
    with Ledger(config.store) as ledger:
        assert _digest(ledger, CART) == v2 != v1  # the healthy edit is known good ...
        assert v3 != v2  # ... the one made during the incident is not
        assert ledger.incidents()[0].status == "cancelled"
    # Every read the sweep made is one the chart's RBAC grants (the observer's table); it read no Secret.
    assert calls <= set(API_CALLS), sorted(calls - set(API_CALLS))
    assert ("list", "apps", "deployments") in calls and not any(c[2] == "secrets" for c in calls)


@pytest.mark.parametrize(("interval", "due"), [(0.0, False), (300.0, True)])
def test_the_sweep_is_off_at_interval_zero(tmp_path: Path, interval: float, due: bool) -> None:
    from remediator.live.config import KnownGoodSettings
    from remediator.live.known_good import KnownGoodSweep
    from remediator.live.observer import Observer, StaticObjects

    with Ledger(tmp_path / "l.db") as ledger:
        sweep = KnownGoodSweep(ledger, Observer(None, StaticObjects([])), KnownGoodSettings(interval_s=interval))
        assert sweep.due(1000.0) is due

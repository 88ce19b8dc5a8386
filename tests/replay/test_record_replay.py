"""`record` from a real Prometheus (backfilled with promtool) and the Kubernetes emulator, then
`replay`: the observation during replay equals the live observer's on the same data."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from remediator.cli import app
from remediator.encoding import encode, feature_names
from remediator.live.observer import KubeObjectSource, Observer, PrometheusSource
from remediator.replay.run import observe_trace
from remediator.replay.trace import load_trace
from simulator.cluster import TICK_S
from tests.live.conftest import requires_prometheus
from tests.live.sim import incident, manifests, merge, observed_series, prometheus_with
from tests.support.kube import KubeEmulator, KubeServer

runner = CliRunner()


def _payload(alert: Any) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {"version": "4", "status": "firing", "receiver": "remediator", "groupKey": "{}:{}",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
            "alerts": [{"status": "firing", "labels": {"alertname": alert.name, **alert.labels},
                        "annotations": dict(alert.annotations),
                        "startsAt": datetime.fromtimestamp(alert.starts_at, UTC).isoformat().replace("+00:00", "Z"),
                        "endsAt": "0001-01-01T00:00:00Z", "fingerprint": alert.fingerprint or "f0"}]}


def _config(tmp_path: Path, kube: KubeServer, prom_url: str) -> Path:
    kube.write_kubeconfig(tmp_path / "kubeconfig.yaml")
    path = tmp_path / "remediator.yaml"
    path.write_text(yaml.safe_dump({"kubernetes": {"kubeconfig": "kubeconfig.yaml"},
                                    "prometheus": {"url": prom_url, "retries": 0, "timeout_s": 5},
                                    "store": "ledger.db"}))
    return path


def _same(live: Any, replayed: Any) -> None:
    a, b = encode(live), encode(replayed)
    worst = int(np.argmax(np.abs(a - b)))
    assert np.array_equal(a, b), f"{feature_names()[worst]}: live {a[worst]} vs replay {b[worst]}"
    for f in dataclasses.fields(live.signals):
        x, y = getattr(live.signals, f.name), getattr(replayed.signals, f.name)
        assert x == y or (math.isnan(x) and math.isnan(y)), f.name
    assert (live.workload, live.pods, live.node, live.missing, live.dependencies) == (
        replayed.workload, replayed.pods, replayed.node, replayed.missing, replayed.dependencies)


@requires_prometheus
@pytest.mark.parametrize("fault", ["memory_leak", "bad_rollout", "dependency_errors"])
def test_record_then_replay_observes_what_the_live_observer_does(tmp_path: Path, fault: str) -> None:
    inc = incident(fault, after_s=0.0)
    history = [observed_series(inc)]
    for _ in range(10):  # ten minutes of scrapes after the alert, as Prometheus would have kept them
        inc.advance(60.0)
        history.append(observed_series(inc))
    objects = inc.cluster.objects()
    with KubeServer(KubeEmulator()) as kube, prometheus_with(tmp_path / "prom", merge(*history)) as prom:
        kube.seed(*manifests(objects, node_names=[n.name for n in inc.cluster.nodes.values()]))
        config = _config(tmp_path, kube, prom.url)
        payload = tmp_path / "alert.json"
        payload.write_text(json.dumps(_payload(inc.alert)))
        trace_path = tmp_path / "trace.json.gz"
        result = runner.invoke(app, ["record", "--config", str(config), "--alert", str(payload),
                                     "--before", "15m", "--after", "10m", "--out", str(trace_path)])
        assert result.exit_code == 0, result.output
        trace = load_trace(trace_path)
        assert trace.step_s == TICK_S and trace.alert.name == inc.alert.name
        assert {s.name for s in trace.series} >= {"kube_deployment_spec_replicas", "container_memory_working_set_bytes"}

        live = Observer(PrometheusSource(prom.url, retries=0), KubeObjectSource(kube.api_client(retries=False)))
        # Every minute of the incident, the decision time included.
        times = [trace.decide_at] + [inc.alert_at + k * 60.0 for k in range(1, 10)]
        for at in times:
            seen = live.observe(inc.alert, now=at)
            replayed = observe_trace(trace, at=at)
            assert seen.usable and replayed.usable, (seen.problem, replayed.problem)
            _same(seen.snapshot, replayed.snapshot)
            assert [m.metric for m in seen.missing] == [m.metric for m in replayed.missing]

    # Replay needs neither Prometheus nor the API server: it runs from the file alone.
    report = tmp_path / "replay.json"
    result = runner.invoke(app, ["replay", str(trace_path), "--ranker", "rules", "--ranker", "rl",
                                 "--json", str(report)])
    assert result.exit_code == 0, result.output
    doc = json.loads(report.read_text())
    exact = doc["traces"][0]["exact"]
    assert exact["problem"] is None and exact["workload"].endswith("/" + inc.spec.service)
    assert set(exact["decisions"]) == {"rules", "rl"}
    assert all(d["action"] for d in exact["decisions"].values())
    assert "recorded_after" in doc["traces"][0]
